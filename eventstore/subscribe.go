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

// Subscription is a running ordered subscription.
type Subscription struct {
	cc       jetstream.ConsumeContext
	stopOnce sync.Once
}

// Stop ends the subscription and removes its ephemeral consumer. It waits
// until the handler is no longer running.
func (s *Subscription) Stop() {
	s.stopOnce.Do(func() {
		s.cc.Stop()
		<-s.cc.Closed()
	})
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
// drops, and deleted on Stop.
//
// A message that is not a valid envelope is logged and skipped: the store
// only writes validated envelopes, so such a message was written around it.
func (s *Store) Subscribe(ctx context.Context, stream string, filters []string, after uint64, h Handler) (*Subscription, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	cctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cons, err := s.js.OrderedConsumer(cctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s %v: %w", stream, filters, err)
	}
	log := s.cfg.Logger.With("stream", stream)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			log.Warn("event without metadata", "subject", m.Subject(), "err", err)
			return
		}
		ev, err := decodeStored(stream, m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Data())
		if err != nil {
			log.Warn("skipping undecodable event", "err", err)
			return
		}
		if err := h(ev); err != nil {
			log.Warn("event handler failed", "seq", ev.Sequence, "type", ev.Type, "err", err)
		}
	}, orderedHeartbeat)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return &Subscription{cc: cc}, nil
}
