package handlers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// schemaSet makes the OpenAPI document's JSON Schemas from the Go types
// the handlers decode requests into and answer with, so the document
// says what the server reads and writes, and cannot drift from it.
//
// Requests: a field is optional unless requiredFields names it (the
// handler refuses a body without it, or with it empty or null), and no
// other field is allowed (decodeBody refuses unknown fields); null is
// "not given", as a PATCH body reads it. Answers: a field is always
// there unless its JSON tag says omitempty or omitzero; a pointer may be
// null; other fields may be added later, so answers do not forbid them.
// A type named in componentNames, and an event's data (named after its
// type), is a component of its own, referred to by $ref; an Event's data
// is described by its type (if/then, JSON Schema 2020-12).
type schemaSet struct {
	components map[string]any
}

// componentNames are the answer types a generated client names: the
// resources and their parts.
var componentNames = map[reflect.Type]string{
	reflect.TypeFor[domain.Status]():       "Status",
	reflect.TypeFor[domain.Trigger]():      "Trigger",
	reflect.TypeFor[WorkflowJSON]():        "Workflow",
	reflect.TypeFor[StepJSON]():            "WorkflowStep",
	reflect.TypeFor[OrderTypeJSON]():       "OrderType",
	reflect.TypeFor[OrderJSON]():           "Order",
	reflect.TypeFor[PositionJSON]():        "Position",
	reflect.TypeFor[eventstore.Envelope](): "Event",
	reflect.TypeFor[eventstore.Actor]():    "Actor",
	reflect.TypeFor[BoardItem]():           "BoardItem",
	reflect.TypeFor[triggerAnswer]():       "TriggerAnswer",
	reflect.TypeFor[historyJSON]():         "History",
	reflect.TypeFor[ProjectionStatus]():    "ProjectionStatus",
	reflect.TypeFor[RebuildReport]():       "RebuildReport",
	reflect.TypeFor[domain.Position]():     "EventPosition",
	reflect.TypeFor[Problem]():             "Problem",
	reflect.TypeFor[healthStatus]():        "HealthStatus",
}

// requiredFields are the fields a request body must give, not empty:
// without one the route answers 400 and does nothing.
var requiredFields = map[reflect.Type][]string{
	reflect.TypeFor[statusBody]():       {"name", "category"},
	reflect.TypeFor[triggerBody]():      {"name"},
	reflect.TypeFor[workflowBody]():     {"name", "type", "steps"},
	reflect.TypeFor[domain.Step]():      {"status", "trigger"},
	reflect.TypeFor[stepsBody]():        {"steps"},
	reflect.TypeFor[stepBody]():         {"status", "trigger"},
	reflect.TypeFor[moveBody]():         {"from", "to"},
	reflect.TypeFor[stepTriggerBody]():  {"trigger"},
	reflect.TypeFor[orderTypeBody]():    {"name"},
	reflect.TypeFor[placeBody]():        {"order_type_id"},
	reflect.TypeFor[triggerRequest]():   {"trigger"},
	reflect.TypeFor[moveOrderBody]():    {"workflow_id", "step", "reason"},
	reflect.TypeFor[migrateOrderBody](): {"workflow_id", "to_version"},
}

// tokenFields are the request fields that name a key or an id: one
// subject token (eventstore.TokenPattern), or, where the field is
// optional, "" (a key derived from the name, the default fulfillment, no
// intake); a list holds tokens.
var tokenFields = map[reflect.Type][]string{
	reflect.TypeFor[statusBody]():       {"key"},
	reflect.TypeFor[triggerBody]():      {"key"},
	reflect.TypeFor[domain.Step]():      {"status", "trigger"},
	reflect.TypeFor[stepBody]():         {"status", "trigger"},
	reflect.TypeFor[stepTriggerBody]():  {"trigger"},
	reflect.TypeFor[orderTypeBody]():    {"intake", "production", "fulfillment"},
	reflect.TypeFor[orderTypePatch]():   {"intake", "production", "fulfillment"},
	reflect.TypeFor[placeBody]():        {"id", "order_type_id", "fulfillment_workflow_id"},
	reflect.TypeFor[triggerRequest]():   {"trigger"},
	reflect.TypeFor[moveOrderBody]():    {"workflow_id"},
	reflect.TypeFor[migrateOrderBody](): {"workflow_id"},
}

// schemaEnums are the values of the contract's enumerations.
var schemaEnums = map[reflect.Type][]string{
	reflect.TypeFor[domain.Category]():     names(domain.Categories()...),
	reflect.TypeFor[domain.WorkflowType](): names(domain.WorkflowTypes()...),
	// "" is none, for intake and production workflows.
	reflect.TypeFor[domain.FulfillmentMethod](): names(append(domain.FulfillmentMethods(), domain.FulfillmentMethod{})...),
	reflect.TypeFor[domain.OrderState]():        names(domain.StateActive, domain.StateOnHold, domain.StateCompleted, domain.StateCancelled),
	// A rejection is a trigger_rejected problem, not an outcome answered.
	reflect.TypeFor[domain.TriggerOutcome](): names(domain.OutcomeAdvanced, domain.OutcomeCompleted, domain.OutcomeDuplicate),
	reflect.TypeFor[eventstore.ActorKind]():  names(eventstore.ActorWorker, eventstore.ActorUser, eventstore.ActorSystem),
	reflect.TypeFor[domain.RejectReason](): names(domain.RejectUnexpectedTrigger, domain.RejectOnHold, domain.RejectCompleted,
		domain.RejectCancelled),
}

// optionalBodies are the request bodies a route takes or goes without.
var optionalBodies = map[reflect.Type]bool{
	reflect.TypeFor[reasonBody](): true, // a hold, resume or cancel
}

func names[T any](values ...T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = fmt.Sprint(v)
	}
	return out
}

// request is the schema of a request body of v's type.
func (s *schemaSet) request(v any) map[string]any { return s.of(reflect.TypeOf(v), true) }

// answer is the schema of an answer of v's type.
func (s *schemaSet) answer(v any) map[string]any { return s.of(reflect.TypeOf(v), false) }

func (s *schemaSet) of(t reflect.Type, request bool) map[string]any {
	if values, ok := schemaEnums[t]; ok {
		schema := map[string]any{"type": "string", "enum": values}
		if t == reflect.TypeFor[domain.FulfillmentMethod]() && request {
			return nullable(schema) // null is none too
		}
		return schema
	}
	switch t {
	case reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case reflect.TypeFor[json.RawMessage]():
		return map[string]any{"type": "object", "description": "the event's own fields (DESIGN.md names them per event type)"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(s.of(t.Elem(), request))
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": s.of(t.Elem(), request)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.of(t.Elem(), request)}
	case reflect.Struct:
		name, named := componentNames[t]
		if ev, ok := reflect.Zero(t).Interface().(domain.Event); ok {
			name, named = ev.EventType()+"Data", true // an event's data
		}
		if !named || request {
			return s.object(t, request)
		}
		if _, made := s.components[name]; !made {
			s.components[name] = map[string]any{} // taken, should t refer to itself
			schema := s.object(t, request)
			if t == reflect.TypeFor[eventstore.Envelope]() {
				schema["allOf"] = s.eventData()
			}
			s.components[name] = schema
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	panic(fmt.Sprintf("openapi: no schema for %s", t))
}

// eventData says, for each order event type, what an Event's data holds.
func (s *schemaSet) eventData() []any {
	var out []any
	for _, ev := range orderEvents {
		out = append(out, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": ev.EventType()}}, "required": []string{"type"}},
			"then": map[string]any{"properties": map[string]any{"data": s.answer(ev)}},
		})
	}
	return out
}

// object is a struct's schema, its properties named as encoding/json
// names them.
func (s *schemaSet) object(t reflect.Type, request bool) map[string]any {
	props := map[string]map[string]any{}
	var required []string
	for _, f := range reflect.VisibleFields(t) {
		if f.Anonymous || !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		must := request && slices.Contains(requiredFields[t], name)
		if must && ft.Kind() == reflect.Pointer {
			ft = ft.Elem() // given, so not null
		}
		props[name] = s.of(ft, request)
		switch {
		case request && slices.Contains(tokenFields[t], name):
			token(props[name], must)
		case must && ft.Kind() == reflect.String:
			props[name]["minLength"] = 1
		}
		if must && ft.Kind() == reflect.Slice {
			props[name]["minItems"] = 1
		}
		optional := slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool { return o == "omitempty" || o == "omitzero" })
		if must || (!request && !optional) {
			required = append(required, name)
		}
	}
	schema := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		schema["required"] = required
	}
	if request {
		schema["additionalProperties"] = false
	}
	return schema
}

// token makes a string's schema (or a list's items') that of a key or an
// id; one that is not required may be "".
func token(schema map[string]any, required bool) {
	if items, ok := schema["items"].(map[string]any); ok {
		token(items, true)
		return
	}
	pattern := eventstore.TokenPattern
	if !required {
		pattern = "^(" + strings.TrimSuffix(strings.TrimPrefix(pattern, "^"), "$") + ")?$"
	}
	schema["pattern"], schema["maxLength"] = pattern, eventstore.MaxTokenLen
}

// nullable lets a schema take null as well (JSON Schema 2020-12, as
// OpenAPI 3.1 has it).
func nullable(schema map[string]any) map[string]any {
	if typ, ok := schema["type"].(string); ok {
		out := map[string]any{}
		for k, v := range schema {
			out[k] = v
		}
		out["type"] = []string{typ, "null"}
		if values, ok := schema["enum"].([]string); ok {
			enum := make([]any, 0, len(values)+1)
			for _, v := range values {
				enum = append(enum, v)
			}
			out["enum"] = append(enum, nil)
		}
		return out
	}
	return map[string]any{"anyOf": []any{schema, map[string]any{"type": "null"}}}
}
