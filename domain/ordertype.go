package domain

import (
	"fmt"
	"slices"
)

// WorkflowLookup answers what order type rules need to know of workflows.
type WorkflowLookup interface {
	// LookupWorkflow reports whether the workflow exists, its type, and
	// whether it is archived.
	LookupWorkflow(id string) (typ WorkflowType, found, archived bool)
}

// OrderTypeState is an order type as it stands.
type OrderTypeState struct {
	ID          string
	Name        string
	Intake      string // workflow id, or "" for none
	Production  string // workflow id, or "" for none
	Fulfillment []string
	Version     uint64
	Archived    bool
}

// Workflows lists the order type's workflows in the order an order runs
// them with the given fulfillment workflow ("" for the default, the first).
func (o OrderTypeState) Workflows(fulfillment string) []string {
	var out []string
	if o.Intake != "" {
		out = append(out, o.Intake)
	}
	if o.Production != "" {
		out = append(out, o.Production)
	}
	if fulfillment == "" && len(o.Fulfillment) > 0 {
		fulfillment = o.Fulfillment[0]
	}
	if fulfillment != "" {
		out = append(out, fulfillment)
	}
	return out
}

// OrderType is the whole process for one kind of service: an intake
// workflow, a production workflow, and one of several fulfillment
// workflows (the first is the default).
type OrderType struct {
	root
	state OrderTypeState
}

// NewOrderType returns an order type with no history.
func NewOrderType() *OrderType { return &OrderType{} }

// Exists reports whether the order type has been created.
func (o *OrderType) Exists() bool { return o.version > 0 }

// State is the order type as it stands.
func (o *OrderType) State() OrderTypeState {
	s := o.state
	s.Fulfillment = slices.Clone(s.Fulfillment)
	s.Version = o.version
	return s
}

// Create defines a new order type.
func (o *OrderType) Create(id, name, intake, production string, fulfillment []string, wf WorkflowLookup) error {
	if o.Exists() {
		return kindErr(ErrDuplicate, "id", "order type %q already exists", id)
	}
	if err := checkKey("id", id); err != nil {
		return err
	}
	name, err := checkName("name", name)
	if err != nil {
		return err
	}
	if err := checkSlots(intake, production, fulfillment, wf); err != nil {
		return err
	}
	o.record(OrderTypeCreated{ID: id, Name: name, Intake: intake, Production: production, Fulfillment: slices.Clone(fulfillment)})
	return nil
}

// Change replaces the order type's name and slots.
func (o *OrderType) Change(name, intake, production string, fulfillment []string, wf WorkflowLookup) error {
	if !o.Exists() {
		return kindErr(ErrNotFound, "id", "no such order type")
	}
	if o.state.Archived {
		return kindErr(ErrArchived, "id", "order type %q is archived", o.state.ID)
	}
	name, err := checkName("name", name)
	if err != nil {
		return err
	}
	if err := checkSlots(intake, production, fulfillment, wf); err != nil {
		return err
	}
	s := o.state
	if s.Name == name && s.Intake == intake && s.Production == production && slices.Equal(s.Fulfillment, fulfillment) {
		return nil
	}
	o.record(OrderTypeChanged{Name: name, Intake: intake, Production: production, Fulfillment: slices.Clone(fulfillment)})
	return nil
}

// Archive retires the order type: no new orders can be placed with it.
func (o *OrderType) Archive() error {
	if !o.Exists() {
		return kindErr(ErrNotFound, "id", "no such order type")
	}
	if o.state.Archived {
		return nil
	}
	o.record(OrderTypeArchived{})
	return nil
}

// checkSlots: at least one workflow; each one live and of its slot's type.
func checkSlots(intake, production string, fulfillment []string, wf WorkflowLookup) error {
	if intake == "" && production == "" && len(fulfillment) == 0 {
		return invalid("workflows", "an order type needs at least one workflow")
	}
	check := func(field, id string, want WorkflowType) error {
		if err := checkKey(field, id); err != nil {
			return err
		}
		typ, found, archived := wf.LookupWorkflow(id)
		switch {
		case !found:
			return invalid(field, "unknown workflow %q", id)
		case archived:
			return invalid(field, "workflow %q is archived", id)
		case typ != want:
			return invalid(field, "workflow %q is of type %s, not %s", id, typ, want)
		}
		return nil
	}
	if intake != "" {
		if err := check("intake", intake, WorkflowIntake); err != nil {
			return err
		}
	}
	if production != "" {
		if err := check("production", production, WorkflowProduction); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i, id := range fulfillment {
		field := fmt.Sprintf("fulfillment[%d]", i)
		if err := check(field, id, WorkflowFulfillment); err != nil {
			return err
		}
		if seen[id] {
			return invalid(field, "workflow %q is listed twice", id)
		}
		seen[id] = true
	}
	return nil
}

func (o *OrderType) record(e Event) {
	_ = o.Apply(e)
	o.changes = append(o.changes, e)
}

// Apply folds one event into the order type: the only place its state
// changes.
func (o *OrderType) Apply(e Event) error {
	switch e := e.(type) {
	case OrderTypeCreated:
		o.state = OrderTypeState{ID: e.ID, Name: e.Name, Intake: e.Intake, Production: e.Production, Fulfillment: slices.Clone(e.Fulfillment)}
	case OrderTypeChanged:
		o.state.Name, o.state.Intake, o.state.Production = e.Name, e.Intake, e.Production
		o.state.Fulfillment = slices.Clone(e.Fulfillment)
	case OrderTypeArchived:
		o.state.Archived = true
	default:
		return unexpected("order type", e)
	}
	o.version++
	return nil
}
