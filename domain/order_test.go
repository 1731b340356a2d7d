package domain_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// defs holds every version of the worked example's workflows.
type defs struct {
	versions map[string][]domain.WorkflowState // id → versions, index v-1
	types    map[string]domain.OrderTypeState
}

func (d *defs) WorkflowVersion(id string, v uint64) (domain.WorkflowState, bool) {
	vs := d.versions[id]
	if v == 0 || v > uint64(len(vs)) {
		return domain.WorkflowState{}, false
	}
	return vs[v-1], true
}

func (d *defs) Workflow(id string) (domain.WorkflowState, bool) {
	vs := d.versions[id]
	if len(vs) == 0 {
		return domain.WorkflowState{}, false
	}
	return vs[len(vs)-1], true
}

func (d *defs) OrderType(id string) (domain.OrderTypeState, bool) { t, ok := d.types[id]; return t, ok }

func (d *defs) addVersion(id string, steps ...domain.Step) {
	vs := d.versions[id]
	d.versions[id] = append(vs, domain.WorkflowState{ID: id, Version: uint64(len(vs) + 1), Steps: steps})
}

func workedExample() *defs {
	d := &defs{versions: map[string][]domain.WorkflowState{}, types: map[string]domain.OrderTypeState{}}
	d.addVersion("intake", domain.Step{Status: "pending_pickup", Trigger: "picked_up"}, domain.Step{Status: "received", Trigger: "items_tagged"})
	d.addVersion("production", domain.Step{Status: "washing", Trigger: "wash_done"}, domain.Step{Status: "drying", Trigger: "dry_done"},
		domain.Step{Status: "folding", Trigger: "folded"})
	d.addVersion("delivery", domain.Step{Status: "ready_for_delivery", Trigger: "out_for_delivery"},
		domain.Step{Status: "out_for_delivery", Trigger: "delivered"})
	d.addVersion("pickup", domain.Step{Status: "ready_for_pickup", Trigger: "collected"})
	d.types["wash_fold"] = domain.OrderTypeState{ID: "wash_fold", Intake: "intake", Production: "production", Fulfillment: []string{"delivery", "pickup"}}
	d.types["old"] = domain.OrderTypeState{ID: "old", Production: "production", Archived: true}
	return d
}

var allTriggers = []string{"picked_up", "items_tagged", "wash_done", "dry_done", "folded", "out_for_delivery", "delivered"}

func placed(t *testing.T, d *defs) *domain.Order {
	t.Helper()
	o := domain.NewOrder("o-1", d)
	must(t, o.Place("wash_fold", "", d, d))
	return o
}

func TestOrderWalksTheWorkedExample(t *testing.T) {
	t.Parallel()
	d := workedExample()
	o := placed(t, d)
	if v := o.View(); v.Position.Status != "pending_pickup" || v.Position.WorkflowVersion != 1 || v.ExpectedTrigger != "picked_up" || v.State != domain.StateActive {
		t.Fatalf("placed at %+v", v)
	}
	wantStatus := []string{"received", "washing", "drying", "folding", "ready_for_delivery", "out_for_delivery"}
	for i, tr := range allTriggers {
		res, err := o.ApplyTrigger(tr, "t-"+tr, domain.TriggerReport{Worker: "w1"}, d)
		must(t, err)
		if i < len(allTriggers)-1 {
			if res.Outcome != domain.OutcomeAdvanced || o.View().Position.Status != wantStatus[i] {
				t.Fatalf("after %s: %+v at %+v", tr, res, o.View().Position)
			}
		} else if res.Outcome != domain.OutcomeCompleted || o.View().State != domain.StateCompleted {
			t.Fatalf("after %s: %+v, state %s", tr, res, o.View().State)
		}
	}
	if o.Version() != 8 {
		t.Fatalf("version %d, want 8", o.Version())
	}
	// A new order loaded from the events ends in the same place.
	loaded := domain.NewOrder("o-1", d)
	for _, e := range o.Changes() {
		must(t, loaded.Apply(e))
	}
	if loaded.View().State != domain.StateCompleted || loaded.Version() != 8 {
		t.Fatalf("loaded %+v", loaded.View())
	}
}

func TestOrderRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		do         func(*domain.Order, *defs) (domain.TriggerResult, error)
		wantErr    error
		outcome    domain.TriggerOutcome
		reason     domain.RejectReason
		expected   string
		wantStatus string
		wantState  domain.OrderState
	}{
		{name: "wrong trigger", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("wash_done", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeRejected, reason: domain.RejectUnexpectedTrigger, expected: "picked_up", wantStatus: "pending_pickup"},
		{name: "unknown trigger", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("teleported", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeRejected, reason: domain.RejectUnexpectedTrigger, expected: "picked_up", wantStatus: "pending_pickup"},
		{name: "same trigger id twice", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if _, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeDuplicate, wantStatus: "received"},
		{name: "rejected trigger id again", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if _, err := o.ApplyTrigger("folded", "t1", domain.TriggerReport{Worker: "w"}, d); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("folded", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeDuplicate, wantStatus: "pending_pickup"},
		{name: "trigger id again for another trigger", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if _, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("items_tagged", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, wantErr: domain.ErrDuplicate},
		{name: "rejected trigger id again for another trigger", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if _, err := o.ApplyTrigger("folded", "t1", domain.TriggerReport{Worker: "w"}, d); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, wantErr: domain.ErrDuplicate},
		{name: "held order rejects", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if err := o.Hold("customer called"); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeRejected, reason: domain.RejectOnHold, expected: "picked_up", wantStatus: "pending_pickup", wantState: domain.StateOnHold},
		{name: "resumed order advances", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if err := errors.Join(o.Hold(""), o.Resume("")); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeAdvanced, wantStatus: "received"},
		{name: "cancelled order rejects", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			if err := o.Cancel("duplicate order"); err != nil {
				return domain.TriggerResult{}, err
			}
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeRejected, reason: domain.RejectCancelled, wantStatus: "pending_pickup", wantState: domain.StateCancelled},
		{name: "completed order rejects", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			for _, tr := range allTriggers {
				if _, err := o.ApplyTrigger(tr, "t-"+tr, domain.TriggerReport{Worker: "w"}, d); err != nil {
					return domain.TriggerResult{}, err
				}
			}
			return o.ApplyTrigger("delivered", "again", domain.TriggerReport{Worker: "w"}, d)
		}, outcome: domain.OutcomeRejected, reason: domain.RejectCompleted, wantStatus: "out_for_delivery", wantState: domain.StateCompleted},
		{name: "resume an active order", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Resume("")
		}, wantErr: domain.ErrConflict},
		{name: "hold a held order", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			_ = o.Hold("")
			return domain.TriggerResult{}, o.Hold("")
		}, wantErr: domain.ErrConflict},
		{name: "cancel a cancelled order", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			_ = o.Cancel("")
			return domain.TriggerResult{}, o.Cancel("")
		}, wantErr: domain.ErrConflict},
		{name: "move within the workflow", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Move("intake", 1, "tagged at the counter", d)
		}, wantStatus: "received"},
		{name: "move into a later workflow", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Move("production", 2, "rewash skipped", d)
		}, wantStatus: "folding"},
		{name: "move without reason", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Move("intake", 1, "", d)
		}, wantErr: domain.ErrInvalid},
		{name: "move to a workflow not on the route", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Move("pickup", 0, "why", d)
		}, wantErr: domain.ErrInvalid},
		{name: "move past the last step", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Move("intake", 2, "why", d)
		}, wantErr: domain.ErrInvalid},
		{name: "missing trigger id", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", "", domain.TriggerReport{Worker: "w"}, d)
		}, wantErr: domain.ErrInvalid},
		{name: "trigger id with a space", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", "t 1", domain.TriggerReport{Worker: "w"}, d)
		}, wantErr: domain.ErrInvalid},
		{name: "trigger id too long", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", strings.Repeat("t", domain.MaxTriggerIDLen+1), domain.TriggerReport{Worker: "w"}, d)
		}, wantErr: domain.ErrInvalid},
		{name: "trigger id not UTF-8", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", "t\xff", domain.TriggerReport{Worker: "w"}, d)
		}, wantErr: domain.ErrInvalid},
		{name: "worker with a control character", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "a\x00b"}, d)
		}, wantErr: domain.ErrInvalid},
		{name: "worker not UTF-8", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "caf\xe9"}, d)
		}, wantErr: domain.ErrInvalid},
		{name: "worker with a space", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "Ana Lopez"}, d)
		}, outcome: domain.OutcomeAdvanced, wantStatus: "received"},
		{name: "hold with a control character in the reason", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Hold("wait\x07")
		}, wantErr: domain.ErrInvalid},
		{name: "hold with a reason of two lines", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Hold("customer called:\n\tback on Monday")
		}, wantState: domain.StateOnHold, wantStatus: "pending_pickup"},
		{name: "move with a reason not UTF-8", do: func(o *domain.Order, d *defs) (domain.TriggerResult, error) {
			return domain.TriggerResult{}, o.Move("intake", 1, "caf\xe9", d)
		}, wantErr: domain.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := workedExample()
			o := placed(t, d)
			before := o.Version()
			res, err := tc.do(o, d)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			if tc.outcome != "" && (res.Outcome != tc.outcome || res.Reason != tc.reason || res.Expected != tc.expected) {
				t.Fatalf("result %+v, want %s %s %s", res, tc.outcome, tc.reason, tc.expected)
			}
			v := o.View()
			if tc.wantStatus != "" && v.Position.Status != tc.wantStatus {
				t.Fatalf("status %s, want %s", v.Position.Status, tc.wantStatus)
			}
			want := tc.wantState
			if want == "" {
				want = domain.StateActive
			}
			if v.State != want {
				t.Fatalf("state %s, want %s", v.State, want)
			}
			if tc.outcome == domain.OutcomeDuplicate && o.Version() != before+1 {
				t.Fatalf("a duplicate recorded an event (version %d)", o.Version())
			}
			if first, seen := o.TriggerOutcome("t1"); tc.outcome == domain.OutcomeDuplicate && (!seen || first != res.Original) {
				t.Fatalf("TriggerOutcome(t1) = %s, %v; want %s", first, seen, res.Original)
			}
			if _, seen := o.TriggerOutcome("never-sent"); seen {
				t.Fatal("a trigger id never sent was seen")
			}
			// A rejected trigger id is answered again with its rejection,
			// without the order's history.
			first, _ := o.TriggerOutcome("t1")
			r, rejected := o.Rejection("t1")
			if rejected != (first == domain.OutcomeRejected) ||
				(rejected && res.Outcome == domain.OutcomeRejected && (r.Reason != tc.reason || r.Expected != tc.expected)) {
				t.Fatalf("Rejection(t1) = %+v, %v after %+v", r, rejected, res)
			}
		})
	}
}

// reloaded folds the events o recorded into a new order, as a load from
// the store would, each passed through edit first when edit is not nil.
func reloaded(t *testing.T, d *defs, o *domain.Order, edit func(domain.Event) domain.Event) *domain.Order {
	t.Helper()
	loaded := domain.NewOrder(o.View().ID, d)
	for _, e := range o.Changes() {
		if edit != nil {
			e = edit(e)
		}
		must(t, loaded.Apply(e))
	}
	return loaded
}

// TestTriggerIDNamesOneTrigger: an id the order has seen, sent again for
// another trigger key, is refused (ErrDuplicate) and records nothing, also
// for an order loaded from its events; sent again with its own key, it is
// a duplicate.
func TestTriggerIDNamesOneTrigger(t *testing.T) {
	t.Parallel()
	d := workedExample()
	o := placed(t, d)
	if _, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d); err != nil {
		t.Fatal(err)
	}
	loaded := reloaded(t, d, o, nil)
	for name, o := range map[string]*domain.Order{"deciding": o, "loaded": loaded} {
		before := o.Version()
		_, err := o.ApplyTrigger("items_tagged", "t1", domain.TriggerReport{Worker: "w"}, d)
		if !errors.Is(err, domain.ErrDuplicate) || !strings.Contains(err.Error(), `"t1" is already the id of trigger "picked_up" on order "o-1" (advanced)`) {
			t.Fatalf("%s: the id again for another trigger: %v, want ErrDuplicate naming the first trigger", name, err)
		}
		if o.Version() != before || o.View().Position.Status != "received" {
			t.Fatalf("%s: the refused trigger changed the order: version %d, at %+v", name, o.Version(), o.View().Position)
		}
		if err := o.CheckTriggerID("picked_up", "t1"); err != nil {
			t.Fatalf("%s: CheckTriggerID with the id's own key: %v", name, err)
		}
		if err := o.CheckTriggerID("items_tagged", "t2"); err != nil {
			t.Fatalf("%s: CheckTriggerID with an id never seen: %v", name, err)
		}
		res, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d)
		if err != nil || res.Outcome != domain.OutcomeDuplicate || res.Original != domain.OutcomeAdvanced {
			t.Fatalf("%s: the id again with its own key: %+v, %v; want a duplicate of advanced", name, res, err)
		}
	}
}

// A trigger recorded before trigger ids and workers were checked (an id
// with a space, a worker with a tab) is still its own duplicate when sent
// again; a new trigger with such an id is refused.
func TestTriggerRecordedBeforeTheChecks(t *testing.T) {
	t.Parallel()
	d := workedExample()
	o := placed(t, d)
	if _, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, d); err != nil {
		t.Fatal(err)
	}
	loaded := reloaded(t, d, o, func(e domain.Event) domain.Event {
		if adv, ok := e.(domain.OrderAdvanced); ok {
			adv.TriggerID, adv.Worker = "old id", "old\tworker"
			return adv
		}
		return e
	})
	res, err := loaded.ApplyTrigger("picked_up", "old id", domain.TriggerReport{Worker: "old\tworker"}, d)
	if err != nil || res.Outcome != domain.OutcomeDuplicate || res.Original != domain.OutcomeAdvanced {
		t.Fatalf("the old trigger again: %+v, %v; want a duplicate of advanced", res, err)
	}
	if _, err := loaded.ApplyTrigger("items_tagged", "new id", domain.TriggerReport{Worker: "w"}, d); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a new trigger id with a space: %v, want ErrInvalid", err)
	}
}

func TestOrderPlacement(t *testing.T) {
	t.Parallel()
	d := workedExample()
	tests := []struct {
		name, id, orderType, fulfillment string
		want                             error
		route                            string
	}{
		{"default fulfillment", "o1", "wash_fold", "", nil, "intake,production,delivery"},
		{"chosen fulfillment", "o2", "wash_fold", "pickup", nil, "intake,production,pickup"},
		{"fulfillment not offered", "o3", "wash_fold", "production", domain.ErrInvalid, ""},
		{"unknown order type", "o4", "nope", "", domain.ErrInvalid, ""},
		{"archived order type", "o5", "old", "", domain.ErrInvalid, ""},
		{"unsafe id", "o.6", "wash_fold", "", domain.ErrInvalid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := domain.NewOrder(tc.id, d)
			err := o.Place(tc.orderType, tc.fulfillment, d, d)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				return
			}
			must(t, err)
			if got := joinStrings(o.View().Workflows); got != tc.route {
				t.Fatalf("route %s, want %s", got, tc.route)
			}
		})
	}
	o := placed(t, d)
	if err := o.Place("wash_fold", "", d, d); !errors.Is(err, domain.ErrDuplicate) {
		t.Fatalf("placing twice: %v", err)
	}
}

// An order pins each workflow's version as it enters it: a reorder while
// the order is inside does not change its steps, a new order uses the new
// version, and migrate moves the first order over.
func TestOrderPinsAndMigrates(t *testing.T) {
	t.Parallel()
	d := workedExample()
	o := placed(t, d)
	_, _ = o.ApplyTrigger("picked_up", "a", domain.TriggerReport{Worker: "w"}, d)
	_, _ = o.ApplyTrigger("items_tagged", "b", domain.TriggerReport{Worker: "w"}, d) // enters production v1
	if p := o.View().Position; p.WorkflowID != "production" || p.WorkflowVersion != 1 {
		t.Fatalf("entered at %+v", p)
	}
	// Production v2: drying before washing.
	d.addVersion("production", domain.Step{Status: "drying", Trigger: "dry_done"}, domain.Step{Status: "washing", Trigger: "wash_done"},
		domain.Step{Status: "folding", Trigger: "folded"})
	// The pinned order still expects wash_done first.
	res, err := o.ApplyTrigger("wash_done", "c", domain.TriggerReport{Worker: "w"}, d)
	must(t, err)
	if res.Outcome != domain.OutcomeAdvanced || o.View().Position.Status != "drying" || o.View().Position.WorkflowVersion != 1 {
		t.Fatalf("pinned order: %+v at %+v", res, o.View().Position)
	}
	// Migrate to v2: drying is step 0 there.
	must(t, o.Migrate("production", 2, "", d))
	if p := o.View().Position; p.WorkflowVersion != 2 || p.Step != 0 || p.Status != "drying" || o.View().ExpectedTrigger != "dry_done" {
		t.Fatalf("after migrate: %+v expecting %s", p, o.View().ExpectedTrigger)
	}
	if err := o.Migrate("production", 2, "", d); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("migrate to the same version: %v", err)
	}
	// A version without the current status refuses migration.
	d.addVersion("production", domain.Step{Status: "washing", Trigger: "wash_done"})
	if err := o.Migrate("production", 3, "", d); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("migrate to a version without drying: %v", err)
	}
	if err := o.Migrate("intake", 1, "", d); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("migrate another workflow: %v", err)
	}
	// A new order pins the newest version when it enters production.
	n := domain.NewOrder("o-2", d)
	must(t, n.Place("wash_fold", "", d, d))
	_, _ = n.ApplyTrigger("picked_up", "a", domain.TriggerReport{Worker: "w"}, d)
	_, _ = n.ApplyTrigger("items_tagged", "b", domain.TriggerReport{Worker: "w"}, d)
	if p := n.View().Position; p.WorkflowVersion != 3 || p.Status != "washing" {
		t.Fatalf("new order entered at %+v", p)
	}
}

// Archiving keeps new orders off a workflow, not the orders already
// placed: an order whose route leads into a workflow archived meanwhile
// enters its latest version and completes, as placed.
func TestOrderFinishesItsRouteThroughAnArchivedWorkflow(t *testing.T) {
	t.Parallel()
	d := workedExample()
	o := placed(t, d)
	_, err := o.ApplyTrigger("picked_up", "a", domain.TriggerReport{Worker: "w"}, d)
	must(t, err)
	vs := d.versions["production"]
	archived := vs[len(vs)-1]
	archived.Version, archived.Archived = archived.Version+1, true
	d.versions["production"] = append(vs, archived)
	for i, tr := range allTriggers[1:] {
		res, err := o.ApplyTrigger(tr, "t-"+tr, domain.TriggerReport{Worker: "w"}, d)
		must(t, err)
		if i == 0 && o.View().Position != (domain.Position{WorkflowID: "production", WorkflowVersion: 2, Step: 0, Status: "washing"}) {
			t.Fatalf("entered at %+v, want the archived workflow's latest version", o.View().Position)
		}
		if res.Outcome == domain.OutcomeRejected {
			t.Fatalf("%s rejected: %+v", tr, res)
		}
	}
	if o.View().State != domain.StateCompleted {
		t.Fatalf("state %s, want completed", o.View().State)
	}
}

func joinStrings(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// An order read while its definitions lacked the version it is pinned to
// (another process made it a moment ago) does not know its step's
// trigger; once the definitions have that version, the same order
// decides, without being read again.
func TestOrderMeetsItsDefinitionsLater(t *testing.T) {
	t.Parallel()
	d := workedExample()
	events := placed(t, d).Changes()
	lagging := &defs{versions: map[string][]domain.WorkflowState{}, types: d.types}
	o := domain.NewOrder("o-1", lagging)
	for _, e := range events {
		must(t, o.Apply(e))
	}
	if _, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, lagging); !errors.Is(err, domain.ErrDefinitionMissing) || len(o.Changes()) != 0 {
		t.Fatalf("without its workflow version: %v, %d changes", err, len(o.Changes()))
	}
	lagging.versions = d.versions // the definitions catch up
	res, err := o.ApplyTrigger("picked_up", "t1", domain.TriggerReport{Worker: "w"}, lagging)
	if err != nil || res.Outcome != domain.OutcomeAdvanced || o.View().Position.Status != "received" {
		t.Fatalf("with it: %+v, %v at %+v", res, err, o.View().Position)
	}
}

// A command that needs a workflow the definitions do not yet hold (a read
// model behind the definitions stream, say) answers ErrDefinitionMissing
// and records nothing, so that it can be tried again; once the workflow is
// known it goes through.
func TestOrderWaitsForAMissingWorkflow(t *testing.T) {
	t.Parallel()
	without := func(d *defs, id string) *defs {
		lagging := &defs{versions: maps.Clone(d.versions), types: d.types}
		delete(lagging.versions, id)
		return lagging
	}
	tests := []struct {
		name    string
		missing string
		start   func(*testing.T, *defs) *domain.Order
		do      func(*domain.Order, *defs) error
	}{
		{"placing, the first workflow", "intake",
			func(_ *testing.T, d *defs) *domain.Order { return domain.NewOrder("o-1", d) },
			func(o *domain.Order, d *defs) error { return o.Place("wash_fold", "", d, d) }},
		{"the last step's trigger, the next workflow", "production",
			func(t *testing.T, d *defs) *domain.Order {
				o := placed(t, d)
				if _, err := o.ApplyTrigger("picked_up", "t-picked_up", domain.TriggerReport{}, d); err != nil {
					t.Fatal(err)
				}
				return o
			},
			func(o *domain.Order, d *defs) error {
				_, err := o.ApplyTrigger("items_tagged", "t-items_tagged", domain.TriggerReport{}, d)
				return err
			}},
		{"a trigger on a held order, its own workflow", "intake",
			func(t *testing.T, d *defs) *domain.Order {
				o := placed(t, d)
				must(t, o.Hold("wait"))
				return o
			},
			func(o *domain.Order, d *defs) error {
				_, err := o.ApplyTrigger("picked_up", "t-1", domain.TriggerReport{}, d)
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := workedExample()
			o := tc.start(t, d)
			// The order as a process that restarted with lagging
			// definitions loads it.
			lagging := without(d, tc.missing)
			again := domain.NewOrder("o-1", lagging)
			for _, e := range o.Changes() {
				must(t, again.Apply(e))
			}
			version, view := again.Version(), again.View()
			err := tc.do(again, lagging)
			if !errors.Is(err, domain.ErrDefinitionMissing) || !strings.Contains(err.Error(), strconv.Quote(tc.missing)) {
				t.Fatalf("got %v, want ErrDefinitionMissing naming %q", err, tc.missing)
			}
			if again.Version() != version || len(again.Changes()) != 0 || !reflect.DeepEqual(again.View(), view) {
				t.Fatalf("changed the order: version %d → %d, %d changes", version, again.Version(), len(again.Changes()))
			}
			lagging.versions = d.versions // the definitions catch up
			must(t, tc.do(again, lagging))
			if again.Version() != version+1 {
				t.Fatalf("once the workflow is known: version %d → %d", version, again.Version())
			}
		})
	}
}

// Each outcome of a trigger keeps what the worker app said with it: its
// note and its time (in UTC); a note with control characters other than
// tab and line breaks is refused.
func TestTriggerOutcomesKeepTheWorkersReport(t *testing.T) {
	t.Parallel()
	d := workedExample()
	o := placed(t, d)
	at := time.Date(2026, 11, 30, 9, 12, 0, 0, time.FixedZone("CET", 3600))
	rep := domain.TriggerReport{Worker: "ana", Note: "two bags,\n\tone heavy", OccurredAt: at}
	if _, err := o.ApplyTrigger("wash_done", "t-wrong", rep, d); err != nil {
		t.Fatal(err)
	}
	for i, tr := range []string{"picked_up", "items_tagged", "wash_done", "dry_done", "folded", "out_for_delivery", "delivered"} {
		if _, err := o.ApplyTrigger(tr, fmt.Sprintf("t-%d", i), rep, d); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string]bool{}
	for _, e := range o.Changes() {
		var note string
		var when time.Time
		switch e := e.(type) {
		case domain.TriggerRejected:
			note, when = e.Note, e.WorkerOccurredAt
		case domain.OrderAdvanced:
			note, when = e.Note, e.WorkerOccurredAt
		case domain.OrderCompleted:
			note, when = e.Note, e.WorkerOccurredAt
		default:
			continue
		}
		kinds[e.EventType()] = true
		if note != rep.Note || !when.Equal(at) || when.Location() != time.UTC {
			t.Fatalf("%s keeps note %q and time %v; want %q and %v in UTC", e.EventType(), note, when, rep.Note, at)
		}
	}
	if len(kinds) != 3 {
		t.Fatalf("outcomes seen: %v", kinds)
	}
	o = placed(t, d)
	if _, err := o.ApplyTrigger("picked_up", "t-1", domain.TriggerReport{Worker: "ana", Note: "bell\x07"}, d); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a note with a control character: %v", err)
	}
	// A time is recorded in UTC, as RFC 3339 writes it: from year 0 to
	// 9999. Past either end (which an offset makes of a time that reads
	// as year 9999 or 0) it is refused and nothing is recorded.
	for _, c := range []struct {
		at time.Time
		ok bool
	}{
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -23*3600)), false},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("", 5*3600)), false},
		{time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		err := domain.TriggerReport{Worker: "ana", OccurredAt: c.at}.Check()
		if c.ok != (err == nil) || err != nil && !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("occurred at %v: %v", c.at, err)
		}
		if !c.ok {
			o := placed(t, d)
			if _, err := o.ApplyTrigger("picked_up", "t-1", domain.TriggerReport{Worker: "ana", OccurredAt: c.at}, d); !errors.Is(err, domain.ErrInvalid) || len(o.Changes()) != 1 {
				t.Errorf("applied at %v: %v, %d changes (OrderPlaced alone wanted)", c.at, err, len(o.Changes()))
			}
		}
	}
}

// Every command on an order in every state: a refused one answers the
// kind of error the HTTP API maps to its status (not found, conflict,
// invalid) and records nothing; the others go through. A move to where
// the order stands is done already and records nothing either.
func TestOrderCommandsInEveryState(t *testing.T) {
	t.Parallel()
	states := map[string]func(*testing.T, *defs) *domain.Order{
		"unplaced": func(t *testing.T, d *defs) *domain.Order { return domain.NewOrder("o-1", d) },
		"active":   placed,
		"on_hold": func(t *testing.T, d *defs) *domain.Order {
			o := placed(t, d)
			must(t, o.Hold("customer called"))
			return o
		},
		"cancelled": func(t *testing.T, d *defs) *domain.Order {
			o := placed(t, d)
			must(t, o.Cancel("placed twice"))
			return o
		},
		"completed": func(t *testing.T, d *defs) *domain.Order {
			o := placed(t, d)
			for _, tr := range allTriggers {
				if _, err := o.ApplyTrigger(tr, "t-"+tr, domain.TriggerReport{Worker: "w"}, d); err != nil {
					t.Fatal(err)
				}
			}
			return o
		},
	}
	type command func(*domain.Order, *defs) error
	trigger := func(tr, id string) command {
		return func(o *domain.Order, d *defs) error {
			_, err := o.ApplyTrigger(tr, id, domain.TriggerReport{Worker: "w"}, d)
			return err
		}
	}
	commands := map[string]command{
		"hold":                      func(o *domain.Order, _ *defs) error { return o.Hold("wait") },
		"resume":                    func(o *domain.Order, _ *defs) error { return o.Resume("go on") },
		"cancel":                    func(o *domain.Order, _ *defs) error { return o.Cancel("not wanted") },
		"move":                      func(o *domain.Order, d *defs) error { return o.Move("intake", 1, "tagged at the counter", d) },
		"migrate":                   func(o *domain.Order, d *defs) error { return o.Migrate("intake", 2, "", d) },
		"trigger":                   trigger("picked_up", "t-new"),
		"hold, reason not UTF-8":    func(o *domain.Order, _ *defs) error { return o.Hold("caf\xe9") },
		"resume, control character": func(o *domain.Order, _ *defs) error { return o.Resume("go\x00") },
		"cancel, control character": func(o *domain.Order, _ *defs) error { return o.Cancel("no\x1b") },
		"migrate, reason too long":  func(o *domain.Order, d *defs) error { return o.Migrate("intake", 2, strings.Repeat("r", 100_000), d) },
		"move, no reason":           func(o *domain.Order, d *defs) error { return o.Move("intake", 1, "", d) },
		"move, step -1":             func(o *domain.Order, d *defs) error { return o.Move("intake", -1, "why", d) },
		"move, unknown workflow":    func(o *domain.Order, d *defs) error { return o.Move("teleport", 0, "why", d) },
		"migrate, no such version":  func(o *domain.Order, d *defs) error { return o.Migrate("intake", 9, "", d) },
		"trigger, bad trigger id":   trigger("picked_up", "t\x00"),
	}
	// want is the error each command answers in each state (nil: done);
	// the bad input rows are refused wherever the order exists.
	ok, conflict, invalid, notFound := error(nil), domain.ErrConflict, domain.ErrInvalid, domain.ErrNotFound
	want := map[string]map[string]error{
		"active":    {"hold": ok, "resume": conflict, "cancel": ok, "move": ok, "migrate": ok, "trigger": ok},
		"on_hold":   {"hold": conflict, "resume": ok, "cancel": ok, "move": ok, "migrate": ok, "trigger": ok},
		"cancelled": {"hold": conflict, "resume": conflict, "cancel": conflict, "move": conflict, "migrate": conflict, "trigger": ok},
		"completed": {"hold": conflict, "resume": conflict, "cancel": conflict, "move": conflict, "migrate": conflict, "trigger": ok},
	}
	// An ended order is beyond moving or migrating, whatever the step or
	// version asked (a bad reason is named first all the same).
	for _, ended := range []string{"cancelled", "completed"} {
		for _, name := range []string{"move, step -1", "move, unknown workflow", "migrate, no such version"} {
			want[ended][name] = conflict
		}
	}
	for state, start := range states {
		for name, cmd := range commands {
			t.Run(state+"/"+name, func(t *testing.T) {
				d := workedExample()
				o := start(t, d)
				// A newer intake, with the same statuses, to migrate to.
				d.addVersion("intake", domain.Step{Status: "pending_pickup", Trigger: "picked_up"}, domain.Step{Status: "received", Trigger: "items_tagged"})
				wantErr, listed := want[state][name]
				switch {
				case state == "unplaced":
					wantErr = notFound
				case !listed:
					wantErr = invalid
				}
				version, changes, view := o.Version(), len(o.Changes()), o.View()
				err := cmd(o, d)
				if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
					t.Fatalf("got %v, want %v", err, wantErr)
				}
				if err != nil && (o.Version() != version || len(o.Changes()) != changes || !reflect.DeepEqual(o.View(), view)) {
					t.Fatalf("a refused command changed the order: version %d → %d, %d → %d changes", version, o.Version(), changes, len(o.Changes()))
				}
				if err == nil && o.Version() != version+1 {
					t.Fatalf("a command that went through recorded %d events", o.Version()-version)
				}
			})
		}
	}
	t.Run("active/move to where it stands", func(t *testing.T) {
		d := workedExample()
		o := placed(t, d)
		version := o.Version()
		must(t, o.Move("intake", 0, "check", d))
		if o.Version() != version || o.View().Position.Status != "pending_pickup" {
			t.Fatalf("a move to where the order stands recorded %d events, now at %+v", o.Version()-version, o.View().Position)
		}
	})
}
