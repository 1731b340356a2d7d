package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// OrderState is where an order stands in its life.
type OrderState string

// The order states of the contract.
const (
	StateActive    OrderState = "active"
	StateOnHold    OrderState = "on_hold"
	StateCompleted OrderState = "completed"
	StateCancelled OrderState = "cancelled"
)

// RejectReason says why a trigger did not take effect.
type RejectReason string

// The reasons of the contract.
const (
	RejectUnexpectedTrigger RejectReason = "unexpected_trigger"
	RejectOnHold            RejectReason = "order_on_hold"
	RejectCompleted         RejectReason = "order_completed"
	RejectCancelled         RejectReason = "order_cancelled"
)

// Order event type names (the contract).
const (
	TypeOrderPlaced     = "OrderPlaced"
	TypeOrderAdvanced   = "OrderAdvanced"
	TypeOrderCompleted  = "OrderCompleted"
	TypeTriggerRejected = "TriggerRejected"
	TypeOrderHeld       = "OrderHeld"
	TypeOrderResumed    = "OrderResumed"
	TypeOrderCancelled  = "OrderCancelled"
	TypeOrderMoved      = "OrderMoved"
	TypeOrderMigrated   = "OrderMigrated"
)

// Position is a step of a pinned workflow version.
type Position struct {
	WorkflowID      string `json:"workflow_id"`
	WorkflowVersion uint64 `json:"workflow_version"`
	Step            int    `json:"step"`
	Status          string `json:"status"`
}

// Order events.
type (
	OrderPlaced struct {
		OrderTypeID string   `json:"order_type_id"`
		To          Position `json:"to"`
		// Workflows is the route the order will run, in order: the order
		// type's workflows at placement, with the chosen fulfillment.
		Workflows []string `json:"workflows"`
	}
	// A trigger's outcomes also keep what the worker app said with it
	// (TriggerReport): its note, and when the worker says the action
	// happened, when it said so.
	OrderAdvanced struct {
		Trigger          string    `json:"trigger"`
		TriggerID        string    `json:"trigger_id"`
		Worker           string    `json:"worker"`
		From             Position  `json:"from"`
		To               Position  `json:"to"`
		Note             string    `json:"note,omitempty"`
		WorkerOccurredAt time.Time `json:"worker_occurred_at,omitzero"`
	}
	OrderCompleted struct {
		Trigger          string    `json:"trigger"`
		TriggerID        string    `json:"trigger_id"`
		Worker           string    `json:"worker"`
		From             Position  `json:"from"`
		Note             string    `json:"note,omitempty"`
		WorkerOccurredAt time.Time `json:"worker_occurred_at,omitzero"`
	}
	TriggerRejected struct {
		Trigger          string       `json:"trigger"`
		TriggerID        string       `json:"trigger_id"`
		Worker           string       `json:"worker"`
		Reason           RejectReason `json:"reason"`
		Expected         string       `json:"expected"`
		Note             string       `json:"note,omitempty"`
		WorkerOccurredAt time.Time    `json:"worker_occurred_at,omitzero"`
	}
	OrderHeld struct {
		Reason string `json:"reason"`
	}
	OrderResumed struct {
		Reason string `json:"reason"`
	}
	OrderCancelled struct {
		Reason string `json:"reason"`
	}
	OrderMoved struct {
		From   Position `json:"from"`
		To     Position `json:"to"`
		Reason string   `json:"reason"`
	}
	OrderMigrated struct {
		From   Position `json:"from"`
		To     Position `json:"to"`
		Reason string   `json:"reason"`
	}
)

func (OrderPlaced) EventType() string     { return TypeOrderPlaced }
func (OrderAdvanced) EventType() string   { return TypeOrderAdvanced }
func (OrderCompleted) EventType() string  { return TypeOrderCompleted }
func (TriggerRejected) EventType() string { return TypeTriggerRejected }
func (OrderHeld) EventType() string       { return TypeOrderHeld }
func (OrderResumed) EventType() string    { return TypeOrderResumed }
func (OrderCancelled) EventType() string  { return TypeOrderCancelled }
func (OrderMoved) EventType() string      { return TypeOrderMoved }
func (OrderMigrated) EventType() string   { return TypeOrderMigrated }

// Workflows answers what the order aggregate needs of workflow definitions:
// the steps of a pinned version, and the version an order pins when it
// enters a workflow.
type Workflows interface {
	// WorkflowVersion returns the workflow as of version v.
	WorkflowVersion(id string, v uint64) (WorkflowState, bool)
	// Workflow returns the workflow's current state (its latest version).
	Workflow(id string) (WorkflowState, bool)
}

// OrderTypes answers what placing an order needs.
type OrderTypes interface {
	OrderType(id string) (OrderTypeState, bool)
}

// TriggerOutcome is what a trigger did.
type TriggerOutcome string

// Trigger outcomes.
const (
	OutcomeAdvanced  TriggerOutcome = "advanced"
	OutcomeCompleted TriggerOutcome = "completed"
	OutcomeRejected  TriggerOutcome = "rejected"
	OutcomeDuplicate TriggerOutcome = "duplicate"
)

// TriggerResult is the outcome of one trigger and, for a rejection, its
// reason and the trigger the order expected.
type TriggerResult struct {
	Outcome  TriggerOutcome
	Reason   RejectReason
	Expected string
	// Original is, for a duplicate, the outcome the trigger id had the
	// first time.
	Original TriggerOutcome
}

// RejectedError is a trigger the order refused, as its TriggerRejected
// event records it: why, and which trigger the order expected instead.
type RejectedError struct {
	Reason   RejectReason
	Expected string
}

func (e *RejectedError) Error() string {
	if e.Expected != "" {
		return fmt.Sprintf("trigger rejected: %s (expected %s)", e.Reason, e.Expected)
	}
	return "trigger rejected: " + string(e.Reason)
}

// OutcomeOf is what a trigger's outcome event (its type and data) says:
// advanced or completed, or a *RejectedError with the reason and the
// trigger the order expected.
func OutcomeOf(eventType string, data []byte) (TriggerOutcome, error) {
	switch eventType {
	case TypeOrderAdvanced:
		return OutcomeAdvanced, nil
	case TypeOrderCompleted:
		return OutcomeCompleted, nil
	case TypeTriggerRejected:
		var tr TriggerRejected
		if err := json.Unmarshal(data, &tr); err != nil {
			return "", fmt.Errorf("trigger rejected, the reason unreadable: %w", err)
		}
		return "", &RejectedError{Reason: tr.Reason, Expected: tr.Expected}
	}
	return "", fmt.Errorf("%s is not a trigger's outcome", eventType)
}

// IsTriggerOutcome reports whether events of type eventType are a
// trigger's outcome: the only events a trigger id causes. A supervisor's
// action names its request's key as its cause, which may be spelled like
// a trigger id.
func IsTriggerOutcome(eventType string) bool {
	switch eventType {
	case TypeOrderAdvanced, TypeOrderCompleted, TypeTriggerRejected:
		return true
	}
	return false
}

// OutcomeTrigger is the trigger key a trigger's outcome event (its type
// and data) answers. ok is false for any other event, and for an outcome
// whose data does not name its trigger.
func OutcomeTrigger(eventType string, data []byte) (trigger string, ok bool) {
	if !IsTriggerOutcome(eventType) {
		return "", false
	}
	var d struct {
		Trigger string `json:"trigger"`
	}
	if json.Unmarshal(data, &d) != nil || d.Trigger == "" {
		return "", false
	}
	return d.Trigger, true
}

// CheckOutcomeTrigger refuses (TriggerIDTaken) a trigger's outcome event,
// its type and data, that triggerID caused on the order as the id of
// another trigger key than trigger: an answer to a trigger sent with that
// id must not pass that event off as its own. Any other event is no error.
func CheckOutcomeTrigger(orderID, triggerID, trigger, eventType string, data []byte) error {
	first, ok := OutcomeTrigger(eventType, data)
	if !ok || first == trigger {
		return nil
	}
	outcome := OutcomeRejected
	switch eventType {
	case TypeOrderAdvanced:
		outcome = OutcomeAdvanced
	case TypeOrderCompleted:
		outcome = OutcomeCompleted
	}
	return TriggerIDTaken(orderID, triggerID, first, outcome, trigger)
}

// Order is one customer order moving through its order type's workflows.
type Order struct {
	root
	defs        Workflows // resolves pinned steps while applying events
	id          string
	orderTypeID string
	workflows   []string
	state       OrderState
	pos         Position
	steps       []Step                   // the steps of pos's pinned workflow version
	triggers    map[string]seenTrigger   // every trigger id the order has seen
	rejections  map[string]RejectedError // the triggers it rejected: why, and what it expected
}

// NewOrder returns an order with no history. defs resolves the steps of
// the workflow versions the order's events name; the order needs them to
// know which trigger its current step waits for.
func NewOrder(id string, defs Workflows) *Order {
	return &Order{id: id, defs: defs, triggers: map[string]seenTrigger{}}
}

// Exists reports whether the order was placed.
func (o *Order) Exists() bool { return o.version > 0 }

// Finished reports whether the order is completed or cancelled: no trigger
// moves it any more.
func (o *Order) Finished() bool { return o.state == StateCompleted || o.state == StateCancelled }

// seenTrigger is what a trigger id did to the order the first time, and
// the trigger key it came with.
type seenTrigger struct {
	outcome TriggerOutcome
	key     string
}

// TriggerOutcome is what a trigger id did to the order the first time,
// if the order has seen it.
func (o *Order) TriggerOutcome(triggerID string) (TriggerOutcome, bool) {
	t, seen := o.triggers[triggerID]
	return t.outcome, seen
}

// CheckTriggerID refuses a trigger id the order has already seen with
// another trigger key: an id names one trigger, so the same id sent for
// another worker action is a worker app's mistake, and treating it as a
// duplicate would drop that action without a word. The error matches
// ErrDuplicate. An id not seen, or seen with this key, is no error.
func (o *Order) CheckTriggerID(trigger, triggerID string) error {
	t, seen := o.triggers[triggerID]
	if !seen || t.key == trigger {
		return nil
	}
	return TriggerIDTaken(o.id, triggerID, t.key, t.outcome, trigger)
}

// TriggerIDTaken is the error for a trigger id sent for trigger when the
// order already has it as the id of trigger first, which had outcome
// (advanced, completed or rejected). It matches ErrDuplicate.
func TriggerIDTaken(orderID, triggerID, first string, outcome TriggerOutcome, trigger string) error {
	return &FieldError{Field: "trigger_id", Kind: ErrDuplicate, Reason: fmt.Sprintf(
		"%q is already the id of trigger %q on order %q (%s), so it cannot name trigger %q too; give each trigger an id of its own",
		triggerID, first, orderID, outcome, trigger)}
}

// OrderView is an order as it stands.
type OrderView struct {
	ID              string
	OrderTypeID     string
	State           OrderState
	Position        Position
	ExpectedTrigger string // "" when the order is not active or has ended
	Workflows       []string
	Version         uint64
}

// View is the order as it stands.
func (o *Order) View() OrderView {
	v := OrderView{ID: o.id, OrderTypeID: o.orderTypeID, State: o.state, Position: o.pos,
		Workflows: slices.Clone(o.workflows), Version: o.version}
	if o.state == StateActive || o.state == StateOnHold {
		v.ExpectedTrigger = o.expected()
	}
	return v
}

func (o *Order) expected() string {
	if o.pos.Step >= 0 && o.pos.Step < len(o.steps) {
		return o.steps[o.pos.Step].Trigger
	}
	return ""
}

// Place puts a new order in the first step of its order type's first
// workflow, pinning that workflow's current version. fulfillment chooses
// one of the order type's fulfillment workflows ("" for the default).
func (o *Order) Place(orderTypeID, fulfillment string, types OrderTypes, wfs Workflows) error {
	if o.Exists() {
		return kindErr(ErrDuplicate, "id", "order %q already exists", o.id)
	}
	if err := checkKey("id", o.id); err != nil {
		return err
	}
	if err := checkKey("order_type_id", orderTypeID); err != nil {
		return err
	}
	ot, ok := types.OrderType(orderTypeID)
	if !ok {
		return invalid("order_type_id", "unknown order type %q", orderTypeID)
	}
	if ot.Archived {
		return invalid("order_type_id", "order type %q is archived", orderTypeID)
	}
	if fulfillment != "" && !slices.Contains(ot.Fulfillment, fulfillment) {
		return invalid("fulfillment_workflow_id", "%q is not one of order type %q's fulfillment workflows %v", fulfillment, orderTypeID, ot.Fulfillment)
	}
	route := ot.Workflows(fulfillment)
	first, err := enter(route[0], wfs)
	if err != nil {
		return err
	}
	o.record(OrderPlaced{OrderTypeID: orderTypeID, To: first, Workflows: route})
	return nil
}

// ErrDefinitionMissing: a workflow the order needs is not known to the
// definitions it was given. It is not the caller's fault and records
// nothing: the definitions may lag, and a retry with fresher ones can
// succeed.
var ErrDefinitionMissing = errors.New("workflow definition not available")

// enter is the first step of a workflow's current version.
func enter(id string, wfs Workflows) (Position, error) {
	w, ok := wfs.Workflow(id)
	if !ok || len(w.Steps) == 0 {
		return Position{}, fmt.Errorf("%w: workflow %q", ErrDefinitionMissing, id)
	}
	return Position{WorkflowID: id, WorkflowVersion: w.Version, Step: 0, Status: w.Steps[0].Status}, nil
}

// TriggerReport is what a worker app says with a trigger besides its key
// and id: who it is, a note, and when the action happened by its clock
// (zero when it did not say). A trigger's outcome records all three.
type TriggerReport struct {
	Worker     string
	Note       string
	OccurredAt time.Time
}

// Check refuses a report that would not be recorded as said: a worker
// (CheckActorID) or a note (CheckText) against the rules, or a time that
// is not within years 0 to 9999 in UTC, which is what the outcome records
// and all that RFC 3339 can write ("9999-12-31T23:00:00-05:00" is
// already year 10000).
func (r TriggerReport) Check() error {
	if err := CheckActorID("worker", r.Worker); err != nil {
		return err
	}
	if y := r.OccurredAt.UTC().Year(); !r.OccurredAt.IsZero() && (y < 0 || y > 9999) {
		return invalid("occurred_at", "is year %d in UTC; a time from year 0 to 9999 in UTC is recorded", y)
	}
	return CheckText("note", r.Note, MaxDescriptionLen)
}

// ApplyTrigger lets a worker's trigger move the order on. It records
// OrderAdvanced, OrderCompleted or TriggerRejected; a trigger id the order
// has already seen records nothing and reports a duplicate, or, seen with
// another trigger key, an error matching ErrDuplicate (see CheckTriggerID).
func (o *Order) ApplyTrigger(trigger, triggerID string, rep TriggerReport, wfs Workflows) (TriggerResult, error) {
	if !o.Exists() {
		return TriggerResult{}, kindErr(ErrNotFound, "order", "no order %q", o.id)
	}
	if triggerID == "" {
		return TriggerResult{}, invalid("trigger_id", "is required")
	}
	if first, seen := o.triggers[triggerID]; seen {
		if err := o.CheckTriggerID(trigger, triggerID); err != nil {
			return TriggerResult{}, err
		}
		return TriggerResult{Outcome: OutcomeDuplicate, Original: first.outcome}, nil
	}
	// Checked once the id is known to be new: a trigger recorded before
	// these rules (a space in its id, say) is still its own duplicate.
	if err := ValidateTriggerID(triggerID); err != nil {
		return TriggerResult{}, err
	}
	if err := rep.Check(); err != nil {
		return TriggerResult{}, err
	}
	worker, note, at := rep.Worker, rep.Note, rep.OccurredAt.UTC()
	o.resolveSteps()
	reject := func(reason RejectReason) (TriggerResult, error) {
		exp := ""
		if reason == RejectUnexpectedTrigger || reason == RejectOnHold {
			exp = o.expected()
		}
		o.record(TriggerRejected{Trigger: trigger, TriggerID: triggerID, Worker: worker, Reason: reason, Expected: exp, Note: note, WorkerOccurredAt: at})
		return TriggerResult{Outcome: OutcomeRejected, Reason: reason, Expected: exp}, nil
	}
	if o.steps == nil && o.state == StateOnHold {
		return TriggerResult{}, fmt.Errorf("%w: workflow %q version %d", ErrDefinitionMissing, o.pos.WorkflowID, o.pos.WorkflowVersion)
	}
	switch o.state {
	case StateOnHold:
		return reject(RejectOnHold)
	case StateCompleted:
		return reject(RejectCompleted)
	case StateCancelled:
		return reject(RejectCancelled)
	}
	if o.steps == nil {
		return TriggerResult{}, fmt.Errorf("%w: workflow %q version %d", ErrDefinitionMissing, o.pos.WorkflowID, o.pos.WorkflowVersion)
	}
	if trigger != o.expected() {
		return reject(RejectUnexpectedTrigger)
	}
	from := o.pos
	if next := from.Step + 1; next < len(o.steps) {
		to := Position{WorkflowID: from.WorkflowID, WorkflowVersion: from.WorkflowVersion, Step: next, Status: o.steps[next].Status}
		o.record(OrderAdvanced{Trigger: trigger, TriggerID: triggerID, Worker: worker, From: from, To: to, Note: note, WorkerOccurredAt: at})
		return TriggerResult{Outcome: OutcomeAdvanced}, nil
	}
	i := slices.Index(o.workflows, from.WorkflowID)
	if i < 0 || i+1 >= len(o.workflows) {
		o.record(OrderCompleted{Trigger: trigger, TriggerID: triggerID, Worker: worker, From: from, Note: note, WorkerOccurredAt: at})
		return TriggerResult{Outcome: OutcomeCompleted}, nil
	}
	to, err := enter(o.workflows[i+1], wfs)
	if err != nil {
		return TriggerResult{}, err
	}
	o.record(OrderAdvanced{Trigger: trigger, TriggerID: triggerID, Worker: worker, From: from, To: to, Note: note, WorkerOccurredAt: at})
	return TriggerResult{Outcome: OutcomeAdvanced}, nil
}

func (o *Order) supervisable() error {
	if !o.Exists() {
		return kindErr(ErrNotFound, "order", "no order %q", o.id)
	}
	return nil
}

func checkReason(reason string, required bool) error {
	if required && reason == "" {
		return invalid("reason", "is required")
	}
	return CheckText("reason", reason, MaxDescriptionLen)
}

// Hold pauses an active order: triggers are rejected until it resumes.
func (o *Order) Hold(reason string) error {
	if err := o.supervisable(); err != nil {
		return err
	}
	if err := checkReason(reason, false); err != nil {
		return err
	}
	if o.state != StateActive {
		return kindErr(ErrConflict, "state", "only an active order can be held; this one is %s", o.state)
	}
	o.record(OrderHeld{Reason: reason})
	return nil
}

// Resume lets a held order move on again.
func (o *Order) Resume(reason string) error {
	if err := o.supervisable(); err != nil {
		return err
	}
	if err := checkReason(reason, false); err != nil {
		return err
	}
	if o.state != StateOnHold {
		return kindErr(ErrConflict, "state", "only a held order can be resumed; this one is %s", o.state)
	}
	o.record(OrderResumed{Reason: reason})
	return nil
}

// Cancel ends an active or held order.
func (o *Order) Cancel(reason string) error {
	if err := o.supervisable(); err != nil {
		return err
	}
	if err := checkReason(reason, false); err != nil {
		return err
	}
	if o.state != StateActive && o.state != StateOnHold {
		return kindErr(ErrConflict, "state", "a %s order cannot be cancelled", o.state)
	}
	o.record(OrderCancelled{Reason: reason})
	return nil
}

// Move puts an active or held order at a step of one of its workflows,
// with a reason. Within the current workflow the pinned version stays;
// another workflow of the route is entered at its current version.
func (o *Order) Move(workflowID string, step int, reason string, wfs Workflows) error {
	if err := o.supervisable(); err != nil {
		return err
	}
	if err := checkReason(reason, true); err != nil {
		return err
	}
	if o.state != StateActive && o.state != StateOnHold {
		return kindErr(ErrConflict, "state", "a %s order cannot be moved", o.state)
	}
	if !slices.Contains(o.workflows, workflowID) {
		return invalid("workflow_id", "%q is not one of the order's workflows %v", workflowID, o.workflows)
	}
	var w WorkflowState
	var ok bool
	if workflowID == o.pos.WorkflowID {
		w, ok = wfs.WorkflowVersion(workflowID, o.pos.WorkflowVersion)
	} else {
		w, ok = wfs.Workflow(workflowID)
	}
	if !ok {
		return invalid("workflow_id", "unknown workflow %q", workflowID)
	}
	if step < 0 || step >= len(w.Steps) {
		return invalid("step", "%d is not a step of workflow %q version %d (0 to %d)", step, workflowID, w.Version, len(w.Steps)-1)
	}
	to := Position{WorkflowID: workflowID, WorkflowVersion: w.Version, Step: step, Status: w.Steps[step].Status}
	if to == o.pos {
		return nil
	}
	o.record(OrderMoved{From: o.pos, To: to, Reason: reason})
	return nil
}

// Migrate moves an in-flight order to a newer version of the workflow it
// is in, at the step with the same status. It is refused when the new
// version no longer has that status.
func (o *Order) Migrate(workflowID string, toVersion uint64, reason string, wfs Workflows) error {
	if err := o.supervisable(); err != nil {
		return err
	}
	if err := checkReason(reason, false); err != nil {
		return err
	}
	if o.state != StateActive && o.state != StateOnHold {
		return kindErr(ErrConflict, "state", "a %s order cannot be migrated", o.state)
	}
	if workflowID != o.pos.WorkflowID {
		return invalid("workflow_id", "the order is in workflow %q, not %q", o.pos.WorkflowID, workflowID)
	}
	if toVersion <= o.pos.WorkflowVersion {
		return invalid("to_version", "the order already runs version %d; migrate to a newer one", o.pos.WorkflowVersion)
	}
	w, ok := wfs.WorkflowVersion(workflowID, toVersion)
	if !ok {
		return invalid("to_version", "workflow %q has no version %d", workflowID, toVersion)
	}
	step := slices.IndexFunc(w.Steps, func(s Step) bool { return s.Status == o.pos.Status })
	if step < 0 {
		return invalid("to_version", "version %d of workflow %q has no step in status %q", toVersion, workflowID, o.pos.Status)
	}
	o.record(OrderMigrated{From: o.pos, To: Position{WorkflowID: workflowID, WorkflowVersion: toVersion, Step: step, Status: o.pos.Status}, Reason: MigrationReason(reason, toVersion)})
	return nil
}

// MigrationReason is the reason OrderMigrated records for a migration to
// toVersion asked with reason: the reason, or one naming the version.
func MigrationReason(reason string, toVersion uint64) string {
	if reason == "" {
		return fmt.Sprintf("migrated to version %d", toVersion)
	}
	return reason
}

func (o *Order) record(e Event) {
	_ = o.Apply(e)
	o.changes = append(o.changes, e)
}

// resolveSteps looks the current position's pinned steps up again if
// they were not known when the order entered it: an order kept in memory
// meets definitions that came after it was read.
func (o *Order) resolveSteps() {
	if o.steps == nil && o.defs != nil {
		if w, ok := o.defs.WorkflowVersion(o.pos.WorkflowID, o.pos.WorkflowVersion); ok {
			o.steps = w.Steps
		}
	}
}

// enterPosition moves the order to p and resolves p's pinned steps.
func (o *Order) enterPosition(p Position) {
	if p.WorkflowID != o.pos.WorkflowID || p.WorkflowVersion != o.pos.WorkflowVersion || o.steps == nil {
		o.steps = nil
		if w, ok := o.defs.WorkflowVersion(p.WorkflowID, p.WorkflowVersion); ok {
			o.steps = w.Steps
		}
	}
	o.pos = p
}

// Rejection is why the order rejected a trigger id, as its
// TriggerRejected event records it, if it did: a trigger sent again with
// that id is answered with the same rejection.
func (o *Order) Rejection(triggerID string) (RejectedError, bool) {
	r, ok := o.rejections[triggerID]
	return r, ok
}

// Apply folds one event into the order: the only place its state changes.
func (o *Order) Apply(e Event) error {
	switch e := e.(type) {
	case OrderPlaced:
		o.orderTypeID, o.workflows, o.state = e.OrderTypeID, slices.Clone(e.Workflows), StateActive
		o.enterPosition(e.To)
	case OrderAdvanced:
		o.triggers[e.TriggerID] = seenTrigger{OutcomeAdvanced, e.Trigger}
		o.enterPosition(e.To)
	case OrderCompleted:
		o.triggers[e.TriggerID] = seenTrigger{OutcomeCompleted, e.Trigger}
		o.state = StateCompleted
	case TriggerRejected:
		o.triggers[e.TriggerID] = seenTrigger{OutcomeRejected, e.Trigger}
		if o.rejections == nil {
			o.rejections = map[string]RejectedError{}
		}
		o.rejections[e.TriggerID] = RejectedError{Reason: e.Reason, Expected: e.Expected}
	case OrderHeld:
		o.state = StateOnHold
	case OrderResumed:
		o.state = StateActive
	case OrderCancelled:
		o.state = StateCancelled
	case OrderMoved:
		o.enterPosition(e.To)
	case OrderMigrated:
		o.enterPosition(e.To)
	default:
		return unexpected("order", e)
	}
	o.version++
	return nil
}
