package eventstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/internal/orderedread"
)

// Break is one place where an aggregate's hash chain does not hold.
type Break struct {
	Stream    string
	Sequence  uint64
	Subject   string
	Aggregate string // tenant/type/id
	Kind      string // altered, unsealed, undecodable, gap, reordered, chain
	Detail    string
}

func (b Break) String() string {
	return fmt.Sprintf("%s sequence %d (%s, %s): %s: %s", b.Stream, b.Sequence, b.Aggregate, b.Subject, b.Kind, b.Detail)
}

// VerifyReport is the result of walking streams.
type VerifyReport struct {
	Events     uint64
	Aggregates int
	Breaks     []Break
	Took       time.Duration
}

// Progress, when not nil, is told how far a long walk has got.
type Progress func(done, total uint64)

// StoredMsg is one message as a stream holds it.
type StoredMsg struct {
	Stream   string
	Sequence uint64
	Subject  string
	Header   map[string][]string
	Data     []byte
	Time     time.Time
}

// Event decodes the message as an event envelope; the event's Data shares
// m.Data's bytes.
func (m StoredMsg) Event(opts ...ReadOption) (Event, error) {
	return decodeStored(m.Stream, m.Subject, m.Sequence, m.Time, m.Data, readOptions(opts).checkData)
}

// readAhead is how many messages ReadStream reads ahead of its caller.
// readPull is how many it asks for at a time (one pull out at a time,
// see readThreshold: four times the read-ahead, so that the wait for a
// pull's first message falls on that many messages), and readPullBytes
// bounds a pull in bytes, and a page of ScanMessages too. A thousand
// events are a few hundred KB; a thousand dead letters of large triggers
// were 66 MB, over the server's limit for a client's pending bytes (64
// MB): the server took the process for a slow consumer and dropped its
// connection, over and over, while it read them at its start. The bound
// is over the largest message a stream holds (1 MiB), or the read would
// stall.
const (
	readAhead     = 1024
	readPull      = 4 * readAhead
	readPullBytes = 8 << 20
)

// readThreshold has a stream read ask for more only once it has taken
// every message asked for before. nats.go hands a pull's messages, and
// the status message that ends each pull (409 "Batch Completed", which
// the server sends to a pull bounded in bytes, such as readPullBytes),
// through one channel of readPull places, and by default asks for more
// at half of them, so two pulls may be out at once. A caller that fell
// behind, its read-ahead full at such a moment, left up to readPull − 1
// messages and two status messages for those places: one status message
// was dropped, which nats.go reports as "slow consumer, messages
// dropped" (harmless, but a large export or verify printed it a few
// times). With one pull out there is room for its status message. The
// read-ahead keeps the caller supplied while the next pull is asked for.
const readThreshold = jetstream.PullThresholdMessages(1)

// ReadStream delivers every message of a stream, from the first, in order,
// with an ordered consumer, and returns once it has delivered the message
// that was last when it started.
func (s *Store) ReadStream(ctx context.Context, stream string, fn func(StoredMsg) error, progress Progress) (uint64, error) {
	return s.readStream(ctx, stream, false, fn, progress)
}

// ReadStreamHeaders is ReadStream without the messages' bodies (each
// StoredMsg's Data is empty): for a caller that needs only their headers,
// subjects and times (the dead letters' ids, say), which the server then
// does not send.
func (s *Store) ReadStreamHeaders(ctx context.Context, stream string, fn func(StoredMsg) error, progress Progress) (uint64, error) {
	return s.readStream(ctx, stream, true, fn, progress)
}

func (s *Store) readStream(ctx context.Context, stream string, headersOnly bool, fn func(StoredMsg) error, progress Progress) (uint64, error) {
	last, err := s.LastSequence(ctx, stream)
	if err != nil || last == 0 {
		return 0, err
	}
	cons, err := newOrdered(ctx, s.js, stream, jetstream.OrderedConsumerConfig{HeadersOnly: headersOnly})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(readPull, readPullBytes), readThreshold, orderedHeartbeat)
	if err != nil {
		removeConsumer(s.js, stream, cons)
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	// nats.go's Next would not return as ctx ends while no server answers
	// (see orderedread).
	r := orderedread.New(it, readAhead)
	defer r.Close(func() { removeConsumer(s.js, stream, cons) })
	var n uint64
	for {
		m, err := r.Next(ctx)
		if err != nil {
			return n, fmt.Errorf("read %s: %w", stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return n, err
		}
		n++
		sm := StoredMsg{Stream: stream, Sequence: meta.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp}
		if err := fn(sm); err != nil {
			return n, err
		}
		if progress != nil && n%1024 == 0 {
			progress(meta.Sequence.Stream, last)
		}
		if meta.Sequence.Stream >= last {
			if progress != nil {
				progress(last, last)
			}
			return n, nil
		}
	}
}

type chainState struct {
	version uint64
	hash    string
}

// Verify walks every aggregate's hash chain in the given streams (by
// default ORDERFLOW_DEFINITIONS and ORDERFLOW_ORDERS) and reports each
// break: an event whose hash does not match its bytes (altered), one
// without a hash, a version gap (missing events), a version out of order
// (reordered or repeated), or a prev_hash that is not the previous event's
// hash. Another stream of events (a copy kept for an audit, say) may be
// named; orderflow's streams of triggers are refused, and a stream named
// twice too: read twice, every event would be reported as repeated.
func (s *Store) Verify(ctx context.Context, streams []string, progress Progress) (VerifyReport, error) {
	if len(streams) == 0 {
		streams = []string{StreamDefinitions, StreamOrders}
	}
	for i, stream := range streams {
		switch {
		case stream == StreamTriggers || stream == StreamTriggerLanes || stream == StreamDeadLetter:
			return VerifyReport{}, fmt.Errorf("stream %s holds triggers, not events", stream)
		case slices.Contains(streams[:i], stream):
			return VerifyReport{}, fmt.Errorf("stream %s is named twice", stream)
		}
	}
	start := time.Now()
	var rep VerifyReport
	chains := map[string]*chainState{}
	for _, stream := range streams {
		n, err := s.ReadStream(ctx, stream, func(m StoredMsg) error {
			seq := m.Sequence
			brk := func(agg, kind, format string, args ...any) {
				rep.Breaks = append(rep.Breaks, Break{Stream: stream, Sequence: seq, Subject: m.Subject, Aggregate: agg,
					Kind: kind, Detail: fmt.Sprintf(format, args...)})
			}
			env, err := DecodeEnvelope(m.Data)
			if err != nil {
				brk("?", "undecodable", "%v", err)
				return nil
			}
			key := env.Tenant + "/" + env.AggregateType + "/" + env.AggregateID
			canonical, claimed, ok := CanonicalBytes(m.Data)
			switch {
			case !ok:
				brk(key, "unsealed", "the event has no hash")
			case HashOf(canonical) != claimed:
				brk(key, "altered", "hash %s does not match the event's bytes (%s)", short(claimed), short(HashOf(canonical)))
			}
			c := chains[key]
			if c == nil {
				c = &chainState{}
				chains[key] = c
			}
			switch {
			case env.Version > c.version+1:
				brk(key, "gap", "version %d follows version %d: %d event(s) missing", env.Version, c.version, env.Version-c.version-1)
			case env.Version <= c.version:
				brk(key, "reordered", "version %d comes after version %d", env.Version, c.version)
			case env.PrevHash != c.hash:
				brk(key, "chain", "prev_hash %s is not the previous event's hash %s", short(env.PrevHash), short(c.hash))
			}
			if env.Version > c.version {
				c.version = env.Version
			}
			c.hash = env.Hash
			return nil
		}, progress)
		rep.Events += n
		if err != nil {
			return rep, err
		}
	}
	rep.Aggregates = len(chains)
	rep.Took = time.Since(start)
	return rep, nil
}

func short(h string) string {
	if h == "" {
		return `""`
	}
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
