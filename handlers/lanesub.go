package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// laneSubscriber is the Watermill subscriber of the trigger lanes.
//
// A lane's consumer is pinned (eventstore.LaneGroup): one process at a
// time reads it, so that process alone decides the order in which the
// lane's triggers take effect. Processes share the lanes out evenly among
// the processes they hear from (members); a process reads only the lanes
// it owns, and gives a lane up (drains it, hands back what it has not
// started, unpins it) when the members change and another process owns it.
//
// A lane's new reader starts gated: it holds what it is given, sorted by
// stream sequence per order, and starts nothing until every unacknowledged
// trigger of the lane is its own (JetStream's NumAckPending equals what it
// holds and nobody else has acknowledged: see openGate). A trigger the
// previous reader still had in hand (a handler that outlived the handover,
// a process that died) is redelivered here after AckWait, or at once when
// the lane's pin was free as it was taken (see redeliverOrphans), ahead of
// its order's later triggers: a reader that has given a lane up
// acknowledges nothing more of it (see giveBack). A pin left behind by a
// process that is no longer heard from is released as the lane is taken
// (see releaseOrphanPin).
//
// A reader also gates itself when a delivery does not reach it: the
// consumer numbers its deliveries, and a gap (a connection dropped with
// deliveries in flight) means a trigger is out there that JetStream will
// redeliver only after AckWait. Its order's later triggers may arrive
// first; the gate holds them until it is back. The numbering goes on from
// the consumer's count when the gate opened, so a delivery made meanwhile
// to a reader that still held the pin (a gate that opened on an idle
// lane) is a gap too. A delivery numbered at or below that count reached
// this reader late (it waited in the iterator while the gate polled): a
// redelivery of a trigger held here tells nothing new and leaves the
// lane open; anything else gates it.
//
// Within a lane, triggers of different orders run in parallel (up to the
// consumer's MaxAckPending) and triggers of one order run one after
// another, in lane order: a trigger is handed to the router only when the
// order's previous trigger has been acknowledged. A trigger whose handler
// fails is retried in place after retryDelay, still ahead of its order's
// later triggers; other orders go on meanwhile.
//
// It replaces watermill-nats's JetStream subscriber (v2.1.3), which hands
// over one message per subscription at a time, and whose consume callback
// sends on the output channel while another goroutine closes it at
// shutdown: a data race the race detector reports.
type laneSubscriber struct {
	js         jetstream.JetStream
	members    *members
	retryDelay time.Duration
	window     int
	expiry     time.Duration // pull requests' expiry, under the pin's TTL so an idle owner keeps its pin
	drain      time.Duration // how long a lane given up waits for its running handlers
	gatePoll   time.Duration // how often a gated lane asks whether it holds every pending trigger
	maxBlock   time.Duration // how long a gate stays shut for an order's earlier trigger held elsewhere (see blockedByMissing)

	// noReset, when set (tests), leaves a lane taken over as it is (see
	// takeOver), as a server without the consumer reset would.
	noReset bool

	// dropDelivery, when set (tests), loses the deliveries it returns
	// true for, as a dropped connection would.
	dropDelivery func(jetstream.Msg) bool

	// wait, when set, is how much longer than retryDelay a failed
	// trigger waits before its next attempt (the processor's wait for
	// room while the streams are full).
	wait func() time.Duration

	latency    histogram                     // from a trigger's arrival in its lane to its outcome stored
	log        *slog.Logger                  // debug lines per delivery, acknowledgement and gate opening (nil: none)
	handedBack atomic.Uint64                 // triggers handed back to the next owner of a lane
	resets     atomic.Uint64                 // lanes taken over that were reset to have their triggers delivered again at once (see redeliverOrphans)
	unpins     atomic.Uint64                 // lanes taken over whose pin, held by a process no longer heard from, was released (see releaseOrphanPin)
	clustered  atomic.Bool                   // the lanes are on a JetStream cluster (see fromLeader)
	copies     copyCheck                     // whether the lanes copy every stored trigger
	answers    answerWait                    // how long a question about a lane's state waits for its answer (see ask)
	stream     jetstream.Stream              // the lane stream, as lookUp found it
	consumers  map[string]jetstream.Consumer // by name, as lookUp found them

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

func newLaneSubscriber(js jetstream.JetStream, m *members, window int, ackWait, retryDelay, drain time.Duration) *laneSubscriber {
	return &laneSubscriber{js: js, members: m, window: window, expiry: max(time.Second, eventstore.LanePinTTL(ackWait)/2), retryDelay: retryDelay, drain: drain,
		gatePoll: 25 * time.Millisecond, maxBlock: 2*ackWait + drain, closing: make(chan struct{})}
}

// lookUp finds the lane stream and each named lane's consumer on the
// subscriber's connection, before the router subscribes, so that a
// Subscribe asks nothing of the servers and cannot fail for them. A
// look-up that goes unanswered or finds no server (one restarting while
// this process starts) is tried again as the store's creates are (retry
// is eventstore.Store.Retry). Why not in Subscribe: once a Subscribe has
// failed, Watermill's router waits out its CloseTimeout at Close for the
// lanes it never started.
func (s *laneSubscriber) lookUp(ctx context.Context, names []string, retry func(context.Context, func(context.Context) error) error) error {
	if err := retry(ctx, func(ctx context.Context) (err error) {
		s.stream, err = s.js.Stream(ctx, eventstore.StreamTriggerLanes)
		return err
	}); err != nil {
		return fmt.Errorf("lane stream: %w", err)
	}
	s.consumers = make(map[string]jetstream.Consumer, len(names))
	for _, name := range names {
		var cons jetstream.Consumer
		if err := retry(ctx, func(ctx context.Context) (err error) {
			cons, err = s.stream.Consumer(ctx, name)
			return err
		}); err != nil {
			return fmt.Errorf("lane %s: %w", name, err)
		}
		s.consumers[name] = cons
	}
	return nil
}

// Subscribe reads the lane consumer named topic whenever this process
// owns that lane.
func (s *laneSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	index, err := eventstore.LaneIndex(topic)
	if err != nil {
		return nil, err
	}
	stream, cons := s.stream, s.consumers[topic]
	if cons == nil {
		return nil, fmt.Errorf("lane %s: not looked up", topic)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("lane subscriber closed")
	}
	if stream.CachedInfo().Config.Replicas > 1 || cons.CachedInfo().Cluster != nil {
		s.clustered.Store(true)
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		var pin string // the lane's pin as this process last held it
		for {
			changed := s.members.changed()
			if s.members.owns(index) {
				s.members.reading(index, true)
				l := &lane{s: s, index: index, out: out, stream: stream, pin: pin}
				l.serve(ctx, cons, changed)
				pin = l.pin
				if s.debugOn(ctx) {
					s.log.Debug("lane period ended", "lane", index, "reason", l.err, "handed_back", l.handedBack, "left_running", l.running)
				}
				// Given up: to another process, or as the processor closes
				// (its router cancels ctx, which the lane may see before
				// the subscriber's own closing).
				given := errors.Is(l.err, errLaneLost) || errors.Is(l.err, errLaneClosing) || errors.Is(l.err, context.Canceled)
				switch {
				case errors.Is(l.err, errLaneNotTaken):
					// Never read: nothing to hand over.
				case given && s.js.Conn().IsConnected():
					// Hand the lane over at once instead of after the pin's
					// TTL (without a connection, the next owner releases the
					// pin once it stops hearing from this process; see
					// releaseOrphanPin).
					uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
					_ = stream.UnpinConsumer(uctx, topic, eventstore.LaneGroup)
					cancel()
				case !given && l.err != nil && ctx.Err() == nil:
					// The iterator stopped on its own: pause, so that a
					// lasting fault does not spin.
					select {
					case <-time.After(250 * time.Millisecond):
					case <-ctx.Done():
					case <-s.closing:
					}
				}
				s.members.reading(index, false)
			} else {
				select {
				case <-changed:
				case <-ctx.Done():
				case <-s.closing:
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			default:
			}
		}
	}()
	return out, nil
}

// Close stops every lane and waits for them.
func (s *laneSubscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// debugOn reports whether the lanes log their debug lines.
func (s *laneSubscriber) debugOn(ctx context.Context) bool {
	return s.log != nil && s.log.Enabled(ctx, slog.LevelDebug)
}

var (
	errLaneLost     = errors.New("lane owned by another process")
	errLaneClosing  = errors.New("trigger processor closing")
	errLaneNotTaken = errors.New("lane not taken: owned by another process or closing before its pin was free")
	errLaneStopped  = errors.New("lane iterator stopped")
)

// lane is one period of reading a lane this process owns.
type lane struct {
	s      *laneSubscriber
	index  int
	out    chan<- *message.Message
	stream jetstream.Stream // the lane stream: a work queue, so an acknowledged trigger is gone from it
	pin    string           // the pin id of this process's latest delivery of the lane, in this period or an earlier one
	err    error            // why serve returned

	orders  map[string][]*held // order → its held triggers in stream order, the first one running or waiting to retry
	bySeq   map[uint64]*held
	gated   bool   // nothing new starts until every pending trigger of the lane is held here
	confirm bool   // the last gate poll found the gate could open, counting a redelivered trigger still in the lane
	lastDel uint64 // the consumer's delivery sequence of the last delivery received, or as of the gate's opening (0: none yet)
	// deliveredTo is the last lane sequence the consumer had delivered
	// when this process took the lane over: a trigger up to it comes again
	// (after a reset, which counts its deliveries from one anew).
	deliveredTo uint64
	// missingSince is when the gate first stayed shut for an order's
	// earlier trigger held elsewhere (zero: it has not, since it last
	// opened).
	missingSince time.Time
	// readElsewhere: the lane was found read elsewhere (see pinChanged)
	// since its gate last opened after checking each held order (see
	// missingEarlier).
	readElsewhere bool
	running       int
	handedBack    int // triggers this period handed back when it ended
	settled       chan settledTrigger
	retry         chan *held
	quit          chan struct{} // closed when serve returns: stops waiters and retry timers
}

// held is a trigger the lane has been given and not yet acknowledged.
type held struct {
	msg   jetstream.Msg // the latest delivery (acknowledging it settles every earlier one)
	seq   uint64
	again bool // delivered before, here or to another reader, also before a reset that counts deliveries afresh (see holdsEveryPending)
	fresh bool // delivered here since the lane was last found read elsewhere (see pinChanged, holdsEveryPending)
	// elsewhere: it may have been in another reader's hands, which may
	// have put it aside and gone before acknowledging it, so its handler
	// looks for such a dead letter (putAsideElsewhere). Delivered before
	// it first came here, or held while the lane was found read elsewhere
	// or a delivery came out of turn; not when only this reader had it
	// and it came again after AckWait. Before, every redelivery looked:
	// under a flood of poison triggers the lanes fell behind AckWait,
	// each trigger that came again read its order's dead letters, and
	// the reads slowed the lanes further (5.8 GB held, 40 NATS
	// disconnects a minute).
	elsewhere bool
	order     string
	msgID     string    // its Nats-Msg-Id
	stored    time.Time // when the lane stored it (the server's clock)
	running   bool
}

type settledTrigger struct {
	h  *held
	ok bool
}

// laneBytes bounds what one lane's pull asks the server for, in bytes
// (its count: see lanePull). The triggers of worker apps are a few
// hundred bytes, and a window of them is far below it; but a window of
// large ones (up to eventstore.MaxTriggerMsgSize, or 1 MiB stored by an
// earlier version) is up to 256 MB, and every lane's together gigabytes:
// the server sends them faster than the process reads them under load,
// takes it for a slow consumer and drops its connection, and the lanes
// are taken over again and again. Under a flood of 65 KB triggers the
// process held 5 GB and lost its connection 40 times a minute. 16 lanes
// ask for 32 MiB at most, half the server's limit for a client's pending
// bytes; the bound must be over the largest lane message, or the lane
// stalls.
const laneBytes = 2 << 20

// lanePull is what a lane's pull asks for: twice the window's count,
// within laneBytes. The consumer's MaxAckPending (the window) still bounds
// the triggers the server has out unacknowledged; the count is also the
// room nats.go gives the iterator's channel, which drops what arrives
// while it is full ("slow consumer, messages dropped"). With the window's
// count, a pull the server fulfils ends with a status after the window's
// triggers ("409 Batch Completed", as the pull asks for bytes too), and
// statuses (that one, idle heartbeats) take room among the triggers: a
// lane whose feed was a moment behind under load lost a status, or a
// trigger, and its gate then waited AckWait for that trigger to come
// again (docs/benchmarks.md, "Worker apps offering more than the
// processor takes"). eventstore's stream reads met the same status
// messages and keep one pull out at a time (readThreshold); that still
// has a pull's count and its status arrive for the count's room when the
// reader has taken none of them yet, as a lane behind under load had not.
func lanePull(window int) jetstream.PullMessagesOpt {
	return jetstream.PullMaxMessagesWithBytesLimit(2*window, laneBytes)
}

// serve reads the lane until ctx ends, the subscriber closes, or the lane
// belongs to another process (changed fires and owns says no).
func (l *lane) serve(ctx context.Context, cons jetstream.Consumer, changed <-chan struct{}) {
	s := l.s
	l.deliveredTo = 0
	if !l.takeOver(ctx, cons) {
		l.err = errLaneNotTaken
		return
	}
	it, err := cons.Messages(lanePull(s.window), jetstream.PullExpiry(s.expiry),
		jetstream.PullPriorityGroup(eventstore.LaneGroup))
	if err != nil {
		l.err = err
		return
	}
	l.orders, l.bySeq, l.gated = map[string][]*held{}, map[uint64]*held{}, true
	l.settled, l.retry, l.quit = make(chan settledTrigger), make(chan *held), make(chan struct{})
	// Buffered, so that deliveries go on arriving while the loop is in a
	// gate poll, and the next poll takes them first (see takeArrived).
	in := make(chan jetstream.Msg, s.window)
	go l.feed(it, in)
	defer close(l.quit)
	defer it.Stop()
	gate := time.NewTicker(s.gatePoll)
	defer gate.Stop()
	lifted := s.copies.changed()
	for l.err == nil {
		var gateTick <-chan time.Time
		if l.gated {
			gateTick = gate.C
		}
		select {
		case m, ok := <-in:
			if !l.receive(ctx, m, ok) {
				in = nil // closed: nothing is sending on it any more
			}
		case <-gateTick:
			if !l.openGate(ctx, cons, in) {
				in = nil // closed: nothing is sending on it any more
			}
		case <-lifted:
			lifted = s.copies.changed()
			l.frontAwaitedCopies()
			l.startHeads(ctx)
		case st := <-l.settled:
			l.settle(ctx, st, true)
		case h := <-l.retry:
			// Still its order's next and not started again meanwhile (a
			// gate that opened does that); a gated lane starts it when the
			// gate opens.
			if q := l.orders[h.order]; len(q) > 0 && q[0] == h && !h.running && !l.gated {
				_ = h.msg.InProgress()
				l.dispatch(ctx, h)
			}
		case <-changed:
			changed = s.members.changed()
			if !s.members.owns(l.index) {
				l.err = errLaneLost
			}
		case <-ctx.Done():
			l.err = ctx.Err()
		case <-s.closing:
			l.err = errLaneClosing
		}
	}
	it.Drain() // the iterator's buffer comes through in, and is handed back too
	l.giveBack(in)
}

// feedRetry is how long a lane's feed waits in Next for a delivery while
// others wait for room in the loop's channel, before it tries them again.
const feedRetry = 5 * time.Millisecond

// feed passes the iterator's deliveries to in, in order, until the
// iterator closes (then it closes in) or the lane's loop quits. It calls
// Next all the time, however slowly the loop takes what it passes on:
// nats.go asks the server for more only inside Next, and only a pull
// request renews the lane's pin (eventstore.LanePinTTL). A loop slowed
// down in a gate poll while the lane's held triggers were delivered
// again (each AckWait) used to let in fill up, stop calling Next, and
// so let the pin lapse; the next pull got a new pin, which gated the
// lane again, over and over on a machine starved of CPU. What in has no
// room for waits here, in order: the window's triggers, and their
// deliveries again meanwhile. While nothing waits, a delivery goes
// straight to in; while something does, Next waits at most feedRetry,
// so what waits moves on soon after the loop makes room.
func (l *lane) feed(it jetstream.MessagesContext, in chan<- jetstream.Msg) {
	defer close(in)
	var waiting []jetstream.Msg
	for {
		for len(waiting) > 0 {
			select {
			case in <- waiting[0]:
				waiting[0] = nil
				waiting = waiting[1:]
				continue
			case <-l.quit:
				return
			default:
			}
			break
		}
		var opts []jetstream.NextOpt
		if len(waiting) > 0 {
			opts = append(opts, jetstream.NextMaxWait(feedRetry))
		}
		m, err := it.Next(opts...)
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			for _, m := range waiting { // it.Drain: the loop takes all of it
				select {
				case in <- m:
				case <-l.quit:
					return
				}
			}
			return
		case errors.Is(err, nats.ErrTimeout):
			continue
		case err != nil:
			// A missed heartbeat or a reconnect: the iterator goes on by
			// itself; pause so a lasting fault does not spin.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-l.quit:
				return
			}
			continue
		}
		if l.s.dropDelivery != nil && l.s.dropDelivery(m) {
			continue
		}
		if len(waiting) == 0 {
			select {
			case in <- m:
				continue
			case <-l.quit:
				return
			default:
			}
		}
		waiting = append(waiting, m)
	}
}

// takeArrived adds the deliveries that have arrived, for a gate poll. A
// poll can take a second under load (it looks up held triggers in the
// lane stream), and deliveries pile up meanwhile; one made before the
// consumer's count and received after the gate opened gates the lane
// again unless it is a redelivery of a trigger held here (see add). A
// lane whose triggers waited longer than AckWait, redelivered all the
// time, stayed shut poll after poll that way (TestLaneHandoverKeepsOrder
// under -race). It returns false (and sets l.err) when the iterator has
// stopped.
func (l *lane) takeArrived(ctx context.Context, in <-chan jetstream.Msg) bool {
	for {
		select {
		case m, ok := <-in:
			if !l.receive(ctx, m, ok) {
				return false
			}
		default:
			return true
		}
	}
}

// receive adds a delivery taken from the iterator's channel, or, when the
// channel is closed (ok false), sets l.err and returns false.
func (l *lane) receive(ctx context.Context, m jetstream.Msg, ok bool) bool {
	if !ok {
		l.err = errLaneStopped
		return false
	}
	l.add(ctx, m)
	return true
}

// takeOver readies a lane this process has just come to own, before it
// reads it: it releases a pin left behind (releaseOrphanPin), then has the
// triggers nobody will acknowledge delivered again (redeliverOrphans). It
// reports false when the lane is no longer this process's, or the
// processor is closing, by the time it could be read.
func (l *lane) takeOver(ctx context.Context, cons jetstream.Consumer) bool {
	if l.s.noReset {
		return true
	}
	info, err := l.consumerInfo(ctx, cons)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// Once more, waiting longer (see answerWait): without the answer,
		// the triggers a reader gone left unacknowledged come again only
		// after AckWait.
		info, err = l.consumerInfo(ctx, cons)
	}
	if err != nil {
		if l.s.debugOn(ctx) {
			l.s.log.Debug("lane taken over: its state not known, nothing delivered again", "lane", l.index, "err", err)
		}
		return true
	}
	if eventstore.LanePin(info) != "" {
		var take bool
		if info, take = l.releaseOrphanPin(ctx, cons, info); !take {
			return false
		}
		if info == nil {
			return true // a live reader has the lane, and hands it over itself (or this process's own pin)
		}
	}
	l.deliveredTo = info.Delivered.Stream
	l.redeliverOrphans(ctx, info)
	return true
}

// consumerInfo asks for the lane consumer's state (see ask).
func (l *lane) consumerInfo(ctx context.Context, cons jetstream.Consumer) (info *jetstream.ConsumerInfo, err error) {
	err = l.s.ask(ctx, func(ctx context.Context) (err error) {
		info, err = cons.Info(ctx)
		return err
	})
	return info, err
}

// ask puts a question about a lane's state to the servers: q, with ctx
// ending after the process's answer wait (see answerWait), which learns
// from how long the answer took, or that none came in time. An error the
// servers answered with (no such message) counts as an answer.
func (s *laneSubscriber) ask(ctx context.Context, q func(context.Context) error) error {
	wait := s.answers.get()
	qctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	err := q(qctx)
	var answer *jetstream.APIError
	switch {
	case err == nil || errors.As(err, &answer):
		if s.answers.answered(time.Since(start), time.Now()) && s.log != nil {
			s.log.Info("lane questions answered in time again: the lanes wait less long for their answers", "next", s.answers.get())
		}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		if next := s.answers.timedOut(wait, time.Now()); next > 0 && s.log != nil {
			s.log.Warn("lane question unanswered in time: the lanes wait longer for their answers", "waited", wait, "next", next)
		}
	}
	return err
}

// pinIDHeader names the pin a delivery was made under.
const pinIDHeader = "Nats-Pin-Id"

// releaseOrphanPin unpins a lane whose pin no process this one hears from
// holds: its reader died (a process killed, its NATS servers still up), and
// JetStream would keep the pin for it until its TTL (eventstore.LanePinTTL)
// ran out, the lane's new triggers waiting all that time. Every live
// process names the lanes it reads in its heartbeats (see members), so a
// pin on a lane that none of them names is a dead reader's. A process
// that has just started first waits until it has heard every live one
// (heardAllAt), so that it does not take a live reader's lane for an
// orphan.
//
// It returns the consumer's state once the pin is released (nil when a
// live reader holds it: it hands the lane over itself when it learns it
// is not its own), and false when the lane is no longer this process's,
// or the processor is closing, after that wait. Nothing depends on the
// guess being right, as with redeliverOrphans: a reader that was not gone
// after all loses the pin and its unacknowledged triggers to this one,
// which takes the lane gated and applies each of them at most once.
func (l *lane) releaseOrphanPin(ctx context.Context, cons jetstream.Consumer, info *jetstream.ConsumerInfo) (*jetstream.ConsumerInfo, bool) {
	s := l.s
	if wait := time.Until(s.members.heardAllAt()); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-s.closing:
			t.Stop()
			return nil, false
		}
		if !s.members.owns(l.index) {
			return nil, false
		}
		var err error
		if info, err = l.consumerInfo(ctx, cons); err != nil {
			return nil, true
		}
		if eventstore.LanePin(info) == "" {
			return info, true // let go meanwhile (handed over, or lapsed)
		}
	}
	if s.members.readElsewhere(l.index) || eventstore.LanePin(info) == l.pin {
		if s.debugOn(ctx) {
			s.log.Debug("lane taken over: pin kept", "lane", l.index, "own", eventstore.LanePin(info) == l.pin, "pending", info.NumAckPending)
		}
		return nil, true // a live reader's, or still this process's (an earlier period's)
	}
	if err := s.ask(ctx, func(ctx context.Context) error {
		return l.stream.UnpinConsumer(ctx, info.Name, eventstore.LaneGroup)
	}); err != nil {
		if ctx.Err() == nil && s.log != nil {
			s.log.Warn("releasing the pin of a lane whose reader is gone", "lane", l.index, "err", err)
		}
		return nil, true
	}
	s.unpins.Add(1)
	if s.debugOn(ctx) {
		s.log.Debug("lane taken over: pin of a reader no longer heard from released", "lane", l.index, "pending", info.NumAckPending)
	}
	return info, true
}

// redeliverOrphans has the triggers of the lane that nobody will
// acknowledge delivered again now rather than after AckWait. The lane's
// pin is free (info is the consumer's state): if triggers are
// unacknowledged (or the lane stream holds one below the floor), the
// reader they went to is gone (a process that died, a server restarted
// under its readers) or gave the lane up (and acknowledges nothing more of
// it, see giveBack). So the consumer is reset to its acknowledgement
// floor, or to the lane's first trigger below it: whatever the lane holds
// from there is delivered again, to this reader, which takes the lane
// gated as always. Nothing depends on the guess being right: a reader
// still holding such a trigger applies it at most once with this one (the
// same trigger id never takes effect twice), and each reader runs an
// order's triggers in stream order. Without it, a lane stood still for
// AckWait after its reader died: every lane, after an embedded server was
// killed under load.
func (l *lane) redeliverOrphans(ctx context.Context, info *jetstream.ConsumerInfo) {
	// From the lane's first trigger, if the lane stream holds one below the
	// floor: one a kill left there (see eventstore.Store.LaneLeftovers)
	// comes again with the rest (a duplicate, unless it had not taken
	// effect) instead of waiting for the sweeps.
	from := info.AckFloor.Stream + 1
	var first *jetstream.RawStreamMsg
	if err := l.s.ask(ctx, func(ctx context.Context) (err error) {
		first, err = l.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(info.Config.FilterSubject))
		return err
	}); err == nil && first.Sequence < from {
		from = first.Sequence
	}
	if info.NumAckPending == 0 && from > info.AckFloor.Stream {
		if l.s.debugOn(ctx) {
			l.s.log.Debug("lane taken over: nothing to deliver again", "lane", l.index, "floor", info.AckFloor.Stream, "delivered", info.Delivered.Stream)
		}
		return // nothing delivered and not acknowledged, nothing left below the floor
	}
	var r *jetstream.ConsumerResetResponse
	if err := l.s.ask(ctx, func(ctx context.Context) (err error) {
		r, err = l.s.js.ResetConsumerToSequence(ctx, eventstore.StreamTriggerLanes, info.Name, from)
		return err
	}); err != nil {
		if ctx.Err() == nil && l.s.log != nil {
			l.s.log.Warn("delivering a lane's unacknowledged triggers again", "lane", l.index, "err", err)
		}
		return
	}
	l.s.resets.Add(1)
	if l.s.debugOn(ctx) {
		l.s.log.Debug("lane taken over: reset", "lane", l.index, "pending", info.NumAckPending, "floor", info.AckFloor.Stream, "from", r.ResetSeq)
	}
}

// openGate ends a gate once every unacknowledged trigger of the lane is
// held here, and starts each order's next trigger (unless it is running).
// The deliveries that have arrived (in) are taken before the consumer is
// asked for its count, and again once it has answered (see takeArrived);
// it returns false, setting l.err, when the iterator has stopped.
//
// When that count took a redelivered trigger the lane stream still had as
// unacknowledged, it must hold at the next poll too: on a cluster the
// stream deletes an acknowledged trigger once the acknowledgement is
// replicated, a moment after the consumer stops counting it, and the
// count could meanwhile take the previous reader's acknowledged trigger
// for a lost delivery.
func (l *lane) openGate(ctx context.Context, cons jetstream.Consumer, in <-chan jetstream.Msg) bool {
	if !l.takeArrived(ctx, in) {
		return false
	}
	info, err := l.consumerInfo(ctx, cons)
	if err != nil {
		return true
	}
	// A delivery made after the answer leaves the gate shut (see
	// fromLeader); one made before it counts now rather than gating the
	// lane again as it arrives.
	if !l.takeArrived(ctx, in) {
		return false
	}
	l.openGateOn(ctx, info)
	return true
}

// openGateOn is openGate with the consumer's answer in hand.
func (l *lane) openGateOn(ctx context.Context, info *jetstream.ConsumerInfo) {
	ok, found := l.holdsEveryPending(ctx, info)
	if !ok || (found && !l.confirm) {
		l.confirm = ok
		return
	}
	l.gated, l.confirm, l.missingSince, l.readElsewhere = false, false, time.Time{}, false
	// From here on each delivery must follow the one before: the count
	// held for the consumer's deliveries up to this answer's, and a later
	// one this reader does not get went to a reader still holding the
	// lane's pin (an idle lane opens a new reader's gate while the
	// previous reader reads on), whose trigger may be ahead of the next
	// one here. add gates the lane on such a gap.
	l.lastDel = info.Delivered.Consumer
	if l.s.debugOn(ctx) {
		l.s.log.Debug("lane gate open", "lane", l.index, "held", len(l.bySeq))
	}
	l.startHeads(ctx)
}

// holdsEveryPending reports whether every unacknowledged trigger of the
// lane is held here, and whether it counted a redelivered trigger that the
// lane stream still has as unacknowledged.
//
// The consumer says how many triggers are unacknowledged, not which. A
// held trigger that came as a redelivery may meanwhile have been
// acknowledged by the reader it went to first, and would stand in for a
// lost delivery in the count. orderflow's readers do not do that once they
// have given a lane up (see giveBack), but a process cut off from NATS
// sends the acknowledgements it made meanwhile when it is back. The same
// holds for a trigger delivered again after the lane was reset (see
// redeliverOrphans), which the consumer counts as a first delivery. So a
// trigger delivered before counts only while the lane stream still has it
// (a work queue deletes what is acknowledged), looked up after the
// consumer answered: an acknowledgement in between makes the count
// smaller, never larger. One the lane stream no longer has is let go
// (see drop). The consumer's ack floor is no guide here: after
// a reset to the lane's sequence 1, nats-server 2.15.2 often keeps the
// floor from before it, above triggers it has just delivered again (a
// gate that trusted it stayed shut until the sweeps, in
// TestLaneTakenFromAGoneReader; an ad-hoc run of such resets found the
// floor left behind in 42 of 50, and none for a reset to 2).
//
// Nor does every trigger the lane stream still has count: after a reset
// the consumer delivers the lane again from there, and counts as
// unacknowledged only what it has delivered since, up to its delivered
// stream sequence. A trigger held from before the reset above that is
// not one of them: counted, it stood in for an earlier trigger of
// another order delivered elsewhere, whose order's next trigger, held
// here, was then started ahead of it (seen in
// TestLanesOfAProcessCutOffAndBack under -race;
// TestGateAfterAResetCountsOnlyWhatWasDeliveredSince). Such a trigger,
// not delivered here since the lane was found read elsewhere (fresh), is
// let go (see drop) and comes again in turn; the count takes only what
// is at or below that sequence. One delivered here since is kept even
// above it: the consumer's answer may be older than the delivery. When
// the count agrees on a lane found read elsewhere, missingEarlier checks
// each held order as well.
func (l *lane) holdsEveryPending(ctx context.Context, info *jetstream.ConsumerInfo) (ok, found bool) {
	if !l.fromLeader(info) {
		return false, false
	}
	for _, h := range l.bySeq {
		if !h.fresh && h.seq > info.Delivered.Stream {
			l.drop(h) // not delivered here since a reset: it comes again
		}
	}
	if info.NumAckPending > len(l.bySeq) {
		return false, false
	}
	gone, found, err := l.lookUpAgain(ctx)
	if err != nil {
		return false, false
	}
	for _, h := range gone {
		l.drop(h)
	}
	pending := 0
	for _, h := range l.bySeq {
		if h.seq <= info.Delivered.Stream && !slices.Contains(gone, h) {
			pending++
		}
	}
	if info.NumAckPending > pending {
		return false, found
	}
	if !l.readElsewhere {
		return true, found
	}
	if missing, err := l.missingEarlier(ctx); err != nil || missing != "" {
		if err != nil && l.s.debugOn(ctx) {
			l.s.log.Debug("lane gate held: looking up the held orders' triggers failed", "lane", l.index, "err", err)
		}
		l.blockedByMissing(ctx, missing)
		return err == nil && l.s.maxBlock > 0 && time.Since(l.missingSince) > l.s.maxBlock, found
	}
	return true, found
}

// missingEarlier looks in the lane stream, gateLookups orders at a time,
// for a trigger of an order held here that lies below the order's last
// held trigger and is not held here: one delivered to another reader and
// not acknowledged yet, or not delivered again yet since a reset. It
// returns the first such trigger's subject ("" when there is none).
//
// The count of holdsEveryPending says only how many triggers are
// unacknowledged, not which; a held trigger the consumer does not count
// (delivered before a reset and not since, or under a pin the lane has
// lost) can stand in for one that went elsewhere, and the order's later
// trigger held here would run ahead of it. Before a gate opens, each held
// order is therefore checked trigger by trigger: the lane stream (a work
// queue: what it still has is unacknowledged) must have none of the
// order's triggers below its last held one that is not held here. This is
// what the gate guards: an order's triggers run here in stream order.
// Stand-ins come from another reader's time with the lane, so the check
// runs only once the lane has been found read elsewhere (readElsewhere,
// set by pinChanged), until a gate opens after it: a lane gated again
// and again by its own redeliveries under load does not pay for it.
func (l *lane) missingEarlier(ctx context.Context) (string, error) {
	queues := make([][]*held, 0, len(l.orders))
	for _, q := range l.orders {
		queues = append(queues, q)
	}
	missing := make([]string, len(queues))
	if err := lookUpEach(ctx, len(queues), func(ctx context.Context, i int) (err error) {
		missing[i], err = l.missingOf(ctx, queues[i])
		return err
	}); err != nil {
		return "", err
	}
	for _, m := range missing {
		if m != "" {
			return m, nil
		}
	}
	return "", nil
}

// missingOf steps through the lane stream's triggers of q's order, up to
// the last held, and returns the subject of the first one not held here.
func (l *lane) missingOf(ctx context.Context, q []*held) (string, error) {
	last := uint64(0)
	for _, h := range q {
		last = max(last, h.seq)
	}
	filter := q[0].msg.Subject() // not a lane subject: its own order (see orderOf)
	if tenant, id, _, err := eventstore.ParseLaneSubject(filter); err == nil {
		filter = eventstore.LaneFilter(tenant, id, "*")
	}
	for from := uint64(1); from <= last; {
		var m *jetstream.RawStreamMsg
		err := l.s.ask(ctx, func(ctx context.Context) (err error) {
			m, err = l.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(filter))
			return err
		})
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return "", nil
		case err != nil:
			return "", err
		case m.Sequence > last:
			return "", nil
		case l.bySeq[m.Sequence] == nil:
			return m.Subject, nil
		}
		from = m.Sequence + 1
	}
	return "", nil
}

// blockedByMissing notes that the gate stays shut for a trigger held
// elsewhere (missing, empty when the look-up failed), from when it first
// did. A trigger the lane stream still has and that no reader holds is
// delivered again within AckWait; one that stays longer was left in the
// stream by a kill (see eventstore.Store.LaneLeftovers) and comes again
// only with the sweeps, so after maxBlock the gate opens without it, with
// a warning, rather than hold the lane until then.
func (l *lane) blockedByMissing(ctx context.Context, missing string) {
	if l.missingSince.IsZero() {
		l.missingSince = time.Now()
		if missing != "" && l.s.debugOn(ctx) {
			l.s.log.Debug("lane gate held: an order's earlier trigger is not held here", "lane", l.index, "trigger", missing)
		}
	}
	if l.s.maxBlock > 0 && time.Since(l.missingSince) > l.s.maxBlock && l.s.log != nil {
		l.s.log.Warn("lane gate opened without an order's earlier trigger, still in the lane after AckWait", "lane", l.index, "trigger", missing)
	}
}

// gateLookups is how many of a gated lane's held triggers it looks up in
// the lane stream at once.
const gateLookups = 32

// lookUpAgain looks up, gateLookups at a time, each held trigger that was
// delivered before in the lane stream: gone are those it no longer has
// (acknowledged, by whichever reader), and found reports whether it still
// has any. One at a time, a lane holding a full window of such triggers
// (a process back after another took its lanes holds nothing else) took
// over a second per gate poll on a cluster, reading no deliveries
// meanwhile. Not a batched direct get (eventstore.Store.ScanMessages),
// one request for them all: that needs direct gets on the lane stream,
// which a cluster's followers answer too once they have nearly caught up,
// so one could answer without a trigger the leader has just delivered,
// and the gate would let it go as acknowledged. The message-get API each
// look-up uses is answered by the lane stream's leader (missingOf's
// too).
func (l *lane) lookUpAgain(ctx context.Context) (gone []*held, found bool, err error) {
	var again []*held
	for _, h := range l.bySeq {
		if h.again {
			again = append(again, h)
		}
	}
	isGone := make([]bool, len(again))
	if err := lookUpEach(ctx, len(again), func(ctx context.Context, i int) error {
		err := l.s.ask(ctx, func(ctx context.Context) error {
			_, err := l.stream.GetMsg(ctx, again[i].seq)
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			isGone[i] = true
			return nil
		}
		return err
	}); err != nil {
		return nil, false, err
	}
	for i, h := range again {
		if isGone[i] {
			gone = append(gone, h)
		} else {
			found = true // still in the lane: unacknowledged
		}
	}
	return gone, found, nil
}

// lookUpEach runs look(ctx, i) for each i below n, gateLookups at a time,
// and returns when all have, or at the first error, which it returns
// after cancelling the look-ups under way (their ctx) and starting no
// more: a gate poll that cannot be answered fails, and the next asks
// again, rather than wait out every look-up of a window of held
// triggers (up to maxAnswerWait each, see answerWait).
func lookUpEach(ctx context.Context, n int, look func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, gateLookups)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := look(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// drop forgets a held trigger that is acknowledged (by settle), or that
// the lane stream no longer has (acknowledged elsewhere): it has taken
// effect (or been put aside), and its order's later triggers need not
// wait for it. One still running here is left to settle.
func (l *lane) drop(h *held) {
	if h.running {
		return
	}
	delete(l.bySeq, h.seq)
	q := slices.DeleteFunc(l.orders[h.order], func(o *held) bool { return o == h })
	if len(q) == 0 {
		delete(l.orders, h.order)
		return
	}
	l.orders[h.order] = q
}

// fromLeader reports whether a consumer's answer can be counted on: it
// names the consumer's leader, and it knows every delivery this reader has
// had.
//
// On a cluster, a node that is starting up answers for a consumer it has
// not loaded yet with the consumer's configuration, no cluster section,
// and an empty state: nothing delivered and nothing unacknowledged. It
// can answer before the leader does, and that count would open any gate.
// A leader just elected may also not yet know its predecessor's latest
// deliveries.
//
// A standalone server's answers have no cluster section either, so the
// section is required once the lanes are known to be on a cluster: the
// lane stream is replicated, or an answer had one.
func (l *lane) fromLeader(info *jetstream.ConsumerInfo) bool {
	if info.Cluster != nil {
		l.s.clustered.Store(true)
	}
	if l.s.clustered.Load() && (info.Cluster == nil || info.Cluster.Leader == "") {
		return false
	}
	return info.Delivered.Consumer >= l.lastDel
}

// add takes a delivered trigger into its order's queue, in stream order.
// It runs now if the lane is not gated and its order has nothing running
// or waiting.
func (l *lane) add(ctx context.Context, m jetstream.Msg) {
	if pin := m.Headers().Get(pinIDHeader); pin != "" {
		if l.pin != "" && pin != l.pin {
			l.pinChanged()
			if l.s.debugOn(ctx) {
				l.s.log.Debug("lane delivered under a new pin: it may have been read elsewhere meanwhile, gated", "lane", l.index, "held", len(l.bySeq))
			}
		}
		l.pin = pin
	}
	var seq, delivered uint64
	var stored time.Time
	if meta, err := m.Metadata(); err == nil {
		seq, delivered, stored = meta.Sequence.Stream, meta.NumDelivered, meta.Timestamp
		del := meta.Sequence.Consumer
		h, known := l.bySeq[seq]
		switch {
		case del == l.lastDel+1:
			l.lastDel = del
		case del <= l.lastDel && known:
			// A redelivery made before the gate's count and received only
			// now: nothing went elsewhere.
		default:
			if !l.gated && l.s.debugOn(ctx) {
				l.s.log.Debug("lane gated: a delivery out of turn", "lane", l.index, "delivery", del, "after", l.lastDel, "held", known)
			}
			l.gated = true // a delivery was lost or went to another reader: hold everything until it is back
			l.lastDel = del
			for _, h := range l.bySeq {
				h.elsewhere = true
			}
		}
		if known {
			h.msg, h.again, h.fresh = m, true, true // redelivered while held (a handler ran past AckWait, or the lane was reset)
			return
		}
		source, _ := sourceSequence(m.Headers().Get(streamSourceHeader))
		l.s.copies.observe(seq, source)
		if l.s.debugOn(ctx) {
			l.s.log.Debug("lane delivery", "lane", l.index, "lane_sequence", seq, "trigger_sequence", source, "subject", m.Subject(),
				"trigger_id", m.Headers().Get(jetstream.MsgIDHeader), "delivered", delivered, "gated", l.gated)
		}
	}
	again := delivered > 1 || seq <= l.deliveredTo
	h := &held{msg: m, seq: seq, again: again, elsewhere: again, fresh: true,
		order: orderOf(m.Subject()), msgID: m.Headers().Get(jetstream.MsgIDHeader), stored: stored}
	l.bySeq[seq] = h
	q := l.orders[h.order]
	// Usually last; a trigger redelivered from the previous reader, or
	// after a lost delivery, can come after its order's later triggers,
	// and goes before them. The lane is gated then (from its start, or
	// since the gap), so nothing behind it has started. The copy of a
	// trigger the lanes skipped goes before its order's waiting triggers
	// (see copyCheck).
	i := len(q)
	if l.s.copies.copyArrived(h.order, h.msgID) {
		for i > 0 && !q[i-1].running {
			i--
		}
	}
	for l.gated && i > 0 && q[i-1].seq > seq && !q[i-1].running {
		i--
	}
	l.orders[h.order] = slices.Insert(q, i, h)
	if i == 0 && !l.gated {
		l.dispatch(ctx, h)
	}
}

// pinChanged gates a lane whose delivery came under a pin other than
// the one this process last read it under: the lane was unpinned from
// this process meanwhile (it was frozen, or cut off from NATS, long enough
// for another process to take the lane, or its pin lapsed), and another
// reader may have had its triggers. That reader may have acknowledged
// some of those held here, and may have left an order's next trigger
// running when it gave the lane back, which comes here only after
// AckWait. So everything held is taken as delivered before (the gate
// counts it only while the lane stream still has it, see
// holdsEveryPending, and its handler looks for a dead letter another
// process made), and the lane holds its new triggers until the count
// agrees.
func (l *lane) pinChanged() {
	l.gated, l.readElsewhere = true, true
	l.lastDel = 0 // the numbering may have started anew (a reset under the other reader)
	for _, h := range l.bySeq {
		h.again, h.fresh, h.elsewhere = true, false, true
	}
}

// frontAwaitedCopies puts the copy of a skipped trigger that came
// through the lane before its order was told to wait for it (while the
// skip was being looked up) ahead of the order's waiting triggers, as add
// does with one that comes after.
func (l *lane) frontAwaitedCopies() {
	for order, q := range l.orders {
		w, ok := l.s.copies.awaited(order)
		if !ok {
			continue
		}
		i := slices.IndexFunc(q, func(h *held) bool { return h.msgID == w })
		if i < 0 || !l.s.copies.copyArrived(order, w) {
			continue
		}
		j := 0 // after what of the order runs already
		for j < i && q[j].running {
			j++
		}
		h := q[i]
		copy(q[j+1:i+1], q[j:i])
		q[j] = h
	}
}

// startHeads starts each order's next trigger that is not running, once
// what held it back (a gate, the copy check) has lifted.
func (l *lane) startHeads(ctx context.Context) {
	if l.gated {
		return
	}
	for _, q := range l.orders {
		if !q[0].running {
			l.dispatch(ctx, q[0])
		}
	}
}

// dispatch hands a trigger to the router and waits for its outcome in a
// goroutine of its own.
func (l *lane) dispatch(ctx context.Context, h *held) {
	if l.s.copies.blocks(h.order, h.seq, h.msgID) {
		return // started by startHeads when the copy check lifts
	}
	wm := triggerMessage(h.msg, h.seq, h.elsewhere) // as add read them
	// Only a trigger marked elsewhere looks for its dead letter, from when
	// the lane stored it.
	if h.elsewhere {
		ctx = context.WithValue(ctx, laneStoredKey{}, h.stored)
	}
	mctx, cancel := context.WithCancel(ctx)
	wm.SetContext(mctx)
	select {
	case l.out <- wm:
	case <-ctx.Done():
		cancel()
		return
	case <-l.s.closing:
		cancel()
		return
	}
	h.running = true
	l.running++
	go func() {
		defer cancel()
		var ok bool
		select {
		case <-wm.Acked():
			ok = true
		case <-wm.Nacked():
		case <-l.quit:
			// The lane was given up while this trigger ran: stop it and
			// leave it unacknowledged (see giveBack).
			return
		}
		select {
		case l.settled <- settledTrigger{h, ok}:
		case <-l.quit:
		}
	}()
}

// settle records a handler's outcome. An applied trigger is acknowledged
// and, when next is set and the lane is not gated, its order's next
// trigger starts; a failed one is retried after retryDelay (and wait).
func (l *lane) settle(ctx context.Context, st settledTrigger, next bool) {
	h := st.h
	h.running = false
	l.running--
	if !st.ok {
		delay := l.s.retryDelay
		if l.s.wait != nil {
			delay += l.s.wait()
		}
		time.AfterFunc(delay, func() {
			select {
			case l.retry <- h:
			case <-l.quit:
			}
		})
		return
	}
	_ = h.msg.Ack()
	if !h.stored.IsZero() {
		l.s.latency.observe(time.Since(h.stored))
	}
	if l.s.debugOn(ctx) { // checked first: the arguments would cost an allocation per trigger
		l.s.log.Debug("lane acknowledged", "lane", l.index, "lane_sequence", h.seq)
	}
	l.drop(h)
	if q := l.orders[h.order]; len(q) > 0 && next && !l.gated {
		l.dispatch(ctx, q[0])
	}
}

// giveBack ends a period of ownership: it takes what the drained
// iterator still had and waits (up to drain) for the running handlers,
// acknowledging those applied, then hands back (naks) every trigger not
// running, in stream order, for the lane's next reader.
//
// A handler still running after that is stopped, and its trigger is never
// acknowledged by this period: JetStream redelivers it after AckWait to
// the lane's reader then, which applies it or finds it applied (the
// trigger id is in the order's history). So only the lane's current
// reader acknowledges its triggers, and the consumer's count of
// unacknowledged triggers, which a new reader's gate compares with what
// it holds, moves only with what that reader does (see holdsEveryPending).
func (l *lane) giveBack(in <-chan jetstream.Msg) {
	ctx := context.Background()
	timeout := time.NewTimer(l.s.drain)
	defer timeout.Stop()
	l.gated = true // take what the iterator still had without running it
	if !l.s.js.Conn().IsConnected() {
		in = nil // nothing more comes, and nothing can be handed back
	}
wait:
	for l.running > 0 || in != nil {
		select {
		case m, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			l.add(ctx, m)
		case st := <-l.settled:
			l.settle(ctx, st, false)
		case <-timeout.C:
			break wait
		}
	}
	for _, q := range l.orders {
		for _, h := range q {
			if !h.running {
				_ = h.msg.Nak()
				l.handedBack++
				l.s.handedBack.Add(1)
			}
		}
	}
}

// orderOf is the order key of a lane subject (tenant and order id).
func orderOf(subject string) string {
	if tenant, id, _, err := eventstore.ParseLaneSubject(subject); err == nil {
		return tenant + "." + id
	}
	return subject
}
