package handlers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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
// Within a lane, triggers of different orders run in parallel (up to the
// consumer's MaxAckPending) and triggers of one order run one after
// another, in lane order: a trigger is handed to the router only when the
// order's previous trigger has been acknowledged. A trigger whose handler
// fails is retried in place after nakDelay, still ahead of its order's
// later triggers; other orders go on meanwhile.
//
// It replaces watermill-nats's JetStream subscriber (v2.1.3), which hands
// over one message per subscription at a time, and whose consume callback
// sends on the output channel while another goroutine closes it at
// shutdown: a data race the race detector reports.
type laneSubscriber struct {
	js       jetstream.JetStream
	members  *members
	nakDelay time.Duration
	window   int
	ackWait  time.Duration
	drain    time.Duration // how long a lane given up waits for its running handlers

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

func newLaneSubscriber(js jetstream.JetStream, m *members, window int, ackWait, nakDelay, drain time.Duration) *laneSubscriber {
	return &laneSubscriber{js: js, members: m, window: window, ackWait: ackWait, nakDelay: nakDelay, drain: drain, closing: make(chan struct{})}
}

// Subscribe reads the lane consumer named topic whenever this process
// owns that lane.
func (s *laneSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("lane subscriber closed")
	}
	index, err := eventstore.LaneIndex(topic)
	if err != nil {
		return nil, err
	}
	stream, err := s.js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		return nil, err
	}
	cons, err := stream.Consumer(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		for {
			changed := s.members.changed()
			if s.members.owns(index) {
				l := &lane{s: s, index: index, out: out}
				l.serve(ctx, cons, changed)
				if errors.Is(l.err, errLaneLost) || errors.Is(l.err, errLaneClosing) {
					// Hand the lane over at once instead of after the pin's TTL.
					uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
					_ = stream.UnpinConsumer(uctx, topic, eventstore.LaneGroup)
					cancel()
				}
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

var (
	errLaneLost    = errors.New("lane owned by another process")
	errLaneClosing = errors.New("trigger processor closing")
)

// lane is one period of reading a lane this process owns.
type lane struct {
	s     *laneSubscriber
	index int
	out   chan<- *message.Message
	err   error // why serve returned

	orders  map[string][]*held // order → its held triggers, the first one running or waiting to retry
	bySeq   map[uint64]*held
	running int
	settled chan settledTrigger
	retry   chan *held
	quit    chan struct{} // closed when serve returns: stops waiters and retry timers
}

// held is a trigger the lane has been given and not yet acknowledged.
type held struct {
	msg     jetstream.Msg // the latest delivery (acknowledging it settles every earlier one)
	seq     uint64
	order   string
	running bool
}

type settledTrigger struct {
	h  *held
	ok bool
}

// serve reads the lane until ctx ends, the subscriber closes, or the lane
// belongs to another process (changed fires and owns says no).
func (l *lane) serve(ctx context.Context, cons jetstream.Consumer, changed <-chan struct{}) {
	s := l.s
	if !l.waitSettled(ctx, cons) {
		return
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.window), jetstream.PullPriorityGroup(eventstore.LaneGroup))
	if err != nil {
		l.err = err
		select { // a lasting fault must not spin
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		case <-s.closing:
		}
		return
	}
	l.orders, l.bySeq = map[string][]*held{}, map[uint64]*held{}
	l.settled, l.retry, l.quit = make(chan settledTrigger), make(chan *held), make(chan struct{})
	in := make(chan jetstream.Msg)
	go func() { // Next blocks; it.Drain and it.Stop release it
		defer close(in)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				// A missed heartbeat or a reconnect: the iterator goes on
				// by itself; pause so a lasting fault does not spin.
				select {
				case <-time.After(50 * time.Millisecond):
				case <-l.quit:
					return
				}
				continue
			}
			select {
			case in <- m:
			case <-l.quit:
				return
			}
		}
	}()
	defer close(l.quit)
	defer it.Stop()
	for l.err == nil {
		select {
		case m, ok := <-in:
			if !ok {
				l.err = errors.New("lane iterator stopped")
				in = nil
				break
			}
			l.add(ctx, m, true)
		case st := <-l.settled:
			l.settle(ctx, st, true)
		case h := <-l.retry:
			if !h.running {
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

// waitSettled waits, before the lane is read, until the lane's earlier
// reader has settled every trigger it was given (acknowledged, or handed
// back), or until AckWait has passed and JetStream redelivers what it had:
// either way those triggers come before their orders' later ones. It
// returns false when the subscriber stops meanwhile.
func (l *lane) waitSettled(ctx context.Context, cons jetstream.Consumer) bool {
	deadline := time.Now().Add(l.s.ackWait + time.Second)
	for {
		info, err := cons.Info(ctx)
		if (err == nil && info.NumAckPending == 0) || time.Now().After(deadline) {
			return true
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return false
		case <-l.s.closing:
			return false
		}
	}
}

// add takes a delivered trigger: it runs now if its order has nothing
// running or waiting, else it waits behind the order's earlier triggers.
func (l *lane) add(ctx context.Context, m jetstream.Msg, run bool) {
	var seq uint64
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
		if h, ok := l.bySeq[seq]; ok {
			h.msg = m // redelivered while held (a handler ran past AckWait)
			return
		}
	}
	order := orderOf(m.Subject())
	h := &held{msg: m, seq: seq, order: order}
	if seq != 0 {
		l.bySeq[seq] = h
	}
	q := l.orders[order]
	l.orders[order] = append(q, h)
	if len(q) == 0 && run {
		l.dispatch(ctx, h)
	}
}

// dispatch hands a trigger to the router and waits for its outcome in a
// goroutine of its own.
func (l *lane) dispatch(ctx context.Context, h *held) {
	wm, _ := triggerUnmarshaler{}.Unmarshal(h.msg)
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
			return
		}
		select {
		case l.settled <- settledTrigger{h, ok}:
		case <-l.quit:
		}
	}()
}

// settle records a handler's outcome. An applied trigger is acknowledged
// and, when next is set, its order's next trigger starts; a failed one is
// retried after nakDelay.
func (l *lane) settle(ctx context.Context, st settledTrigger, next bool) {
	h := st.h
	h.running = false
	l.running--
	if !st.ok {
		time.AfterFunc(l.s.nakDelay, func() {
			select {
			case l.retry <- h:
			case <-l.quit:
			}
		})
		return
	}
	_ = h.msg.Ack()
	delete(l.bySeq, h.seq)
	q := l.orders[h.order][1:]
	if len(q) == 0 {
		delete(l.orders, h.order)
		return
	}
	l.orders[h.order] = q
	if next {
		l.dispatch(ctx, q[0])
	}
}

// giveBack ends a period of ownership: it takes what the drained
// iterator still had and waits (up to drain) for the running handlers,
// then hands back every order's waiting triggers, in lane order, for the
// lane's next reader. An order whose trigger is still running keeps its
// triggers held, so they come back only after AckWait, behind it.
func (l *lane) giveBack(in <-chan jetstream.Msg) {
	ctx := context.Background()
	timeout := time.NewTimer(l.s.drain)
	defer timeout.Stop()
wait:
	for l.running > 0 || in != nil {
		select {
		case m, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			l.add(ctx, m, false)
		case st := <-l.settled:
			l.settle(ctx, st, false)
		case <-timeout.C:
			break wait
		}
	}
	for _, q := range l.orders {
		if len(q) == 0 || q[0].running {
			continue
		}
		for _, h := range q {
			_ = h.msg.Nak()
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
