package handlers

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/projections"
)

// The demo's workers send each order the trigger its step waits for: with
// a step added to a workflow (as the README's "Change a workflow" does)
// its orders still complete, and none of its triggers is rejected.
func TestDemoFollowsTheWorkflows(t *testing.T) {
	t.Parallel()
	srv, c, ctx := demoStore(t)
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	if _, _, err := c.AddStatus(ctx, meta, "", "Ironing", domain.CategoryInProgress); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddTrigger(ctx, meta, "ironed", "Ironed", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangeWorkflow(ctx, meta, "standard_laundry_production", AddWorkflowStep(3, domain.Step{Status: "ironing", Trigger: "ironed"})); err != nil {
		t.Fatal(err)
	}
	startProcessor(t, c, srv.ClientURL(), nil)

	nc := eventstoretest.Connect(t, srv.ClientURL())
	var completed, rejected atomic.Int64
	countOn(t, nc, map[string]*atomic.Int64{"orderflow.default.order.*.OrderCompleted": &completed, "orderflow.default.order.*.TriggerRejected": &rejected})
	d := &Demo{Commands: c, Log: quiet, Interval: time.Millisecond, MaxInFlight: 4,
		Publish: func(ctx context.Context, orderID, trigger, worker string) error {
			m := nats.NewMsg(eventstore.TriggerSubject("default", orderID, trigger))
			m.Data = []byte(`{"worker":"` + worker + `"}`)
			return nc.PublishMsg(m)
		}}
	runDemo(t, ctx, d)
	eventstoretest.Eventually(t, time.Minute, func() bool { return completed.Load() >= 6 }, "six demo orders completed")
	if n := rejected.Load(); n != 0 {
		t.Fatalf("%d of the demo's triggers were rejected", n)
	}
}

// A demo that starts again carries on the orders an earlier run of it
// left open (ids demo-<name>-…), and leaves alone the users' orders,
// another process's demo's and its own finished ones.
func TestDemoCarriesOnItsOpenOrders(t *testing.T) {
	t.Parallel()
	srv, c, ctx := demoStore(t)
	startProcessor(t, c, srv.ClientURL(), nil)
	orders := projections.NewOrders(quiet)
	if err := orders.Start(ctx, c.Store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(orders.Stop)

	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	left := []string{"demo-a-1", "demo-a-2", "demo-a-3"}
	others := []string{"mine", "demo-1", "demo-b-1"} // a user's, an older demo's, another process's demo's
	for _, id := range append(append([]string{"demo-a-done"}, others...), left...) {
		if _, err := c.PlaceOrder(ctx, meta, id, WorkedExampleOrderType, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CancelOrder(ctx, meta, "demo-a-done", ""); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, time.Minute, func() bool {
		r, ok := orders.Order("default", "demo-a-done")
		return ok && r.State == domain.StateCancelled
	}, "the orders in the read model")

	nc := eventstoretest.Connect(t, srv.ClientURL())
	d := &Demo{Commands: c, Orders: func() *projections.Orders { return orders }, Name: "a", Log: quiet, Interval: time.Millisecond, MaxInFlight: len(left),
		Publish: func(ctx context.Context, orderID, trigger, worker string) error {
			return nc.Publish(eventstore.TriggerSubject("default", orderID, trigger), nil)
		}}
	if got := d.openOrders(); !slices.Equal(got, left) {
		t.Fatalf("open demo orders %v, want %v", got, left)
	}
	runDemo(t, ctx, d)
	for _, id := range left {
		eventstoretest.Eventually(t, time.Minute, func() bool {
			o, err := c.CurrentOrder(ctx, id)
			return err == nil && o.State == domain.StateCompleted
		}, id+" completed by the demo that started again")
	}
	for _, id := range others {
		if o, err := c.CurrentOrder(ctx, id); err != nil || o.Version != 1 {
			t.Fatalf("order %s: %+v, %v; want it untouched", id, o, err)
		}
	}
}

// Once a user archives the worked example's order type, the demo says so
// once and places no more orders (each would be refused, a warning every
// few ticks); its workers finish the orders it placed.
func TestDemoStopsPlacingOnceItsOrderTypeIsArchived(t *testing.T) {
	t.Parallel()
	srv, c, ctx := demoStore(t)
	startProcessor(t, c, srv.ClientURL(), nil)

	nc := eventstoretest.Connect(t, srv.ClientURL())
	var placed, completed atomic.Int64 // as the stream's subjects tell them
	countOn(t, nc, map[string]*atomic.Int64{"orderflow.default.order.*.OrderPlaced": &placed, "orderflow.default.order.*.OrderCompleted": &completed})
	logs := &eventstoretest.LogBuffer{}
	d := &Demo{Commands: c, Log: slog.New(slog.NewTextHandler(logs, nil)), Interval: time.Millisecond, MaxInFlight: 3,
		Publish: func(ctx context.Context, orderID, trigger, worker string) error {
			return nc.Publish(eventstore.TriggerSubject("default", orderID, trigger), nil)
		}}
	runDemo(t, ctx, d)
	eventstoretest.Eventually(t, time.Minute, func() bool { return placed.Load() >= 2 }, "the demo places orders")

	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	if _, err := c.ArchiveOrderType(ctx, meta, WorkedExampleOrderType); err != nil {
		t.Fatal(err)
	}
	const said = "the simulated workers place no more orders"
	eventstoretest.Eventually(t, time.Minute, func() bool { return strings.Contains(logs.String(), said) }, "the demo says it places no more orders")
	// The demo places orders and says so in one goroutine: every order it
	// placed is stored by now.
	storedPlaced := func() int {
		evs, err := c.Store.LoadFilter(ctx, eventstore.StreamOrders, "orderflow.default.order.*.OrderPlaced", 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	last := storedPlaced()
	eventstoretest.Eventually(t, time.Minute, func() bool { return completed.Load() >= int64(last) }, "the demo's workers finish the orders it placed")
	if n := storedPlaced(); n != last {
		t.Fatalf("%d orders placed after the demo said it places no more", n-last)
	}
	if n := strings.Count(logs.String(), said); n != 1 {
		t.Fatalf("the demo said %d times that it places no more orders:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "demo: place order"); n > 1 {
		t.Fatalf("%d refused placements:\n%s", n, logs.String())
	}
}

// countOn counts the messages on each subject into its counter until the
// test ends.
func countOn(t *testing.T, nc *nats.Conn, counters map[string]*atomic.Int64) {
	t.Helper()
	for subject, n := range counters {
		sub, err := nc.Subscribe(subject, func(*nats.Msg) { n.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// runDemo runs d until the test ends.
func runDemo(t *testing.T, ctx context.Context, d *Demo) {
	dctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	t.Cleanup(func() { stop(); <-done })
}

// demoStore starts a server for a demo test, with the commands on it and
// a context that ends with the test.
func demoStore(t *testing.T) (*eventstore.Server, *Commands, context.Context) {
	srv := eventstoretest.StartServer(t)
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	t.Cleanup(cancel)
	return srv, newCommands(t, srv), ctx
}
