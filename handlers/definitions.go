package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// Status library commands.

func (c *Commands) statuses(ctx context.Context, meta Meta, do func(*domain.StatusLibrary) error) (*domain.StatusLibrary, error) {
	return execute(c, ctx, c.addr(domain.AggregateStatuses, domain.LibraryID),
		func() domain.Aggregate { return domain.NewStatusLibrary() }, meta,
		func(a domain.Aggregate) error { return do(a.(*domain.StatusLibrary)) },
		func(a domain.Aggregate) *domain.StatusLibrary { return a.(*domain.StatusLibrary).Clone() })
}

// AddStatus adds a status to the library; an empty key is derived from the
// name. It returns the library after the change and the key used. A
// resend of a keyed request (meta.RequestKey) adds nothing (see Created).
func (c *Commands) AddStatus(ctx context.Context, meta Meta, key, name string, category domain.Category) (*domain.StatusLibrary, Created, error) {
	key, err := keyOrDerived(key, name)
	if err != nil {
		return nil, Created{}, err
	}
	kc, err := c.keyedCreate(ctx, meta)
	if err != nil {
		return nil, Created{}, err
	}
	lib, err := c.statuses(ctx, meta, func(l *domain.StatusLibrary) error {
		return kc.decide(func() error { return l.Add(key, name, category) })
	})
	if err != nil {
		return nil, Created{}, err
	}
	cr, err := kc.created(key, domain.StatusAdded{Key: key, Name: name, Category: category})
	return lib, cr, err
}

// UpdateStatus renames and/or recategorizes a status (one atomic append).
func (c *Commands) UpdateStatus(ctx context.Context, meta Meta, key string, name *string, category *domain.Category) (*domain.StatusLibrary, error) {
	return c.statuses(ctx, meta, func(l *domain.StatusLibrary) error {
		if _, ok := l.Status(key); !ok {
			return &domain.FieldError{Field: "key", Reason: "no status " + strconv.Quote(key), Kind: domain.ErrNotFound}
		}
		if name != nil {
			if err := l.Rename(key, *name); err != nil {
				return err
			}
		}
		if category != nil {
			return l.Recategorize(key, *category)
		}
		return nil
	})
}

// ArchiveStatus archives a status unless a live workflow uses it.
func (c *Commands) ArchiveStatus(ctx context.Context, meta Meta, key string) (*domain.StatusLibrary, error) {
	return c.statuses(ctx, meta, func(l *domain.StatusLibrary) error { return l.Archive(key, c.view()) })
}

// Trigger library commands.

func (c *Commands) triggers(ctx context.Context, meta Meta, do func(*domain.TriggerLibrary) error) (*domain.TriggerLibrary, error) {
	return execute(c, ctx, c.addr(domain.AggregateTriggers, domain.LibraryID),
		func() domain.Aggregate { return domain.NewTriggerLibrary() }, meta,
		func(a domain.Aggregate) error { return do(a.(*domain.TriggerLibrary)) },
		func(a domain.Aggregate) *domain.TriggerLibrary { return a.(*domain.TriggerLibrary).Clone() })
}

// AddTrigger adds a trigger; an empty key is derived from the name. A
// resend of a keyed request adds nothing (see Created).
func (c *Commands) AddTrigger(ctx context.Context, meta Meta, key, name, description string) (*domain.TriggerLibrary, Created, error) {
	key, err := keyOrDerived(key, name)
	if err != nil {
		return nil, Created{}, err
	}
	kc, err := c.keyedCreate(ctx, meta)
	if err != nil {
		return nil, Created{}, err
	}
	lib, err := c.triggers(ctx, meta, func(l *domain.TriggerLibrary) error {
		return kc.decide(func() error { return l.Add(key, name, description) })
	})
	if err != nil {
		return nil, Created{}, err
	}
	cr, err := kc.created(key, domain.TriggerAdded{Key: key, Name: name, Description: description})
	return lib, cr, err
}

// UpdateTrigger changes a trigger's name and/or description.
func (c *Commands) UpdateTrigger(ctx context.Context, meta Meta, key string, name, description *string) (*domain.TriggerLibrary, error) {
	return c.triggers(ctx, meta, func(l *domain.TriggerLibrary) error {
		tr, ok := l.Trigger(key)
		if !ok {
			return &domain.FieldError{Field: "key", Reason: "no trigger " + strconv.Quote(key), Kind: domain.ErrNotFound}
		}
		n, d := tr.Name, tr.Description
		if name != nil {
			n = *name
		}
		if description != nil {
			d = *description
		}
		return l.Rename(key, n, d)
	})
}

// ArchiveTrigger archives a trigger unless a live workflow uses it.
func (c *Commands) ArchiveTrigger(ctx context.Context, meta Meta, key string) (*domain.TriggerLibrary, error) {
	return c.triggers(ctx, meta, func(l *domain.TriggerLibrary) error { return l.Archive(key, c.view()) })
}

// Workflow commands.

// WorkflowChange is one edit of a workflow.
type WorkflowChange func(w *domain.Workflow, c *Commands) error

// ChangeWorkflow applies edits to a workflow as one append (one new version
// per edit).
func (c *Commands) ChangeWorkflow(ctx context.Context, meta Meta, id string, edits ...WorkflowChange) (domain.WorkflowState, error) {
	return execute(c, ctx, c.addr(domain.AggregateWorkflow, id),
		func() domain.Aggregate { return domain.NewWorkflow() }, meta,
		func(a domain.Aggregate) error {
			w := a.(*domain.Workflow)
			if !w.Exists() {
				return &domain.FieldError{Field: "id", Reason: "no workflow " + strconv.Quote(id), Kind: domain.ErrNotFound}
			}
			for _, edit := range edits {
				if err := edit(w, c); err != nil {
					return err
				}
			}
			return nil
		}, workflowState)
}

// workflowState and orderTypeState are what a workflow's or an order
// type's command answers with.
func workflowState(a domain.Aggregate) domain.WorkflowState   { return a.(*domain.Workflow).State() }
func orderTypeState(a domain.Aggregate) domain.OrderTypeState { return a.(*domain.OrderType).State() }

// CreateWorkflow defines a workflow. Its id is made from its name
// ("Laundry Intake" → "laundry_intake"), with a numeric suffix when taken.
// A resend of a keyed request creates nothing and answers the workflow
// the first created, as it now stands (see Created).
func (c *Commands) CreateWorkflow(ctx context.Context, meta Meta, name string, typ domain.WorkflowType, method domain.FulfillmentMethod, steps []domain.Step) (domain.WorkflowState, Created, error) {
	var id string
	kc, err := c.keyedCreate(ctx, meta)
	if err != nil {
		return domain.WorkflowState{}, Created{}, err
	}
	decide := func(a domain.Aggregate) error {
		return kc.decide(func() error { return a.(*domain.Workflow).Create(id, name, typ, method, steps, c.view(), c.view()) })
	}
	for range maxIDAttempts {
		id = DefinitionID(name, "workflow", c.view().WorkflowIDTaken)
		s, err := execute(c, ctx, c.addr(domain.AggregateWorkflow, id), func() domain.Aggregate { return domain.NewWorkflow() }, meta, decide, workflowState)
		if isDuplicateID(err) {
			continue // created concurrently under the same id: pick the next one
		}
		if err != nil {
			return domain.WorkflowState{}, Created{}, err
		}
		cr, err := kc.created(id, domain.WorkflowCreated{Name: name, Type: typ, FulfillmentMethod: method, Steps: steps})
		if err != nil || !cr.Replayed {
			return s, cr, err
		}
		first, _ := c.view().Workflow(cr.ID)
		return first, cr, nil
	}
	return domain.WorkflowState{}, Created{}, fmt.Errorf("%w: no free workflow id for %q", eventstore.ErrConcurrency, name)
}

// maxIDAttempts bounds the search for a free id under concurrent creation.
const maxIDAttempts = 10

// Edits, for ChangeWorkflow.

// RenameWorkflow renames.
func RenameWorkflow(name string) WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.Rename(name, c.view()) }
}

// AddWorkflowStep inserts a step (position < 0 appends).
func AddWorkflowStep(position int, step domain.Step) WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.AddStep(position, step, c.view()) }
}

// RemoveWorkflowStep removes a step.
func RemoveWorkflowStep(index int) WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.RemoveStep(index) }
}

// MoveWorkflowStep moves a step (drag and drop).
func MoveWorkflowStep(from, to int) WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.MoveStep(from, to) }
}

// ReplaceWorkflowSteps replaces the step list.
func ReplaceWorkflowSteps(steps []domain.Step) WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.ReplaceSteps(steps, c.view()) }
}

// ChangeWorkflowStepTrigger changes one step's trigger.
func ChangeWorkflowStepTrigger(index int, trigger string) WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.ChangeStepTrigger(index, trigger, c.view()) }
}

// ArchiveWorkflow archives.
func ArchiveWorkflow() WorkflowChange {
	return func(w *domain.Workflow, c *Commands) error { return w.Archive(c.view()) }
}

// Order type commands.

// CreateOrderType defines an order type; its id is made from its name. A
// resend of a keyed request creates nothing and answers the order type
// the first created, as it now stands (see Created).
func (c *Commands) CreateOrderType(ctx context.Context, meta Meta, name, intake, production string, fulfillment []string) (domain.OrderTypeState, Created, error) {
	var id string
	kc, err := c.keyedCreate(ctx, meta)
	if err != nil {
		return domain.OrderTypeState{}, Created{}, err
	}
	decide := func(a domain.Aggregate) error {
		return kc.decide(func() error { return a.(*domain.OrderType).Create(id, name, intake, production, fulfillment, c.view()) })
	}
	for range maxIDAttempts {
		id = DefinitionID(name, "order_type", c.view().OrderTypeIDTaken)
		s, err := execute(c, ctx, c.addr(domain.AggregateOrderType, id), func() domain.Aggregate { return domain.NewOrderType() }, meta, decide, orderTypeState)
		if isDuplicateID(err) {
			continue
		}
		if err != nil {
			return domain.OrderTypeState{}, Created{}, err
		}
		cr, err := kc.created(id, domain.OrderTypeCreated{Name: name, Intake: intake, Production: production, Fulfillment: fulfillment})
		if err != nil || !cr.Replayed {
			return s, cr, err
		}
		first, _ := c.view().OrderType(cr.ID)
		return first, cr, nil
	}
	return domain.OrderTypeState{}, Created{}, fmt.Errorf("%w: no free order type id for %q", eventstore.ErrConcurrency, name)
}

// OrderTypePatch holds the fields a change sets; nil leaves one as it is.
type OrderTypePatch struct {
	Name        *string
	Intake      *string
	Production  *string
	Fulfillment *[]string
}

// UpdateOrderType changes an order type's name and slots.
func (c *Commands) UpdateOrderType(ctx context.Context, meta Meta, id string, p OrderTypePatch) (domain.OrderTypeState, error) {
	return c.orderType(ctx, meta, id, func(o *domain.OrderType) error {
		s := o.State()
		if p.Name != nil {
			s.Name = *p.Name
		}
		if p.Intake != nil {
			s.Intake = *p.Intake
		}
		if p.Production != nil {
			s.Production = *p.Production
		}
		if p.Fulfillment != nil {
			s.Fulfillment = *p.Fulfillment
		}
		return o.Change(s.Name, s.Intake, s.Production, s.Fulfillment, c.view())
	})
}

// ArchiveOrderType archives an order type.
func (c *Commands) ArchiveOrderType(ctx context.Context, meta Meta, id string) (domain.OrderTypeState, error) {
	return c.orderType(ctx, meta, id, func(o *domain.OrderType) error { return o.Archive() })
}

func (c *Commands) orderType(ctx context.Context, meta Meta, id string, do func(*domain.OrderType) error) (domain.OrderTypeState, error) {
	return execute(c, ctx, c.addr(domain.AggregateOrderType, id),
		func() domain.Aggregate { return domain.NewOrderType() }, meta,
		func(a domain.Aggregate) error {
			o := a.(*domain.OrderType)
			if !o.Exists() {
				return &domain.FieldError{Field: "id", Reason: "no order type " + strconv.Quote(id), Kind: domain.ErrNotFound}
			}
			return do(o)
		}, orderTypeState)
}

// keyOrDerived is key, or, when it is empty, the key derived from name
// (the contract's rule: lower case, other characters to '_'). A derived
// key that is not a valid key ("!!!" → "___", or a name over 64
// characters) is refused saying where it came from, since the caller sent
// none; an empty name is left to the library to refuse.
func keyOrDerived(key, name string) (string, error) {
	if key != "" || strings.TrimSpace(name) == "" {
		return key, nil
	}
	key = domain.DeriveKey(name)
	var fe *domain.FieldError
	if err := domain.CheckKey("key", key); errors.As(err, &fe) {
		return "", &domain.FieldError{Field: "key", Reason: fmt.Sprintf(
			"none was sent, and the one derived from the name is not a key (%s); send a key", fe.Reason)}
	}
	return key, nil
}

// DefinitionID is the id a workflow or an order type created with name
// gets (fallback, "workflow" or "order_type", when the name gives none): a
// subject-safe id from the name ("Wash & Fold Delivery" →
// "wash_fold_delivery"), with -2, -3 … added while taken says it is
// taken. orderflow definitions apply foretells ids with it.
func DefinitionID(name, fallback string, taken func(string) bool) string {
	base := domain.DeriveKey(name)
	for strings.Contains(base, "__") {
		base = strings.ReplaceAll(base, "__", "_")
	}
	base = strings.Trim(base, "_")
	if base == "" {
		base = fallback
	}
	if len(base) > 48 {
		base = strings.TrimRight(base[:48], "_")
	}
	id := base
	for n := 2; taken(id); n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	return id
}

// Created is what a create command answers besides the definition: the
// key or id the definition has, and whether the request was a resend of
// the one that created it. A create with a request key (meta.RequestKey,
// which the created event carries as its causation id) is safe to send
// again: a resend records nothing and is Replayed, and the same key sent
// for another create or with another body is a conflict.
type Created struct {
	ID       string
	Replayed bool
}

// keyedCreate guards a create command with its request key.
type keyedCreate struct {
	key      string
	view     *projections.TenantView
	recorded domain.Event // what the key created, when the request is a resend
}

// keyedCreate refuses a request key that names an order (claimed by an
// order command, see orderKeyed): a key names one request.
func (c *Commands) keyedCreate(ctx context.Context, meta Meta) (*keyedCreate, error) {
	if meta.RequestKey != "" {
		order, held, err := c.Store.ClaimOf(ctx, orderKeyScope+c.Tenant, meta.RequestKey)
		if err != nil {
			return nil, fmt.Errorf("%w: the Idempotency-Key's claim: %w", errUnavailable, err)
		}
		if held {
			return nil, keyConflict(fmt.Sprintf("%q is the key of a request for order %q, not of a request that creates a definition: "+
				"send this one with a key of its own", meta.RequestKey, order))
		}
	}
	return &keyedCreate{key: meta.RequestKey, view: c.view()}, nil
}

// decide runs create unless the key created a definition before. It runs
// inside a scoped command, after the definitions read model has caught
// up with every earlier definition write: so a resend finds what the
// key created, even one racing the first (whose append then fails the
// scope's concurrency check, and is decided again).
func (k *keyedCreate) decide(create func() error) error {
	k.recorded = nil
	if k.key != "" {
		if ev, ok := k.view.CreatedBy(k.key); ok {
			k.recorded = ev
			return nil
		}
	}
	return create()
}

// created answers the command that decided: id when it created, or,
// for a resend, the id of what the key created when that is what asked
// (the event this request would record, id aside) records; else a
// conflict.
func (k *keyedCreate) created(id string, asked domain.Event) (Created, error) {
	if k.recorded == nil {
		return Created{ID: id}, nil
	}
	was, t := createdID(k.recorded), k.recorded.EventType()
	if t != asked.EventType() {
		return Created{}, keyConflict(fmt.Sprintf("%q was the key of the request that recorded %s %q, not of a request for %s", k.key, t, was, asked.EventType()))
	}
	if !createdAsAsked(k.recorded, asked) {
		return Created{}, keyConflict(fmt.Sprintf("%q was the key of the request that recorded %s %q, with another body than this request's", k.key, t, was))
	}
	return Created{ID: was, Replayed: true}, nil
}

// createdID is the key or id of the definition a creation event created.
func createdID(ev domain.Event) string {
	switch e := ev.(type) {
	case domain.StatusAdded:
		return e.Key
	case domain.TriggerAdded:
		return e.Key
	case domain.WorkflowCreated:
		return e.ID
	case domain.OrderTypeCreated:
		return e.ID
	}
	return ""
}

// createdAsAsked reports whether recorded, a creation event, is what
// asked, the event a request would record, records: the same fields
// (names as the domain keeps them, trimmed), ids aside, which a
// workflow or order type is given as it is created.
func createdAsAsked(recorded, asked domain.Event) bool {
	switch a := asked.(type) {
	case domain.StatusAdded:
		r, ok := recorded.(domain.StatusAdded)
		return ok && r.Key == a.Key && r.Name == strings.TrimSpace(a.Name) && r.Category == a.Category
	case domain.TriggerAdded:
		r, ok := recorded.(domain.TriggerAdded)
		return ok && r.Key == a.Key && r.Name == strings.TrimSpace(a.Name) && r.Description == a.Description
	case domain.WorkflowCreated:
		r, ok := recorded.(domain.WorkflowCreated)
		return ok && r.Name == strings.TrimSpace(a.Name) && r.Type == a.Type && r.FulfillmentMethod == a.FulfillmentMethod && slices.Equal(r.Steps, a.Steps)
	case domain.OrderTypeCreated:
		r, ok := recorded.(domain.OrderTypeCreated)
		return ok && r.Name == strings.TrimSpace(a.Name) && r.Intake == a.Intake && r.Production == a.Production && slices.Equal(r.Fulfillment, a.Fulfillment)
	}
	return false
}

// isDuplicateID: Create found the aggregate already there, i.e. another
// writer took the id between our read and our append.
func isDuplicateID(err error) bool {
	var fe *domain.FieldError
	return errors.As(err, &fe) && fe.Field == "id" && fe.Kind == domain.ErrDuplicate
}

// WorkflowAsOf rebuilds a workflow as it was at a time: the version in
// force then.
func (c *Commands) WorkflowAsOf(ctx context.Context, id string, asOf time.Time) (domain.WorkflowState, error) {
	w := domain.NewWorkflow()
	if err := c.foldAsOf(ctx, domain.AggregateWorkflow, "workflow", id, asOf, w); err != nil {
		return domain.WorkflowState{}, err
	}
	return w.State(), nil
}

// OrderTypeAsOf rebuilds an order type as it was at a time.
func (c *Commands) OrderTypeAsOf(ctx context.Context, id string, asOf time.Time) (domain.OrderTypeState, error) {
	o := domain.NewOrderType()
	if err := c.foldAsOf(ctx, domain.AggregateOrderType, "order type", id, asOf, o); err != nil {
		return domain.OrderTypeState{}, err
	}
	return o.State(), nil
}

// foldAsOf folds into agg a definition's events up to the last that
// occurred at asOf or before (what and id name it when none did).
func (c *Commands) foldAsOf(ctx context.Context, kind, what, id string, asOf time.Time, agg domain.Aggregate) error {
	events, err := c.Store.Load(ctx, c.addr(kind, id), 0)
	if err != nil {
		return err
	}
	v := versionAt(events, asOf)
	if v == 0 {
		return &domain.FieldError{Field: "as_of", Reason: fmt.Sprintf("%s %q did not exist at %s", what, id, asOf.Format(time.RFC3339Nano)), Kind: domain.ErrNotFound}
	}
	return applyAll(agg, events[:v])
}

// DefinitionsAsOf rebuilds the tenant's definitions as they were at a
// time from the definitions stream, as projections.DefinitionsAt takes
// them (each definition as of its last event that occurred by then, as
// WorkflowAsOf takes one).
func (c *Commands) DefinitionsAsOf(ctx context.Context, asOf time.Time) (*projections.TenantView, error) {
	events, err := c.Store.LoadFilter(ctx, eventstore.StreamDefinitions, eventstore.DefinitionsFilter(c.Tenant), 0)
	if err != nil {
		return nil, err
	}
	defs, _, err := projections.DefinitionsAt(events, asOf)
	if err != nil {
		return nil, err
	}
	return defs.Tenant(c.Tenant), nil
}

// versionAt is the version an aggregate had at a time: that of its last
// event that occurred then or before (0: none did).
func versionAt(events []eventstore.Event, asOf time.Time) uint64 {
	var v uint64
	for _, ev := range events {
		if !ev.OccurredAt.After(asOf) {
			v = ev.Version
		}
	}
	return v
}

// WorkflowAt rebuilds a workflow as it was at version v from its events.
func (c *Commands) WorkflowAt(ctx context.Context, id string, v uint64) (domain.WorkflowState, error) {
	addr := c.addr(domain.AggregateWorkflow, id)
	events, err := c.Store.Load(ctx, addr, 0)
	if err != nil {
		return domain.WorkflowState{}, err
	}
	if len(events) == 0 {
		return domain.WorkflowState{}, &domain.FieldError{Field: "id", Reason: "no workflow " + strconv.Quote(id), Kind: domain.ErrNotFound}
	}
	if v > uint64(len(events)) {
		return domain.WorkflowState{}, &domain.FieldError{Field: "version",
			Reason: fmt.Sprintf("workflow %q has versions 1 to %d", id, len(events)), Kind: domain.ErrNotFound}
	}
	w := domain.NewWorkflow()
	if err := applyAll(w, events[:v]); err != nil {
		return domain.WorkflowState{}, err
	}
	return w.State(), nil
}

// applyAll folds events into agg, for a state as of one of its versions.
func applyAll(agg domain.Aggregate, events []eventstore.Event) error {
	for _, ev := range events {
		e, err := domain.DecodeEvent(ev.Type, ev.Data)
		if err != nil {
			return err
		}
		if err := agg.Apply(e); err != nil {
			return err
		}
	}
	return nil
}
