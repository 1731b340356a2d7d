package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// Worker apps and supervisors act on the same orders at once, through two
// orderflow processes that share the trigger lanes and each keep their
// own order cache: workers send each order's triggers, half over NATS
// (client.ApplyTrigger) and half over either process's HTTP, while
// supervisors hold, resume, move, migrate and cancel those orders over
// both processes' HTTP. Every order's history holds only legal steps (an
// outcome's from is where the order stood, nothing takes effect while it
// is held or after it ended, a trigger id takes effect once), every order
// ends, both processes' read models equal a fresh fold of the stream, and
// verify --triggers finds every stored trigger answered.
func TestWorkersAndSupervisorsAtOnce(t *testing.T) {
	t.Parallel()
	t.Run("one server", func(t *testing.T) {
		t.Parallel()
		first := startApp(t, newTestConfig(t))
		cfg := newTestConfig(t)
		cfg.NATSURL, cfg.DataDir = first.NATSURL(), ""
		workersAndSupervisors(t, first, startApp(t, cfg), nil)
	})
	// The second process stopped (gracefully, as on a deploy) at round 40
	// and started again at round 90, with a cold order cache: meanwhile
	// the first takes its lanes and its HTTP callers.
	t.Run("one server, a process restarted", func(t *testing.T) {
		t.Parallel()
		first := startApp(t, newTestConfig(t))
		cfg := newTestConfig(t)
		cfg.NATSURL, cfg.DataDir = first.NATSURL(), ""
		workersAndSupervisors(t, first, startApp(t, cfg), func(round int, p *processes) {
			switch round {
			case 40:
				p.stop(1)
			case 90:
				p.start(1, startApp(t, cfg))
			}
		})
	})
	// Three servers, the streams replicated on each: a process may read
	// an order from a replica that has not yet stored its last event.
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("cluster")
		}
		t.Parallel()
		cl := eventstoretest.StartCluster(t, 3)
		workersAndSupervisors(t, clusterApp(t, cl), clusterApp(t, cl), nil)
	})
	// And one of the three stopped for a third of the rounds.
	t.Run("cluster with a node stopped", func(t *testing.T) {
		if testing.Short() {
			t.Skip("cluster")
		}
		t.Parallel()
		cl := eventstoretest.StartCluster(t, 3)
		workersAndSupervisors(t, clusterApp(t, cl), clusterApp(t, cl), func(round int, _ *processes) {
			switch round {
			case 150:
				cl.Stop(2)
			case 300:
				cl.Restart(2)
			}
		})
	})
}

// processes are the test's two orderflow processes. The second may be
// stopped and started again meanwhile; while it is down, the first stands
// in for it. Workers take what they use of a process (its HTTP address,
// its commands) when they pick it, and never read the App itself, which
// Close changes.
type processes struct {
	t     *testing.T
	mu    sync.Mutex
	procs [2]pick
	up    [2]bool
	// met counts the requests that failed because their process was
	// stopped after it was picked.
	met atomic.Int64
}

// pick is one of the processes as a worker or supervisor picked it;
// gen counts its stops up to then.
type pick struct {
	i, gen int
	app    *App
	addr   string
	cmds   *handlers.Commands
	http   *httpClient
}

func newProcesses(t *testing.T, first, second *App) *processes {
	p := &processes{t: t, up: [2]bool{true, true}}
	p.set(0, first)
	p.set(1, second)
	return p
}

func (p *processes) set(i int, app *App) {
	p.procs[i] = pick{i: i, gen: p.procs[i].gen, app: app, addr: app.HTTPAddr(), cmds: app.cmds, http: newClient(p.t, app)}
}

// get is process i, or the other while i is down.
func (p *processes) get(i int) pick {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up[i] {
		i = 1 - i
	}
	return p.procs[i]
}

// gone reports whether pr's process was stopped after it was picked: an
// error from it then is a worker app's meeting a process going away.
func (p *processes) gone(pr pick) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.procs[pr.i].gen == pr.gen {
		return false
	}
	p.met.Add(1)
	return true
}

// stop closes process i (gracefully: its HTTP server and lanes drain).
func (p *processes) stop(i int) {
	p.mu.Lock()
	p.up[i] = false
	p.procs[i].gen++
	app := p.procs[i].app
	p.mu.Unlock()
	if err := app.Close(); err != nil {
		p.t.Errorf("close process %d: %v", i, err)
	}
}

// start puts app in place of stopped process i.
func (p *processes) start(i int, app *App) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(i, app)
	p.up[i] = true
}

// workersAndSupervisors runs the test's workers and supervisors on two
// processes; during, when not nil, is called at the start of each
// supervisor round, with the processes to stop and start.
func workersAndSupervisors(t *testing.T, first, second *App, during func(round int, p *processes)) {
	procs := newProcesses(t, first, second)
	intake, production, delivery := seedWorkedExample(t, procs.get(0).http)
	stepsOf := map[string]int{intake: 2, production: 3, delivery: 2}
	orders := placeOrders(t, procs.get(0).http, "busy", 40)

	// The worked example's status names the trigger that moves an order on.
	next := map[string]string{"pending_pickup": "picked_up", "received": "items_tagged", "washing": "wash_done",
		"drying": "dry_done", "folding": "folded", "ready_for_delivery": "out_for_delivery", "out_for_delivery": "delivered"}
	ctx, stop := context.WithCancel(ctxFor(t, 3*time.Minute))
	wc := workerClient(t, first)
	var wg sync.WaitGroup
	defer wg.Wait() // the workers report nothing after the test ends
	defer stop()
	var mu sync.Mutex
	// Workers take a turn from pace before each trigger: the supervisors
	// hand out two a round, so that their actions fall between the
	// triggers, and close it when their rounds are over.
	pace := make(chan struct{}, 2)
	rejected := map[domain.RejectReason]int{}
	for i, id := range orders {
		wg.Go(func() {
			// orderNow reads the order on this worker's process (or the
			// one standing in for it): read is false when that process
			// was stopped meanwhile (ask again); any other error fails
			// the test, and stop says so.
			orderNow := func() (snap handlers.OrderSnapshot, read, stop bool) {
				pr := procs.get(i % 2)
				snap, err := pr.cmds.CurrentOrder(ctx, id)
				switch {
				case err == nil:
					return snap, true, false
				case procs.gone(pr):
					return snap, false, false
				}
				t.Errorf("%s: %v", id, err)
				return snap, false, true
			}
			tr := "picked_up"
			for n := 0; ; n++ {
				select {
				case <-pace:
				case <-ctx.Done():
					t.Errorf("%s: %v", id, ctx.Err())
					return
				}
				// Half the workers over NATS, half over HTTP.
				triggerID := fmt.Sprintf("%s-w%d", id, n)
				var outcome domain.TriggerOutcome
				var status string // where an advance took the order
				var err error
				if i%4 < 2 {
					var a client.Applied
					if a, err = wc.ApplyTrigger(ctx, client.Trigger{OrderID: id, Trigger: tr, TriggerID: triggerID, Worker: "w"}); err == nil {
						outcome = a.Outcome
						if a.Change != nil && a.Change.To != nil {
							status = a.Change.To.Status
						}
					}
				} else {
					outcome, status, err = applyOverHTTP(ctx, procs, i/4%2, id, tr, triggerID)
				}
				var rej *domain.RejectedError
				switch {
				case err == nil && outcome == domain.OutcomeCompleted:
					return
				case err == nil && outcome == domain.OutcomeAdvanced:
					tr = next[status]
					continue
				case err == nil && outcome == domain.OutcomeDuplicate:
					// Sent again after a 503 (or a lost acknowledgement), the
					// trigger had taken effect the first time: on with
					// where the order stands now.
					snap, read, stop := orderNow()
					switch {
					case stop:
						return
					case !read:
						continue // its process stopped: the same trigger again, rejected with the one expected
					case snap.State == domain.StateCompleted || snap.State == domain.StateCancelled:
						return
					}
					tr = snap.ExpectedTrigger
					continue
				case err == nil:
					t.Errorf("%s: trigger %s: outcome %s", id, tr, outcome)
					return
				case !errors.As(err, &rej):
					t.Errorf("%s: trigger %s: %v", id, tr, err)
					return
				}
				mu.Lock()
				rejected[rej.Reason]++
				mu.Unlock()
				switch rej.Reason {
				case domain.RejectCancelled:
					return
				case domain.RejectUnexpectedTrigger:
					tr = rej.Expected // a supervisor moved the order
				case domain.RejectOnHold:
				held:
					for { // until a supervisor resumes it
						snap, read, stop := orderNow()
						switch {
						case stop:
							return
						case !read: // its process stopped: ask again on a turn
						case snap.State != domain.StateOnHold:
							if snap.State == domain.StateActive {
								tr = snap.ExpectedTrigger
							}
							break held
						}
						// Polling, a turn at a time while the supervisors
						// hand them out (they wait for the turn to be taken).
						select {
						case _, turns := <-pace:
							if !turns {
								select {
								case <-time.After(5 * time.Millisecond):
								case <-ctx.Done():
								}
							}
						case <-ctx.Done():
						}
						if ctx.Err() != nil {
							t.Errorf("%s: still held: %v", id, ctx.Err())
							return
						}
					}
				default:
					t.Errorf("%s: trigger %s: %v", id, tr, err)
					return
				}
			}
		})
	}

	// Supervisors, meanwhile, on either process. Midway the production
	// workflow gets a new version for orders to be migrated to.
	rng := rand.New(rand.NewPCG(7, 11))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	accepted := map[string]int{}
	act := func(c *httpClient, id, action string, body map[string]any) {
		body["reason"] = "supervisor " + action
		r := c.do("POST", "/v1/orders/"+id+"/"+action, body)
		switch r.Status {
		case 200:
			accepted[action]++
		case 409: // the order moved on since it was read: held, resumed, ended
		case 400: // or left the workflow, or was migrated already
			if action != "migrate" {
				t.Errorf("%s %s = %d: %s", action, id, r.Status, r.Body)
			}
		default:
			t.Errorf("%s %s = %d: %s", action, id, r.Status, r.Body)
		}
	}
	toVersion := 0.0
	workersDone := -1 // the round in which the last worker was done
	for round := 0; round < 400; round++ {
		for range 2 {
			select {
			case pace <- struct{}{}:
			case <-done:
				if workersDone < 0 {
					workersDone = round
				}
			}
		}
		if during != nil {
			during(round, procs)
		}
		if round == 40 { // a new version of production, for orders to be migrated to
			w := procs.get(1).http.must(200, "PATCH", "/v1/workflows/"+production, map[string]any{"name": "Standard Laundry Production (v2)"})
			toVersion = w["version"].(float64)
		}
		c := procs.get(rng.IntN(2)).http
		id := orders[rng.IntN(len(orders))]
		state, wf := orderAt(t, c, id)
		switch p := rng.IntN(100); {
		case state == "completed" || state == "cancelled":
		case state == "on_hold":
			if p < 60 {
				act(c, id, "resume", map[string]any{})
			}
		case p < 25:
			act(c, id, "hold", map[string]any{})
		case p < 50:
			act(c, id, "move", map[string]any{"workflow_id": wf, "step": rng.IntN(stepsOf[wf])})
		case p < 75:
			if toVersion > 0 && wf == production {
				act(c, id, "migrate", map[string]any{"workflow_id": production, "to_version": toVersion})
			}
		case p < 78:
			act(c, id, "cancel", map[string]any{})
		}
	}
	close(pace)
	// Then only resumes, until every worker is done.
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-ctx.Done():
			t.Fatal("the workers did not finish")
		default:
			for _, id := range orders {
				if state, _ := orderAt(t, procs.get(0).http, id); state == "on_hold" {
					act(procs.get(0).http, id, "resume", map[string]any{})
				}
			}
		}
	}
	t.Logf("workers done in round %d; requests that met a process stopping: %d; supervisor actions accepted: %v; triggers rejected: %v; triggers handled by each process: %d, %d",
		workersDone, procs.met.Load(), accepted, rejected, procs.get(0).app.proc.Handled(), procs.get(1).app.proc.Handled())
	for _, action := range []string{"hold", "resume", "move", "migrate", "cancel"} {
		if accepted[action] == 0 {
			t.Errorf("no %s took effect: %v", action, accepted)
		}
	}
	for _, id := range orders {
		checkLegalHistory(t, procs.get(1).http, id)
	}
	for i := range 2 {
		checkOrdersFold(t, ctx, procs.get(i).app)
	}
	code, out, errOut := runMain(t, "verify", "--triggers", "--nats-url", first.NATSURL())
	if code != 0 || !strings.Contains(out, " 0 break(s)") || !strings.Contains(out, " 0 missing") {
		t.Fatalf("verify --triggers: %d\n%s%s", code, out, errOut)
	}
}

// applyOverHTTP sends a trigger with POST /v1/orders/{id}/triggers to
// process i (or the one standing in for it) and answers as
// client.ApplyTrigger does: the outcome and the status it took the order
// to, or a *domain.RejectedError. A 503 (the trigger stored and its
// outcome not known yet, on a busy machine), or any failure but a
// rejection from a process that was stopped meanwhile, is met as a worker
// app would: the same trigger id is sent again.
func applyOverHTTP(ctx context.Context, procs *processes, i int, id, trigger, triggerID string) (domain.TriggerOutcome, string, error) {
	for {
		pr := procs.get(i)
		outcome, status, err := postTrigger(ctx, pr.addr, id, trigger, triggerID)
		var rejected *domain.RejectedError
		switch {
		case errors.Is(err, errTriggerUnavailable):
		case err != nil && !errors.As(err, &rejected) && ctx.Err() == nil && procs.gone(pr):
		default:
			return outcome, status, err
		}
		select { // as its Retry-After asks
		case <-time.After(time.Second):
		case <-ctx.Done():
			return "", "", err
		}
	}
}

var errTriggerUnavailable = errors.New("503: send the trigger again with its id")

func postTrigger(ctx context.Context, addr, id, trigger, triggerID string) (domain.TriggerOutcome, string, error) {
	body, _ := json.Marshal(map[string]string{"trigger": trigger, "trigger_id": triggerID, "worker": "w"})
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/orders/"+id+"/triggers", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return "", "", errTriggerUnavailable
	}
	var a struct {
		Outcome domain.TriggerOutcome `json:"outcome"`
		Order   struct {
			Position struct {
				Status string `json:"status"`
			} `json:"position"`
		} `json:"order"`
		Code, Reason, Expected string
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return "", "", fmt.Errorf("answered %d: %w", resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return a.Outcome, a.Order.Position.Status, nil
	case resp.StatusCode == http.StatusConflict && a.Code == "trigger_rejected":
		return "", "", &domain.RejectedError{Reason: domain.RejectReason(a.Reason), Expected: a.Expected}
	}
	return "", "", fmt.Errorf("answered %d %s", resp.StatusCode, a.Code)
}

// orderAt is an order's state and workflow as GET /v1/orders/{id} has it.
func orderAt(t *testing.T, c *httpClient, id string) (state, workflowID string) {
	t.Helper()
	var o struct {
		State    string `json:"state"`
		Position struct {
			WorkflowID string `json:"workflow_id"`
		} `json:"position"`
	}
	r := c.do("GET", "/v1/orders/"+id, nil)
	if r.Status != 200 || json.Unmarshal(r.Body, &o) != nil {
		t.Fatalf("GET /v1/orders/%s = %d: %s", id, r.Status, r.Body)
	}
	return o.State, o.Position.WorkflowID
}

// checkLegalHistory walks an order's history: each event is one its rules
// allow where the order stood, and the order ended.
func checkLegalHistory(t *testing.T, c *httpClient, id string) {
	t.Helper()
	var h orderHistory
	if err := json.Unmarshal(c.do("GET", "/v1/orders/"+id+"/history", nil).Body, &h); err != nil {
		t.Fatal(err)
	}
	state, pos := domain.OrderState(""), domain.Position{}
	took := map[string]bool{} // trigger ids that took effect
	for i, e := range h.Events {
		fail := func(why string) {
			t.Fatalf("%s v%d %s %s: %s\n%s", id, e.Version, e.Type, e.Data, why, historySummary(c, id))
		}
		if e.Version != uint64(i+1) {
			fail("versions are not 1, 2, 3, ...")
		}
		var d struct {
			From, To  domain.Position
			TriggerID string `json:"trigger_id"`
			Reason    domain.RejectReason
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			fail(err.Error())
		}
		if (i == 0) != (e.Type == domain.TypeOrderPlaced) {
			fail("an order is placed first, and once")
		}
		switch e.Type {
		case domain.TypeOrderPlaced:
			state, pos = domain.StateActive, d.To
		case domain.TypeOrderAdvanced, domain.TypeOrderCompleted:
			switch {
			case state != domain.StateActive:
				fail("a trigger took effect on an order " + string(state))
			case d.From != pos:
				fail(fmt.Sprintf("from is not where the order stood (%+v)", pos))
			case took[d.TriggerID] || e.CausationID != d.TriggerID:
				fail("trigger id took effect twice, or is not the causation id")
			}
			took[d.TriggerID] = true
			pos = d.To
			if e.Type == domain.TypeOrderCompleted {
				state = domain.StateCompleted
			}
		case domain.TypeTriggerRejected:
			want := map[domain.OrderState]domain.RejectReason{domain.StateActive: domain.RejectUnexpectedTrigger,
				domain.StateOnHold: domain.RejectOnHold, domain.StateCompleted: domain.RejectCompleted, domain.StateCancelled: domain.RejectCancelled}[state]
			if d.Reason != want {
				fail(fmt.Sprintf("the reason for an order %s is %s", state, want))
			}
		case domain.TypeOrderHeld, domain.TypeOrderResumed, domain.TypeOrderCancelled:
			from, to := map[string]domain.OrderState{domain.TypeOrderHeld: domain.StateActive, domain.TypeOrderResumed: domain.StateOnHold}[e.Type],
				map[string]domain.OrderState{domain.TypeOrderHeld: domain.StateOnHold, domain.TypeOrderResumed: domain.StateActive, domain.TypeOrderCancelled: domain.StateCancelled}[e.Type]
			if (from != "" && state != from) || (from == "" && state != domain.StateActive && state != domain.StateOnHold) {
				fail("not allowed on an order " + string(state))
			}
			state = to
		case domain.TypeOrderMoved, domain.TypeOrderMigrated:
			if (state != domain.StateActive && state != domain.StateOnHold) || d.From != pos {
				fail(fmt.Sprintf("an order %s at %+v", state, pos))
			}
			pos = d.To
		default:
			fail("unknown event type")
		}
	}
	if state != domain.StateCompleted && state != domain.StateCancelled {
		t.Fatalf("%s ended %s:\n%s", id, state, historySummary(c, id))
	}
}

// checkOrdersFold: the app's orders read model, caught up, equals a fresh
// fold of the orders stream, board included.
func checkOrdersFold(t *testing.T, ctx context.Context, app *App) {
	t.Helper()
	st := app.Store()
	last, err := st.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	live := app.orders.Load()
	fresh := projections.NewOrders(nil)
	if err := fresh.Start(ctx, st); err != nil {
		t.Fatal(err)
	}
	defer fresh.Stop()
	if err := errJoin(live.WaitFor(ctx, last), fresh.WaitFor(ctx, last)); err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, live) != mustJSON(t, fresh) {
		t.Fatal("the orders read model differs from a fresh fold")
	}
	if !reflect.DeepEqual(live.Board("default", ""), fresh.Board("default", "")) {
		t.Fatal("the board differs from a fresh fold")
	}
}
