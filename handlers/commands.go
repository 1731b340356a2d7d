package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// ErrPreconditionFailed: the caller's If-Match version is not the
// aggregate's current version. Nothing was appended.
var ErrPreconditionFailed = errors.New("precondition failed: the resource has changed")

// Meta is who asks for a command and under which conditions.
type Meta struct {
	Actor         eventstore.Actor
	CorrelationID string
	CausationID   string
	// RequestKey is the request's Idempotency-Key, when it carried one:
	// the causation id of the events an order command records, by which
	// a resend of the request finds them (see requestKeyed).
	RequestKey string
	// IfMatch, when set, is the version the caller saw; a different
	// current version fails with ErrPreconditionFailed, and so does a
	// concurrent write (no silent retry on the caller's behalf).
	IfMatch *uint64
}

// Commands runs definition commands: load the aggregate, let the domain
// decide, append the new events with optimistic concurrency, and wait until
// the read model shows them (read-your-writes).
type Commands struct {
	Store  *eventstore.Store
	Defs   *projections.Definitions
	Tenant string
	// Now is the clock; events get their occurred_at from it.
	Now func() time.Time
	// MaxAttempts bounds the reload-and-retry loop on concurrency
	// conflicts. Default 5.
	MaxAttempts int
	// ReadTimeout bounds the wait for the read model after a write.
	// Default 5 s.
	ReadTimeout time.Duration

	// Log is where a command reports what went wrong beside its answer
	// (nil: slog.Default()).
	Log *slog.Logger

	// OrderCacheSize is how many orders to keep in memory as they stand,
	// the most recently used (0: DefaultOrderCacheSize; negative: none).
	// Commands made by ForTenant share their parent's.
	OrderCacheSize int

	orders          *aggregateCache
	ordersOnce      sync.Once
	definitions     *aggregateCache
	definitionsOnce sync.Once
}

// DefaultOrderCacheSize is how many orders Commands keeps in
// memory unless told otherwise.
const DefaultOrderCacheSize = 100_000

// OrderCacheStats is how the orders' cache (shared by every tenant's
// Commands) has served order commands and triggers: a load is an order's
// history read from the store, which costs far more when the server no
// longer holds the blocks of the stream it needs (docs/benchmarks.md).
func (c *Commands) OrderCacheStats() CacheStats { return c.orderCache().stats() }

func (c *Commands) orderCache() *aggregateCache {
	c.ordersOnce.Do(func() {
		size := c.OrderCacheSize
		if size == 0 {
			size = DefaultOrderCacheSize
		}
		c.orders = newAggregateCache(max(0, size)) // 0 holds none, and still counts
	})
	return c.orders
}

func (c *Commands) view() *projections.TenantView { return c.Defs.Tenant(c.Tenant) }

func (c *Commands) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// execute runs a definition command: the read model is brought up to date
// before deciding, and shows the result before execute returns. The
// aggregate stays in the definitions' cache for the next command (a
// status library is one aggregate per tenant, which every status change
// would otherwise read whole from the store), so the command answers with
// what answer reads of it as the command leaves it.
func execute[T any](c *Commands, ctx context.Context, addr eventstore.Aggregate, fresh func() domain.Aggregate, meta Meta,
	decide func(domain.Aggregate) error, answer func(domain.Aggregate) T) (T, error) {
	var res T
	err := c.run(ctx, addr, fresh, meta, runOpts{scoped: true, waitDefs: true, cache: c.definitionCache(),
		seen: func(e *cacheEntry) { res = answer(e.agg) }}, decide)
	return res, err
}

// definitionCacheSize is how many definitions (libraries, workflows,
// order types, of every tenant) Commands keeps in memory as they stand.
const definitionCacheSize = 10_000

func (c *Commands) definitionCache() *aggregateCache {
	c.definitionsOnce.Do(func() { c.definitions = newAggregateCache(definitionCacheSize) })
	return c.definitions
}

type runOpts struct {
	// scoped: the concurrency check covers every definition of the tenant
	// (orderflow.<t>.def.>), and the read model is brought up to that scope's
	// last event first, so cross-aggregate rules hold under concurrency.
	scoped   bool
	syncDefs bool            // bring the definitions read model to the stream's end first
	waitDefs bool            // wait until the definitions read model shows the append
	cache    *aggregateCache // decide from the cached aggregate when it is there
	// settled, when set, says an aggregate will hardly change again (a
	// completed order): it is kept in the cache only while there is room
	// (see aggregateCache).
	settled func(domain.Aggregate) bool
	// seen, when set, is shown the aggregate as a successful command
	// leaves it (its last event's sequence and its times with it), while
	// the command still holds it.
	seen func(*cacheEntry)
	// key, when set, is the request's Idempotency-Key. When the aggregate
	// already has an event the key caused (the request is a resend),
	// replay is asked instead of decide, with that event: nil answers the
	// aggregate as it stands and records nothing, an error refuses.
	key    string
	replay func(recorded domain.Event) error
}

// keeps reports whether e belongs in the cache: an aggregate that exists;
// and spare, whether only while there is room.
func (o runOpts) keeps(e *cacheEntry) (keep, spare bool) {
	keep = o.cache != nil && e.lastSeq != eventstore.ExpectNew
	return keep, keep && o.settled != nil && o.settled(e.agg)
}

// run is the one command loop: load → decide → append, retried on a
// concurrency conflict unless the caller pinned a version with If-Match.
func (c *Commands) run(ctx context.Context, addr eventstore.Aggregate, fresh func() domain.Aggregate, meta Meta, opts runOpts, decide func(domain.Aggregate) error) error {
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	if err := addr.Validate(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, addr, fresh, meta, opts, attempt == 1, decide)
		if errors.Is(err, eventstore.ErrConcurrency) && attempt < attempts {
			// Reload and decide again; with If-Match, the check before
			// deciding answers 412 if this aggregate's version moved.
			continue
		}
		return err
	}
}

// attempt is one pass of run. cached: the aggregate may come from the
// cache (a retry after a conflict reads the store).
func (c *Commands) attempt(ctx context.Context, addr eventstore.Aggregate, fresh func() domain.Aggregate, meta Meta, opts runOpts, cached bool, decide func(domain.Aggregate) error) (err error) {
	// Cross-aggregate rules read the definitions read model: bring it up
	// to the stream's end first so they see every earlier write.
	var scope string
	var scopeSeq uint64
	if opts.scoped {
		scope = eventstore.DefinitionsFilter(c.Tenant)
		if scopeSeq, err = c.Store.LastSequenceOn(ctx, eventstore.StreamDefinitions, scope); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, c.readTimeout())
		err = c.Defs.WaitFor(rctx, scopeSeq)
		cancel()
		if err != nil {
			return err
		}
	} else if opts.syncDefs {
		if err := c.syncReadModel(ctx); err != nil {
			return err
		}
	}
	e, held, err := c.hold(ctx, addr, fresh, opts.cache, cached)
	if err != nil {
		return err
	}
	// However this attempt ends (a panic too), the entry is let go of: kept
	// when it stands for what the store holds, dropped otherwise.
	keep := false
	defer func() { opts.letGo(e, held, keep) }()
	agg := e.agg
	caughtUp := false
	if held && opts.scoped {
		// A scoped append checks the tenant's definitions as a whole, not
		// this aggregate's last event, so it would not notice a cached
		// aggregate that another process has changed since: take in what
		// was stored after it first (the store's index makes that a read
		// of the new events only).
		if err := c.catchUp(ctx, addr, e); err != nil {
			return err
		}
		caughtUp = true
	}
	if opts.key != "" {
		if held && !caughtUp {
			// A cached aggregate may not have seen what another process
			// stored, for the key or after it: look before deciding, and
			// before answering a resend with the aggregate as it stands.
			if err := c.catchUp(ctx, addr, e); err != nil {
				return err
			}
			caughtUp = true
		}
		// Before If-Match: a resend carries the version its first
		// attempt saw, which that attempt moved on.
		if recorded, found := e.keys[opts.key]; found {
			keep = true
			if err := opts.replay(recorded); err != nil {
				return err
			}
			opts.succeeded(e)
			return nil
		}
	}
	if meta.IfMatch != nil && *meta.IfMatch != agg.Version() {
		// The caller may have read a version another process stored
		// since this one cached the aggregate: look before refusing.
		if held && !caughtUp {
			if err := c.catchUp(ctx, addr, e); err != nil {
				return err
			}
		}
		if *meta.IfMatch != agg.Version() {
			keep = true
			return fmt.Errorf("%w: version is %d, not %d", ErrPreconditionFailed, agg.Version(), *meta.IfMatch)
		}
	}
	if err := decide(agg); err != nil {
		// Refused before recording anything: the aggregate is as it was,
		// unless what it lacked was a definition (read it again then).
		keep = len(agg.Changes()) == 0 && !errors.Is(err, domain.ErrDefinitionMissing)
		return err
	}
	changes := agg.Changes()
	if len(changes) == 0 {
		keep = true
		opts.succeeded(e)
		return nil
	}
	envs, err := c.envelopes(agg.BaseVersion(), changes, meta)
	if err != nil {
		return err
	}
	envs[0].PrevHash = e.lastHash
	var res eventstore.AppendResult
	if opts.scoped {
		res, err = c.Store.AppendScoped(ctx, addr, scope, scopeSeq, envs...)
	} else {
		res, err = c.Store.Append(ctx, addr, e.lastSeq, envs...)
	}
	if err != nil {
		return err
	}
	agg.ClearChanges()
	e.lastSeq, e.lastHash = res.LastSeq, res.LastHash
	for i, env := range envs {
		e.times.add(env.Type, env.OccurredAt)
		e.noteKey(changes[i], env.CausationID)
	}
	// A duplicate append (these event ids were stored before) says
	// nothing of what the store holds after them.
	keep = !res.Duplicate
	if opts.waitDefs {
		rctx, cancel := context.WithTimeout(ctx, c.readTimeout())
		err = c.Defs.WaitFor(rctx, res.LastSeq)
		cancel()
		if err != nil {
			return fmt.Errorf("written at sequence %d, but the read model did not catch up: %w", res.LastSeq, err)
		}
	}
	opts.succeeded(e)
	return nil
}

// hold gets addr's aggregate for the caller alone: from cache when
// cached and it is there (held: waiting while another holds it), else read
// from the store into fresh. Let go of it with runOpts.letGo.
func (c *Commands) hold(ctx context.Context, addr eventstore.Aggregate, fresh func() domain.Aggregate, cache *aggregateCache, cached bool) (e *cacheEntry, held bool, err error) {
	if cached {
		if e, err = cache.acquire(ctx, addr.Filter()); err != nil {
			return nil, false, err
		}
	}
	if e != nil {
		cache.hit()
		return e, true, nil
	}
	start := time.Now()
	e, err = c.load(ctx, addr, fresh())
	cache.loaded(time.Since(start))
	return e, false, err
}

// letGo ends a hold: the entry stays in (or goes into) the cache when
// keep says it stands for what the store holds and it belongs there, and
// is dropped otherwise.
func (o runOpts) letGo(e *cacheEntry, held, keep bool) {
	belongs, spare := o.keeps(e)
	keep = keep && belongs
	if held {
		o.cache.release(e, keep, spare)
	} else if keep {
		o.cache.add(e, spare)
	}
}

// succeeded shows seen the aggregate as a successful command leaves it.
func (o runOpts) succeeded(e *cacheEntry) {
	if o.seen != nil {
		o.seen(e)
	}
}

func (c *Commands) readTimeout() time.Duration {
	if c.ReadTimeout > 0 {
		return c.ReadTimeout
	}
	return 5 * time.Second
}

func (c *Commands) syncReadModel(ctx context.Context) error {
	last, err := c.Store.LastSequence(ctx, eventstore.StreamDefinitions)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, c.readTimeout())
	defer cancel()
	return c.Defs.WaitFor(rctx, last)
}

// load folds an aggregate's history into agg: an entry as of its last
// event (at eventstore.ExpectNew when it has none).
func (c *Commands) load(ctx context.Context, addr eventstore.Aggregate, agg domain.Aggregate) (*cacheEntry, error) {
	e := &cacheEntry{key: addr.Filter(), agg: agg, lastSeq: eventstore.ExpectNew}
	if err := c.catchUp(ctx, addr, e); err != nil {
		return nil, err
	}
	return e, nil
}

// catchUp folds into e the aggregate's events stored after e's last. On
// an error, e is part way and must be dropped.
func (c *Commands) catchUp(ctx context.Context, addr eventstore.Aggregate, e *cacheEntry) error {
	events, err := c.Store.Load(ctx, addr, e.lastSeq)
	if err != nil {
		return err
	}
	return fold(addr, e, events)
}

// fold applies to e the aggregate's events stored after e's last. On an
// error, e is part way and must be dropped.
func fold(addr eventstore.Aggregate, e *cacheEntry, events []eventstore.Event) error {
	for _, ev := range events {
		d, err := domain.DecodeEvent(ev.Type, ev.Data)
		if err != nil {
			return fmt.Errorf("%s sequence %d: %w", addr.Filter(), ev.Sequence, err)
		}
		if err := e.agg.Apply(d); err != nil {
			return err
		}
		e.lastSeq, e.lastHash = ev.Sequence, ev.Hash
		e.times.add(ev.Type, ev.OccurredAt)
		e.noteKey(d, ev.CausationID)
	}
	return nil
}

func (c *Commands) envelopes(base uint64, changes []domain.Event, meta Meta) ([]eventstore.Envelope, error) {
	now := c.now()
	corr := meta.CorrelationID
	if corr == "" {
		corr = uuid.NewString()
	}
	out := make([]eventstore.Envelope, len(changes))
	for i, e := range changes {
		data, err := json.Marshal(e)
		if err != nil {
			// A value no JSON can hold: no retry cures it, so it is refused
			// as a caller's envelope is (a trigger's is put aside).
			return nil, fmt.Errorf("encode %s: %w: %w", e.EventType(), eventstore.ErrInvalidEnvelope, err)
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		out[i] = eventstore.Envelope{
			ID:            id.String(),
			Type:          e.EventType(),
			Version:       base + uint64(i) + 1,
			OccurredAt:    now,
			Actor:         meta.Actor,
			CorrelationID: corr,
			CausationID:   cmp.Or(meta.CausationID, meta.RequestKey),
			Data:          data,
		}
	}
	return out, nil
}

func (c *Commands) addr(aggType, id string) eventstore.Aggregate {
	return eventstore.Aggregate{Tenant: c.Tenant, Type: aggType, ID: id}
}

func (c *Commands) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// ForTenant is a copy of c acting for another tenant.
func (c *Commands) ForTenant(tenant string) *Commands {
	if tenant == c.Tenant {
		return c
	}
	cp := &Commands{Store: c.Store, Defs: c.Defs, Tenant: tenant, Now: c.Now, Log: c.Log,
		MaxAttempts: c.MaxAttempts, ReadTimeout: c.ReadTimeout, orders: c.orderCache(), definitions: c.definitionCache()}
	cp.ordersOnce.Do(func() {})
	cp.definitionsOnce.Do(func() {})
	return cp
}
