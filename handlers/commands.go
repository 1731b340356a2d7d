package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	// OrderCacheSize is how many orders' histories to keep in memory,
	// the most recently used (0: DefaultOrderCacheSize; negative: none).
	// Commands made by ForTenant share their parent's.
	OrderCacheSize int

	orders     *aggregateCache
	ordersOnce sync.Once
}

// DefaultOrderCacheSize is how many orders' histories Commands keeps in
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

// Outcome is a command's result: the aggregate as it stands after the
// command, and the stream position of the command's last event (0 when the
// command changed nothing).
type Outcome struct {
	Aggregate domain.Aggregate
	Sequence  uint64
}

// execute runs a definition command: the read model is brought up to date
// before deciding, and shows the result before execute returns.
func (c *Commands) execute(ctx context.Context, addr eventstore.Aggregate, fresh func() domain.Aggregate, meta Meta, decide func(domain.Aggregate) error) (Outcome, error) {
	return c.run(ctx, addr, fresh, meta, runOpts{scoped: true, waitDefs: true}, decide)
}

type runOpts struct {
	// scoped: the concurrency check covers every definition of the tenant
	// (orderflow.<t>.def.>), and the read model is brought up to that scope's
	// last event first, so cross-aggregate rules hold under concurrency.
	scoped   bool
	syncDefs bool            // bring the definitions read model to the stream's end first
	waitDefs bool            // wait until the definitions read model shows the append
	cache    *aggregateCache // decide from cached events when the aggregate is there
	// settled, when set, says an aggregate will hardly change again (a
	// completed order): it is not kept in the cache.
	settled func(domain.Aggregate) bool
}

// cacheable reports whether agg belongs in the cache.
func (o runOpts) cacheable(agg domain.Aggregate) bool {
	return o.cache != nil && (o.settled == nil || !o.settled(agg))
}

// run is the one command loop: load → decide → append, retried on a
// concurrency conflict unless the caller pinned a version with If-Match.
func (c *Commands) run(ctx context.Context, addr eventstore.Aggregate, fresh func() domain.Aggregate, meta Meta, opts runOpts, decide func(domain.Aggregate) error) (Outcome, error) {
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	if err := addr.Validate(); err != nil {
		return Outcome{}, err
	}
	for attempt := 1; ; attempt++ {
		// Cross-aggregate rules read the definitions read model: bring it
		// up to the stream's end first so they see every earlier write.
		var scope string
		var scopeSeq uint64
		if opts.scoped {
			scope = eventstore.SubjectRoot + "." + c.Tenant + ".def.>"
			var err error
			if scopeSeq, err = c.Store.LastSequenceOn(ctx, eventstore.StreamDefinitions, scope); err != nil {
				return Outcome{}, err
			}
			rctx, cancel := context.WithTimeout(ctx, c.readTimeout())
			err = c.Defs.WaitFor(rctx, scopeSeq)
			cancel()
			if err != nil {
				return Outcome{}, err
			}
		} else if opts.syncDefs {
			if err := c.syncReadModel(ctx); err != nil {
				return Outcome{}, err
			}
		}
		key := addr.Filter()
		var agg domain.Aggregate
		var last uint64
		var lastHash string
		var history []domain.Event
		if cached, seq, hash, ok := opts.cache.get(key); ok && attempt == 1 {
			opts.cache.hit()
			agg, last, lastHash, history = fresh(), seq, hash, cached
			for _, e := range cached {
				if err := agg.Apply(e); err != nil {
					return Outcome{}, err
				}
			}
		} else {
			var err error
			start := time.Now()
			agg, last, lastHash, history, err = c.load(ctx, addr, fresh())
			opts.cache.loaded(time.Since(start))
			if err != nil {
				return Outcome{}, err
			}
			if len(history) > 0 && opts.cacheable(agg) {
				opts.cache.put(key, history, last, lastHash)
			}
		}
		if meta.IfMatch != nil && *meta.IfMatch != agg.Version() {
			return Outcome{}, fmt.Errorf("%w: version is %d, not %d", ErrPreconditionFailed, agg.Version(), *meta.IfMatch)
		}
		if err := decide(agg); err != nil {
			return Outcome{}, err
		}
		changes := agg.Changes()
		if len(changes) == 0 {
			return Outcome{Aggregate: agg}, nil
		}
		envs, err := c.envelopes(agg.BaseVersion(), changes, meta)
		if err != nil {
			return Outcome{}, err
		}
		envs[0].PrevHash = lastHash
		var res eventstore.AppendResult
		if opts.scoped {
			res, err = c.Store.AppendScoped(ctx, addr, scope, scopeSeq, envs...)
		} else {
			res, err = c.Store.Append(ctx, addr, last, envs...)
		}
		switch {
		case err != nil, !opts.cacheable(agg):
			opts.cache.drop(key)
		case !res.Duplicate:
			opts.cache.put(key, append(history, changes...), res.LastSeq, res.LastHash)
		}
		if errors.Is(err, eventstore.ErrConcurrency) && attempt < attempts {
			// Reload and decide again; with If-Match, the check at the top
			// of the loop answers 412 if this aggregate's version moved.
			continue
		}
		if err != nil {
			return Outcome{}, err
		}
		agg.ClearChanges()
		if opts.waitDefs {
			rctx, cancel := context.WithTimeout(ctx, c.readTimeout())
			err = c.Defs.WaitFor(rctx, res.LastSeq)
			cancel()
			if err != nil {
				return Outcome{}, fmt.Errorf("written at sequence %d, but the read model did not catch up: %w", res.LastSeq, err)
			}
		}
		return Outcome{Aggregate: agg, Sequence: res.LastSeq}, nil
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

// load folds an aggregate's history into agg and returns the stream
// sequence and hash of its last event (eventstore.ExpectNew and "" when it
// has none) and the decoded events.
func (c *Commands) load(ctx context.Context, addr eventstore.Aggregate, agg domain.Aggregate) (domain.Aggregate, uint64, string, []domain.Event, error) {
	events, err := c.Store.Load(ctx, addr, 0)
	if err != nil {
		return nil, 0, "", nil, err
	}
	last, lastHash := eventstore.ExpectNew, ""
	decoded := make([]domain.Event, 0, len(events))
	for _, ev := range events {
		e, err := domain.DecodeEvent(ev.Type, ev.Data)
		if err != nil {
			return nil, 0, "", nil, fmt.Errorf("%s sequence %d: %w", addr.Filter(), ev.Sequence, err)
		}
		if err := agg.Apply(e); err != nil {
			return nil, 0, "", nil, err
		}
		decoded = append(decoded, e)
		last, lastHash = ev.Sequence, ev.Hash
	}
	return agg, last, lastHash, decoded, nil
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
			return nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
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
			CausationID:   meta.CausationID,
			Data:          data,
		}
	}
	return out, nil
}

func (c *Commands) addr(aggType, id string) eventstore.Aggregate {
	return eventstore.Aggregate{Tenant: c.Tenant, Type: aggType, ID: id}
}

// ForTenant is a copy of c acting for another tenant.
func (c *Commands) ForTenant(tenant string) *Commands {
	if tenant == c.Tenant {
		return c
	}
	cp := &Commands{Store: c.Store, Defs: c.Defs, Tenant: tenant, Now: c.Now,
		MaxAttempts: c.MaxAttempts, ReadTimeout: c.ReadTimeout, orders: c.orderCache()}
	cp.ordersOnce.Do(func() {})
	return cp
}
