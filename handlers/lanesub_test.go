package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A lane's new reader holds a trigger redelivered from the previous
// reader, which then acknowledges it after all; at the same time another
// trigger's delivery is lost. The count of unacknowledged triggers equals
// what the reader holds, yet the lost one is not among them: the gate
// stays shut until it is back. The acknowledged trigger is either at the
// consumer's ack floor or, behind an earlier trigger still held, above it.
// A count that took a redelivered trigger still in the lane stream as
// unacknowledged opens the gate only when the next poll agrees.
func TestGateDoesNotCountTriggersAcknowledgedElsewhere(t *testing.T) {
	t.Parallel()
	js, ctx := gateServer(t)
	for _, earlier := range []bool{false, true} {
		t.Run(fmt.Sprintf("earlier trigger held %v", earlier), func(t *testing.T) {
			name := fmt.Sprintf("GATE%v", earlier)
			stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Retention: jetstream.WorkQueuePolicy})
			if err != nil {
				t.Fatal(err)
			}
			cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "lane", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			subjects := []string{"stale", "lost", "later"}
			if earlier {
				subjects = append([]string{"earlier"}, subjects...)
			}
			for _, subj := range subjects {
				if _, err := js.Publish(ctx, name+"."+subj, nil); err != nil {
					t.Fatal(err)
				}
			}
			next := func(want string) jetstream.Msg {
				t.Helper()
				return fetchOn(t, cons, name+"."+want)
			}
			// reply sends an acknowledgement and waits for the server's
			// answer, so that the next fetch sees its effect.
			reply := func(m jetstream.Msg, ack string) {
				t.Helper()
				if _, err := js.Conn().Request(m.Reply(), []byte(ack), 5*time.Second); err != nil {
					t.Fatal(err)
				}
			}

			out := make(chan *message.Message, 8)
			l := &lane{s: &laneSubscriber{closing: make(chan struct{})}, out: out, stream: stream, gated: true,
				orders: map[string][]*held{}, bySeq: map[uint64]*held{}, quit: make(chan struct{})}
			defer close(l.quit)

			if earlier {
				l.add(ctx, next("earlier")) // delivered here only, not yet applied
			}
			first := next("stale") // the previous reader's delivery, still running there
			reply(first, "-NAK")
			l.add(ctx, next("stale")) // its redelivery, held here
			lost := next("lost")      // never reaches the lane
			l.add(ctx, next("later"))
			reply(first, "+ACK") // the previous reader applies it after all

			l.openGate(ctx, cons, nil)
			if !l.gated {
				t.Fatal("the gate opened while a lost delivery was outstanding")
			}
			reply(lost, "-NAK")
			l.add(ctx, next("lost")) // the lost trigger comes back, a redelivery the lane stream has
			l.openGate(ctx, cons, nil)
			if !l.gated {
				t.Fatal("the gate opened on one count that took a redelivered trigger as unacknowledged")
			}
			l.openGate(ctx, cons, nil) // the next poll confirms it
			if l.gated {
				t.Fatal("the gate stayed shut with every unacknowledged trigger held")
			}
			// Every held trigger but the one the previous reader applied,
			// which the lane stream no longer has.
			if len(out) != len(subjects)-1 {
				t.Fatalf("%d triggers started, want %d", len(out), len(subjects)-1)
			}
		})
	}
}

// gateServer starts a server for a gate test: a connection's JetStream
// and a context that ends with the test.
func gateServer(t *testing.T) (jetstream.JetStream, context.Context) {
	t.Helper()
	srv := eventstoretest.StartServer(t)
	js, err := jetstream.New(eventstoretest.Connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := eventstoretest.Context(time.Minute)
	t.Cleanup(cancel)
	return js, ctx
}

// laneSubject is a trigger's lane subject for order o (lane 0, tenant
// default).
func laneSubject(trigger string) string {
	return eventstore.SubjectRoot + "._lanes.0.default.o." + trigger
}

// gateFixture is a lane stream with lane 0's consumer on a server of its
// own, and a lane reading it gated, for a gate test. The test fetches
// deliveries itself (next) and hands the lane those that reach it.
type gateFixture struct {
	js     jetstream.JetStream
	ctx    context.Context
	stream jetstream.Stream
	cons   jetstream.Consumer
	lane   *lane
	out    chan *message.Message // what the lane started
}

// newGateFixture stores one trigger of order o for each name in
// triggers, in order.
func newGateFixture(t *testing.T, triggers ...string) *gateFixture {
	t.Helper()
	f := &gateFixture{out: make(chan *message.Message, 8)}
	f.js, f.ctx = gateServer(t)
	var err error
	f.stream, err = f.js.CreateStream(f.ctx, jetstream.StreamConfig{Name: eventstore.StreamTriggerLanes,
		Subjects: []string{eventstore.SubjectRoot + "._lanes.>"}, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	f.cons, err = f.stream.CreateConsumer(f.ctx, jetstream.ConsumerConfig{Durable: "lane", FilterSubject: eventstore.SubjectRoot + "._lanes.0.>",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, triggers...)
	f.lane = &lane{s: &laneSubscriber{js: f.js, closing: make(chan struct{})}, out: f.out, stream: f.stream, gated: true,
		orders: map[string][]*held{}, bySeq: map[uint64]*held{}, quit: make(chan struct{})}
	t.Cleanup(func() { close(f.lane.quit) })
	return f
}

func (f *gateFixture) publish(t *testing.T, triggers ...string) {
	t.Helper()
	for _, tr := range triggers {
		if _, err := f.js.Publish(f.ctx, laneSubject(tr), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// next is the consumer's next delivery, which must be of trigger want.
func (f *gateFixture) next(t *testing.T, want string) jetstream.Msg {
	t.Helper()
	return fetchTrigger(t, f.cons, want)
}

// fetchTrigger is cons's next delivery, which must be of trigger want.
func fetchTrigger(t *testing.T, cons jetstream.Consumer, want string, opts ...jetstream.FetchOpt) jetstream.Msg {
	t.Helper()
	return fetchOn(t, cons, laneSubject(want), opts...)
}

// fetchOn is cons's next delivery, which must be on subject want.
func fetchOn(t *testing.T, cons jetstream.Consumer, want string, opts ...jetstream.FetchOpt) jetstream.Msg {
	t.Helper()
	b, err := cons.Fetch(1, append(opts, jetstream.FetchMaxWait(5*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-b.Messages()
	if !ok {
		t.Fatalf("nothing delivered, want %s: %v", want, b.Error())
	}
	if m.Subject() != want {
		t.Fatalf("delivered %s, want %s", m.Subject(), want)
	}
	return m
}

// reply acknowledges (ack: "+ACK", "-NAK") a delivery for the reader it
// went to, and waits for the server's answer.
func (f *gateFixture) reply(t *testing.T, m jetstream.Msg, ack string) {
	t.Helper()
	if _, err := f.js.Conn().Request(m.Reply(), []byte(ack), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// poll runs the lane's gate polls n times.
func (f *gateFixture) poll(n int) {
	for range n {
		f.lane.openGate(f.ctx, f.cons, nil)
	}
}

// handBack hands a delivery back (NAK) for the reader it went to, gives
// the lane its redelivery (trigger want), and checks that the gate opens:
// a count with a redelivered trigger is confirmed by the next poll.
func (f *gateFixture) handBack(t *testing.T, m jetstream.Msg, want string) {
	t.Helper()
	f.reply(t, m, "-NAK")
	f.lane.add(f.ctx, f.next(t, want))
	f.poll(2)
	if f.lane.gated {
		t.Fatal("the gate stayed shut with every unacknowledged trigger held")
	}
}

// startedOnly checks that the lane started exactly one trigger, want.
func (f *gateFixture) startedOnly(t *testing.T, want string) {
	t.Helper()
	if len(f.out) != 1 {
		t.Fatalf("%d triggers started, want 1 (%s; the order's later triggers wait for it)", len(f.out), want)
	}
	if m := <-f.out; m.Metadata.Get(mdSubject) != laneSubject(want) {
		t.Fatalf("started %s, want %s", m.Metadata.Get(mdSubject), want)
	}
}

// While a cluster node starts up it can answer for a lane's consumer
// before the leader does, with an empty state: nothing delivered, nothing
// unacknowledged. The gate must not take that for a count: a lane waiting
// for a lost delivery stays shut until the delivery is back.
func TestGateIgnoresAnswersThatDoNotKnowTheLane(t *testing.T) {
	t.Parallel()
	f := newGateFixture(t, "lost", "later")
	l := f.lane
	lost := f.next(t, "lost") // never reaches the lane
	l.add(f.ctx, f.next(t, "later"))

	starting := &jetstream.ConsumerInfo{Stream: eventstore.StreamTriggerLanes, Name: "lane"} // what a starting node says
	l.openGateOn(f.ctx, starting)
	if !l.gated {
		t.Fatal("the gate opened on an answer that knows none of the lane's deliveries")
	}
	// On a cluster the leader's answer has a cluster section; one without
	// it is not the leader's, whatever its numbers.
	l.s.clustered.Store(true)
	info, err := f.cons.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	noLeader := *info
	noLeader.NumAckPending = 1
	l.openGateOn(f.ctx, &noLeader)
	if !l.gated {
		t.Fatal("the gate opened on a clustered answer without a leader")
	}
	l.s.clustered.Store(false)

	f.handBack(t, lost, "lost") // the lost trigger is back
	f.startedOnly(t, "lost")
}

// A lane's new reader can find the lane idle while the previous reader
// still holds its pin: nothing unacknowledged, nothing held, so its gate
// opens. The previous reader is then delivered an order's first trigger
// and keeps it running as the lane changes hands; the new reader is
// delivered the order's second. That one must wait for the first (its
// delivery numbers show that another reader had a delivery since the
// gate opened), not start ahead of it.
func TestGateOpenedOnAnIdleLaneSeesDeliveriesElsewhere(t *testing.T) {
	t.Parallel()
	f := newGateFixture(t)
	l := f.lane
	f.poll(1) // the lane is idle: nothing to wait for
	if l.gated {
		t.Fatal("the gate stayed shut on an idle lane")
	}
	f.publish(t, "first", "second")
	first := f.next(t, "first") // the previous reader's, still running there
	l.add(f.ctx, f.next(t, "second"))
	if len(f.out) != 0 {
		t.Fatal("the order's second trigger started while its first was running elsewhere")
	}
	if !l.gated {
		t.Fatal("the lane is not gated after a delivery to another reader")
	}
	f.handBack(t, first, "first")
	f.startedOnly(t, "first")
}

// A lane taken over from a reader that is gone is reset (see
// redeliverOrphans): the consumer then counts deliveries afresh, and the
// previous reader's trigger comes to the new reader as if delivered for
// the first time. That reader may be back after all (cut off from NATS,
// then reconnected) and acknowledge it, while another trigger's delivery
// to the new reader is lost: the count of unacknowledged triggers equals
// what the new reader holds, yet the lost one is not among them.
func TestGateAfterAResetDoesNotCountTriggersAcknowledgedElsewhere(t *testing.T) {
	t.Parallel()
	f := newGateFixture(t, "stale", "lost", "later")
	l := f.lane
	first := f.next(t, "stale") // the previous reader's, in hand as it was cut off
	info, err := f.cons.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.deliveredTo = info.Delivered.Stream // as takeOver sets it
	l.redeliverOrphans(f.ctx, info)
	if l.s.resets.Load() != 1 {
		t.Fatal("the lane was not reset")
	}
	l.add(f.ctx, f.next(t, "stale")) // delivered again, counted as a first delivery
	lost := f.next(t, "lost")        // never reaches the lane
	l.add(f.ctx, f.next(t, "later"))
	f.reply(t, first, "+ACK") // the previous reader, back, acknowledges it
	f.poll(2)
	if !l.gated {
		t.Fatal("the gate opened while a lost delivery was outstanding")
	}
	f.handBack(t, lost, "lost")
	f.startedOnly(t, "lost") // the stale one, applied elsewhere, is gone from the lane
}

// After a reset the consumer counts as unacknowledged only what it has
// delivered since. A trigger held from before, above what the consumer
// has delivered again, must not stand in for an earlier trigger of
// another order delivered elsewhere: the gate stays shut until that one
// comes here, and starts it first. The held one is let go and comes
// again in turn.
func TestGateAfterAResetCountsOnlyWhatWasDeliveredSince(t *testing.T) {
	t.Parallel()
	f := newGateFixture(t, "first", "second") // of order o
	// One trigger of order p, after them.
	other := eventstore.SubjectRoot + "._lanes.0.default.p.only"
	if _, err := f.js.Publish(f.ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	l := f.lane
	f.next(t, "first") // to a reader that goes away
	f.next(t, "second")
	b, err := f.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-b.Messages()
	if !ok || m.Subject() != other {
		t.Fatalf("delivered %v, want order p's trigger", m)
	}
	l.add(f.ctx, m) // held here

	// The lane is read elsewhere meanwhile, and reset there.
	l.pinChanged()
	if _, err := f.js.ResetConsumerToSequence(f.ctx, eventstore.StreamTriggerLanes, "lane", 1); err != nil {
		t.Fatal(err)
	}
	first := f.next(t, "first") // delivered again, to a reader that goes away too
	l.add(f.ctx, f.next(t, "second"))
	f.poll(2)
	if !l.gated {
		t.Fatal("the gate opened while the order's first trigger was delivered elsewhere")
	}
	if _, held := l.bySeq[3]; held {
		info, err := f.cons.Info(f.ctx)
		if err != nil {
			t.Fatalf("the trigger held from before the reset, not delivered since, is still held (the consumer: %v)", err)
		}
		t.Errorf("the trigger held from before the reset, not delivered since, is still held (the consumer now: delivered %+v, ack floor %+v, %d unacknowledged; the lane's last delivery %d)",
			info.Delivered, info.AckFloor, info.NumAckPending, l.lastDel)
	}
	f.handBack(t, first, "first")
	f.startedOnly(t, "first")
}

// The count of unacknowledged triggers can balance out: here, on a lane
// found read elsewhere, a trigger held here was handed back, delivered
// again to another reader and acknowledged there, and the lane, which had
// it as a first delivery, does not look it up (the state is made by
// hand; the cut-off test reached such counts in ways not pinned down). It
// stands in for order o's first trigger, which the other reader has and
// has not acknowledged. The gate must still
// stay shut while the lane stream has o's first trigger below o's second
// held here, and start the first one once it comes.
func TestGateWaitsForAnOrdersEarlierTriggerHeldElsewhere(t *testing.T) {
	t.Parallel()
	other := eventstore.SubjectRoot + "._lanes.0.default.p.only"
	f := newGateFixture(t)
	if _, err := f.js.Publish(f.ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "first", "second") // of order o
	l := f.lane
	fetch := func(want string) jetstream.Msg {
		b, err := f.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		m, ok := <-b.Messages()
		if !ok || m.Subject() != want {
			t.Fatalf("delivered %v, want %s", m, want)
		}
		return m
	}
	l.pinChanged() // the lane has been found read elsewhere
	standIn := fetch(other)
	l.add(f.ctx, standIn)
	f.reply(t, standIn, "-NAK")
	f.reply(t, fetch(other), "+ACK") // delivered again elsewhere, and applied there
	first := f.next(t, "first")      // to the other reader, not acknowledged
	l.add(f.ctx, f.next(t, "second"))
	f.poll(2)
	if !l.gated {
		t.Fatal("the gate opened while the order's first trigger was held elsewhere")
	}
	f.handBack(t, first, "first")
	for range len(f.out) {
		if m := <-f.out; m.Metadata.Get(mdSubject) == laneSubject("second") {
			t.Fatal("the order's second trigger started ahead of its first")
		}
	}
}

// A reader that stops hearing the lane for a while (its process frozen,
// or cut off from NATS) keeps its period: it still holds what it was
// delivered. Meanwhile another reader takes the lane (it unpins it and
// has the unacknowledged triggers delivered again), applies and
// acknowledges one of those, leaves the order's next trigger running, and
// gives the lane back. The first reader's next delivery comes under a new
// pin. What it held from before may have been acknowledged elsewhere, so
// its count of unacknowledged triggers must not take those for its own:
// the gate stays shut until the trigger left running elsewhere is back,
// and the order's later trigger does not start ahead of it.
func TestGateAfterTheLaneWasReadElsewhere(t *testing.T) {
	t.Parallel()
	f := newGateFixture(t)
	// The lanes' consumers are pinned (see eventstore.EnsureLanes).
	if err := f.stream.DeleteConsumer(f.ctx, "lane"); err != nil {
		t.Fatal(err)
	}
	var err error
	f.cons, err = f.stream.CreateConsumer(f.ctx, jetstream.ConsumerConfig{Durable: "lane", FilterSubject: eventstore.SubjectRoot + "._lanes.0.>",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{eventstore.LaneGroup}, PinnedTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Each reader reads through a consumer handle of its own, which keeps
	// the pin it was given.
	reader := func() func(want string) jetstream.Msg {
		cons, err := f.stream.Consumer(f.ctx, "lane")
		if err != nil {
			t.Fatal(err)
		}
		return func(want string) jetstream.Msg {
			t.Helper()
			return fetchTrigger(t, cons, want, jetstream.FetchPriorityGroup(eventstore.LaneGroup))
		}
	}
	unpin := func() {
		t.Helper()
		if err := f.stream.UnpinConsumer(f.ctx, "lane", eventstore.LaneGroup); err != nil {
			t.Fatal(err)
		}
	}
	l := f.lane
	f.publish(t, "first", "second")
	here := reader()
	l.add(f.ctx, here("first")) // held here as the reader goes silent

	unpin() // the other reader takes the lane ...
	info, err := f.cons.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.ResetConsumerToSequence(f.ctx, eventstore.StreamTriggerLanes, "lane", info.AckFloor.Stream+1); err != nil {
		t.Fatal(err)
	}
	there := reader()
	f.reply(t, there("first"), "+ACK") // ... applies the first trigger
	second := there("second")          // ... leaves the second running
	unpin()                            // ... and gives the lane back

	f.publish(t, "third")
	back := reader() // the first reader, heard again
	l.add(f.ctx, back("third"))
	f.poll(2)
	if !l.gated {
		t.Fatal("the gate opened while the order's second trigger was running elsewhere")
	}
	f.reply(t, second, "-NAK")
	l.add(f.ctx, back("second"))
	f.poll(2)
	if l.gated {
		t.Fatal("the gate stayed shut with every unacknowledged trigger held")
	}
	f.startedOnly(t, "second") // the first, applied elsewhere, is gone from the lane; the third waits for the second
}

// A redelivery can reach a lane only after its gate has opened: it waited
// in the iterator while the gate polled, and the consumer's count that
// opened the gate was taken after it had been made. Its delivery number is
// then at or below that count; for a trigger held here it tells nothing
// new, and the lane stays open. (Gating on it held a loaded lane shut
// poll after poll: with a short AckWait, a redelivery of a waiting
// trigger was always in the iterator, and the handover test timed out.)
func TestGateStaysOpenForARedeliveryMadeBeforeItsCount(t *testing.T) {
	t.Parallel()
	f := newGateFixture(t, "first", "second")
	l := f.lane
	l.add(f.ctx, f.next(t, "first"))
	second := f.next(t, "second")
	l.add(f.ctx, second)
	f.reply(t, second, "-NAK") // as AckWait would: redelivered while it waits behind the first
	late := f.next(t, "second")
	f.poll(1)
	if l.gated {
		t.Fatal("the gate stayed shut with every unacknowledged trigger held")
	}
	f.startedOnly(t, "first")
	l.add(f.ctx, late)
	if l.gated {
		t.Fatal("a redelivery made before the gate's count gated the lane")
	}
	// A later delivery that skips a number still gates it.
	f.publish(t, "third")
	lost := f.next(t, "third")
	f.reply(t, lost, "-NAK")
	l.add(f.ctx, f.next(t, "third"))
	if !l.gated {
		t.Fatal("a delivery after a lost one left the lane open")
	}
}

// A lane's loop that takes nothing for a while (slowed down in a gate
// poll) must not stop its feed from pulling: only pull requests renew the
// lane's pin. The consumer delivers every stored trigger while the loop's
// channel is full, and the loop then gets them all, in order, and the
// channel closes once the iterator is drained.
func TestLaneFeedGoesOnPullingWhileItsLoopTakesNothing(t *testing.T) {
	const n = 40
	triggers := make([]string, n)
	for i := range triggers {
		triggers[i] = fmt.Sprintf("t%02d", i)
	}
	f := newGateFixture(t, triggers...)
	it, err := f.cons.Messages(jetstream.PullMaxMessages(2))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	in := make(chan jetstream.Msg, 2)
	go f.lane.feed(it, in)

	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		info, err := f.cons.Info(f.ctx)
		return err == nil && info.NumAckPending == n
	}, fmt.Sprintf("all %d triggers delivered while the loop takes nothing", n))

	for _, want := range triggers {
		select {
		case m := <-in:
			if m.Subject() != laneSubject(want) {
				t.Fatalf("got %s, want %s", m.Subject(), laneSubject(want))
			}
		case <-time.After(eventstoretest.Patience(10 * time.Second)):
			t.Fatalf("%s never reached the loop", want)
		}
	}
	it.Drain()
	select {
	case m, ok := <-in:
		if ok {
			t.Fatalf("%s delivered again after the drain", m.Subject())
		}
	case <-time.After(eventstoretest.Patience(10 * time.Second)):
		t.Fatal("the loop's channel stayed open after the iterator was drained")
	}
}

// A trigger only this reader has had, delivered again after AckWait, is
// not taken for one another reader may have put aside (its handler does
// not look for a dead letter); one delivered before it came here, or held
// while the lane was read elsewhere or a delivery came out of turn, is.
func TestLaneKnowsWhichTriggersWereReadElsewhere(t *testing.T) {
	t.Parallel()
	js, ctx := gateServer(t)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ELSEWHERE", Subjects: []string{"ELSEWHERE.>"}, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "lane", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"mine", "theirs", "gap", "after"} {
		if _, err := js.Publish(ctx, "ELSEWHERE."+subj, nil); err != nil {
			t.Fatal(err)
		}
	}
	next := func(want string) jetstream.Msg {
		t.Helper()
		return fetchOn(t, cons, "ELSEWHERE."+want)
	}
	nak := func(m jetstream.Msg) {
		t.Helper()
		if _, err := js.Conn().Request(m.Reply(), []byte("-NAK"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	l := &lane{s: &laneSubscriber{closing: make(chan struct{})}, out: make(chan *message.Message, 8), stream: stream, gated: true,
		orders: map[string][]*held{}, bySeq: map[uint64]*held{}, quit: make(chan struct{})}
	defer close(l.quit)
	elsewhere := func(seq uint64) bool {
		h := l.bySeq[seq]
		return triggerMessage(h.msg, h.seq, h.elsewhere).Metadata.Get(mdRedelivered) != ""
	}

	mine := next("mine")
	l.add(ctx, mine)
	nak(mine) // AckWait passes
	l.add(ctx, next("mine"))
	if h := l.bySeq[1]; !h.again || h.elsewhere || elsewhere(1) {
		t.Fatalf("a trigger only this reader had, delivered again: again %v, elsewhere %v, marked %v; want it taken for delivered again, not read elsewhere", h.again, h.elsewhere, elsewhere(1))
	}
	nak(next("theirs")) // delivered to another reader first
	l.lastDel++         // which this reader saw go by, in turn
	l.add(ctx, next("theirs"))
	if !elsewhere(2) || elsewhere(1) {
		t.Fatalf("a trigger delivered before it came here: marked %v (and the first %v), want it taken for read elsewhere", elsewhere(2), elsewhere(1))
	}
	next("gap") // never reaches the lane: the next delivery comes out of turn
	l.add(ctx, next("after"))
	if !elsewhere(1) || elsewhere(4) {
		t.Fatalf("after a delivery out of turn: the held trigger marked %v, the new one %v; want only the held one taken for read elsewhere", elsewhere(1), elsewhere(4))
	}
	for _, h := range l.bySeq {
		h.elsewhere = false
	}
	l.pinChanged()
	if !elsewhere(1) || !elsewhere(4) {
		t.Fatal("after the lane was read elsewhere, its held triggers are not taken for read elsewhere")
	}
}
