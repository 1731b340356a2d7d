package handlers

import (
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

// DefinitionID derives a subject-safe id from a name: runs of other
// characters become one "_", a name with none of its own takes the
// fallback, a long one is cut to 48 bytes (never ending in "_"), and a
// taken id gets -2, -3 … Every id it gives is a valid key.
func TestDefinitionID(t *testing.T) {
	long := strings.Repeat("Wash it ", 10) // "wash_it_…": cut at 48 bytes, it ends in "_"
	for _, tc := range []struct {
		name, fallback string
		taken          []string
		want           string
	}{
		{"Wash & Fold Delivery", "order_type", nil, "wash_fold_delivery"},
		{"  Laundry -- Intake  ", "workflow", nil, "laundry_intake"},
		{"!!!", "workflow", nil, "workflow"},
		{"", "order_type", nil, "order_type"},
		{"Café Crème", "workflow", nil, "caf_cr_me"},
		{"Laundry Intake", "workflow", []string{"laundry_intake"}, "laundry_intake-2"},
		{"Laundry Intake", "workflow", []string{"laundry_intake", "laundry_intake-2"}, "laundry_intake-3"},
		{"!!!", "workflow", []string{"workflow"}, "workflow-2"},
		{long, "workflow", nil, strings.Repeat("wash_it_", 5) + "wash_it"},
		{strings.Repeat("x", 100), "workflow", []string{strings.Repeat("x", 48)}, strings.Repeat("x", 48) + "-2"},
	} {
		got := DefinitionID(tc.name, tc.fallback, func(id string) bool { return slices.Contains(tc.taken, id) })
		if got != tc.want {
			t.Errorf("DefinitionID(%q, %q, taken %q) = %q, want %q", tc.name, tc.fallback, tc.taken, got, tc.want)
		}
		if err := domain.CheckKey("id", got); err != nil {
			t.Errorf("DefinitionID(%q) = %q: %v", tc.name, got, err)
		}
	}
}
