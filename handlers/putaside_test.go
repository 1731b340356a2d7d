package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The set of triggers put aside leaves out dead letters stored before
// ORDERFLOW_TRIGGERS was made: they name triggers of a stream since
// deleted, whose sequences are other triggers' now.
func TestPutAsideLeavesOutAnEarlierTriggerStream(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	before := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	if err := before.EnsureDeadLetters(ctx); err != nil {
		t.Fatal(err)
	}
	js := before.JetStream()
	putAsideNow := func(seq uint64) {
		t.Helper()
		m := nats.NewMsg(eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up"))
		m.Header.Set(jetstream.MsgIDHeader, deadLetterID(seq))
		m.Header.Set(wmnats.WatermillUUIDHdr, fmt.Sprintf("t-%d", seq))                   // the trigger's id
		m.Header.Set(mdSubject, eventstore.TriggerSubject("default", "o-1", "picked_up")) // as putAsideOnce names it
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	putAsideNow(1)
	if err := js.DeleteStream(ctx, eventstore.StreamTriggers); err != nil {
		t.Fatal(err)
	}
	after := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{}) // makes ORDERFLOW_TRIGGERS anew
	putAsideNow(2)
	set, err := readPutAside(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	if set.has(deadLetterID(1)) || !set.has(deadLetterID(2)) {
		t.Fatalf("put aside: 1 %v, 2 %v; want only 2 (1 is of the deleted trigger stream)", set.has(deadLetterID(1)), set.has(deadLetterID(2)))
	}
	// The trigger account (and the lanes' recovery) leaves it out too.
	keys, err := deadLetterKeys(ctx, after)
	if err != nil || len(keys) != 1 || !keys[triggerDigest("default", "o-1", "picked_up", "t-2")] {
		t.Fatalf("dead letter keys %v, %v; want the second's only", keys, err)
	}
}

// A lane delivers again a trigger that another process put aside after
// this one started (its order unknown then), and that process died, or
// gave the lane up, before acknowledging it: the trigger is not
// processed, though its order is placed by now. A trigger delivered again
// without a dead letter is processed as ever. The look-up reads the dead
// letters of the order's trigger key from when the lane stored the
// trigger (less the clock skew a cluster may have), not from the first.
func TestRedeliveredTriggerPutAsideElsewhereIsNotProcessed(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-late")
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 1}, nil)
	defer p.Close()
	key := WorkedExampleTriggers[0]
	putAsideElsewhere := func(seq uint64) time.Time {
		t.Helper()
		dl := nats.NewMsg(eventstore.DeadLetterSubjectFor("default", "o-late", key))
		dl.Header.Set(jetstream.MsgIDHeader, deadLetterID(seq))
		ack, err := f.js.PublishMsg(f.ctx, dl)
		if err != nil {
			t.Fatal(err)
		}
		stream, err := f.js.Stream(f.ctx, eventstore.StreamDeadLetter)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(f.ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		return m.Time
	}
	redelivered := func(triggerID string, seq uint64, laneStored time.Time) *message.Message {
		wm := message.NewMessage(triggerID, []byte(`{"worker":"w1"}`))
		wm.Metadata = message.Metadata{
			mdSubject:      strings.Replace(eventstore.LaneFilter("default", "o-late", key), ".*.", ".0.", 1),
			mdDeadLetterID: deadLetterID(seq),
			mdRedelivered:  "true",
		}
		wm.SetContext(context.WithValue(f.ctx, laneStoredKey{}, laneStored))
		return wm
	}
	version := func() uint64 {
		o, _, err := f.c.LoadOrder(f.ctx, "o-late")
		if err != nil {
			t.Fatal(err)
		}
		return o.Version()
	}
	for i := range 3 { // other triggers of the key, put aside before
		putAsideElsewhere(uint64(30 + i))
	}
	at := putAsideElsewhere(41)
	for _, laneStored := range []time.Time{{}, at, at.Add(deadLetterClockSkew - time.Second)} {
		p.putAside = &putAside{seqs: map[uint64]struct{}{}} // as the process read it before
		if err := p.handle(redelivered("late-0", 41, laneStored)); err != nil {
			t.Fatal(err)
		}
		if v := version(); v != 1 || !p.putAside.has(deadLetterID(41)) {
			t.Fatalf("a trigger put aside elsewhere, delivered again (its lane stored it at %v, its dead letter stored at %v): order at version %d (want 1), in the set %v",
				laneStored, at, v, p.putAside.has(deadLetterID(41)))
		}
	}
	// A dead letter stored before its lane stored the trigger, by more
	// than the clock skew, cannot be its own: it is not read.
	p.putAside = &putAside{seqs: map[uint64]struct{}{}}
	if err := p.handle(redelivered("late-0", 41, at.Add(deadLetterClockSkew+time.Second))); err != nil {
		t.Fatal(err)
	}
	if p.putAside.has(deadLetterID(41)) {
		t.Fatal("the look-up read a dead letter stored before the lane stored the trigger")
	}
	if err := p.handle(redelivered("late-1", 42, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != 3 {
		t.Fatalf("triggers with no dead letter, delivered again: order at version %d, want 3", v)
	}
}

// A trigger that a process had in hand when it went, unacknowledged,
// reaches the lane's next reader marked as delivered again, which is what
// makes that reader look for its dead letter.
func TestLaneMarksATriggerDeliveredAgain(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-again")
	log := newLaneLog()
	cfg := ProcessorConfig{Lanes: 1, AckWait: time.Second}
	inHand := make(chan struct{})
	first := startProcessorWith(t, f.c, f.srv.ClientURL(), log.config(cfg, "first"), func(p *Processor) {
		p.beforeApply = func(msg *message.Message) error {
			close(inHand)
			<-msg.Context().Done() // the process goes before applying it
			return msg.Context().Err()
		}
	})
	seq := f.trigger(t, "o-again", WorkedExampleTriggers[0], "again-0")
	<-inHand
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		mark       string
		laneStored time.Time
	}
	seen := make(chan delivery, 1)
	next := startProcessorWith(t, f.c, f.srv.ClientURL(), log.config(cfg, "next"), func(p *Processor) {
		p.beforeApply = func(msg *message.Message) error {
			laneStored, _ := msg.Context().Value(laneStoredKey{}).(time.Time)
			select {
			case seen <- delivery{msg.Metadata.Get(mdRedelivered), laneStored}:
			default:
			}
			return nil
		}
	})
	defer next.Close()
	select {
	case got := <-seen:
		if got.mark != "true" {
			t.Fatalf("the trigger reached the next reader marked %q, want it marked delivered again", got.mark)
		}
		// With the time its lane stored it, from which its dead letter
		// is looked for: after ORDERFLOW_TRIGGERS stored it.
		stored, err := f.c.Store.JetStream().Stream(f.ctx, eventstore.StreamTriggers)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stored.GetMsg(f.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got.laneStored.Before(m.Time) || got.laneStored.After(time.Now()) {
			t.Fatalf("the trigger reached the next reader stored in its lane at %v; stored at %v, read by %v", got.laneStored, m.Time, time.Now())
		}
	case <-f.ctx.Done():
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if info, err := laneInfo(ctx, f.js, 0); err != nil {
			t.Logf("the lane's consumer: %v", err)
		} else {
			t.Logf("the lane's consumer: pin %q, %d pending, %d unacknowledged, %d delivered again, delivered %d, waiting %d, %+v",
				eventstore.LanePin(info), info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered.Consumer, info.NumWaiting, info.PriorityGroups)
		}
		t.Log("the processors' log:\n" + log.buf.String())
		t.Fatal("the trigger never reached the next reader")
	}
}

// Redrive refuses, before it publishes anything, a dead letter that would
// only be put aside again: read from a subject that names no order or
// trigger, with a body that cannot be read or breaks the rules, or with
// no usable trigger id.
func TestRedriveRefusesWhatWouldBePutAsideAgain(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-redrive")
	good := DeadLetter{Seq: 7, Tenant: f.c.Tenant, OrderID: "o-redrive", Trigger: WorkedExampleTriggers[0], TriggerID: "t-1", Body: []byte(`{"worker":"ana"}`)}
	before, err := f.c.Store.LastSequence(f.ctx, eventstore.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*DeadLetter){
		"no order":                          func(dl *DeadLetter) { dl.OrderID = "" },
		"an unsafe order id":                func(dl *DeadLetter) { dl.OrderID = "o.1" },
		"no tenant":                         func(dl *DeadLetter) { dl.Tenant = "" },
		"a wildcard trigger key":            func(dl *DeadLetter) { dl.Trigger = "*" },
		"no trigger id":                     func(dl *DeadLetter) { dl.TriggerID = "" },
		"a trigger id with a space":         func(dl *DeadLetter) { dl.TriggerID = "t 1" },
		"a body that is not JSON":           func(dl *DeadLetter) { dl.Body = []byte("picked up") },
		"a worker with a control character": func(dl *DeadLetter) { dl.Body = []byte(`{"worker":"a\u0007b"}`) },
		"an unknown field":                  func(dl *DeadLetter) { dl.Body = []byte(`{"when":"now"}`) },
	} {
		dl := good
		change(&dl)
		if ack, err := Redrive(f.ctx, f.c.Store, dl); !errors.Is(err, ErrNotRedrivable) || !strings.Contains(err.Error(), "dead letter 7") {
			t.Errorf("%s: Redrive = %v, %v; want ErrNotRedrivable naming dead letter 7", name, ack, err)
		}
	}
	if after, err := f.c.Store.LastSequence(f.ctx, eventstore.StreamTriggers); err != nil || after != before {
		t.Fatalf("refused redrives published %d triggers (%v)", after-before, err)
	}
	// The dead letter as it should be is sent again.
	if ack, err := Redrive(f.ctx, f.c.Store, good); err != nil || ack.Sequence != before+1 {
		t.Fatalf("Redrive of a sound dead letter = %+v, %v", ack, err)
	}
}
