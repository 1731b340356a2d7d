package domain

import (
	"fmt"
	"slices"
)

// Step limits of a workflow.
const (
	MinSteps = 1
	MaxSteps = 50
)

// Catalog answers what workflow rules need to know of the libraries.
type Catalog interface {
	// LookupStatus reports whether the status exists and whether it is
	// archived.
	LookupStatus(key string) (found, archived bool)
	LookupTrigger(key string) (found, archived bool)
}

// WorkflowNames tells which live workflow holds a name.
type WorkflowNames interface {
	// LiveWorkflowNamed returns the id and name of a live workflow other
	// than exceptID whose name is name (SameName), or "".
	LiveWorkflowNamed(name, exceptID string) (id, named string)
}

// WorkflowUsage tells which live order types use a workflow.
type WorkflowUsage interface {
	OrderTypesUsingWorkflow(id string) []string
}

// WorkflowState is a workflow as of one version.
type WorkflowState struct {
	ID                string
	Name              string
	Type              WorkflowType
	FulfillmentMethod FulfillmentMethod
	Steps             []Step
	Version           uint64
	Archived          bool
}

// Workflow is an ordered list of steps. The step at index i waits for its
// trigger, which moves the order to step i+1; the last step's trigger ends
// the workflow. Every change makes a new version.
type Workflow struct {
	root
	id       string
	name     string
	typ      WorkflowType
	method   FulfillmentMethod
	steps    []Step
	archived bool
}

// NewWorkflow returns a workflow with no history, for Create or loading.
func NewWorkflow() *Workflow { return &Workflow{} }

// Exists reports whether the workflow has been created.
func (w *Workflow) Exists() bool { return w.version > 0 }

// State is the workflow as it stands.
func (w *Workflow) State() WorkflowState {
	return WorkflowState{ID: w.id, Name: w.name, Type: w.typ, FulfillmentMethod: w.method,
		Steps: slices.Clone(w.steps), Version: w.version, Archived: w.archived}
}

// Create defines a new workflow.
func (w *Workflow) Create(id, name string, typ WorkflowType, method FulfillmentMethod, steps []Step, cat Catalog, names WorkflowNames) error {
	if w.Exists() {
		return kindErr(ErrDuplicate, "id", "workflow %q already exists", id)
	}
	if err := checkKey("id", id); err != nil {
		return err
	}
	name, err := checkName("name", name)
	if err != nil {
		return err
	}
	if err := checkTypeAndMethod(typ, method); err != nil {
		return err
	}
	if err := checkSteps(steps, cat); err != nil {
		return err
	}
	if other, named := names.LiveWorkflowNamed(name, id); other != "" {
		return kindErr(ErrDuplicate, "name", "workflow %q is already named %q", other, named)
	}
	w.record(WorkflowCreated{ID: id, Name: name, Type: typ, FulfillmentMethod: method, Steps: slices.Clone(steps)})
	return nil
}

// Rename changes the workflow's name.
func (w *Workflow) Rename(name string, names WorkflowNames) error {
	if err := w.editable(); err != nil {
		return err
	}
	name, err := checkName("name", name)
	if err != nil {
		return err
	}
	if name == w.name {
		return nil
	}
	if other, named := names.LiveWorkflowNamed(name, w.id); other != "" {
		return kindErr(ErrDuplicate, "name", "workflow %q is already named %q", other, named)
	}
	w.record(WorkflowRenamed{Name: name})
	return nil
}

// ChangeType changes the workflow's type and fulfillment method together.
func (w *Workflow) ChangeType(typ WorkflowType, method FulfillmentMethod, usage WorkflowUsage) error {
	if err := w.editable(); err != nil {
		return err
	}
	if err := checkTypeAndMethod(typ, method); err != nil {
		return err
	}
	if typ == w.typ && method == w.method {
		return nil
	}
	if typ != w.typ {
		if ids := usage.OrderTypesUsingWorkflow(w.id); len(ids) > 0 {
			return kindErr(ErrInUse, "type", "workflow %q is the %s workflow of live order types %v", w.id, w.typ, ids)
		}
	}
	w.record(WorkflowTypeChanged{Type: typ, FulfillmentMethod: method})
	return nil
}

// AddStep inserts a step at position (0 … len(steps)); a negative position
// appends.
func (w *Workflow) AddStep(position int, step Step, cat Catalog) error {
	if err := w.editable(); err != nil {
		return err
	}
	if position < 0 {
		position = len(w.steps)
	}
	if position > len(w.steps) {
		return invalid("position", "%d is past the end (the workflow has %s)", position, stepCount(len(w.steps)))
	}
	next := slices.Insert(slices.Clone(w.steps), position, step)
	if err := checkSteps(next, cat); err != nil {
		return err
	}
	w.record(WorkflowStepAdded{Position: position, Step: step})
	return nil
}

// RemoveStep removes the step at index; the last step cannot be removed.
func (w *Workflow) RemoveStep(index int) error {
	if err := w.editable(); err != nil {
		return err
	}
	if index < 0 || index >= len(w.steps) {
		return kindErr(ErrNotFound, "index", "no step %d (the workflow has %s)", index, stepCount(len(w.steps)))
	}
	if len(w.steps) <= MinSteps {
		return invalid("steps", "a workflow keeps at least %d step", MinSteps)
	}
	w.record(WorkflowStepRemoved{Index: index, Step: w.steps[index]})
	return nil
}

// MoveStep moves the step at from so that it ends up at index to (the
// drag-and-drop reorder).
func (w *Workflow) MoveStep(from, to int) error {
	if err := w.editable(); err != nil {
		return err
	}
	n := len(w.steps)
	if from < 0 || from >= n {
		return invalid("from", "%d is not a step index (0 to %d)", from, n-1)
	}
	if to < 0 || to >= n {
		return invalid("to", "%d is not a step index (0 to %d)", to, n-1)
	}
	if from == to {
		return nil
	}
	w.record(WorkflowStepMoved{From: from, To: to})
	return nil
}

// ReplaceSteps replaces the whole ordered step list in one change.
func (w *Workflow) ReplaceSteps(steps []Step, cat Catalog) error {
	if err := w.editable(); err != nil {
		return err
	}
	if err := checkSteps(steps, cat); err != nil {
		return err
	}
	if slices.Equal(steps, w.steps) {
		return nil
	}
	w.record(WorkflowStepsReplaced{Steps: slices.Clone(steps)})
	return nil
}

// ChangeStepTrigger sets the trigger that moves an order on from one step.
// It is recorded as a replacement of the step list.
func (w *Workflow) ChangeStepTrigger(index int, trigger string, cat Catalog) error {
	if err := w.editable(); err != nil {
		return err
	}
	if index < 0 || index >= len(w.steps) {
		return kindErr(ErrNotFound, "index", "no step %d (the workflow has %s)", index, stepCount(len(w.steps)))
	}
	next := slices.Clone(w.steps)
	next[index].Trigger = trigger
	return w.ReplaceSteps(next, cat)
}

// Archive retires the workflow: it can no longer be edited or used by
// order types. Refused while a live order type uses it.
func (w *Workflow) Archive(usage WorkflowUsage) error {
	if !w.Exists() {
		return kindErr(ErrNotFound, "id", "no such workflow")
	}
	if w.archived {
		return nil
	}
	if ids := usage.OrderTypesUsingWorkflow(w.id); len(ids) > 0 {
		return kindErr(ErrInUse, "id", "workflow %q is used by live order types %v", w.id, ids)
	}
	w.record(WorkflowArchived{})
	return nil
}

func (w *Workflow) editable() error {
	if !w.Exists() {
		return kindErr(ErrNotFound, "id", "no such workflow")
	}
	if w.archived {
		return kindErr(ErrArchived, "id", "workflow %q is archived", w.id)
	}
	return nil
}

func checkTypeAndMethod(typ WorkflowType, method FulfillmentMethod) error {
	if typ.IsZero() {
		return invalid("type", "is required")
	}
	if typ == WorkflowFulfillment && method.IsZero() {
		return invalid("fulfillment_method", "is required for a fulfillment workflow")
	}
	if typ != WorkflowFulfillment && !method.IsZero() {
		return invalid("fulfillment_method", "only fulfillment workflows have one (this one is %s)", typ)
	}
	return nil
}

// checkSteps enforces the step rules: 1–50 steps, each status and trigger
// existing and live, each status at most once.
func checkSteps(steps []Step, cat Catalog) error {
	if len(steps) < MinSteps || len(steps) > MaxSteps {
		return invalid("steps", "a workflow has %d to %d steps, not %d", MinSteps, MaxSteps, len(steps))
	}
	seen := make(map[string]int, len(steps))
	for i, s := range steps {
		field := fmt.Sprintf("steps[%d]", i)
		if err := checkKey(field+".status", s.Status); err != nil {
			return err
		}
		if err := checkKey(field+".trigger", s.Trigger); err != nil {
			return err
		}
		if j, dup := seen[s.Status]; dup {
			return invalid(field+".status", "status %q is already step %d; a status appears at most once per workflow", s.Status, j)
		}
		seen[s.Status] = i
		if found, archived := cat.LookupStatus(s.Status); !found {
			return invalid(field+".status", "unknown status %q", s.Status)
		} else if archived {
			return invalid(field+".status", "status %q is archived", s.Status)
		}
		if found, archived := cat.LookupTrigger(s.Trigger); !found {
			return invalid(field+".trigger", "unknown trigger %q", s.Trigger)
		} else if archived {
			return invalid(field+".trigger", "trigger %q is archived", s.Trigger)
		}
	}
	return nil
}

func (w *Workflow) record(e Event) {
	_ = w.Apply(e)
	w.changes = append(w.changes, e)
}

// Apply folds one event into the workflow: the only place its state
// changes. Every event is a new version.
func (w *Workflow) Apply(e Event) error {
	switch e := e.(type) {
	case WorkflowCreated:
		w.id, w.name, w.typ, w.method = e.ID, e.Name, e.Type, e.FulfillmentMethod
		w.steps = slices.Clone(e.Steps)
	case WorkflowRenamed:
		w.name = e.Name
	case WorkflowTypeChanged:
		w.typ, w.method = e.Type, e.FulfillmentMethod
	case WorkflowStepAdded:
		pos := min(max(e.Position, 0), len(w.steps))
		w.steps = slices.Insert(w.steps, pos, e.Step)
	case WorkflowStepRemoved:
		if e.Index >= 0 && e.Index < len(w.steps) {
			w.steps = slices.Delete(w.steps, e.Index, e.Index+1)
		}
	case WorkflowStepMoved:
		if e.From >= 0 && e.From < len(w.steps) && e.To >= 0 && e.To < len(w.steps) {
			s := w.steps[e.From]
			w.steps = slices.Delete(w.steps, e.From, e.From+1)
			w.steps = slices.Insert(w.steps, e.To, s)
		}
	case WorkflowStepsReplaced:
		w.steps = slices.Clone(e.Steps)
	case WorkflowArchived:
		w.archived = true
	default:
		return unexpected("workflow", e)
	}
	w.version++
	return nil
}

// stepCount is n steps, in words: "1 step", "3 steps".
func stepCount(n int) string {
	if n == 1 {
		return "1 step"
	}
	return fmt.Sprintf("%d steps", n)
}
