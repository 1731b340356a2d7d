package projections

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// The board lists workflows intake, production, fulfillment, each
// workflow's stages in step order, empty steps of live workflows with a
// count of 0, and stages that left the steps after them.
func TestLayOutBoard(t *testing.T) {
	t.Parallel()
	defs := NewDefinitions(nil)
	seq := uint64(0)
	def := func(id string, e domain.Event) {
		seq++
		data, _ := json.Marshal(e)
		ev := eventstore.Event{Sequence: seq, Envelope: eventstore.Envelope{Tenant: "default",
			AggregateType: domain.AggregateWorkflow, AggregateID: id, Type: e.EventType(), Data: data}}
		if err := defs.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	steps := func(statuses ...string) []domain.Step {
		var s []domain.Step
		for _, st := range statuses {
			s = append(s, domain.Step{Status: st, Trigger: "t_" + st})
		}
		return s
	}
	def("delivery", domain.WorkflowCreated{ID: "delivery", Name: "Home Delivery", Type: domain.WorkflowFulfillment,
		FulfillmentMethod: domain.FulfillmentHomeDelivery, Steps: steps("ready", "out")})
	def("wash", domain.WorkflowCreated{ID: "wash", Name: "Production", Type: domain.WorkflowProduction, Steps: steps("washing", "drying", "folding")})
	def("intake", domain.WorkflowCreated{ID: "intake", Name: "Intake", Type: domain.WorkflowIntake, Steps: steps("pending", "received")})
	def("old", domain.WorkflowCreated{ID: "old", Name: "Old Intake", Type: domain.WorkflowIntake, Steps: steps("pending")})
	def("old", domain.WorkflowArchived{})

	orders := NewOrders(nil)
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for i, p := range []domain.Position{
		{WorkflowID: "wash", WorkflowVersion: 1, Step: 1, Status: "drying"},
		{WorkflowID: "intake", WorkflowVersion: 1, Step: 1, Status: "received"},
		{WorkflowID: "delivery", WorkflowVersion: 1, Step: 0, Status: "ready"},
	} {
		if err := orders.Apply(orderEvent(uint64(i+1), fmt.Sprint("o", i), at, domain.OrderPlaced{OrderTypeID: "ot", To: p, Workflows: []string{p.WorkflowID}})); err != nil {
			t.Fatal(err)
		}
	}
	// Drying leaves the production steps; the order in it stays on version 1.
	def("wash", domain.WorkflowStepsReplaced{Steps: steps("washing", "folding")})

	layout := func(workflowID string) string {
		var b strings.Builder
		for _, c := range LayOutBoard(defs.Tenant("default"), workflowID, orders.Board("default", workflowID)) {
			fmt.Fprintf(&b, "%s/%s=%d ", c.WorkflowID, c.Status, c.Count)
		}
		return strings.TrimSpace(b.String())
	}
	if got, want := layout(""), "intake/pending=0 intake/received=1 wash/washing=0 wash/folding=0 wash/drying=1 delivery/ready=1 delivery/out=0"; got != want {
		t.Errorf("board\n got %s\nwant %s", got, want)
	}
	if got, want := layout("wash"), "wash/washing=0 wash/folding=0 wash/drying=1"; got != want {
		t.Errorf("board of one workflow\n got %s\nwant %s", got, want)
	}
	// A tenant with workflows and no orders yet has its columns.
	if got := LayOutBoard(defs.Tenant("default"), "", nil); len(got) != 6 {
		t.Errorf("board without orders: %d cells, want 6", len(got))
	}
}
