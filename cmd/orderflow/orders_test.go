package main

import (
	"testing"
)

var workedTriggers = []string{"picked_up", "items_tagged", "wash_done", "dry_done", "folded", "out_for_delivery", "delivered"}

func TestOrderTriggersOverHTTP(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	o := c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-1", "order_type_id": "wash_fold_delivery"})
	pos := o["position"].(map[string]any)
	if o["state"] != "active" || pos["status"] != "pending_pickup" || pos["expected_trigger"] != "picked_up" ||
		pos["status_name"] != "Pending Pickup" || pos["workflow_name"] != "Laundry Intake" || pos["category"] != "pending" {
		t.Fatalf("placed order %v", o)
	}
	// A wrong trigger is rejected with the expected one, and changes no position.
	p := c.problem(409, "trigger_rejected", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "wash_done"})
	if p["reason"] != "unexpected_trigger" || p["expected"] != "picked_up" {
		t.Fatalf("rejection %v", p)
	}
	for i, tr := range workedTriggers {
		res := c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": tr, "trigger_id": "t-" + tr, "worker": "w1"})
		want := "advanced"
		if i == len(workedTriggers)-1 {
			want = "completed"
		}
		if res["outcome"] != want {
			t.Fatalf("%s: %v", tr, res)
		}
	}
	// The same trigger id again: one effect.
	res := c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "delivered", "trigger_id": "t-delivered"})
	if res["outcome"] != "duplicate" {
		t.Fatalf("repeat: %v", res)
	}
	o = c.must(200, "GET", "/v1/orders/o-1", nil)
	if o["state"] != "completed" || o["version"] != float64(9) {
		t.Fatalf("final order %v", o)
	}
	h := c.must(200, "GET", "/v1/orders/o-1/history", nil)
	events := h["events"].([]any)
	if len(events) != 9 {
		t.Fatalf("history has %d events", len(events))
	}
	last := events[8].(map[string]any)
	if last["type"] != "OrderCompleted" || last["causation_id"] != "t-delivered" || last["actor"].(map[string]any)["kind"] != "worker" {
		t.Fatalf("last event %v", last)
	}
	c.problem(404, "not_found", "POST", "/v1/orders/nope/triggers", map[string]any{"trigger": "picked_up"})
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "delivered"})
}
