package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Event is one fact recorded by an aggregate.
type Event interface {
	// EventType is the event's name on the wire: the last subject token
	// and the envelope's type. Renaming one is a breaking change.
	EventType() string
}

// Event type names. They are the contract: explicit constants, never
// derived from Go type names.
const (
	TypeStatusAdded         = "StatusAdded"
	TypeStatusRenamed       = "StatusRenamed"
	TypeStatusRecategorized = "StatusRecategorized"
	TypeStatusArchived      = "StatusArchived"

	TypeTriggerAdded    = "TriggerAdded"
	TypeTriggerRenamed  = "TriggerRenamed"
	TypeTriggerArchived = "TriggerArchived"

	TypeWorkflowCreated       = "WorkflowCreated"
	TypeWorkflowRenamed       = "WorkflowRenamed"
	TypeWorkflowTypeChanged   = "WorkflowTypeChanged"
	TypeWorkflowStepAdded     = "WorkflowStepAdded"
	TypeWorkflowStepRemoved   = "WorkflowStepRemoved"
	TypeWorkflowStepMoved     = "WorkflowStepMoved"
	TypeWorkflowStepsReplaced = "WorkflowStepsReplaced"
	TypeWorkflowArchived      = "WorkflowArchived"

	TypeOrderTypeCreated  = "OrderTypeCreated"
	TypeOrderTypeChanged  = "OrderTypeChanged"
	TypeOrderTypeArchived = "OrderTypeArchived"
)

// Aggregate types: the envelope's aggregate_type and the subject's kind.
const (
	AggregateStatuses  = "statuses"
	AggregateTriggers  = "triggers"
	AggregateWorkflow  = "workflow"
	AggregateOrderType = "ordertype"
	AggregateOrder     = "order"
)

// LibraryID is the id of a tenant's status library and trigger library:
// one of each per tenant, so key and name uniqueness is decided inside one
// aggregate.
const LibraryID = "library"

// Status library events.
type (
	StatusAdded struct {
		Key      string   `json:"key"`
		Name     string   `json:"name"`
		Category Category `json:"category"`
	}
	StatusRenamed struct {
		Key  string `json:"key"`
		Name string `json:"name"`
	}
	StatusRecategorized struct {
		Key      string   `json:"key"`
		Category Category `json:"category"`
	}
	StatusArchived struct {
		Key string `json:"key"`
	}
)

// Trigger library events.
type (
	TriggerAdded struct {
		Key         string `json:"key"`
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	TriggerRenamed struct {
		Key         string `json:"key"`
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	TriggerArchived struct {
		Key string `json:"key"`
	}
)

// Step is one step of a workflow: the status the order is in, and the
// trigger that moves it to the next step.
type Step struct {
	Status  string `json:"status"`
	Trigger string `json:"trigger"`
}

// Workflow events.
type (
	WorkflowCreated struct {
		ID                string            `json:"id"`
		Name              string            `json:"name"`
		Type              WorkflowType      `json:"type"`
		FulfillmentMethod FulfillmentMethod `json:"fulfillment_method"`
		Steps             []Step            `json:"steps"`
	}
	WorkflowRenamed struct {
		Name string `json:"name"`
	}
	// WorkflowTypeChanged is not in the first contract's list: changing a
	// workflow's type (and its fulfillment method with it) is an edit the
	// workflow designer needs, and no listed event carries it.
	WorkflowTypeChanged struct {
		Type              WorkflowType      `json:"type"`
		FulfillmentMethod FulfillmentMethod `json:"fulfillment_method"`
	}
	WorkflowStepAdded struct {
		Position int  `json:"position"`
		Step     Step `json:"step"`
	}
	WorkflowStepRemoved struct {
		Index int  `json:"index"`
		Step  Step `json:"step"`
	}
	WorkflowStepMoved struct {
		From int `json:"from"`
		To   int `json:"to"`
	}
	WorkflowStepsReplaced struct {
		Steps []Step `json:"steps"`
	}
	WorkflowArchived struct{}
)

// Order type events. Changed carries the whole new definition.
type (
	OrderTypeCreated struct {
		ID          string   `json:"id"`
		Name        string   `json:"name"`
		Intake      string   `json:"intake,omitempty"`
		Production  string   `json:"production,omitempty"`
		Fulfillment []string `json:"fulfillment"`
	}
	OrderTypeChanged struct {
		Name        string   `json:"name"`
		Intake      string   `json:"intake,omitempty"`
		Production  string   `json:"production,omitempty"`
		Fulfillment []string `json:"fulfillment"`
	}
	OrderTypeArchived struct{}
)

func (StatusAdded) EventType() string           { return TypeStatusAdded }
func (StatusRenamed) EventType() string         { return TypeStatusRenamed }
func (StatusRecategorized) EventType() string   { return TypeStatusRecategorized }
func (StatusArchived) EventType() string        { return TypeStatusArchived }
func (TriggerAdded) EventType() string          { return TypeTriggerAdded }
func (TriggerRenamed) EventType() string        { return TypeTriggerRenamed }
func (TriggerArchived) EventType() string       { return TypeTriggerArchived }
func (WorkflowCreated) EventType() string       { return TypeWorkflowCreated }
func (WorkflowRenamed) EventType() string       { return TypeWorkflowRenamed }
func (WorkflowTypeChanged) EventType() string   { return TypeWorkflowTypeChanged }
func (WorkflowStepAdded) EventType() string     { return TypeWorkflowStepAdded }
func (WorkflowStepRemoved) EventType() string   { return TypeWorkflowStepRemoved }
func (WorkflowStepMoved) EventType() string     { return TypeWorkflowStepMoved }
func (WorkflowStepsReplaced) EventType() string { return TypeWorkflowStepsReplaced }
func (WorkflowArchived) EventType() string      { return TypeWorkflowArchived }
func (OrderTypeCreated) EventType() string      { return TypeOrderTypeCreated }
func (OrderTypeChanged) EventType() string      { return TypeOrderTypeChanged }
func (OrderTypeArchived) EventType() string     { return TypeOrderTypeArchived }

// registry maps every event type name to its decoder. It is a plain map
// literal: no init-time registration, no names derived by reflection.
var registry = map[string]func([]byte) (Event, error){
	TypeStatusAdded:           decodeAs[StatusAdded],
	TypeStatusRenamed:         decodeAs[StatusRenamed],
	TypeStatusRecategorized:   decodeAs[StatusRecategorized],
	TypeStatusArchived:        decodeAs[StatusArchived],
	TypeTriggerAdded:          decodeAs[TriggerAdded],
	TypeTriggerRenamed:        decodeAs[TriggerRenamed],
	TypeTriggerArchived:       decodeAs[TriggerArchived],
	TypeWorkflowCreated:       decodeAs[WorkflowCreated],
	TypeWorkflowRenamed:       decodeAs[WorkflowRenamed],
	TypeWorkflowTypeChanged:   decodeAs[WorkflowTypeChanged],
	TypeWorkflowStepAdded:     decodeAs[WorkflowStepAdded],
	TypeWorkflowStepRemoved:   decodeAs[WorkflowStepRemoved],
	TypeWorkflowStepMoved:     decodeAs[WorkflowStepMoved],
	TypeWorkflowStepsReplaced: decodeAs[WorkflowStepsReplaced],
	TypeWorkflowArchived:      decodeAs[WorkflowArchived],
	TypeOrderTypeCreated:      decodeAs[OrderTypeCreated],
	TypeOrderTypeChanged:      decodeAs[OrderTypeChanged],
	TypeOrderTypeArchived:     decodeAs[OrderTypeArchived],

	TypeOrderPlaced:     fastOr(readPlaced),
	TypeOrderAdvanced:   fastOr(readAdvanced),
	TypeOrderCompleted:  fastOr(readCompleted),
	TypeTriggerRejected: decodeAs[TriggerRejected],
	TypeOrderHeld:       decodeAs[OrderHeld],
	TypeOrderResumed:    decodeAs[OrderResumed],
	TypeOrderCancelled:  decodeAs[OrderCancelled],
	TypeOrderMoved:      decodeAs[OrderMoved],
	TypeOrderMigrated:   decodeAs[OrderMigrated],
}

func decodeAs[E Event](data []byte) (Event, error) {
	var e E
	if len(data) > 0 && !bytes.Equal(data, []byte("null")) {
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// EventTypes lists every registered event type name.
func EventTypes() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	return out
}

// DecodeEvent turns a stored event's type and data back into its struct.
func DecodeEvent(eventType string, data []byte) (Event, error) {
	decode, ok := registry[eventType]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", eventType)
	}
	ev, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", eventType, err)
	}
	return ev, nil
}
