package domain

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Category is a status's category. The zero value is not valid; values
// come from ParseCategory.
type Category struct{ s string }

// The categories of the contract.
var (
	CategoryDraft      = Category{"draft"}
	CategoryPending    = Category{"pending"}
	CategoryInProgress = Category{"in_progress"}
	CategoryReady      = Category{"ready"}
	CategoryCompleted  = Category{"completed"}
)

var categories = []Category{CategoryDraft, CategoryPending, CategoryInProgress, CategoryReady, CategoryCompleted}

// Categories lists the categories of the contract.
func Categories() []Category { return slices.Clone(categories) }

// ParseCategory reads a category name.
func ParseCategory(s string) (Category, error) {
	for _, c := range categories {
		if c.s == s {
			return c, nil
		}
	}
	return Category{}, invalid("category", "%q is not one of draft, pending, in_progress, ready, completed", s)
}

func (c Category) String() string { return c.s }

// IsZero reports an unset category.
func (c Category) IsZero() bool { return c.s == "" }

// MarshalJSON writes the category's name.
func (c Category) MarshalJSON() ([]byte, error) { return json.Marshal(c.s) }

// UnmarshalJSON accepts only valid categories.
func (c *Category) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return notAString("category", b)
	}
	v, err := ParseCategory(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// WorkflowType is the slot a workflow fills in an order type.
type WorkflowType struct{ s string }

// The workflow types of the contract.
var (
	WorkflowIntake      = WorkflowType{"intake"}
	WorkflowProduction  = WorkflowType{"production"}
	WorkflowFulfillment = WorkflowType{"fulfillment"}
)

var workflowTypes = []WorkflowType{WorkflowIntake, WorkflowProduction, WorkflowFulfillment}

// WorkflowTypes lists the workflow types of the contract.
func WorkflowTypes() []WorkflowType { return slices.Clone(workflowTypes) }

// ParseWorkflowType reads a workflow type.
func ParseWorkflowType(s string) (WorkflowType, error) {
	for _, t := range workflowTypes {
		if t.s == s {
			return t, nil
		}
	}
	return WorkflowType{}, invalid("type", "%q is not one of intake, production, fulfillment", s)
}

func (t WorkflowType) String() string { return t.s }

// IsZero reports an unset type.
func (t WorkflowType) IsZero() bool { return t.s == "" }

// MarshalJSON writes the type's name.
func (t WorkflowType) MarshalJSON() ([]byte, error) { return json.Marshal(t.s) }

// UnmarshalJSON accepts only valid types.
func (t *WorkflowType) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return notAString("type", b)
	}
	v, err := ParseWorkflowType(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// FulfillmentMethod is how a fulfillment workflow hands the order over.
// The zero value means none (for intake and production workflows).
type FulfillmentMethod struct{ s string }

// The fulfillment methods of the contract.
var (
	FulfillmentStorePickup  = FulfillmentMethod{"store_pickup"}
	FulfillmentHomeDelivery = FulfillmentMethod{"home_delivery"}
	FulfillmentOnSite       = FulfillmentMethod{"on_site"}
)

var fulfillmentMethods = []FulfillmentMethod{FulfillmentStorePickup, FulfillmentHomeDelivery, FulfillmentOnSite}

// FulfillmentMethods lists the fulfillment methods of the contract (none
// is not one of them).
func FulfillmentMethods() []FulfillmentMethod { return slices.Clone(fulfillmentMethods) }

// ParseFulfillmentMethod reads a method; "" is none.
func ParseFulfillmentMethod(s string) (FulfillmentMethod, error) {
	if s == "" {
		return FulfillmentMethod{}, nil
	}
	for _, m := range fulfillmentMethods {
		if m.s == s {
			return m, nil
		}
	}
	return FulfillmentMethod{}, invalid("fulfillment_method", "%q is not one of store_pickup, home_delivery, on_site", s)
}

func (m FulfillmentMethod) String() string { return m.s }

// IsZero reports no method.
func (m FulfillmentMethod) IsZero() bool { return m.s == "" }

// MarshalJSON writes the method's name, or "" for none.
func (m FulfillmentMethod) MarshalJSON() ([]byte, error) { return json.Marshal(m.s) }

// UnmarshalJSON accepts only valid methods (or "" / null for none).
func (m *FulfillmentMethod) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = FulfillmentMethod{}
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return notAString("fulfillment_method", b)
	}
	v, err := ParseFulfillmentMethod(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// notAString refuses the JSON value b (valid JSON, as encoding/json hands
// it to UnmarshalJSON) of an enumeration's field, naming the field and
// the kind of value sent, in encoding/json's words. encoding/json's own
// error, returned from UnmarshalJSON, would name neither the field nor
// where it is (an API answering "the body is a JSON number").
func notAString(field string, b []byte) error {
	kind := "number"
	switch b = bytes.TrimLeft(b, " \t\r\n"); {
	case len(b) == 0:
		kind = "value"
	case b[0] == '[':
		kind = "array"
	case b[0] == '{':
		kind = "object"
	case b[0] == 't' || b[0] == 'f':
		kind = "bool"
	}
	return invalid(field, "a JSON %s where a string belongs", kind)
}
