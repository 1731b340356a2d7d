package eventstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// seqIndex remembers, for every aggregate of one stream, the stream
// sequences of its events. It exists because JetStream's file store finds
// the next message for a wildcard filter (orderflow.t.order.<id>.>) by
// scanning, so loading an aggregate whose events are spread over a large
// stream gets slower as the stream grows; a message fetched by sequence
// costs the same at any size.
//
// It is fed by a headers-only ordered consumer over the whole stream, so it
// holds about 8 bytes per event plus one map entry per aggregate, and it
// lags the stream by the consumer's delivery delay. Load reads what it
// lists by sequence and scans only the tail the index has not seen yet, so
// its answer is complete whether or not the index is caught up.
type seqIndex struct {
	mu      sync.RWMutex
	applied uint64              // the last stream sequence indexed
	seqs    map[string][]uint64 // aggregate subject prefix → sequences, ascending
	cc      jetstream.ConsumeContext
}

func (s *Store) startIndex(ctx context.Context, stream string) (*seqIndex, error) {
	idx := &seqIndex{seqs: make(map[string][]uint64)}
	cons, err := s.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", stream, err)
	}
	idx.cc, err = cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		idx.add(m.Subject(), meta.Sequence.Stream)
	}, orderedHeartbeat)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", stream, err)
	}
	return idx, nil
}

func (idx *seqIndex) add(subject string, seq uint64) {
	key := subject
	if i := strings.LastIndexByte(subject, '.'); i > 0 {
		key = subject[:i]
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if seq <= idx.applied {
		return // redelivered after an ordered consumer reset
	}
	idx.seqs[key] = append(idx.seqs[key], seq)
	idx.applied = seq
}

// lookup returns the aggregate's indexed sequences after `after`, and the
// last sequence the index has applied.
func (idx *seqIndex) lookup(key string, after uint64) ([]uint64, uint64) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	all := idx.seqs[key]
	i := len(all)
	for i > 0 && all[i-1] > after {
		i--
	}
	return append([]uint64(nil), all[i:]...), idx.applied
}

func (idx *seqIndex) stop() {
	if idx != nil && idx.cc != nil {
		idx.cc.Stop()
	}
}

// Indexed is the last sequence of stream that the store's sequence index
// has applied (0 for a stream without an index). Loads are complete at
// any value; they are fastest once it has reached the stream's end.
func (s *Store) Indexed(stream string) uint64 {
	idx := s.indexes[stream]
	if idx == nil {
		return 0
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.applied
}
