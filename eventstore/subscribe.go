package eventstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler receives one stored event. Events arrive in stream order, one at
// a time. A handler's error is logged; the subscription goes on.
type Handler func(Event) error

// ReadOption changes how Subscribe and StoredMsg.Event decode events.
type ReadOption func(*readConfig)

type readConfig struct {
	checkData  bool
	unreadable func(seq uint64, err error)
}

func readOptions(opts []ReadOption) readConfig {
	c := readConfig{checkData: true}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// DataCheckedByHandler is for a reader that decodes every event's data
// and fails on data that is not valid JSON (as domain.DecodeEvent does):
// the event's data is then not checked first, which would read it twice.
// Without it an event whose data is not valid JSON is not decoded (a
// subscription logs and skips it). Read models rebuild 1.33–1.39× as fast
// with it (docs/benchmarks.md).
func DataCheckedByHandler() ReadOption {
	return func(c *readConfig) { c.checkData = false }
}

// OnUnreadable has Subscribe call fn, in stream order as it calls the
// handler, for each message it skips because it is not a readable event
// (ErrUnreadableEvent). A reader that keeps its place by stream sequence
// (a read model) moves past it there; otherwise whoever waits for that
// sequence, or a later one, waits forever.
func OnUnreadable(fn func(seq uint64, err error)) ReadOption {
	return func(c *readConfig) { c.unreadable = fn }
}

// Subscription is a running ordered subscription.
type Subscription struct {
	cc       jetstream.ConsumeContext
	remove   func() // removes the consumer from the server
	stopOnce sync.Once
	mu       sync.Mutex // held while the handler runs
	stopped  bool       // set under mu by Stop: the handler is not called again
}

// stopWait bounds how long Stop waits for nats.go to end the consumer.
// While the server does not answer (JetStream shut down, say), nats.go's
// ordered consumer holds its lock through each attempt to recreate the
// consumer, up to 10 s apiece, and its Stop waits for that lock.
const stopWait = time.Second

// Stop ends the subscription and removes its ephemeral consumer. When it
// returns the handler is not running and will not be called again; the
// consumer itself ends within stopWait, or, when the server does not
// answer, in the background once nats.go's attempt to recreate it ends.
func (s *Subscription) Stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		stopConsumer(s.cc, true)
		s.remove()
	})
}

// orderedInactive is how long the server keeps an ordered consumer that
// no client asks for messages (nats.go's default: 5 minutes). Stopping
// one removes it (removeConsumer); this bounds what a process that ends
// without stopping its consumers leaves behind. It matters because
// JetStream counts every consumer against the stream's limit (1,000 by
// default): each event feed opened and closed used to leave one for 5
// minutes, and a stream at its limit takes no consumer at all, a read
// model's or the index's included. A live consumer is never inactive
// this long: the client keeps a pull request waiting.
const orderedInactive = 30 * time.Second

// newOrdered creates an ordered consumer on stream (see orderedInactive).
func newOrdered(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	cfg.InactiveThreshold = orderedInactive
	return js.OrderedConsumer(ctx, stream, cfg)
}

// removeWait bounds removeConsumer's request.
const removeWait = 5 * time.Second

// removeConsumer deletes the server's consumer behind an ordered consumer
// that has stopped: nats.go leaves it to its inactivity threshold. It
// returns at once and does it all in the background, reading the
// consumer's name included: CachedInfo waits for the lock that nats.go
// holds while it tries to recreate the consumer (see stopWait). A
// consumer it could not delete (the server gone, say) ends after
// orderedInactive.
func removeConsumer(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	go func() {
		info := cons.CachedInfo()
		if info == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), removeWait)
		defer cancel()
		_ = js.DeleteConsumer(ctx, stream, info.Name)
	}()
}

// stopConsumer stops cc, and with closed waits for it to have ended, for
// at most stopWait (see there); past that, it ends in the background.
func stopConsumer(cc jetstream.ConsumeContext, closed bool) {
	done := make(chan struct{})
	go func() {
		cc.Stop()
		if closed {
			<-cc.Closed()
		}
		close(done)
	}()
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// orderedHeartbeat is how often the server tells an idle ordered consumer
// it is still there. The client takes two missed heartbeats for a consumer
// gone (its server stopped, say) and recreates it from where it stood. With
// nats.go's default of 5 s, read models stood still for 10 to 20 s after a
// cluster node stopped. nats.go allows down to 500 ms; one second costs one
// small message a second per idle subscription.
const orderedHeartbeat = jetstream.PullHeartbeat(time.Second)

// Subscribe delivers the events of stream matching filters (all when none)
// whose sequence is after `after`, then every new one, in order. It uses an
// ordered consumer: ephemeral, flow controlled, recreated by the client
// from the last delivered sequence when it falls behind or the connection
// drops, and removed from the server on Stop.
//
// A message that is not a valid envelope is logged and skipped (see
// OnUnreadable): the store only writes validated envelopes, so such a
// message was written around it.
func (s *Store) Subscribe(ctx context.Context, stream string, filters []string, after uint64, h Handler, opts ...ReadOption) (*Subscription, error) {
	rc := readOptions(opts)
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	cctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cons, err := newOrdered(cctx, s.js, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s %v: %w", stream, filters, err)
	}
	log := s.cfg.Logger.With("stream", stream)
	sub := &Subscription{remove: func() { removeConsumer(s.js, stream, cons) }}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			log.Warn("event without metadata", "subject", m.Subject(), "err", err)
			return
		}
		ev, err := decodeStored(stream, m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Data(), rc.checkData)
		if err != nil {
			log.Warn("skipping undecodable event", "err", err)
		}
		sub.mu.Lock() // Stop waits for a handler running
		switch {
		case sub.stopped:
		case err != nil:
			if rc.unreadable != nil {
				rc.unreadable(meta.Sequence.Stream, err)
			}
		default:
			if err := h(ev); err != nil {
				log.Warn("event handler failed", "seq", ev.Sequence, "type", ev.Type, "err", err)
			}
		}
		sub.mu.Unlock()
	}, orderedHeartbeat)
	if err != nil {
		sub.remove()
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	sub.cc = cc
	return sub, nil
}
