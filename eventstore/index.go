package eventstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

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
//
// Right after the store opens, the index is still reading the stream from
// its start, and the unindexed tail is all of it: scanning that per load
// is slow, and a few thousand such loads at once (the trigger processor
// after a restart, with orders in progress) overwhelm the server. So
// loads wait until the index has read as far as the stream reached when
// the store opened (caughtUp); from then on the tail is the few events
// stored since the index last looked.
type seqIndex struct {
	mu       sync.RWMutex
	applied  uint64              // the last stream sequence indexed
	saved    uint64              // applied as of the last checkpoint (see CheckpointIndexes)
	restored uint64              // applied as restored from a checkpoint at the start (0: read from the stream's start)
	seqs     map[string][]uint64 // aggregate subject prefix → sequences, ascending
	cc       jetstream.ConsumeContext
	remove   func()        // removes cc's consumer from the server
	stopped  chan struct{} // closed by stop: no consumer is started after
	target   uint64        // the stream's last sequence when the store opened
	caughtUp chan struct{} // closed once applied reaches target
}

// indexPull is how many headers the index's consumer asks for at a time
// while it reads the events stored before the start (about 1 MB): with
// nats.go's default of 500 it read about 340,000 events a second here,
// with 5,000 about 500,000, with 20,000 about 630,000
// (BenchmarkIndexCatchUp). 20,000 took so much of the machine that a
// restart with the orders checkpoint was ready only after 4.2–4.4 s
// instead of 3.5 (BenchmarkRestart in cmd/orderflow). Once caught up the
// index reads on with nats.go's default: with 5,000 kept, pipelined
// appends ran about 18% slower (BenchmarkAppendPipelined, alternated
// with the default).
const indexPull = 5_000

func (s *Store) startIndex(ctx context.Context, stream string, target uint64) (*seqIndex, error) {
	idx := &seqIndex{seqs: make(map[string][]uint64), target: target, caughtUp: make(chan struct{}), stopped: make(chan struct{})}
	if s.cfg.IndexCheckpoints && target > 0 {
		if seqs, applied, ok := s.restoreIndex(ctx, stream); ok {
			idx.seqs, idx.applied, idx.saved, idx.restored = seqs, applied, applied, applied
		}
	}
	var opts []jetstream.PullConsumeOpt
	behind := idx.applied < target
	if behind {
		opts = append(opts, jetstream.PullMaxMessages(indexPull))
	} else { // nothing to catch up with
		close(idx.caughtUp)
	}
	// Its consumer's create may go unanswered while other processes start
	// (see Retry).
	var from uint64 // the start
	if idx.applied > 0 {
		from = idx.applied + 1
	}
	if err := s.Retry(ctx, func(ctx context.Context) error { return idx.consume(ctx, s.js, stream, from, opts...) }); err != nil {
		return nil, err
	}
	if behind {
		go idx.settle(s.js, stream, s.cfg.Timeout)
	}
	return idx, nil
}

// consume starts the index's consumer at stream sequence from (0: the
// start), unless the index was stopped.
func (idx *seqIndex) consume(ctx context.Context, js jetstream.JetStream, stream string, from uint64, opts ...jetstream.PullConsumeOpt) error {
	cfg := jetstream.OrderedConsumerConfig{HeadersOnly: true}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := newOrdered(ctx, js, stream, cfg)
	if err != nil {
		return fmt.Errorf("index %s: %w", stream, err)
	}
	remove := func() { removeConsumer(js, stream, cons) }
	idx.mu.Lock()
	defer idx.mu.Unlock()
	select {
	case <-idx.stopped:
		remove()
		return nil
	default:
	}
	idx.remove = remove
	idx.cc, err = cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		idx.add(m.Subject(), meta.Sequence.Stream)
	}, append([]jetstream.PullConsumeOpt{orderedHeartbeat}, opts...)...)
	if err != nil {
		remove()
		return fmt.Errorf("index %s: %w", stream, err)
	}
	return nil
}

// settle, once the index has caught up, replaces its consumer by one with
// nats.go's default pull that goes on from the next sequence (see
// indexPull); while it cannot (the connection is down), it tries again
// every second, and the index waits meanwhile.
func (idx *seqIndex) settle(js jetstream.JetStream, stream string, timeout time.Duration) {
	select {
	case <-idx.caughtUp:
	case <-idx.stopped:
		return
	}
	idx.mu.Lock()
	cc, remove := idx.cc, idx.remove
	idx.mu.Unlock()
	cc.Stop()
	<-cc.Closed()
	remove()
	idx.mu.RLock()
	from := idx.applied + 1
	idx.mu.RUnlock()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := idx.consume(ctx, js, stream, from)
		cancel()
		if err == nil {
			return
		}
		select { // the connection may be down: try again
		case <-time.After(time.Second):
		case <-idx.stopped:
			return
		}
	}
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
	if idx.applied < idx.target && seq >= idx.target {
		close(idx.caughtUp)
	}
	idx.applied = seq
}

// wait returns once the index has read the stream as far as it reached
// when the store opened, or ctx's error.
func (idx *seqIndex) wait(ctx context.Context, stream string) error {
	select { // caught up wins over a ctx that has ended too
	case <-idx.caughtUp:
		return nil
	default:
	}
	select {
	case <-idx.caughtUp:
		return nil
	case <-ctx.Done():
		idx.mu.RLock()
		applied := idx.applied
		idx.mu.RUnlock()
		return fmt.Errorf("%w: %s: read %d of the %d events stored before the start: %w", ErrIndexing, stream, applied, idx.target, ctx.Err())
	}
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
	if idx == nil {
		return
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	select {
	case <-idx.stopped:
	default:
		close(idx.stopped)
	}
	if idx.cc != nil {
		stopConsumer(idx.cc, false)
		idx.remove()
	}
}

// WaitIndexed returns once the sequence indexes have read every event
// stored before the store opened (loads wait for that too), or ctx's
// error.
func (s *Store) WaitIndexed(ctx context.Context) error {
	for name, idx := range s.indexes {
		if err := idx.wait(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// IndexCaughtUp reports whether stream's load index has read every event
// stored before the store opened (true for a stream without an index):
// until then loads of it wait.
func (s *Store) IndexCaughtUp(stream string) bool {
	idx := s.indexes[stream]
	if idx == nil {
		return true
	}
	select {
	case <-idx.caughtUp:
		return true
	default:
		return false
	}
}

// IndexRestoredAt is the sequence of stream that its load index started
// from: the last one its checkpoint had applied (Config.IndexCheckpoints),
// or 0 when it read the stream from the start.
func (s *Store) IndexRestoredAt(stream string) uint64 {
	if idx := s.indexes[stream]; idx != nil {
		return idx.restored
	}
	return 0
}

// IndexedLast is the sequence of agg's last event as the store's sequence
// index has it, without asking the server (0 when the index has none, or
// the stream has no index). The index follows the stream closely but
// behind: an event stored a moment ago may not be there yet.
func (s *Store) IndexedLast(agg Aggregate) uint64 {
	idx := s.indexes[agg.Stream()]
	if idx == nil {
		return 0
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	if all := idx.seqs[agg.prefix()]; len(all) > 0 {
		return all[len(all)-1]
	}
	return 0
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
