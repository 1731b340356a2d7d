package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Config tunes the streams and the store. The zero value is usable: every
// field has a default.
type Config struct {
	// Replicas is each stream's replica count: 1 on one server, 3 on a
	// three-node cluster. Default 1.
	Replicas int
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values
	// to drop re-sent events and triggers. Default 2 minutes. Re-appends
	// after the window are still recognised, by event id, when the
	// aggregate's history holds them (see Append).
	DuplicateWindow time.Duration
	// Timeout bounds each call whose context has no deadline (each page
	// of a read of many pages). Default 5 s.
	Timeout time.Duration
	// LoadBatch is how many events one batched direct get asks for when
	// loading an aggregate. Default 256.
	LoadBatch int
	// MaxAppend is the most events one Append may carry (one atomic
	// batch). Default 100; the server's own limit is 1,000.
	MaxAppend int
	// Logger receives the store's warnings. Default slog.Default().
	Logger *slog.Logger
	// IndexCheckpoints has Open start each load index from its checkpoint
	// (saved by CheckpointIndexes), reading only the events stored after
	// it, instead of from the stream's first event.
	IndexCheckpoints bool
}

// SyncQueueLen is the nats.SyncQueueLen option for connections handed to
// Open and Attach. A batched direct get (an aggregate's tail in Load,
// LoadFilter) receives its batch on a synchronous subscription, and nats.go
// gives each of those a 65,536-entry channel by default: 512 KiB allocated
// and cleared for every load. 1,024 holds four default batches; Open
// refuses a connection whose queue cannot hold one LoadBatch.
const SyncQueueLen = 1024

// checkConn refuses a connection whose synchronous subscriptions cannot
// hold one batched get: its replies would be dropped as a slow consumer.
func (c Config) checkConn(nc *nats.Conn) error {
	if q := nc.Opts.SubChanLen; q > 0 && q <= c.LoadBatch {
		return fmt.Errorf("eventstore: the connection's sync queue (%d, nats.SyncQueueLen) must exceed LoadBatch (%d)", q, c.LoadBatch)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.LoadBatch == 0 {
		c.LoadBatch = 256
	}
	if c.MaxAppend == 0 {
		c.MaxAppend = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("duplicate window %s: must not be negative", c.DuplicateWindow))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", c.Timeout))
	}
	if c.LoadBatch < 0 {
		errs = append(errs, fmt.Errorf("load batch %d: must not be negative", c.LoadBatch))
	}
	if c.MaxAppend < 0 || c.MaxAppend > 1000 {
		errs = append(errs, fmt.Errorf("max append %d: must be 1 to 1000", c.MaxAppend))
	}
	return errors.Join(errs...)
}

// maxEventMsgSize bounds a message of the event streams: an envelope
// (at most MaxEnvelopeSize) and its headers.
const maxEventMsgSize = 1 << 20

// MaxTriggerBody bounds the body of a trigger message. The largest a
// worker app sends within the rules (a 2,000-character note of emoji
// written as \u escapes, the longest worker and trigger id) is about 25
// KiB.
const MaxTriggerBody = 64 << 10

// MaxTriggerMsgSize bounds a trigger message as ORDERFLOW_TRIGGERS stores
// it, body and headers (a worker app's Nats-Msg-Id, say, and whatever
// else it sends): the stream refuses a larger one to its publisher
// ("message size exceeds maximum allowed") and stores nothing. A body
// over MaxTriggerBody that fits is stored, and put aside as a dead letter
// by the trigger processor.
const MaxTriggerMsgSize = MaxTriggerBody + 8<<10

// StreamConfigs are the three streams of the contract as this store creates
// them.
func (c Config) StreamConfigs() []jetstream.StreamConfig {
	c = c.withDefaults()
	mk := func(name, subject, desc string, maxMsg int32) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:               name,
			Description:        desc,
			Subjects:           []string{subject},
			Retention:          jetstream.LimitsPolicy,
			Storage:            jetstream.FileStorage,
			Replicas:           c.Replicas,
			Duplicates:         c.DuplicateWindow,
			DenyDelete:         true,
			DenyPurge:          true,
			AllowDirect:        true,
			AllowAtomicPublish: true,
			MaxMsgSize:         maxMsg,
		}
	}
	return []jetstream.StreamConfig{
		// Exactly the contract's token counts: a subject with a token too
		// many or too few is not stored, and its publisher hears so.
		mk(StreamDefinitions, SubjectRoot+".*.def.*.*.*", "orderflow definitions: status and trigger libraries, workflows, order types", maxEventMsgSize),
		mk(StreamOrders, SubjectRoot+".*.order.*.*", "orderflow order events", maxEventMsgSize),
		mk(StreamTriggers, SubjectRoot+".*.trigger.*.*", "orderflow raw trigger events from worker apps", MaxTriggerMsgSize),
	}
}

// Store appends and reads events. It is safe for concurrent use.
type Store struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	streams map[string]jetstream.Stream
	indexes map[string]*seqIndex
	cp      lazyBucket[jetstream.ObjectStore]
	claims  lazyBucket[jetstream.KeyValue]
	// batches bounds atomic batches in flight: the server refuses more
	// than a few dozen at once per stream.
	batches chan struct{}
	// gets bounds the direct gets of loads in flight. Without it a few
	// thousand loads at once (the trigger processor after a restart, its
	// lanes full) send tens of thousands of requests; the server works
	// through every one, also those whose callers gave up, and each load
	// times out. With it they wait here, where a caller that gives up
	// costs nothing.
	gets chan struct{}
}

// maxBatchesInFlight is how many atomic batches one store sends at once.
const maxBatchesInFlight = 32

// maxGetsInFlight is how many direct gets one store's loads send at once.
const maxGetsInFlight = 64

// Open creates or updates the contract's streams on the connection's
// JetStream and returns a store on them.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventstore config: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.checkConn(nc); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithDefaultTimeout(cfg.Timeout),
		jetstream.WithPublishAsyncTimeout(cfg.Timeout),
		jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s := &Store{cfg: cfg, nc: nc, js: js, streams: map[string]jetstream.Stream{}, indexes: map[string]*seqIndex{},
		batches: make(chan struct{}, maxBatchesInFlight), gets: make(chan struct{}, maxGetsInFlight)}
	for _, sc := range cfg.StreamConfigs() {
		st, err := s.ensureStream(ctx, sc)
		if err != nil {
			return nil, err
		}
		s.streams[sc.Name] = st
	}
	for _, name := range []string{StreamDefinitions, StreamOrders} {
		idx, err := s.startIndex(ctx, name, s.streams[name].CachedInfo().State.LastSeq)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.indexes[name] = idx
	}
	return s, nil
}

// Close stops the store's background consumers. It does not close the
// NATS connection, which belongs to the caller.
func (s *Store) Close() {
	var wg sync.WaitGroup // at once: each may wait stopWait for a server that does not answer
	for _, idx := range s.indexes {
		wg.Go(idx.stop)
	}
	wg.Wait()
}

// ensureStream creates or updates one stream. A cluster that is still
// electing its JetStream leader answers "unavailable" for a while: that is
// retried until ctx ends (or 30 s when ctx has no deadline).
func (s *Store) ensureStream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := s.Retry(ctx, func(ctx context.Context) error {
		if err := s.keepsReplicas(ctx, sc.Name, sc.Name, sc.Replicas); err != nil {
			return err
		}
		var err error
		st, err = s.js.CreateOrUpdateStream(ctx, sc)
		return err
	})
	switch {
	case err == nil:
		return st, nil
	case hasErrorCode(err, jsErrCodeNotClustered):
		return nil, fmt.Errorf("create stream %s on %d replicas: %w: more than one copy needs a NATS cluster", sc.Name, sc.Replicas, err)
	case hasErrorCode(err, jsErrCodeNoPeers):
		return nil, fmt.Errorf("create stream %s on %d replicas: %w: the cluster needs %d JetStream servers up and joined to place it on", sc.Name, sc.Replicas, err, sc.Replicas)
	case hasErrorCode(err, jsErrCodeSubjectsOverlap):
		return nil, fmt.Errorf("create stream %s: %w: %s", sc.Name, err, s.overlapping(ctx, sc))
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return nil, fmt.Errorf("create stream %s: %w: no JetStream answered: does the NATS server run with JetStream (nats-server --jetstream, or a jetstream block in its configuration)?", sc.Name, err)
	}
	return nil, fmt.Errorf("create stream %s: %w", sc.Name, err)
}

// overlapping names the streams that already take subjects sc wants, for
// the error of a create JetStream refused for that.
func (s *Store) overlapping(ctx context.Context, sc jetstream.StreamConfig) string {
	var names []string
	for _, subject := range sc.Subjects {
		for name := range s.js.StreamNames(ctx, jetstream.WithStreamListSubject(subject)).Name() {
			if name != sc.Name && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("another stream takes subjects of %s", strings.Join(sc.Subjects, ", "))
	}
	return fmt.Sprintf("stream %s takes subjects of %s, which orderflow needs to itself", strings.Join(names, ", "), strings.Join(sc.Subjects, ", "))
}

// hasErrorCode reports whether err is, or wraps, JetStream's answer code.
func hasErrorCode(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// keepsReplicas refuses (checkReplicas) to give stream, if there is one,
// fewer than the replicas it has; name is what the error calls it (a
// bucket, for the stream behind one).
func (s *Store) keepsReplicas(ctx context.Context, stream, name string, want int) error {
	cur, err := s.js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	case err != nil:
		return err
	}
	return checkReplicas(name, cur.CachedInfo().Config.Replicas, want)
}

// checkReplicas refuses (ErrFewerReplicas) to give the stream name, kept
// on has replicas, fewer: a process started without --replicas 3 on a
// cluster would otherwise scale every stream down to one copy, and the
// loss of that node would lose what they hold.
func checkReplicas(name string, has, want int) error {
	if want < has {
		return fmt.Errorf("%w: %s is kept on %d replicas, and this process asks for %d: start it with --replicas %d "+
			"(scaling a stream down is an operator's step, with the nats CLI)", ErrFewerReplicas, name, has, want, has)
	}
	return nil
}

// Retry runs op (a create-or-update of a stream, consumer or bucket, or a
// look-up made while other processes may be creating, or while servers
// start) until it succeeds, fails for good (not transient) or ctx ends
// (30 s when ctx has no deadline), giving each attempt a deadline of its
// own: one second at first, doubling up to the store's Timeout. Why: when
// two processes start together on a cluster, nats-server (v2.15.2, and
// v2.15.3 still) may answer neither of two identical creates of the same
// stream, though it makes the stream, and a look-up may go unanswered
// too; each such request took the whole Timeout (two processes took 31 s
// to start on a fresh cluster). Sent again, the create finds the stream
// and answers at once.
func (s *Store) Retry(ctx context.Context, op func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	return s.attempts(ctx, 100*time.Millisecond, op)
}

// attempts runs op as retryTransient does, waiting interval after each
// transient failure, and gives each attempt a deadline of its own: one
// second at first, doubling up to the store's Timeout. A request that is
// never answered (lost with a reconnect, or sent to a stream's leader
// that is gone) then costs an attempt, not all of ctx.
func (s *Store) attempts(ctx context.Context, interval time.Duration, op func(context.Context) error) error {
	wait := min(time.Second, s.cfg.Timeout)
	return retryTransient(ctx, interval, func() error {
		actx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		wait = min(2*wait, s.cfg.Timeout)
		return op(actx)
	})
}

// bounded runs op with ctx limited to the store's Timeout: a request whose
// answer is lost (with a reconnect, or a server stopped under it) costs
// that much, not all of a caller's longer deadline; retried, it is asked
// again. A read as a whole still has the caller's time.
func (s *Store) bounded(ctx context.Context, op func(context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	return op(actx)
}

// retryTransient runs op until it succeeds, fails for good or ctx ends,
// waiting interval after each transient failure.
func retryTransient(ctx context.Context, interval time.Duration, op func() error) error {
	var answered error // the last answer a server gave, for when a later attempt only runs out of time
	for {
		err := op()
		if err == nil || !transient(err) {
			return err
		}
		if !timedOut(err) {
			answered = err
		}
		if ctx.Err() != nil {
			return gaveUp(err, answered)
		}
		select {
		case <-ctx.Done():
			return gaveUp(err, answered)
		case <-time.After(interval):
		}
	}
}

// gaveUp is the error of a retry that ran out of time: the last
// attempt's, often only that its time ran out, then, when it was, the
// last answer a server gave ("no suitable peers for placement", "no
// responders"), since that says why.
func gaveUp(last, answered error) error {
	if answered == nil || !timedOut(last) {
		return last
	}
	return fmt.Errorf("%w (the server's last answer: %w)", last, answered)
}

// timedOut reports an error that says only that no answer came in time.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// transient reports errors that a retry can cure: a stream no server
// serves at the moment (Unavailable), JetStream not yet available, a
// timeout. The store retries its creates and look-ups on them. A refusal
// for lack of storage is not one, though JetStream answers it with a 503
// too: storage is freed by an operator, not within a retry's time, and
// retrying made a checkpoint on a full store wait out its whole timeout.
// Nor is a server that is not clustered asked for replicas, whose 500 a
// retry only repeats.
func transient(err error) bool {
	if errors.Is(Refusal(err), ErrStorageFull) {
		return false
	}
	if hasErrorCode(err, jsErrCodeNotClustered) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.Code == 500 || apiErr.ErrorCode == jsErrCodeNoPeers) {
		return true
	}
	return Unavailable(err) ||
		errors.Is(err, ErrIncompleteRead) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// JetStream is the store's JetStream context, for callers (the trigger
// processor, tests, benchmarks) that work on the streams directly.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Conn is the store's NATS connection.
func (s *Store) Conn() *nats.Conn { return s.nc }

// Replicas is the replica count the store gives its streams.
func (s *Store) Replicas() int { return s.cfg.Replicas }

// withTimeout applies the default timeout only when the caller set none.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// ExpectNew is the expected sequence of an aggregate that has no events yet.
const ExpectNew uint64 = 0

// AppendResult says where an append's events are stored.
type AppendResult struct {
	FirstSeq uint64 // stream sequence of the first event
	LastSeq  uint64 // stream sequence of the last event: the next expected sequence
	// Duplicate is true when every event was already stored (same ids):
	// nothing new was written and the sequences are the original ones.
	Duplicate bool
	// LastHash is the hash of the last event: the next append's PrevHash.
	LastHash string
}

// Append stores events as the next events of agg, provided the aggregate's
// last stored event is at stream sequence expected (ExpectNew for none).
//
// The envelopes' tenant and aggregate fields are filled from agg when
// empty and must match it otherwise; versions must be consecutive. Several
// events are one JetStream atomic batch: all are stored or none.
//
// A conflict returns an error matching ErrConcurrency. Appending events
// whose ids are already stored in agg's history stores nothing and returns
// the original position with Duplicate set, within JetStream's duplicate
// window (Nats-Msg-Id) and after it (the ids are found in the history).
func (s *Store) Append(ctx context.Context, agg Aggregate, expected uint64, events ...Envelope) (AppendResult, error) {
	p, err := s.AppendAsync(ctx, agg, expected, events...)
	if err != nil {
		return AppendResult{}, err
	}
	return p.Wait(ctx)
}

// PublishAsync is js.PublishMsgAsync that waits, instead of failing, while
// too many earlier publishes are unacknowledged (a loaded server), until
// ctx ends.
func PublishAsync(ctx context.Context, js jetstream.JetStream, m *nats.Msg) (jetstream.PubAckFuture, error) {
	for {
		f, err := js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return f, err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return nil, err
		}
	}
}

// PendingAppend is an append that has been sent and not yet acknowledged.
type PendingAppend struct {
	s        *Store
	agg      Aggregate
	scope    string // AppendScoped's
	expected uint64
	events   []Envelope
	msgs     []*nats.Msg // as sent, to send again (see refusedWithoutCause)

	future jetstream.PubAckFuture // one event
	batch  chan batchOutcome      // several events

	mu   sync.Mutex
	done bool
	res  AppendResult
	err  error
}

type batchOutcome struct {
	ack *jetstreamext.BatchAck
	err error
}

// AppendAsync sends an append like Append but does not wait for its
// acknowledgement: callers that append to many aggregates (the trigger
// processor, imports, benchmarks) pipeline their appends and Wait for each
// when they need its outcome. Validation errors are returned at once.
func (s *Store) AppendAsync(ctx context.Context, agg Aggregate, expected uint64, events ...Envelope) (*PendingAppend, error) {
	return s.appendAsync(ctx, agg, "", expected, events)
}

// AppendScoped appends like Append, but its concurrency check covers scope,
// a subject filter wider than the aggregate's (for example every
// definition of a tenant, orderflow.<t>.def.>): the events are stored only
// if the last message matching scope is at scopeSeq. A rule that spans
// aggregates (a name unique among a tenant's workflows) is then decided
// against a state nobody changed in between. The first event's PrevHash
// must be set by the caller ("" for a new aggregate).
func (s *Store) AppendScoped(ctx context.Context, agg Aggregate, scope string, scopeSeq uint64, events ...Envelope) (AppendResult, error) {
	if scope == "" {
		return AppendResult{}, errors.New("append scoped: empty scope")
	}
	p, err := s.appendAsync(ctx, agg, scope, scopeSeq, events)
	if err != nil {
		return AppendResult{}, err
	}
	return p.Wait(ctx)
}

// LastSequenceOn is the stream sequence of the last message matching
// filter in agg's stream family (0 when none): the expected value for
// AppendScoped.
func (s *Store) LastSequenceOn(ctx context.Context, stream, filter string) (uint64, error) {
	m, err := s.lastMsgOn(ctx, stream, filter)
	if err != nil {
		return 0, fmt.Errorf("last sequence on %s: %w", filter, err)
	}
	if m == nil {
		return 0, nil
	}
	return m.Sequence, nil
}

func (s *Store) appendAsync(ctx context.Context, agg Aggregate, scope string, expected uint64, events []Envelope) (*PendingAppend, error) {
	msgs, err := s.prepare(ctx, agg, scope, expected, events)
	if err != nil {
		return nil, err
	}
	p := &PendingAppend{s: s, agg: agg, scope: scope, expected: expected, events: events, msgs: msgs}
	if len(msgs) == 1 {
		p.future, err = PublishAsync(ctx, s.js, msgs[0])
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", agg.Filter(), err)
		}
		return p, nil
	}
	p.batch = make(chan batchOutcome, 1)
	go func() {
		s.batches <- struct{}{}
		defer func() { <-s.batches }()
		ctx, cancel := s.withTimeout(context.WithoutCancel(ctx))
		defer cancel()
		// No ack for the first message: an append is small, and a refused
		// batch is refused at its commit anyway. One round trip per append.
		ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs, jetstreamext.BatchFlowControl{AckFirst: false})
		p.batch <- batchOutcome{ack, err}
	}()
	return p, nil
}

// Wait returns the append's outcome, as Append would. It may be called
// more than once. When ctx ends first, the outcome is unknown (the events
// may still be stored) and a later Wait can still learn it.
func (p *PendingAppend) Wait(ctx context.Context) (AppendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return p.res, p.err
	}
	// A single message needs no timer of its own: its future fails with
	// ErrAsyncPublishTimeout after the store's Timeout
	// (WithPublishAsyncTimeout).
	var err error
	if p.future != nil {
		select {
		case ack := <-p.future.Ok():
			p.res = p.stored(ack)
		case err = <-p.future.Err():
		case <-ctx.Done():
			return AppendResult{}, fmt.Errorf("append to %s: %w: %w", p.agg.Filter(), ErrOutcomeUnknown, ctx.Err())
		}
	} else {
		ctx, cancel := p.s.withTimeout(ctx) // a batch may wait its turn first
		defer cancel()
		select {
		case o := <-p.batch:
			err = o.err
			if err == nil {
				p.res = p.storedBatch(o.ack)
			}
		case <-ctx.Done():
			return AppendResult{}, fmt.Errorf("append to %s: %w: %w", p.agg.Filter(), ErrOutcomeUnknown, ctx.Err())
		}
	}
	if err != nil {
		rctx, cancel := p.s.withTimeout(ctx)
		p.res, p.err = p.s.resolve(rctx, p.agg, p.expected, p.events, err)
		// A refusal the stored state does not bear out is the cluster's
		// passing view: sent again shortly (the same message ids), the
		// append is decided on the stored state. A write by someone else
		// lands meanwhile, and the append then conflicts as it should.
		for wait := time.Millisecond; p.err != nil && p.refusedWithoutCause(rctx, err) && wait <= 64*time.Millisecond; wait *= 2 {
			select {
			case <-time.After(wait):
			case <-rctx.Done():
			}
			if rctx.Err() != nil {
				break
			}
			if p.res, err = p.sendAgain(rctx); err == nil {
				p.err = nil
				break
			}
			p.res, p.err = p.s.resolve(rctx, p.agg, p.expected, p.events, err)
		}
		cancel()
	}
	p.done = true
	return p.res, p.err
}

// refusedWithoutCause reports an append that JetStream refused (err) for a
// reason the stored state does not show. On a replicated stream the
// leader refuses a checked write to a subject while another write to it is
// in flight, until it has applied that one; the write just before, already
// acknowledged to this very appender, may be (nats-server's
// expectedPerSubjectInProcess; the refusal is then
// JSErrCodeStreamWrongLastSequenceConstant). And a leader elected a moment
// ago may not have applied the last write yet: it reports a wrong last
// sequence while the aggregate's history ends at the expected one, which
// one load tells. (For an append checked on a wider scope, only the first
// is known for certain.)
func (p *PendingAppend) refusedWithoutCause(ctx context.Context, err error) bool {
	if hasErrorCode(err, jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return true
	}
	var conflict *ConcurrencyError
	if p.scope != "" || !errors.As(p.err, &conflict) || conflict.Actual != conflict.Expected || conflict.Detail != "" {
		return false // a later event, or one of ours, is stored: a real conflict
	}
	after := max(p.expected, 1) - 1 // the expected event itself, and any after it
	stored, err := p.s.Load(ctx, p.agg, after)
	if err != nil {
		return false
	}
	if p.expected == ExpectNew {
		return len(stored) == 0
	}
	return len(stored) == 1 && stored[0].Sequence == p.expected
}

// sendAgain sends the append's messages again, as they were (their
// message ids make a second copy of a stored one a duplicate).
func (p *PendingAppend) sendAgain(ctx context.Context) (AppendResult, error) {
	if len(p.msgs) == 1 {
		ack, err := p.s.js.PublishMsg(ctx, p.msgs[0])
		if err != nil {
			return AppendResult{}, err
		}
		return p.stored(ack), nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, p.s.js, p.msgs, jetstreamext.BatchFlowControl{AckFirst: false})
	if err != nil {
		return AppendResult{}, err
	}
	return p.storedBatch(ack), nil
}

// stored is the outcome of a one-event append JetStream acknowledged.
func (p *PendingAppend) stored(ack *jetstream.PubAck) AppendResult {
	return AppendResult{FirstSeq: ack.Sequence, LastSeq: ack.Sequence, Duplicate: ack.Duplicate, LastHash: p.events[0].Hash}
}

// storedBatch is the outcome of an atomic append JetStream committed.
func (p *PendingAppend) storedBatch(ack *jetstreamext.BatchAck) AppendResult {
	return AppendResult{FirstSeq: ack.Sequence - ack.BatchSize + 1, LastSeq: ack.Sequence, LastHash: p.events[len(p.events)-1].Hash}
}

// resolve turns a refused append into its outcome: a duplicate of events
// already stored, a concurrency conflict, or the error itself.
func (s *Store) resolve(ctx context.Context, agg Aggregate, expected uint64, events []Envelope, err error) (AppendResult, error) {
	if wrongLastSequence(err) {
		return s.findStored(ctx, agg, expected, events, false)
	}
	if hasErrorCode(err, jetstreamext.JSErrCodeBatchPublishDuplicateMsgID) {
		return s.findStored(ctx, agg, 0, events, true)
	}
	if unanswered(err) {
		return AppendResult{}, fmt.Errorf("append to %s: %w: %w", agg.Filter(), ErrOutcomeUnknown, err)
	}
	return AppendResult{}, fmt.Errorf("append to %s: %w", agg.Filter(), Refusal(err))
}

// wrongLastSequence reports a write JetStream refused because the
// subject's last sequence was not the one it expected.
func wrongLastSequence(err error) bool {
	return hasErrorCode(err, jetstream.JSErrCodeStreamWrongLastSequence) ||
		hasErrorCode(err, jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// unanswered reports an append whose answer will not come now, though the
// server may have stored its events: a single message's acknowledgement
// timed out, an atomic append's commit went unanswered, or the connection
// dropped with it in flight (nats.go then fails every acknowledgement it
// waits for). Its outcome is unknown: a retry finds the events if they
// were stored.
func unanswered(err error) bool {
	return errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrDisconnected)
}

// prepare validates the events, chains their hashes and builds their
// messages. The first event's PrevHash, when the caller did not set it for
// an existing aggregate, is looked up (one direct get of the aggregate's
// last event).
func (s *Store) prepare(ctx context.Context, agg Aggregate, scope string, expected uint64, events []Envelope) ([]*nats.Msg, error) {
	if err := agg.Validate(); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, errors.New("append: no events")
	}
	if len(events) > s.cfg.MaxAppend {
		return nil, fmt.Errorf("append: %d events, more than the %d one append may carry", len(events), s.cfg.MaxAppend)
	}
	msgs := make([]*nats.Msg, len(events))
	var seen map[string]struct{}
	if len(events) > 1 {
		seen = make(map[string]struct{}, len(events))
	}
	for i := range events {
		e := &events[i]
		if err := fill(&e.Tenant, agg.Tenant, "tenant"); err != nil {
			return nil, err
		}
		if err := fill(&e.AggregateType, agg.Type, "aggregate_type"); err != nil {
			return nil, err
		}
		if err := fill(&e.AggregateID, agg.ID, "aggregate_id"); err != nil {
			return nil, err
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if i > 0 && e.Version != events[i-1].Version+1 {
			return nil, fmt.Errorf("%w: event %d has version %d after %d; versions must be consecutive", ErrInvalidEnvelope, i, e.Version, events[i-1].Version)
		}
		if seen != nil {
			if _, dup := seen[e.ID]; dup {
				return nil, fmt.Errorf("%w: event id %s appears twice in one append", ErrInvalidEnvelope, e.ID)
			}
			seen[e.ID] = struct{}{}
		}
		switch {
		case i > 0:
			e.PrevHash = events[i-1].Hash
		case scope != "":
			// The caller knows the aggregate's last hash (AppendScoped).
		case expected == ExpectNew:
			e.PrevHash = ""
		case e.PrevHash == "":
			h, err := s.lastHash(ctx, agg, expected)
			if err != nil {
				return nil, err
			}
			e.PrevHash = h
		}
		body, err := e.seal()
		if err != nil {
			return nil, err
		}
		m := &nats.Msg{Subject: agg.Subject(e.Type), Data: body, Header: nats.Header{jetstream.MsgIDHeader: {e.ID}}}
		if i == 0 {
			m.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(expected, 10)}
			filter := agg.Filter()
			if scope != "" {
				filter = scope
			}
			m.Header[jetstream.ExpectedLastSubjSeqSubjHeader] = []string{filter}
		}
		msgs[i] = m
	}
	return msgs, nil
}

func fill(field *string, want, name string) error {
	if *field == "" {
		*field = want
		return nil
	}
	if *field != want {
		return fmt.Errorf("%w: %s %q does not match the aggregate's %q", ErrInvalidEnvelope, name, *field, want)
	}
	return nil
}

// lastHash returns the hash of the aggregate's event at sequence expected
// when that is its last event. When the last event is another one the
// append will conflict anyway, and "" is as good as any; a failed lookup
// is an error, so that no event is stored with a wrong prev_hash.
func (s *Store) lastHash(ctx context.Context, agg Aggregate, expected uint64) (string, error) {
	m, err := s.lastMsgOn(ctx, agg.Stream(), agg.Filter())
	if err != nil {
		return "", fmt.Errorf("previous hash of %s: %w", agg.Filter(), err)
	}
	if m == nil || m.Sequence != expected {
		return "", nil
	}
	env, err := DecodeEnvelope(m.Data)
	if err != nil {
		return "", fmt.Errorf("previous hash of %s: %w", agg.Filter(), err)
	}
	return env.Hash, nil
}

// lastMsgOn is the last message of stream matching filter (nil when none).
func (s *Store) lastMsgOn(ctx context.Context, stream, filter string) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var m *jetstream.RawStreamMsg
	err := retryTransient(ctx, 50*time.Millisecond, func() error {
		return s.bounded(ctx, func(ctx context.Context) error {
			var err error
			m, err = s.streams[stream].GetLastMsgForSubject(ctx, filter)
			return err
		})
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return m, err
}

// SubjectAt is the subject of the message stored at seq in stream.
func (s *Store) SubjectAt(ctx context.Context, stream string, seq uint64) (string, error) {
	st, ok := s.streams[stream]
	if !ok {
		return "", fmt.Errorf("stream %s: %w", stream, jetstream.ErrStreamNotFound)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return "", fmt.Errorf("%s sequence %d: %w", stream, seq, err)
	}
	return m.Subject, nil
}

// findStored looks for events' ids in agg's history after seq. When all
// are there, in order, it reports their original position as a duplicate
// (a retry after the duplicate window, or after a lost acknowledgement);
// otherwise the append conflicted.
func (s *Store) findStored(ctx context.Context, agg Aggregate, after uint64, events []Envelope, dupReported bool) (AppendResult, error) {
	stored, err := s.Load(ctx, agg, after)
	if err != nil {
		return AppendResult{}, err
	}
	idx := -1
	for i := range stored {
		if stored[i].ID == events[0].ID {
			idx = i
			break
		}
	}
	if idx >= 0 && len(stored)-idx >= len(events) {
		match := true
		for j := range events {
			if stored[idx+j].ID != events[j].ID {
				match = false
				break
			}
		}
		if match {
			return AppendResult{
				FirstSeq:  stored[idx].Sequence,
				LastSeq:   stored[idx+len(events)-1].Sequence,
				Duplicate: true,
				LastHash:  stored[idx+len(events)-1].Hash,
			}, nil
		}
	}
	var last uint64
	if n := len(stored); n > 0 {
		last = stored[n-1].Sequence
	} else {
		last = after
	}
	if dupReported {
		return AppendResult{}, &ConcurrencyError{Aggregate: agg, Expected: after, Actual: last,
			Detail: "some of the events' ids are already stored"}
	}
	return AppendResult{}, &ConcurrencyError{Aggregate: agg, Expected: after, Actual: last}
}

// Load returns agg's events stored after stream sequence after (0 for the
// whole history), oldest first. No consumer is created: the events the
// store's sequence index knows are fetched by sequence, concurrently, and
// the tail the index has not seen yet is read with batched direct gets on
// the aggregate's subject filter.
//
// On a cluster a direct get may be answered by a replica a moment behind a
// write the stream has acknowledged, so Load first asks the stream's
// leader for the aggregate's last sequence and reads until it has that.
func (s *Store) Load(ctx context.Context, agg Aggregate, after uint64) ([]Event, error) {
	evs, _, err := s.LoadPage(ctx, agg, after, 0)
	return evs, err
}

// LoadPage is Load of at most limit events (all when limit is 0): the
// first ones after stream sequence after, and whether more follow. A page
// of an aggregate the index knows reads only the page's events, however
// long the history.
func (s *Store) LoadPage(ctx context.Context, agg Aggregate, after uint64, limit int) ([]Event, bool, error) {
	if err := agg.Validate(); err != nil {
		return nil, false, err
	}
	if limit < 0 {
		return nil, false, fmt.Errorf("load %s: limit %d", agg.Filter(), limit)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if s.cfg.Replicas <= 1 {
		return s.load(ctx, agg, after, limit)
	}
	floor, err := s.leaderLast(ctx, agg.Stream(), agg.Filter())
	if err != nil {
		return nil, false, err
	}
	for {
		evs, more, err := s.load(ctx, agg, after, limit)
		if err != nil || more || floor <= after || (len(evs) > 0 && evs[len(evs)-1].Sequence >= floor) {
			return evs, more, err
		}
		select { // a replica behind the leader answered: ask again
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return nil, false, fmt.Errorf("load %s: the replicas that answered are behind sequence %d: %w", agg.Filter(), floor, ctx.Err())
		}
	}
}

// leaderLast is the sequence of the last message of stream matching
// filter (0 when none), as the stream's leader has it: JetStream's
// message-get API (not the direct get, which any replica answers). nats.go
// sends that API request only for streams without direct gets, so it is
// made here.
func (s *Store) leaderLast(ctx context.Context, stream, filter string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastFor  string `json:"last_by_subj"`
		NoHeader bool   `json:"no_hdr"`
	}{filter, true})
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	err = s.attempts(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		m, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
		if err != nil {
			return err
		}
		resp.Message, resp.Error = nil, nil
		return json.Unmarshal(m.Data, &resp)
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("last sequence of %s from the leader: %w", filter, err)
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("last sequence of %s from the leader: %w", filter, resp.Error)
	case resp.Message == nil:
		return 0, fmt.Errorf("last sequence of %s from the leader: an empty answer", filter)
	}
	return resp.Message.Seq, nil
}

// load is LoadPage without the leader's check.
func (s *Store) load(ctx context.Context, agg Aggregate, after uint64, limit int) ([]Event, bool, error) {
	page := func(evs []Event) ([]Event, bool, error) {
		if limit > 0 && len(evs) > limit {
			return evs[:limit], true, nil
		}
		return evs, false, nil
	}
	stream := agg.Stream()
	idx := s.indexes[stream]
	if idx == nil {
		evs, err := s.LoadFilter(ctx, stream, agg.Filter(), after)
		if err != nil {
			return nil, false, err
		}
		return page(evs)
	}
	if err := idx.wait(ctx, stream); err != nil {
		return nil, false, fmt.Errorf("load %s: %w", agg.Filter(), err)
	}
	seqs, applied := idx.lookup(agg.prefix(), after)
	if limit == 0 && dense(seqs) {
		// A long history stored close together (a tenant's status
		// library, say): a batched direct get by the aggregate's filter
		// from its first event reads it a few hundred events a request,
		// where a direct get per event took a request each.
		evs, err := s.loadCovering(ctx, stream, agg.Filter(), seqs[0]-1, seqs)
		if err != nil {
			return nil, false, err
		}
		return page(evs)
	}
	more := limit > 0 && len(seqs) > limit
	if more {
		seqs = seqs[:limit]
	}
	evs, complete, err := s.fetchSeqs(ctx, stream, seqs)
	if err != nil {
		return nil, false, err
	}
	if !complete {
		// A replica that has not caught up answered, or the server could
		// not read a message: read by filter instead.
		evs, err := s.loadCovering(ctx, stream, agg.Filter(), after, seqs)
		if err != nil {
			return nil, false, err
		}
		return page(evs)
	}
	if more {
		return evs, true, nil
	}
	tail, err := s.LoadFilter(ctx, stream, agg.Filter(), max(after, applied))
	if err != nil {
		return nil, false, err
	}
	return page(append(evs, tail...))
}

// loadCovering is LoadFilter insisting on each of seqs, the sequences of
// the aggregate's events that the load index has seen stored after after
// (ascending). A server that failed to read some of them answers without
// them, as does a replica behind the stream; such a read is tried again
// while ctx (or the store's timeout) lasts, then fails with
// ErrIncompleteRead. Before, an order whose events the server could not
// read (it had run out of open files) loaded as no order at all, and its
// triggers were put aside as for an unknown order.
func (s *Store) loadCovering(ctx context.Context, stream, filter string, after uint64, seqs []uint64) ([]Event, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var evs []Event
	err := retryTransient(ctx, 50*time.Millisecond, func() error {
		var err error
		if evs, err = s.LoadFilter(ctx, stream, filter, after); err != nil {
			return err
		}
		if seq, ok := missingFrom(seqs, evs); ok {
			return fmt.Errorf("load %s: %w: %s sequence %d, stored, was not among the events read", filter, ErrIncompleteRead, stream, seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return evs, nil
}

// missingFrom returns the first of seqs that no event of evs has as its
// Sequence (both ascending), and false when each is there.
func missingFrom(seqs []uint64, evs []Event) (uint64, bool) {
	i := 0
	for _, seq := range seqs {
		for i < len(evs) && evs[i].Sequence < seq {
			i++
		}
		if i == len(evs) || evs[i].Sequence != seq {
			return seq, true
		}
	}
	return 0, false
}

// dense reports whether an aggregate's events (their stream sequences)
// are many and stored close together: at least denseMin of them, at
// least one in denseSpread of the stream's messages from its first to its
// last. Such a history is read by filter (see load); a short one, or one
// spread thin among other aggregates' events (an order among other
// orders), one direct get per event.
func dense(seqs []uint64) bool {
	n := uint64(len(seqs))
	return n >= denseMin && seqs[n-1]-seqs[0] < denseSpread*n
}

const (
	denseMin    = 64
	denseSpread = 4
)

// fetchParallel bounds the direct gets one Load has in flight.
const fetchParallel = 16

// fetchSeqs reads the given sequences of stream with direct gets. complete
// is false when a server did not have one of them.
func (s *Store) fetchSeqs(ctx context.Context, stream string, seqs []uint64) ([]Event, bool, error) {
	if len(seqs) == 0 {
		return nil, true, nil
	}
	st := s.streams[stream]
	out := make([]Event, len(seqs))
	errs := make([]error, len(seqs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, fetchParallel)
	for i, seq := range seqs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			select {
			case s.gets <- struct{}{}:
				defer func() { <-s.gets }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			var m *jetstream.RawStreamMsg
			err := s.bounded(ctx, func(ctx context.Context) (err error) {
				m, err = st.GetMsg(ctx, seq)
				return err
			})
			if err != nil {
				errs[i] = err
				return
			}
			out[i], errs[i] = decodeStored(stream, m.Subject, m.Sequence, m.Time, m.Data, true)
		})
	}
	wg.Wait()
	for _, err := range errs {
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// Out of time: fail. Reading by filter instead would ask far
			// more of a server that is already slow to answer.
			return nil, false, fmt.Errorf("load from %s: %w", stream, ctx.Err())
		case errors.Is(err, jetstream.ErrMsgNotFound) || transient(err):
			// A replica behind the stream, or none answering yet: read
			// by filter, which retries.
			return nil, false, nil
		default:
			return nil, false, fmt.Errorf("load from %s: %w", stream, err)
		}
	}
	return out, true, nil
}

// LoadFilter returns the events of stream that match filter, after stream
// sequence after, oldest first.
func (s *Store) LoadFilter(ctx context.Context, stream, filter string, after uint64) ([]Event, error) {
	var out []Event
	err := s.readFilter(ctx, stream, filter, readFrom{seq: after + 1}, func(m *jetstream.RawStreamMsg) error {
		ev, err := decodeStored(stream, m.Subject, m.Sequence, m.Time, m.Data, true)
		out = append(out, ev)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filter, err)
	}
	return out, nil
}

// ScanMessagesOn gives fn, oldest first, the messages stored on subject in
// stream (which allows direct gets) at or after the time since, until fn
// answers false or an error (which it returns). The server starts the
// read where since falls, so older messages are not read at all, and
// each page holds at most scanPageBytes (and at least one message): a
// look-up among the dead letters of one order's trigger key costs what
// was stored on it since, not all it ever held.
func (s *Store) ScanMessagesOn(ctx context.Context, stream, subject string, since time.Time, fn func(*jetstream.RawStreamMsg) (bool, error)) error {
	err := s.readFilter(ctx, stream, subject, readFrom{seq: 1, since: since, maxBytes: scanPageBytes}, func(m *jetstream.RawStreamMsg) error {
		more, err := fn(m)
		if err == nil && !more {
			return errScanDone
		}
		return err
	})
	if err != nil && !errors.Is(err, errScanDone) {
		return fmt.Errorf("%s on %s: %w", stream, subject, err)
	}
	return nil
}

// scanPageBytes bounds a page of ScanMessagesOn.
const scanPageBytes = 256 << 10

// ScanMessages gives fn, oldest first, the messages of stream (which
// allows direct gets) that match filter ("" for every one) after sequence
// after, read in batched direct gets rather than a request a message,
// until fn answers false or an error (which ScanMessages returns).
func (s *Store) ScanMessages(ctx context.Context, stream, filter string, after uint64, fn func(*jetstream.RawStreamMsg) (bool, error)) error {
	err := s.readFilter(ctx, stream, filter, readFrom{seq: after + 1, maxBytes: readPullBytes}, func(m *jetstream.RawStreamMsg) error {
		more, err := fn(m)
		if err == nil && !more {
			return errScanDone
		}
		return err
	})
	if errors.Is(err, errScanDone) {
		return nil
	}
	return err
}

// errScanDone ends a ScanMessages whose fn has seen enough.
var errScanDone = errors.New("scan done")

// readFrom is where a read by filter starts, and how large its pages are.
type readFrom struct {
	seq      uint64    // the first sequence to read
	since    time.Time // when set, the first page starts at the first message stored at or after it instead
	maxBytes int       // when set, bounds a page's bytes (the server's own bound is its max pending, 64 MB)
}

// readFilter gives fn, oldest first, every message of stream that matches
// filter from where from says: batched direct gets of a page (rawPage) at
// a time, each tried again while it fails for a moment (a stream just
// created on a cluster has no direct-get responders for a moment). fn
// sees a page only once it is whole.
//
// Without a deadline in ctx, each page has the store's Timeout, not the
// read as a whole: a read of many pages (orderflow deadletters --order,
// which looks through every dead letter of a store that holds 2 GB of
// them) took longer than 5 s, and failed though the server answered
// every page at once.
func (s *Store) readFilter(ctx context.Context, stream, filter string, from readFrom, fn func(*jetstream.RawStreamMsg) error) error {
	for {
		var page []*jetstream.RawStreamMsg
		var more bool
		pctx, cancel := s.withTimeout(ctx)
		err := retryTransient(pctx, 50*time.Millisecond, func() error {
			return s.bounded(pctx, func(ctx context.Context) (err error) {
				page, more, err = s.rawPage(ctx, stream, filter, from)
				return err
			})
		})
		cancel()
		if err != nil {
			return err
		}
		for _, m := range page {
			if err := fn(m); err != nil {
				return err
			}
		}
		if !more || len(page) == 0 {
			return nil
		}
		from.seq, from.since = page[len(page)-1].Sequence+1, time.Time{}
	}
}

// numPendingHeader is set on each message of a batched direct get: how
// many messages matching the batch's filter follow it (ADR-31).
const numPendingHeader = "Nats-Num-Pending"

// rawPage is one batched direct get of up to LoadBatch messages matching
// filter from where from says; more reports that the server has more of
// them after the page.
//
// The batch's iterator ends without an error when ctx does (natsext's
// RequestMany treats a deadline as the end of the answers), so a batch
// cut short by a slow server would pass for the end of the aggregate's
// history: an order with events would load as no order at all. A page is
// therefore taken as complete only if ctx is still live after it, and
// the server's count of matching messages after the page's last one
// (Nats-Num-Pending) says whether to read on.
func (s *Store) rawPage(ctx context.Context, stream, filter string, from readFrom) (page []*jetstream.RawStreamMsg, more bool, err error) {
	opts := []jetstreamext.GetBatchOpt{jetstreamext.GetBatchSeq(from.seq), jetstreamext.GetBatchSubject(filter)}
	if !from.since.IsZero() {
		opts[0] = jetstreamext.GetBatchStartTime(from.since)
	}
	if from.maxBytes > 0 {
		opts = append(opts, jetstreamext.GetBatchMaxBytes(from.maxBytes))
	}
	msgs, err := jetstreamext.GetBatch(ctx, s.js, stream, s.cfg.LoadBatch, opts...)
	if err != nil {
		return nil, false, err
	}
	pending := ""
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		page = append(page, m)
		pending = m.Header.Get(numPendingHeader)
	}
	if err := ctx.Err(); err != nil {
		if st := s.nc.Status(); st != nats.CONNECTED {
			return nil, false, fmt.Errorf("no answer while the NATS connection is %s: %w", st, err)
		}
		if len(page) == 0 {
			return nil, false, fmt.Errorf("the server did not answer in time: %w", err)
		}
		return nil, false, fmt.Errorf("the server's answer was cut short: %w", err)
	}
	return page, len(page) == s.cfg.LoadBatch || (pending != "" && pending != "0"), nil
}

// decodeStored decodes a message received from NATS; the event's Data
// shares the message's bytes (checked to be valid JSON with checkData).
func decodeStored(stream, subject string, seq uint64, stored time.Time, data []byte, checkData bool) (Event, error) {
	env, err := decodeEnvelope(data, true, checkData)
	if err != nil {
		// Not ErrInvalidEnvelope: that is a caller's envelope refused.
		return Event{}, fmt.Errorf("%w: %s sequence %d (%s): %v", ErrUnreadableEvent, stream, seq, subject, err)
	}
	return Event{Envelope: env, Stream: stream, Sequence: seq, Subject: subject, StoredAt: stored}, nil
}

// LastSequence is the stream's last sequence (0 when empty).
func (s *Store) LastSequence(ctx context.Context, stream string) (uint64, error) {
	st, err := s.StreamStats(ctx, stream)
	return st.LastSeq, err
}

// StreamStats is what a stream holds.
type StreamStats struct {
	LastSeq  uint64    // the last sequence (0 when empty)
	Messages uint64    // messages stored
	Bytes    uint64    // bytes stored, with the server's per-message overhead
	Created  time.Time // when the stream was made: another time is another stream of the name
}

// StreamStats asks the server what a stream holds.
func (s *Store) StreamStats(ctx context.Context, stream string) (StreamStats, error) {
	info, err := s.streamInfo(ctx, stream)
	if err != nil {
		return StreamStats{}, err
	}
	return StreamStats{LastSeq: info.State.LastSeq, Messages: info.State.Msgs, Bytes: info.State.Bytes, Created: info.Created}, nil
}

// StreamCreated is when the stream the store opened was made (zero when
// it has none of the name), as it stood then.
func (s *Store) StreamCreated(stream string) time.Time {
	if st, ok := s.streams[stream]; ok {
		return st.CachedInfo().Created
	}
	return time.Time{}
}

// Storage is how many bytes of file storage the account's streams use on
// the server it is connected to, and the account's limit (-1: none set).
func (s *Store) Storage(ctx context.Context) (used uint64, limit int64, err error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	info, err := s.js.AccountInfo(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("account info: %w", err)
	}
	return info.Store, info.Limits.MaxStore, nil
}

// streamInfo asks the server for a stream's configuration and state.
func (s *Store) streamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, stream) // asks for the stream's info
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return st.CachedInfo(), nil
}

// Attach opens a store on streams that already exist, without creating or
// changing anything and without background consumers: for auditors' and
// operators' commands (verify, export, replay) that must not touch live
// state. Streams that do not exist are left out.
func Attach(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventstore config: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.checkConn(nc); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s := &Store{cfg: cfg, nc: nc, js: js, streams: map[string]jetstream.Stream{}, indexes: map[string]*seqIndex{},
		batches: make(chan struct{}, maxBatchesInFlight), gets: make(chan struct{}, maxGetsInFlight)}
	for _, name := range []string{StreamDefinitions, StreamOrders, StreamTriggers, StreamDeadLetter} {
		cctx, cancel := s.withTimeout(ctx)
		st, err := js.Stream(cctx, name)
		cancel()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		s.streams[name] = st
	}
	return s, nil
}

// HasStream reports whether the store has the stream.
func (s *Store) HasStream(name string) bool {
	if s.streams == nil {
		return false
	}
	_, ok := s.streams[name]
	return ok
}
