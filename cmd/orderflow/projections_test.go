package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// listAll pages through GET /v1/orders with the given query.
func listAll(t *testing.T, c *httpClient, query url.Values, limit int) []map[string]any {
	t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("limit", fmt.Sprint(limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		page := c.must(200, "GET", "/v1/orders?"+q.Encode(), nil)
		for _, it := range page["items"].([]any) {
			out = append(out, it.(map[string]any))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return out
		}
		cursor = next
	}
}

// Concurrent triggers on many orders: at the end the board's counts and
// the list filters agree with every order's own state.
func TestBoardAndFiltersAfterConcurrentTriggers(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	ctx := ctxFor(t, 3*time.Minute)
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		t.Fatal(err)
	}
	const orders = 200
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "test"}}
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]int, orders) // how many triggers each order gets
	for i := range orders {
		if _, err := app.cmds.PlaceOrder(ctx, meta, fmt.Sprintf("b-%03d", i), handlers.WorkedExampleOrderType, ""); err != nil {
			t.Fatal(err)
		}
		want[i] = rng.IntN(len(workedTriggers) + 1)
	}
	// Some orders are held or cancelled along the way.
	c := newClient(t, app)
	c.must(200, "POST", "/v1/orders/b-000/hold", map[string]any{"reason": "x"})
	c.must(200, "POST", "/v1/orders/b-001/cancel", map[string]any{"reason": "x"})
	nc := natsConn(t, app)
	js, _ := jetstream.New(nc)
	var wg sync.WaitGroup
	for w := range 4 { // four worker apps publishing concurrently
		wg.Go(func() {
			for i := w; i < orders; i += 4 {
				for _, tr := range workedTriggers[:want[i]] {
					m := nats.NewMsg(eventstore.TriggerSubject("default", fmt.Sprintf("b-%03d", i), tr))
					if _, err := js.PublishMsg(context.Background(), m); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// Wait until every trigger has an outcome in the orders' histories.
	expectVersion := func(i int) uint64 { return uint64(1 + want[i] + map[bool]int{true: 1}[i <= 1]) }
	for i := range orders {
		id := fmt.Sprintf("b-%03d", i)
		waitOrder(t, c, id, func(o map[string]any) bool { return o["version"] == float64(expectVersion(i)) }, "all outcomes")
	}
	// Ground truth from each order itself.
	states := map[string]map[string]any{}
	for i := range orders {
		id := fmt.Sprintf("b-%03d", i)
		states[id] = c.must(200, "GET", "/v1/orders/"+id, nil)
	}
	last, _ := app.Store().LastSequence(ctx, eventstore.StreamOrders)
	minSeq := url.Values{"min_seq": {fmt.Sprint(last)}}

	board := c.must(200, "GET", "/v1/board?min_seq="+fmt.Sprint(last), nil)
	gotBoard := map[string]int{}
	for _, it := range board["items"].([]any) {
		m := it.(map[string]any)
		if n := int(m["count"].(float64)); n > 0 {
			gotBoard[m["workflow_id"].(string)+"/"+m["status"].(string)] = n
		}
	}
	wantBoard := map[string]int{}
	wantByState := map[string]int{}
	wantByStatus := map[string]int{}
	for _, o := range states {
		pos := o["position"].(map[string]any)
		st := o["state"].(string)
		wantByState[st]++
		wantByStatus[pos["status"].(string)]++
		if st == "active" || st == "on_hold" {
			wantBoard[pos["workflow_id"].(string)+"/"+pos["status"].(string)]++
		}
	}
	if fmt.Sprint(gotBoard) != fmt.Sprint(wantBoard) {
		t.Fatalf("board %v\nwant  %v", gotBoard, wantBoard)
	}
	for st, n := range wantByState {
		q := url.Values{"state": {st}}
		for k, v := range minSeq {
			q[k] = v
		}
		if got := len(listAll(t, c, q, 37)); got != n {
			t.Errorf("state=%s lists %d orders, want %d", st, got, n)
		}
	}
	for status, n := range wantByStatus {
		if got := len(listAll(t, c, url.Values{"status": {status}}, 50)); got != n {
			t.Errorf("status=%s lists %d orders, want %d", status, got, n)
		}
	}
	for _, it := range listAll(t, c, url.Values{"workflow_id": {"standard_laundry_production"}}, 100) {
		if it["position"].(map[string]any)["workflow_id"] != "standard_laundry_production" {
			t.Fatalf("workflow filter let through %v", it)
		}
	}
	if got := len(listAll(t, c, url.Values{"order_type_id": {"wash_fold_delivery"}}, 500)); got != orders {
		t.Fatalf("order type filter: %d", got)
	}
	c.problem(400, "invalid_argument", "GET", "/v1/orders?state=sleeping", nil)
	c.problem(400, "invalid_argument", "GET", "/v1/orders?limit=0", nil)
	c.problem(400, "invalid_argument", "GET", "/v1/orders?cursor=%21%21", nil)
	c.problem(400, "invalid_argument", "GET", "/v1/orders?colour=red", nil)
}

// Listing page by page while orders keep changing (and new ones arrive)
// returns every order that existed at the start exactly once.
func TestPagingWhileOrdersChange(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	ctx := ctxFor(t, 3*time.Minute)
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		t.Fatal(err)
	}
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "test"}}
	const orders = 150
	var placed uint64 // the last placing's stream sequence: the list waits for the read model to reach it
	for i := range orders {
		o, err := app.cmds.PlaceOrder(ctx, meta, fmt.Sprintf("p-%03d", i), handlers.WorkedExampleOrderType, "")
		if err != nil {
			t.Fatal(err)
		}
		placed = o.Sequence
	}
	c := newClient(t, app)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // keep changing orders and adding new ones while paging
		wc := workerClient(t, app)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			i := n % orders
			_, _ = wc.PublishTrigger(ctx, clientTrigger(fmt.Sprintf("p-%03d", i), workedTriggers[(n/orders)%len(workedTriggers)]))
			if n%5 == 0 {
				_, _ = app.cmds.PlaceOrder(ctx, meta, fmt.Sprintf("p-%03d-new-%d", i, n), handlers.WorkedExampleOrderType, "")
			}
		}
	})
	seen := map[string]int{}
	for _, it := range listAll(t, c, url.Values{"min_seq": {fmt.Sprint(placed)}}, 7) {
		seen[it["id"].(string)]++
	}
	close(stop)
	wg.Wait()
	for i := range orders {
		id := fmt.Sprintf("p-%03d", i)
		if seen[id] != 1 {
			t.Errorf("%s listed %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
}
