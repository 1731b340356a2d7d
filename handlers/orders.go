package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

func (c *Commands) orderAddr(id string) eventstore.Aggregate {
	return c.addr(domain.AggregateOrder, id)
}

func notFoundOrder(id string) error {
	return &domain.FieldError{Field: "order", Reason: "no order " + strconv.Quote(id), Kind: domain.ErrNotFound}
}

// OrderSnapshot is an order as a command left it or a read found it: its
// state, the times its JSON shows, and the stream sequence of its last
// event.
type OrderSnapshot struct {
	domain.OrderView
	PlacedAt  time.Time // its first event
	UpdatedAt time.Time // its last event
	EnteredAt time.Time // the event that put it in its current step
	Sequence  uint64    // the stream sequence of its last event
	// Replayed: the command was a resend of a request that had already
	// taken effect (its Idempotency-Key found), and recorded nothing.
	Replayed bool
}

func snapshotOf(e *cacheEntry) OrderSnapshot {
	return OrderSnapshot{OrderView: e.agg.(*domain.Order).View(),
		PlacedAt: e.times.first, UpdatedAt: e.times.last, EnteredAt: e.times.entered, Sequence: e.lastSeq}
}

// snapshotFrom is an order read whole, as LoadOrderAsOf returns it.
func snapshotFrom(o *domain.Order, events []eventstore.Event) OrderSnapshot {
	e := &cacheEntry{agg: o}
	for _, ev := range events {
		e.lastSeq = ev.Sequence
		e.times.add(ev.Type, ev.OccurredAt)
	}
	return snapshotOf(e)
}

// longHistory is how many events make an ended order worth keeping in
// memory as if it could still move: reading it again costs a read per
// event, and a worker app that keeps sending triggers for a completed
// order makes it longer each time.
const longHistory = 64

// newCachedOrder is an empty order aggregate for the orders' cache to load
// and keep, with a copy of id: a trigger's order id is cut out of its
// NATS message's subject, which the order would otherwise keep whole (as
// with the trigger ids and keys it records: see triggerMessage).
func newCachedOrder(id string, defs domain.Workflows) domain.Aggregate {
	return domain.NewOrder(strings.Clone(id), defs)
}

// orderRunOpts are the command loop's options for orders: decided from
// the orders' cache, which keeps the orders that can still move, and
// ended ones with a long history; other ended ones only while there is
// room (they go first when the cache is full).
func (c *Commands) orderRunOpts() runOpts {
	return runOpts{cache: c.orderCache(), settled: func(a domain.Aggregate) bool {
		o := a.(*domain.Order)
		return o.Finished() && o.Version() < longHistory
	}}
}

// order runs a command on an order. The definitions read model is synced
// first only when the order's decision found something missing in it (a
// workflow version or order type created a moment ago): the trigger path
// stays one load and one append.
func (c *Commands) order(ctx context.Context, id string, meta Meta, decide func(*domain.Order) error) (OrderSnapshot, error) {
	return c.orderKeyed(ctx, id, meta, "", nil, decide)
}

// orderKeyed is order for a command that records an event of type typ
// ("" for none in particular). With a request key, a resend of the
// request (the order has an event the key caused) decides nothing: if
// that event is of type typ and match (when given) finds it is what this
// request asks for, the answer is the order as it stands with Replayed
// set, else a conflict.
//
// A key names one order: the first request with it claims it for the
// order's id (eventstore.Claim, for eventstore.ClaimLifetime), and a
// request with the key for another order is a conflict that does
// nothing. A request refused for what it asks (an unknown order type,
// say) releases the claim it made, since it stored nothing.
func (c *Commands) orderKeyed(ctx context.Context, id string, meta Meta, typ string, match func(recorded domain.Event) error, decide func(*domain.Order) error) (OrderSnapshot, error) {
	addr := c.orderAddr(id)
	if err := addr.Validate(); err != nil {
		return OrderSnapshot{}, err
	}
	if meta.RequestKey == "" || typ == "" {
		return c.orderRun(ctx, addr, id, meta, typ, match, decide)
	}
	if ev, ok := c.view().CreatedBy(meta.RequestKey); ok {
		return OrderSnapshot{}, keyConflict(fmt.Sprintf("%q was the key of the request that recorded %s %q, not of a request for order %q: "+
			"send this one with a key of its own", meta.RequestKey, ev.EventType(), createdID(ev), id))
	}
	claim, err := c.Store.Claim(ctx, orderKeyScope+c.Tenant, meta.RequestKey, id)
	if err != nil {
		return OrderSnapshot{}, fmt.Errorf("%w: the Idempotency-Key's claim: %w", errUnavailable, err)
	}
	if claim.Value != id {
		return OrderSnapshot{}, keyConflict(fmt.Sprintf(
			"%q is the key of a request for order %q (a key names one order for %s), so this request for order %q does nothing: "+
				"send that request again as it was, or this one with a key of its own",
			meta.RequestKey, claim.Value, eventstore.ClaimLifetime, id))
	}
	snap, err := c.orderRun(ctx, addr, id, meta, typ, match, decide)
	if err != nil && claim.Made && storedNothing(err) {
		if rerr := c.Store.Release(context.WithoutCancel(ctx), claim); rerr != nil {
			c.log().Warn("an Idempotency-Key stays claimed for a request that did nothing", "key", meta.RequestKey, "order_id", id, "err", rerr)
		}
	}
	return snap, err
}

// orderRun is orderKeyed once the key, if any, is claimed.
func (c *Commands) orderRun(ctx context.Context, addr eventstore.Aggregate, id string, meta Meta, typ string, match func(recorded domain.Event) error, decide func(*domain.Order) error) (OrderSnapshot, error) {
	view := c.view()
	var snap OrderSnapshot
	replayed := false
	opts := c.orderRunOpts()
	opts.seen = func(e *cacheEntry) { snap = snapshotOf(e) }
	if meta.RequestKey != "" && typ != "" {
		opts.key = meta.RequestKey
		opts.replay = func(recorded domain.Event) error {
			if t := recorded.EventType(); t != typ {
				return keyConflict(fmt.Sprintf(
					"%q was the key of the request that recorded %s on order %q, not of a request for %s", meta.RequestKey, t, id, typ))
			}
			if match != nil {
				if err := match(recorded); err != nil {
					return err
				}
			}
			replayed = true
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		err := c.run(ctx, addr, func() domain.Aggregate { return newCachedOrder(id, view) }, meta, opts,
			func(a domain.Aggregate) error { return decide(a.(*domain.Order)) })
		if err != nil && attempt == 0 && (errors.Is(err, domain.ErrInvalid) || errors.Is(err, domain.ErrDefinitionMissing)) {
			opts.syncDefs = true // the read model may lag a definition just written
			continue
		}
		if err != nil {
			return OrderSnapshot{}, err
		}
		snap.Replayed = replayed
		return snap, nil
	}
}

// CurrentOrder is the order as the store holds it now. An order in the
// orders' cache costs one read of the events stored after it there
// (usually none), however long its history; another is read whole, and
// kept in the cache while it can still move.
func (c *Commands) CurrentOrder(ctx context.Context, id string) (OrderSnapshot, error) {
	addr := c.orderAddr(id)
	if err := addr.Validate(); err != nil {
		return OrderSnapshot{}, err
	}
	cache, key := c.orderCache(), addr.Filter()
	var snap OrderSnapshot
	var tail []eventstore.Event // read after snap.Sequence
	if cache.peek(key, func(e *cacheEntry) { snap = snapshotOf(e) }) {
		var err error
		if tail, err = c.Store.Load(ctx, addr, snap.Sequence); err != nil {
			return OrderSnapshot{}, err
		}
		if len(tail) == 0 {
			cache.hit()
			return snap, nil
		}
	}
	// Changed since it was cached, held by a command, or not cached: hold
	// it (waiting for a command that holds it) and bring it up to date:
	// with the tail just read when it is still where that read began,
	// else with what the store has after it.
	opts := c.orderRunOpts()
	e, held, err := c.hold(ctx, addr, func() domain.Aggregate { return newCachedOrder(id, c.view()) }, opts.cache, true)
	if err != nil {
		return OrderSnapshot{}, err
	}
	switch {
	case held && len(tail) > 0 && e.lastSeq == snap.Sequence:
		err = fold(addr, e, tail)
	case held:
		err = c.catchUp(ctx, addr, e)
	}
	if err == nil {
		snap = snapshotOf(e)
	}
	opts.letGo(e, held, err == nil)
	if err != nil {
		return OrderSnapshot{}, err
	}
	if snap.Version == 0 {
		return OrderSnapshot{}, notFoundOrder(id)
	}
	return snap, nil
}

// PlaceOrder places an order; an empty id gets a new UUIDv7. With a
// request key (meta.RequestKey, which OrderPlaced carries as its causation
// id), a resend finds the order placed: when the order type is the same
// and the fulfillment workflow asked for (if one is) among its workflows,
// it places nothing and answers the order, Replayed set; otherwise it is
// a conflict. An order of the id that another request placed (with
// another key, or none) is a conflict as without a key, and so is the key
// of a request for another order (see orderKeyed).
func (c *Commands) PlaceOrder(ctx context.Context, meta Meta, id, orderTypeID, fulfillment string) (OrderSnapshot, error) {
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	// The order's own rule first: the store's token check, which reads
	// take, allows ids twice as long and would name its own limit.
	if err := domain.CheckKey("id", id); err != nil {
		return OrderSnapshot{}, err
	}
	view := c.view()
	return c.orderKeyed(ctx, id, meta, domain.TypeOrderPlaced, func(recorded domain.Event) error {
		if p := recorded.(domain.OrderPlaced); p.OrderTypeID != orderTypeID || fulfillment != "" && !slices.Contains(p.Workflows, fulfillment) {
			return keyConflict(fmt.Sprintf(
				"%q placed order %q with order type %q and workflows %v, not as this request asks", meta.RequestKey, id, p.OrderTypeID, p.Workflows))
		}
		return nil
	}, func(o *domain.Order) error { return o.Place(orderTypeID, fulfillment, view, view) })
}

// orderKeyScope is the scope (followed by the tenant) of the claims of
// the Idempotency-Keys of order commands.
const orderKeyScope = "order-key:"

// storedNothing reports whether err, an order command's, refuses what it
// asks for: nothing was stored. An error that leaves the outcome open (a
// timeout, a store that did not answer) is not one.
func storedNothing(err error) bool {
	for _, kind := range []error{domain.ErrInvalid, domain.ErrNotFound, domain.ErrDuplicate, domain.ErrInUse,
		domain.ErrArchived, domain.ErrConflict, domain.ErrDefinitionMissing, ErrPreconditionFailed, eventstore.ErrInvalidToken,
		eventstore.ErrConcurrency} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// orderKeySpace is the UUID namespace of the order ids derived from
// Idempotency-Key headers.
var orderKeySpace = uuid.MustParse("5b0f3c2e-6a8d-4f51-9a47-0c2d7e9b1f63")

// OrderIDForKey is the id of the order that POST /v1/orders places for
// an Idempotency-Key when its body names no id: a UUIDv5 of the key, so
// every resend of the request names the same order.
func OrderIDForKey(key string) string {
	return uuid.NewSHA1(orderKeySpace, []byte(key)).String()
}

// ApplyTrigger lets a worker's trigger move an order on and reports the
// outcome, which records what the worker app said with it (rep). The
// trigger id is the event's causation id.
func (c *Commands) ApplyTrigger(ctx context.Context, meta Meta, orderID, trigger, triggerID string, rep domain.TriggerReport) (domain.TriggerResult, OrderSnapshot, error) {
	var res domain.TriggerResult
	meta.CausationID = triggerID
	o, err := c.order(ctx, orderID, meta, func(o *domain.Order) error {
		if !o.Exists() {
			return notFoundOrder(orderID)
		}
		var err error
		res, err = o.ApplyTrigger(trigger, triggerID, rep, c.view())
		return err
	})
	return res, o, err
}

// keyConflict refuses a request whose Idempotency-Key an earlier,
// different request used.
func keyConflict(reason string) error {
	return &domain.FieldError{Field: "Idempotency-Key", Kind: domain.ErrDuplicate, Reason: reason}
}

// asked is what a supervisor's action asks for, as its event records it:
// a resend of the request asks for the same.
func asked(ev domain.Event) string {
	switch e := ev.(type) {
	case domain.OrderHeld:
		return fmt.Sprintf("reason %q", e.Reason)
	case domain.OrderResumed:
		return fmt.Sprintf("reason %q", e.Reason)
	case domain.OrderCancelled:
		return fmt.Sprintf("reason %q", e.Reason)
	case domain.OrderMoved:
		return fmt.Sprintf("step %d of workflow %q, reason %q", e.To.Step, e.To.WorkflowID, e.Reason)
	case domain.OrderMigrated:
		return fmt.Sprintf("version %d of workflow %q, reason %q", e.To.WorkflowVersion, e.To.WorkflowID, e.Reason)
	}
	return ""
}

// existing wraps a supervisor action, which records an event like ask
// (as far as asked tells): the order must exist. A resend of a keyed
// request answers the order (see orderKeyed); the same key sent with a
// different body is a conflict.
func (c *Commands) existing(ctx context.Context, id string, meta Meta, ask domain.Event, do func(*domain.Order) error) (OrderSnapshot, error) {
	typ := ask.EventType()
	return c.orderKeyed(ctx, id, meta, typ, func(recorded domain.Event) error {
		if was, now := asked(recorded), asked(ask); was != now {
			return keyConflict(fmt.Sprintf("%q was the key of the request that recorded %s on order %q with %s; this request asks for %s",
				meta.RequestKey, typ, id, was, now))
		}
		return nil
	}, func(o *domain.Order) error {
		if !o.Exists() {
			return notFoundOrder(id)
		}
		return do(o)
	})
}

// HoldOrder pauses an order.
func (c *Commands) HoldOrder(ctx context.Context, meta Meta, id, reason string) (OrderSnapshot, error) {
	return c.existing(ctx, id, meta, domain.OrderHeld{Reason: reason}, func(o *domain.Order) error { return o.Hold(reason) })
}

// ResumeOrder resumes a held order.
func (c *Commands) ResumeOrder(ctx context.Context, meta Meta, id, reason string) (OrderSnapshot, error) {
	return c.existing(ctx, id, meta, domain.OrderResumed{Reason: reason}, func(o *domain.Order) error { return o.Resume(reason) })
}

// CancelOrder cancels an order.
func (c *Commands) CancelOrder(ctx context.Context, meta Meta, id, reason string) (OrderSnapshot, error) {
	return c.existing(ctx, id, meta, domain.OrderCancelled{Reason: reason}, func(o *domain.Order) error { return o.Cancel(reason) })
}

// MoveOrder moves an order to a step of one of its workflows.
func (c *Commands) MoveOrder(ctx context.Context, meta Meta, id, workflowID string, step int, reason string) (OrderSnapshot, error) {
	ask := domain.OrderMoved{To: domain.Position{WorkflowID: workflowID, Step: step}, Reason: reason}
	return c.existing(ctx, id, meta, ask, func(o *domain.Order) error { return o.Move(workflowID, step, reason, c.view()) })
}

// MigrateOrder moves an in-flight order to a newer version of its workflow.
func (c *Commands) MigrateOrder(ctx context.Context, meta Meta, id, workflowID string, toVersion uint64, reason string) (OrderSnapshot, error) {
	ask := domain.OrderMigrated{To: domain.Position{WorkflowID: workflowID, WorkflowVersion: toVersion}, Reason: domain.MigrationReason(reason, toVersion)}
	return c.existing(ctx, id, meta, ask, func(o *domain.Order) error { return o.Migrate(workflowID, toVersion, reason, c.view()) })
}

// LoadOrder reads an order and its history from the store.
func (c *Commands) LoadOrder(ctx context.Context, id string) (*domain.Order, []eventstore.Event, error) {
	return c.LoadOrderAsOf(ctx, id, nil)
}

// LoadOrderAsOf reads an order as it was at asOf: the events that occurred
// at or before it (all when asOf is nil; a zero time is a time, before
// every order). An order not yet placed then is not found.
func (c *Commands) LoadOrderAsOf(ctx context.Context, id string, asOf *time.Time) (*domain.Order, []eventstore.Event, error) {
	addr := c.orderAddr(id)
	if err := addr.Validate(); err != nil {
		return nil, nil, err
	}
	events, err := c.Store.Load(ctx, addr, 0)
	if err != nil {
		return nil, nil, err
	}
	existed := len(events) > 0
	if asOf != nil {
		kept := events[:0:0]
		for _, ev := range events {
			if !ev.OccurredAt.After(*asOf) {
				kept = append(kept, ev)
			}
		}
		events = kept
	}
	o := domain.NewOrder(id, c.view())
	if err := applyAll(o, events); err != nil {
		return nil, nil, err
	}
	if !o.Exists() {
		if existed {
			return nil, nil, &domain.FieldError{Field: "as_of", Reason: fmt.Sprintf("order %q did not exist at %s", id, asOf.Format(time.RFC3339Nano)), Kind: domain.ErrNotFound}
		}
		return nil, nil, notFoundOrder(id)
	}
	return o, events, nil
}
