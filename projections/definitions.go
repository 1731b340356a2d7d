package projections

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// Definitions is the read model of every tenant's status library, trigger
// library, workflows and order types, folded with the domain's own Apply.
// It also answers the cross-aggregate questions commands ask (does this
// status exist, which live workflows use it).
type Definitions struct {
	feed
	tenants map[string]*tenantDefs
	log     *slog.Logger
}

type tenantDefs struct {
	statuses   *domain.StatusLibrary
	triggers   *domain.TriggerLibrary
	workflows  map[string]*domain.Workflow
	versions   map[string][]domain.WorkflowState // every version, index v-1
	orderTypes map[string]*domain.OrderType
	// created maps the Idempotency-Key of each request that created a
	// status, trigger, workflow or order type (the creation event's
	// causation id) to that event.
	created map[string]domain.Event
}

// NewDefinitions returns an empty read model.
func NewDefinitions(log *slog.Logger) *Definitions {
	if log == nil {
		log = slog.Default()
	}
	return &Definitions{feed: feed{name: "definitions", stream: eventstore.StreamDefinitions}, tenants: map[string]*tenantDefs{}, log: log}
}

// Start feeds the read model from the definitions stream.
func (d *Definitions) Start(ctx context.Context, st *eventstore.Store) error {
	return d.start(ctx, st, d.Apply)
}

// Apply folds one stored event in. Events at or below the applied sequence
// are ignored, so each is applied at most once.
func (d *Definitions) Apply(ev eventstore.Event) error {
	e, err := domain.DecodeEvent(ev.Type, ev.Data) // before the lock: queries wait less
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.pos.advance(ev.Sequence) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("definitions: sequence %d: %w", ev.Sequence, err)
	}
	t := d.tenant(ev.Tenant)
	if err := t.apply(ev, e); err != nil {
		return err
	}
	if ev.CausationID != "" {
		switch e.(type) {
		case domain.StatusAdded, domain.TriggerAdded, domain.WorkflowCreated, domain.OrderTypeCreated:
			t.created[ev.CausationID] = e
		}
	}
	return nil
}

func (t *tenantDefs) apply(ev eventstore.Event, e domain.Event) error {
	switch ev.AggregateType {
	case domain.AggregateStatuses:
		return t.statuses.Apply(e)
	case domain.AggregateTriggers:
		return t.triggers.Apply(e)
	case domain.AggregateWorkflow:
		w, ok := t.workflows[ev.AggregateID]
		if !ok {
			w = domain.NewWorkflow()
			t.workflows[ev.AggregateID] = w
		}
		if err := w.Apply(e); err != nil {
			return err
		}
		t.versions[ev.AggregateID] = append(t.versions[ev.AggregateID], w.State())
		return nil
	case domain.AggregateOrderType:
		o, ok := t.orderTypes[ev.AggregateID]
		if !ok {
			o = domain.NewOrderType()
			t.orderTypes[ev.AggregateID] = o
		}
		return o.Apply(e)
	}
	return fmt.Errorf("definitions: sequence %d: unknown aggregate type %q", ev.Sequence, ev.AggregateType)
}

func (d *Definitions) tenant(name string) *tenantDefs {
	t, ok := d.tenants[name]
	if !ok {
		t = &tenantDefs{
			statuses:   domain.NewStatusLibrary(),
			triggers:   domain.NewTriggerLibrary(),
			workflows:  map[string]*domain.Workflow{},
			versions:   map[string][]domain.WorkflowState{},
			orderTypes: map[string]*domain.OrderType{},
			created:    map[string]domain.Event{},
		}
		d.tenants[name] = t
	}
	return t
}

// Tenant is one tenant's view of the read model. Every method reads under
// the read model's lock, so a view may be kept and used concurrently.
func (d *Definitions) Tenant(name string) *TenantView { return &TenantView{d: d, tenant: name} }

// TenantView answers queries for one tenant. It implements the domain's
// Catalog, WorkflowNames, WorkflowLookup and usage interfaces.
type TenantView struct {
	d      *Definitions
	tenant string
}

func (v *TenantView) read(f func(t *tenantDefs)) {
	v.d.mu.RLock()
	defer v.d.mu.RUnlock()
	t, ok := v.d.tenants[v.tenant]
	if !ok {
		t = &tenantDefs{statuses: domain.NewStatusLibrary(), triggers: domain.NewTriggerLibrary()}
	}
	f(t)
}

// Statuses lists the status library and its version.
func (v *TenantView) Statuses() (list []domain.Status, version uint64) {
	v.read(func(t *tenantDefs) { list, version = t.statuses.Statuses(), t.statuses.Version() })
	return list, version
}

// Triggers lists the trigger library and its version.
func (v *TenantView) Triggers() (list []domain.Trigger, version uint64) {
	v.read(func(t *tenantDefs) { list, version = t.triggers.Triggers(), t.triggers.Version() })
	return list, version
}

// CreatedBy returns the event that the request with this Idempotency-Key
// recorded when it created a definition.
func (v *TenantView) CreatedBy(key string) (ev domain.Event, ok bool) {
	v.read(func(t *tenantDefs) { ev, ok = t.created[key] })
	return ev, ok
}

// Status returns one status and the status library's version.
func (v *TenantView) Status(key string) (st domain.Status, version uint64, ok bool) {
	v.read(func(t *tenantDefs) { st, ok = t.statuses.Status(key); version = t.statuses.Version() })
	return st, version, ok
}

// Trigger returns one trigger and the trigger library's version.
func (v *TenantView) Trigger(key string) (tr domain.Trigger, version uint64, ok bool) {
	v.read(func(t *tenantDefs) { tr, ok = t.triggers.Trigger(key); version = t.triggers.Version() })
	return tr, version, ok
}

// Workflow returns one workflow's current state.
func (v *TenantView) Workflow(id string) (ws domain.WorkflowState, ok bool) {
	v.read(func(t *tenantDefs) {
		if w, found := t.workflows[id]; found && w.Exists() {
			ws, ok = w.State(), true
		}
	})
	return ws, ok
}

// WorkflowVersion returns a workflow as of version v.
func (v *TenantView) WorkflowVersion(id string, version uint64) (ws domain.WorkflowState, ok bool) {
	v.read(func(t *tenantDefs) {
		vs := t.versions[id]
		if version >= 1 && version <= uint64(len(vs)) {
			ws, ok = vs[version-1], true
		}
	})
	return ws, ok
}

// Workflows lists every workflow (archived ones too), by name.
func (v *TenantView) Workflows() []domain.WorkflowState {
	var out []domain.WorkflowState
	v.read(func(t *tenantDefs) {
		for _, w := range t.workflows {
			if w.Exists() {
				out = append(out, w.State())
			}
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// OrderType returns one order type's current state.
func (v *TenantView) OrderType(id string) (os domain.OrderTypeState, ok bool) {
	v.read(func(t *tenantDefs) {
		if o, found := t.orderTypes[id]; found && o.Exists() {
			os, ok = o.State(), true
		}
	})
	return os, ok
}

// OrderTypes lists every order type, by name.
func (v *TenantView) OrderTypes() []domain.OrderTypeState {
	var out []domain.OrderTypeState
	v.read(func(t *tenantDefs) {
		for _, o := range t.orderTypes {
			if o.Exists() {
				out = append(out, o.State())
			}
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// WorkflowIDTaken reports whether any workflow (archived too) has the id.
func (v *TenantView) WorkflowIDTaken(id string) (taken bool) {
	v.read(func(t *tenantDefs) { _, taken = t.workflows[id] })
	return taken
}

// OrderTypeIDTaken reports whether any order type has the id.
func (v *TenantView) OrderTypeIDTaken(id string) (taken bool) {
	v.read(func(t *tenantDefs) { _, taken = t.orderTypes[id] })
	return taken
}

// LookupStatus implements domain.Catalog.
func (v *TenantView) LookupStatus(key string) (found, archived bool) {
	st, _, ok := v.Status(key)
	return ok, st.Archived
}

// LookupTrigger implements domain.Catalog.
func (v *TenantView) LookupTrigger(key string) (found, archived bool) {
	tr, _, ok := v.Trigger(key)
	return ok, tr.Archived
}

// LiveWorkflowNamed implements domain.WorkflowNames.
func (v *TenantView) LiveWorkflowNamed(name, exceptID string) (id, named string) {
	v.read(func(t *tenantDefs) {
		for wid, w := range t.workflows {
			s := w.State()
			if wid != exceptID && w.Exists() && !s.Archived && domain.SameName(s.Name, name) {
				id, named = wid, s.Name
				return
			}
		}
	})
	return id, named
}

// LookupWorkflow implements domain.WorkflowLookup.
func (v *TenantView) LookupWorkflow(id string) (domain.WorkflowType, bool, bool) {
	w, ok := v.Workflow(id)
	return w.Type, ok, w.Archived
}

// WorkflowsUsingStatus implements domain.StatusUsage.
func (v *TenantView) WorkflowsUsingStatus(key string) []string {
	return v.liveWorkflowsWith(func(s domain.Step) bool { return s.Status == key })
}

// WorkflowsUsingTrigger implements domain.TriggerUsage.
func (v *TenantView) WorkflowsUsingTrigger(key string) []string {
	return v.liveWorkflowsWith(func(s domain.Step) bool { return s.Trigger == key })
}

func (v *TenantView) liveWorkflowsWith(match func(domain.Step) bool) []string {
	var ids []string
	v.read(func(t *tenantDefs) {
		for id, w := range t.workflows {
			s := w.State()
			if w.Exists() && !s.Archived && slices.ContainsFunc(s.Steps, match) {
				ids = append(ids, id)
			}
		}
	})
	slices.Sort(ids)
	return ids
}

// OrderTypesUsingWorkflow implements domain.WorkflowUsage.
func (v *TenantView) OrderTypesUsingWorkflow(id string) []string {
	var ids []string
	v.read(func(t *tenantDefs) {
		for oid, o := range t.orderTypes {
			s := o.State()
			if o.Exists() && !s.Archived && (s.Intake == id || s.Production == id || slices.Contains(s.Fulfillment, id)) {
				ids = append(ids, oid)
			}
		}
	})
	slices.Sort(ids)
	return ids
}
