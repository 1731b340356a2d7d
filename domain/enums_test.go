package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

// The contract's enumerations read from JSON only the names the contract
// lists, and write them back as they were read. A fulfillment method may
// be none ("" or null); a category and a workflow type may not. Anything
// else is refused with ErrInvalid naming the field: another name (with
// the names it takes), or a value that is not a string (with its kind).
func TestEnumsInJSON(t *testing.T) {
	category, workflowType, method := readBack[domain.Category], readBack[domain.WorkflowType], readBack[domain.FulfillmentMethod]
	for _, tc := range []struct {
		decode func(string) (string, error)
		in     string
		want   string // the value written back, or what the error says
		bad    bool
	}{
		{category, `"in_progress"`, `"in_progress"`, false},
		{category, `"completed"`, `"completed"`, false},
		{category, `"done"`, `category: "done" is not one of draft, pending, in_progress, ready, completed`, true},
		{category, `""`, `category: "" is not one of`, true},
		{category, `null`, `category: "" is not one of`, true},
		{category, `3`, `category: a JSON number where a string belongs`, true},
		{category, `{"s": "draft"}`, `category: a JSON object where a string belongs`, true},
		{workflowType, `"fulfillment"`, `"fulfillment"`, false},
		{workflowType, `"Intake"`, `type: "Intake" is not one of intake, production, fulfillment`, true},
		{workflowType, `["intake"]`, `type: a JSON array where a string belongs`, true},
		{method, `"home_delivery"`, `"home_delivery"`, false},
		{method, `"on_site"`, `"on_site"`, false},
		{method, `""`, `""`, false},
		{method, `null`, `""`, false},
		{method, `"drone"`, `fulfillment_method: "drone" is not one of store_pickup, home_delivery, on_site`, true},
		{method, `true`, `fulfillment_method: a JSON bool where a string belongs`, true},
	} {
		value, err := tc.decode(tc.in)
		switch {
		case !tc.bad && (err != nil || value != tc.want):
			t.Errorf("%s: got %s, %v; want %s", tc.in, value, err, tc.want)
		case tc.bad && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v; want an error saying %q", tc.in, err, tc.want)
		case tc.bad && !errors.Is(err, domain.ErrInvalid):
			t.Errorf("%s: %v is not ErrInvalid", tc.in, err)
		}
	}
	// Every name the contract lists reads back as itself (none is not
	// listed).
	parsesBack(t, domain.Categories(), domain.ParseCategory)
	parsesBack(t, domain.WorkflowTypes(), domain.ParseWorkflowType)
	parsesBack(t, domain.FulfillmentMethods(), domain.ParseFulfillmentMethod)
}

// readBack decodes in as a T and encodes it again: what MarshalJSON
// writes back, and UnmarshalJSON's error.
func readBack[T any](in string) (string, error) {
	var v T
	err := json.Unmarshal([]byte(in), &v)
	out, _ := json.Marshal(v)
	return string(out), err
}

// parsesBack checks that each listed value, by its name, parses back to
// itself, and that none is unnamed.
func parsesBack[T interface {
	comparable
	String() string
}](t *testing.T, listed []T, parse func(string) (T, error)) {
	t.Helper()
	for _, v := range listed {
		if got, err := parse(v.String()); err != nil || got != v || v.String() == "" {
			t.Errorf("parse(%q) = %v, %v", v, got, err)
		}
	}
}
