package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// Random sequences of definition and order commands, rejected ones
// included: every read model equals a fresh fold of the streams, both as
// built live and after restoring a checkpoint taken midway and catching up.
func TestReadModelsEqualAFreshFold(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			checkReadModels(t, seed, 250)
		})
	}
}

func checkReadModels(t *testing.T, seed uint64, steps int) {
	app := startApp(t, newTestConfig(t))
	ctx := ctxFor(t, 3*time.Minute)
	rng := rand.New(rand.NewPCG(seed, seed*7))
	cmds := app.cmds
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "prop"}}
	if err := handlers.SeedWorkedExample(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	statuses := []string{"pending_pickup", "received", "washing", "drying", "folding", "ready_for_delivery", "out_for_delivery"}
	triggers := []string{"picked_up", "items_tagged", "wash_done", "dry_done", "folded", "out_for_delivery", "delivered"}
	workflows := []string{"laundry_intake", "standard_laundry_production", "home_delivery"}
	orderTypes := []string{handlers.WorkedExampleOrderType}
	var orders []string
	rejected, accepted := 0, 0
	note := func(err error) {
		if err != nil {
			rejected++
		} else {
			accepted++
		}
	}
	checkpointAt := steps / 2
	for i := range steps {
		if i == checkpointAt {
			if err := app.orders.Load().Checkpoint(ctx, app.Store()); err != nil {
				t.Fatal(err)
			}
		}
		switch r := rng.IntN(100); {
		case r < 6:
			name := fmt.Sprintf("Stage %d", rng.IntN(12))
			_, cr, err := cmds.AddStatus(ctx, meta, "", name, domain.CategoryInProgress)
			if err == nil {
				statuses = append(statuses, cr.ID)
			}
			note(err)
		case r < 10:
			_, cr, err := cmds.AddTrigger(ctx, meta, "", fmt.Sprintf("Action %d", rng.IntN(12)), "")
			if err == nil {
				triggers = append(triggers, cr.ID)
			}
			note(err)
		case r < 14:
			steps := []domain.Step{{Status: pick(statuses), Trigger: pick(triggers)}, {Status: pick(statuses), Trigger: pick(triggers)}}
			w, _, err := cmds.CreateWorkflow(ctx, meta, fmt.Sprintf("Flow %d", rng.IntN(8)), domain.WorkflowProduction, domain.FulfillmentMethod{}, steps)
			if err == nil {
				workflows = append(workflows, w.ID)
			}
			note(err)
		case r < 20:
			id := pick(workflows)
			var edit handlers.WorkflowChange
			switch rng.IntN(5) {
			case 0:
				edit = handlers.MoveWorkflowStep(rng.IntN(3), rng.IntN(3))
			case 1:
				edit = handlers.AddWorkflowStep(-1, domain.Step{Status: pick(statuses), Trigger: pick(triggers)})
			case 2:
				edit = handlers.RemoveWorkflowStep(rng.IntN(4))
			case 3:
				edit = handlers.RenameWorkflow(fmt.Sprintf("Flow %d", rng.IntN(8)))
			default:
				edit = handlers.ChangeWorkflowStepTrigger(rng.IntN(3), pick(triggers))
			}
			_, err := cmds.ChangeWorkflow(ctx, meta, id, edit)
			note(err)
		case r < 23:
			o, _, err := cmds.CreateOrderType(ctx, meta, fmt.Sprintf("Service %d", rng.IntN(5)), "", pick(workflows), nil)
			if err == nil {
				orderTypes = append(orderTypes, o.ID)
			}
			note(err)
		case r < 25:
			_, err := cmds.ArchiveStatus(ctx, meta, pick(statuses))
			note(err)
		case r < 40:
			id := fmt.Sprintf("o-%d", i)
			ot := pick(orderTypes)
			if rng.IntN(10) == 0 {
				ot = "no_such_type"
			}
			_, err := cmds.PlaceOrder(ctx, meta, id, ot, "")
			if err == nil {
				orders = append(orders, id)
			}
			note(err)
		case len(orders) == 0:
		case r < 85:
			id := pick(orders)
			o, _, err := cmds.LoadOrder(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			tr := o.View().ExpectedTrigger
			if tr == "" || rng.IntN(5) == 0 {
				tr = pick(triggers) // often the wrong one: rejected
			}
			_, _, err = cmds.ApplyTrigger(ctx, meta, id, tr, fmt.Sprintf("t-%d", rng.IntN(steps*2)), domain.TriggerReport{Worker: "w"})
			note(err)
		case r < 90:
			_, err := cmds.HoldOrder(ctx, meta, pick(orders), "")
			note(err)
		case r < 94:
			_, err := cmds.ResumeOrder(ctx, meta, pick(orders), "")
			note(err)
		case r < 97:
			_, err := cmds.CancelOrder(ctx, meta, pick(orders), "")
			note(err)
		default:
			_, err := cmds.MoveOrder(ctx, meta, pick(orders), pick(workflows), rng.IntN(3), "supervisor")
			note(err)
		}
	}
	t.Logf("seed %d: %d commands accepted, %d refused, %d orders", seed, accepted, rejected, len(orders))
	if rejected == 0 || accepted == 0 {
		t.Fatal("the run should mix accepted and refused commands")
	}

	st := app.Store()
	lastDefs, _ := st.LastSequence(ctx, eventstore.StreamDefinitions)
	lastOrders, _ := st.LastSequence(ctx, eventstore.StreamOrders)
	live := app.orders.Load()
	if err := errJoin(app.defs.WaitFor(ctx, lastDefs), live.WaitFor(ctx, lastOrders)); err != nil {
		t.Fatal(err)
	}

	freshDefs := projections.NewDefinitions(nil)
	freshOrders := projections.NewOrders(nil)
	if err := errJoin(freshDefs.Start(ctx, st), freshOrders.Start(ctx, st)); err != nil {
		t.Fatal(err)
	}
	defer freshDefs.Stop()
	defer freshOrders.Stop()
	restored := projections.NewOrders(nil)
	from, err := restored.Restore(ctx, st)
	if err != nil || from == 0 {
		t.Fatalf("restore from the midway checkpoint: %d, %v", from, err)
	}
	if err := restored.Start(ctx, st); err != nil {
		t.Fatal(err)
	}
	defer restored.Stop()
	if err := errJoin(freshDefs.WaitFor(ctx, lastDefs), freshOrders.WaitFor(ctx, lastOrders), restored.WaitFor(ctx, lastOrders)); err != nil {
		t.Fatal(err)
	}

	want := mustJSON(t, freshOrders)
	if got := mustJSON(t, live); got != want {
		t.Fatalf("live orders read model differs from a fresh fold")
	}
	if got := mustJSON(t, restored); got != want {
		t.Fatalf("orders read model restored from sequence %d and caught up differs from a fresh fold", from)
	}
	if !reflect.DeepEqual(app.cmds.Defs.Tenant("default").Workflows(), freshDefs.Tenant("default").Workflows()) {
		t.Fatal("workflows differ")
	}
	lv, fv := app.defs.Tenant("default"), freshDefs.Tenant("default")
	for _, pair := range [][2]any{
		{first(lv.Statuses()), first(fv.Statuses())},
		{first(lv.Triggers()), first(fv.Triggers())},
		{lv.OrderTypes(), fv.OrderTypes()},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Fatalf("definitions differ:\n%v\n%v", pair[0], pair[1])
		}
	}
	for _, w := range fv.Workflows() {
		for v := uint64(1); v <= w.Version; v++ {
			a, _ := lv.WorkflowVersion(w.ID, v)
			b, _ := fv.WorkflowVersion(w.ID, v)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("workflow %s version %d differs", w.ID, v)
			}
		}
	}
	// The board agrees too.
	if !reflect.DeepEqual(live.Board("default", ""), freshOrders.Board("default", "")) {
		t.Fatal("boards differ")
	}
}

func first[T any](v T, _ uint64) T { return v }

func mustJSON(t *testing.T, m json.Marshaler) string {
	t.Helper()
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
