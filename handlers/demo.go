package handlers

import (
	"context"
	"fmt"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// WorkedExampleOrderType is the id of the worked example's order type.
const WorkedExampleOrderType = "wash_fold_delivery"

// WorkedExampleTriggers are the triggers that take a worked-example order
// from placement to completion, in order.
var WorkedExampleTriggers = []string{"picked_up", "items_tagged", "wash_done", "dry_done", "folded", "out_for_delivery", "delivered"}

// SeedWorkedExample defines DESIGN.md's worked example: the laundry's
// statuses and triggers, "Laundry Intake", "Standard Laundry Production",
// "Home Delivery", and the order type "Wash & Fold Delivery". It is for an
// empty tenant (the demo, examples and tests).
func SeedWorkedExample(ctx context.Context, c *Commands) error {
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorSystem, ID: "demo"}}
	statuses := []struct {
		name string
		cat  domain.Category
	}{
		{"Pending Pickup", domain.CategoryPending}, {"Received", domain.CategoryInProgress},
		{"Washing", domain.CategoryInProgress}, {"Drying", domain.CategoryInProgress}, {"Folding", domain.CategoryInProgress},
		{"Ready for Delivery", domain.CategoryReady}, {"Out for Delivery", domain.CategoryInProgress},
	}
	for _, s := range statuses {
		if _, _, err := c.AddStatus(ctx, meta, "", s.name, s.cat); err != nil {
			return fmt.Errorf("status %s: %w", s.name, err)
		}
	}
	triggers := [][2]string{{"picked_up", "Picked up"}, {"items_tagged", "Items tagged"}, {"wash_done", "Wash done"},
		{"dry_done", "Dry done"}, {"folded", "Folded"}, {"out_for_delivery", "Out for delivery"}, {"delivered", "Delivered"}}
	for _, t := range triggers {
		if _, _, err := c.AddTrigger(ctx, meta, t[0], t[1], ""); err != nil {
			return fmt.Errorf("trigger %s: %w", t[0], err)
		}
	}
	none := domain.FulfillmentMethod{}
	workflows := []struct {
		name   string
		typ    domain.WorkflowType
		method domain.FulfillmentMethod
		steps  []domain.Step
	}{
		{"Laundry Intake", domain.WorkflowIntake, none, []domain.Step{{Status: "pending_pickup", Trigger: "picked_up"}, {Status: "received", Trigger: "items_tagged"}}},
		{"Standard Laundry Production", domain.WorkflowProduction, none, []domain.Step{{Status: "washing", Trigger: "wash_done"},
			{Status: "drying", Trigger: "dry_done"}, {Status: "folding", Trigger: "folded"}}},
		{"Home Delivery", domain.WorkflowFulfillment, domain.FulfillmentHomeDelivery, []domain.Step{
			{Status: "ready_for_delivery", Trigger: "out_for_delivery"}, {Status: "out_for_delivery", Trigger: "delivered"}}},
	}
	ids := make([]string, len(workflows))
	for i, w := range workflows {
		s, err := c.CreateWorkflow(ctx, meta, w.name, w.typ, w.method, w.steps)
		if err != nil {
			return fmt.Errorf("workflow %s: %w", w.name, err)
		}
		ids[i] = s.ID
	}
	if _, err := c.CreateOrderType(ctx, meta, "Wash & Fold Delivery", ids[0], ids[1], []string{ids[2]}); err != nil {
		return fmt.Errorf("order type: %w", err)
	}
	return nil
}
