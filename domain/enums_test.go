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
// else is refused naming the field: another name (ErrInvalid, with the
// names it takes), or a value that is not a string.
func TestEnumsInJSON(t *testing.T) {
	type decoded struct {
		value string // what MarshalJSON writes back
		err   error
	}
	category := func(in string) decoded {
		var c domain.Category
		err := json.Unmarshal([]byte(in), &c)
		out, _ := json.Marshal(c)
		return decoded{string(out), err}
	}
	workflowType := func(in string) decoded {
		var w domain.WorkflowType
		err := json.Unmarshal([]byte(in), &w)
		out, _ := json.Marshal(w)
		return decoded{string(out), err}
	}
	method := func(in string) decoded {
		var m domain.FulfillmentMethod
		err := json.Unmarshal([]byte(in), &m)
		out, _ := json.Marshal(m)
		return decoded{string(out), err}
	}
	for _, tc := range []struct {
		decode func(string) decoded
		in     string
		want   string // the value written back, or what the error says
		bad    bool
	}{
		{category, `"in_progress"`, `"in_progress"`, false},
		{category, `"completed"`, `"completed"`, false},
		{category, `"done"`, `category: "done" is not one of draft, pending, in_progress, ready, completed`, true},
		{category, `""`, `category: "" is not one of`, true},
		{category, `null`, `category: "" is not one of`, true},
		{category, `3`, `category: `, true},
		{workflowType, `"fulfillment"`, `"fulfillment"`, false},
		{workflowType, `"Intake"`, `type: "Intake" is not one of intake, production, fulfillment`, true},
		{workflowType, `["intake"]`, `type: `, true},
		{method, `"home_delivery"`, `"home_delivery"`, false},
		{method, `"on_site"`, `"on_site"`, false},
		{method, `""`, `""`, false},
		{method, `null`, `""`, false},
		{method, `"drone"`, `fulfillment_method: "drone" is not one of store_pickup, home_delivery, on_site`, true},
		{method, `true`, `fulfillment_method: `, true},
	} {
		got := tc.decode(tc.in)
		switch {
		case !tc.bad && (got.err != nil || got.value != tc.want):
			t.Errorf("%s: got %s, %v; want %s", tc.in, got.value, got.err, tc.want)
		case tc.bad && (got.err == nil || !strings.Contains(got.err.Error(), tc.want)):
			t.Errorf("%s: got %v; want an error saying %q", tc.in, got.err, tc.want)
		case tc.bad && strings.HasPrefix(tc.in, `"`) && !errors.Is(got.err, domain.ErrInvalid):
			t.Errorf("%s: %v is not ErrInvalid", tc.in, got.err)
		}
	}
	// Every name the contract lists reads back as itself.
	for _, c := range domain.Categories() {
		if got, err := domain.ParseCategory(c.String()); err != nil || got != c {
			t.Errorf("ParseCategory(%q) = %v, %v", c, got, err)
		}
	}
	for _, w := range domain.WorkflowTypes() {
		if got, err := domain.ParseWorkflowType(w.String()); err != nil || got != w {
			t.Errorf("ParseWorkflowType(%q) = %v, %v", w, got, err)
		}
	}
	for _, m := range domain.FulfillmentMethods() {
		if got, err := domain.ParseFulfillmentMethod(m.String()); err != nil || got != m || m.IsZero() {
			t.Errorf("ParseFulfillmentMethod(%q) = %v, %v", m, got, err)
		}
	}
}
