package eventstore

import (
	"errors"
	"fmt"
	"strings"
)

// SubjectRoot is the first token of every orderflow subject.
const SubjectRoot = "orderflow"

// DefaultTenant is used when no tenant is named.
const DefaultTenant = "default"

// Stream names of the contract.
const (
	StreamDefinitions = "ORDERFLOW_DEFINITIONS"
	StreamOrders      = "ORDERFLOW_ORDERS"
	StreamTriggers    = "ORDERFLOW_TRIGGERS"
)

// OrderAggregateType is the aggregate type whose events live in
// ORDERFLOW_ORDERS; every other aggregate type is a definition kind and
// lives in ORDERFLOW_DEFINITIONS under def.<kind>.
const OrderAggregateType = "order"

// Aggregate addresses one aggregate's event history: its own subject filter
// within its stream.
//
//	order:       orderflow.<tenant>.order.<id>.<EventType>
//	definitions: orderflow.<tenant>.def.<type>.<id>.<EventType>
type Aggregate struct {
	Tenant string
	Type   string
	ID     string
}

// Validate checks every part of the address is a safe subject token.
func (a Aggregate) Validate() error {
	if validToken(a.Tenant) && validToken(a.Type) && validToken(a.ID) {
		return nil // the common case, without building field names
	}
	return errors.Join(
		ValidateToken("tenant", a.Tenant),
		ValidateToken("aggregate type", a.Type),
		ValidateToken(a.Type+" id", a.ID),
	)
}

// Stream is the stream that holds the aggregate's events.
func (a Aggregate) Stream() string {
	if a.Type == OrderAggregateType {
		return StreamOrders
	}
	return StreamDefinitions
}

// prefix is the subject without the event type token.
func (a Aggregate) prefix() string {
	var b strings.Builder
	b.Grow(len(SubjectRoot) + len(a.Tenant) + len(a.Type) + len(a.ID) + 8)
	b.WriteString(SubjectRoot)
	b.WriteByte('.')
	b.WriteString(a.Tenant)
	if a.Type == OrderAggregateType {
		b.WriteString(".order.")
	} else {
		b.WriteString(".def.")
		b.WriteString(a.Type)
		b.WriteByte('.')
	}
	b.WriteString(a.ID)
	return b.String()
}

// Filter is the subject filter that matches every event of the aggregate
// and nothing else; it is also the subject of the concurrency check.
func (a Aggregate) Filter() string { return a.prefix() + ".>" }

// Subject is where an event of the given type is stored.
func (a Aggregate) Subject(eventType string) string { return a.prefix() + "." + eventType }

// DefinitionsFilter matches every definition event of a tenant (its status
// and trigger libraries, workflows and order types).
func DefinitionsFilter(tenant string) string { return SubjectRoot + "." + tenant + ".def.>" }

// TriggerSubject is the subject a worker app publishes a trigger to.
func TriggerSubject(tenant, orderID, triggerKey string) string {
	return SubjectRoot + "." + tenant + ".trigger." + orderID + "." + triggerKey
}

// ParseTriggerSubject splits a trigger subject into tenant, order id and
// trigger key.
func ParseTriggerSubject(subject string) (tenant, orderID, triggerKey string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 || parts[0] != SubjectRoot || parts[2] != "trigger" {
		return "", "", "", fmt.Errorf("%w: %q is not a trigger subject", ErrInvalidToken, subject)
	}
	return parts[1], parts[3], parts[4], nil
}
