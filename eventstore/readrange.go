package eventstore

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/internal/orderedread"
)

// rangePull is how many messages a range read asks for at a time, and
// reads ahead of its caller. Many run at once on one connection (event
// feeds that reconnect together after a restart, say): with ReadStream's
// pulls of 4,096, 100 of them had the server take the process's
// connection for a slow consumer and drop it. Without a bound on bytes
// the server ends no pull with a status message, which nats.go could
// drop in place of a message (see readThreshold), so nats.go's default
// of asking again at half is kept.
const rangePull = 256

// RangeReader reads the events of a stream that match a filter within a
// range of sequences, oldest first (OpenRange).
type RangeReader struct {
	stream string
	upTo   uint64
	// On a cluster, the sequence the read has to reach (see OpenRange);
	// 0 on one server, where the server's count of what follows is
	// enough.
	target uint64
	done   bool
	r      *orderedread.Reader
	remove func()
	log    func(err error)
}

// OpenRange reads the events of stream matching filter with a sequence in
// (after, upTo]; upTo must be stored already (a sequence a subscription
// has delivered, say). It reads with an ordered consumer, rangePull
// messages at a time, and knows it has read the
// range when a message is past upTo or the server counts none matching
// after it. A message that is not a readable event is logged and skipped,
// as Subscribe does. Close it when done.
//
// On a cluster the consumer may be served by a replica a moment behind
// the leader, whose count would end the read early with events missing
// (TestLoadSeesAcknowledgedAppendsOnACluster); there OpenRange asks the
// leader for the last message matching filter first, and reads until it
// has that one, or one at or past upTo.
func (s *Store) OpenRange(ctx context.Context, stream, filter string, after, upTo uint64) (*RangeReader, error) {
	rr := &RangeReader{stream: stream, upTo: upTo, done: after >= upTo,
		log: func(err error) { s.cfg.Logger.Warn("skipping undecodable event", "stream", stream, "err", err) }}
	if !rr.done && s.cfg.Replicas > 1 {
		floor, err := s.leaderLast(ctx, stream, filter)
		if err != nil {
			return nil, err
		}
		rr.target = min(floor, upTo)
		rr.done = rr.target <= after
	}
	if rr.done {
		return rr, nil
	}
	cons, err := newOrdered(ctx, s.js, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter},
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1})
	if err != nil {
		return nil, fmt.Errorf("read %s after %d: %w", filter, after, err)
	}
	rr.remove = func() { removeConsumer(s.js, stream, cons) }
	if info := cons.CachedInfo(); rr.target == 0 && info != nil && info.NumPending == 0 {
		rr.done = true // none matching after `after`, so none up to upTo
		rr.remove()
		return rr, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(rangePull), orderedHeartbeat)
	if err != nil {
		rr.remove()
		return nil, fmt.Errorf("read %s after %d: %w", filter, after, err)
	}
	// nats.go's Next would not return as ctx ends while no server answers
	// (see orderedread).
	rr.r = orderedread.New(it, rangePull)
	return rr, nil
}

// Next is the range's next event; ok is false when the range has no
// more.
func (rr *RangeReader) Next(ctx context.Context) (ev Event, ok bool, err error) {
	for !rr.done {
		m, err := rr.r.Next(ctx)
		if err != nil {
			return Event{}, false, fmt.Errorf("read %s: %w", rr.stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return Event{}, false, fmt.Errorf("read %s: %w", rr.stream, err)
		}
		seq := meta.Sequence.Stream
		if seq > rr.upTo {
			rr.done = true
			break
		}
		switch {
		case rr.target > 0: // on a cluster
			rr.done = seq >= rr.target
		default: // none matching after this one when it was sent: none up to upTo, stored before
			rr.done = seq == rr.upTo || meta.NumPending == 0
		}
		ev, err := decodeStored(rr.stream, m.Subject(), seq, meta.Timestamp, m.Data(), true)
		if err != nil {
			rr.log(err)
			continue
		}
		return ev, true, nil
	}
	return Event{}, false, nil
}

// Close ends the read and removes its consumer.
func (rr *RangeReader) Close() {
	if rr.r != nil {
		rr.r.Close(rr.remove)
		rr.r = nil
	}
}
