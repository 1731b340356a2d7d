package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
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
		s, _, err := c.CreateWorkflow(ctx, meta, w.name, w.typ, w.method, w.steps)
		if err != nil {
			return fmt.Errorf("workflow %s: %w", w.name, err)
		}
		ids[i] = s.ID
	}
	if _, _, err := c.CreateOrderType(ctx, meta, "Wash & Fold Delivery", ids[0], ids[1], []string{ids[2]}); err != nil {
		return fmt.Errorf("order type: %w", err)
	}
	return nil
}

// Demo runs simulated worker apps on the worked example: it places an
// order now and then and publishes each order's next trigger at a gentle
// rate, over NATS like a real worker app, so the board and the feed move.
type Demo struct {
	Commands *Commands
	// Publish sends a trigger for an order, as a worker app would.
	Publish func(ctx context.Context, orderID, trigger, worker string) error
	// Interval is the pause between two simulated actions.
	Interval time.Duration
	// MaxInFlight bounds the orders the demo keeps open.
	MaxInFlight int
	// Orders, when set, is the orders read model, in which a demo that
	// starts finds the orders an earlier run of it left open and carries
	// them on (otherwise each restart would leave them standing on the
	// board for good).
	Orders func() *projections.Orders
	// Name tells this process's demo from the demos of other processes
	// on the same store, and stays the same when the process starts
	// again: its orders' ids start with "demo-" and the name (see
	// prefix), and it carries on only those. It must be a subject token.
	Name string
	Log  *slog.Logger
}

// prefix starts the id of every order the demo places, so that a demo
// that starts again knows its own orders from the users' and from other
// processes' demos (which drive theirs).
func (d *Demo) prefix() string {
	if d.Name == "" {
		return "demo-"
	}
	return "demo-" + d.Name + "-"
}

// openOrders are the demo's orders (ids prefix…) that the orders read
// model has neither completed nor cancelled.
func (d *Demo) openOrders() []string {
	if d.Orders == nil {
		return nil
	}
	var ids []string
	prefix := d.prefix()
	after := prefix // sorts before every id it starts
	for {
		rows, more := d.Orders().List(d.Commands.Tenant, projections.OrderFilter{OrderTypeID: WorkedExampleOrderType}, after, 500)
		for _, r := range rows {
			if !strings.HasPrefix(r.ID, prefix) {
				return ids // past the demo's ids, which sort together
			}
			if r.State == domain.StateActive || r.State == domain.StateOnHold {
				ids = append(ids, r.ID)
			}
			after = r.ID
		}
		if !more {
			return ids
		}
	}
}

// SeedIfEmpty seeds the worked example when the tenant has no
// definitions yet, and reports whether it did.
func (d *Demo) SeedIfEmpty(ctx context.Context) (bool, error) {
	if _, ok := d.Commands.view().OrderType(WorkedExampleOrderType); ok {
		return false, nil
	}
	if statuses, _ := d.Commands.view().Statuses(); len(statuses) > 0 {
		return false, nil // someone's own process: leave it alone
	}
	return true, SeedWorkedExample(ctx, d.Commands)
}

// HasWorkedExample reports whether the tenant has the worked example's
// order type, the one the simulated workers place orders of.
func (d *Demo) HasWorkedExample() bool {
	_, ok := d.Commands.view().OrderType(WorkedExampleOrderType)
	return ok
}

// Run simulates workers until ctx ends. Each sends an order the trigger
// its current step waits for, so the demo keeps working when a workflow
// changes under it (a step added, say), and leaves alone an order a
// supervisor holds.
func (d *Demo) Run(ctx context.Context) {
	interval, maxOpen := d.Interval, d.MaxInFlight
	if interval <= 0 {
		interval = 400 * time.Millisecond
	}
	if maxOpen <= 0 {
		maxOpen = 40
	}
	workers := []string{"ana", "bo", "chen", "dara"}
	sent := map[string]uint64{} // order id → its version when it was last sent a trigger
	ids := d.openOrders()
	if len(ids) > 0 {
		d.log().Info("demo: carrying on the orders an earlier run left open", "orders", len(ids))
	}
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "demo-desk"}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	placing := true // until a user archives the worked example's order type
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if placing && len(ids) < maxOpen && (n%3 == 0 || len(ids) == 0) {
			if ot, ok := d.Commands.view().OrderType(WorkedExampleOrderType); !ok || ot.Archived {
				// Each order placed would be refused: say so once.
				d.log().Warn("demo: the order type " + WorkedExampleOrderType + " is archived, so the simulated workers place no more orders; they go on with the orders they placed")
				placing = false
				continue
			}
			o, err := d.Commands.PlaceOrder(ctx, meta, d.prefix()+uuid.Must(uuid.NewV7()).String(), WorkedExampleOrderType, "")
			if err != nil {
				d.log().Warn("demo: place order", "err", err)
				continue
			}
			sent[o.ID] = 0
			ids = append(ids, o.ID)
			continue
		}
		if len(ids) == 0 {
			continue
		}
		// ids run oldest first (placed in turn; carried-on ones sorted by
		// their time-ordered ids). The lesser of two random picks favours
		// the older orders, as a shop works through its queue, while still
		// moving orders all over the board: the first order completes in
		// about 7 s rather than 14 (99th percentile 16 s rather than 46,
		// simulated), which is what a newcomer watches for.
		i := min(rand.IntN(len(ids)), rand.IntN(len(ids)))
		id := ids[i]
		o, err := d.Commands.CurrentOrder(ctx, id)
		switch {
		case err != nil:
			d.log().Warn("demo: read order", "order", id, "err", err)
			continue
		case o.State == domain.StateCompleted || o.State == domain.StateCancelled:
			delete(sent, id)
			ids = append(ids[:i], ids[i+1:]...)
			continue
		case o.State != domain.StateActive || o.Version == sent[id]:
			continue // held, or the trigger sent last not applied yet
		}
		if err := d.Publish(ctx, id, o.ExpectedTrigger, workers[rand.IntN(len(workers))]); err != nil {
			d.log().Warn("demo: publish trigger", "err", err)
			continue
		}
		sent[id] = o.Version
	}
}

func (d *Demo) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}
