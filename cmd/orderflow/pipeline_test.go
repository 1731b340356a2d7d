package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
)

func natsConn(t *testing.T, app *App) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(app.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// deadLetters subscribes to the dead-letter subjects on the app's NATS.
func deadLetters(t *testing.T, app *App) <-chan *nats.Msg {
	t.Helper()
	dl := make(chan *nats.Msg, 64)
	nc := natsConn(t, app)
	sub, err := nc.ChanSubscribe(eventstore.DeadLetterSubject+".>", dl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil { // the server has the subscription before anything is dead-lettered
		t.Fatal(err)
	}
	return dl
}

// awaitDeadLetter waits for the next dead letter, checks its reason
// names reason, and returns it.
func awaitDeadLetter(t *testing.T, dl <-chan *nats.Msg, reason string) *nats.Msg {
	t.Helper()
	select {
	case m := <-dl:
		if got := m.Header.Get("reason_poisoned"); !strings.Contains(got, reason) {
			t.Fatalf("dead letter reason %q, want %q", got, reason)
		}
		return m
	case <-time.After(eventstoretest.Patience(30 * time.Second)):
		t.Fatalf("no dead letter (%s)", reason)
	}
	return nil
}

func workerClient(t *testing.T, app *App) *client.Client {
	t.Helper()
	c, err := client.New(natsConn(t, app))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ctxFor is a context for work that takes d or less on a quiet machine:
// it ends after d times eventstoretest.Slack, or when the test does.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	return ctxExactly(t, eventstoretest.Patience(d))
}

// ctxExactly is a context that ends after d, or when the test does: for
// a deadline that is what the test checks, or one attempt of several.
func ctxExactly(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitOrder polls GET /v1/orders/{id} until cond holds.
func waitOrder(t *testing.T, c *httpClient, id string, cond func(map[string]any) bool, what string) map[string]any {
	t.Helper()
	// Generous: after a server restart JetStream re-establishes the lanes'
	// source on its own schedule (a health check every 10 s, then backoff).
	deadline := time.Now().Add(eventstoretest.Patience(2 * time.Minute))
	for {
		r := c.do("GET", "/v1/orders/"+id, nil)
		if r.Status == 200 {
			o := r.json(t)
			if cond(o) {
				return o
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: timed out waiting for %s (last %d %s)\nhistory:\n%s", id, what, r.Status, r.Body, historySummary(c, id))
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// The worked example's order is placed, every trigger is published over
// NATS with the client package, each stage change is seen on the order's
// subjects, and the order ends completed with versions 1..8.
func TestWorkedOrderOverNATS(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	hc := newClient(t, app)
	seedWorkedExample(t, hc)
	wc := workerClient(t, app)
	changes := make(chan client.StageChange, 16)
	sub, err := wc.SubscribeStageChanges("o-nats", func(sc client.StageChange) { changes <- sc })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	hc.must(201, "POST", "/v1/orders", map[string]any{"id": "o-nats", "order_type_id": "wash_fold_delivery"})
	ctx := ctxFor(t, 3*time.Minute)
	var seen []client.StageChange
	next := func() client.StageChange {
		select {
		case sc := <-changes:
			seen = append(seen, sc)
			return sc
		case <-ctx.Done():
			t.Fatalf("no stage change after %d", len(seen))
			return client.StageChange{}
		}
	}
	if sc := next(); sc.Type != "OrderPlaced" || sc.Version != 1 || sc.To.Status != "pending_pickup" {
		t.Fatalf("placed: %+v", sc)
	}
	// What the worker app says with a trigger is kept with its outcome:
	// the first trigger's note and its time (in the worker's zone).
	said := time.Date(2026, 11, 30, 9, 12, 0, 0, time.FixedZone("CET", 3600))
	for i, tr := range workedTriggers {
		trig := client.Trigger{OrderID: "o-nats", Trigger: tr, Worker: "w1"}
		if i == 0 {
			trig.Note, trig.OccurredAt = "two bags,\none heavy", said
		}
		ack, err := wc.PublishTrigger(ctx, trig)
		if err != nil || ack.Sequence == 0 || ack.TriggerID == "" {
			t.Fatalf("publish %s: %+v %v", tr, ack, err)
		}
		sc := next()
		want := "OrderAdvanced"
		if i == len(workedTriggers)-1 {
			want = "OrderCompleted"
		}
		if sc.Type != want || sc.Version != uint64(i+2) || sc.CausationID != ack.TriggerID {
			t.Fatalf("after %s: %+v", tr, sc)
		}
	}
	o := hc.must(200, "GET", "/v1/orders/o-nats", nil)
	if o["state"] != "completed" || o["version"] != float64(8) {
		t.Fatalf("order %v", o)
	}
	for i, sc := range seen {
		if sc.Version != uint64(i+1) {
			t.Fatalf("versions not 1..8: %d at %d", sc.Version, i)
		}
	}
	for _, e := range history(t, hc, "o-nats") {
		data := e["data"].(map[string]any)
		switch e["version"] {
		case float64(2):
			if data["note"] != "two bags,\none heavy" || data["worker_occurred_at"] != "2026-11-30T08:12:00Z" {
				t.Fatalf("the first trigger's outcome does not keep what the worker said: %v", data)
			}
		default:
			if _, ok := data["note"]; ok {
				t.Fatalf("v%v has a note: %v", e["version"], data)
			}
			if _, ok := data["worker_occurred_at"]; ok {
				t.Fatalf("v%v has a worker's time: %v", e["version"], data)
			}
		}
	}
	if code, out, _ := runMain(t, "audit", "order", "o-nats", "--nats-url", app.NATSURL()); code != 0 ||
		!strings.Contains(out, `worker:w1  picked_up: Pending Pickup → Received (at 2026-11-30T08:12:00Z by its clock, note "two bags,\none heavy")`) {
		t.Fatalf("audit order: %d\n%s", code, out)
	}
}

// All 7 triggers of each of 1,000 orders are published back to back: every
// order completes, none is rejected, and the lanes run in parallel.
func TestThousandOrdersBackToBack(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 orders")
	}
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.Lanes = 8
	app := startApp(t, cfg)
	// Three minutes times the slack: under go test's -timeout of 30m, so
	// that a slow run fails as this test, not as the package.
	ctx := ctxFor(t, 3*time.Minute)
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		t.Fatal(err)
	}
	const orders = 1000
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "test"}}
	for i := range orders {
		if _, err := app.cmds.PlaceOrder(ctx, meta, fmt.Sprintf("bulk-%d", i), handlers.WorkedExampleOrderType, ""); err != nil {
			t.Fatal(err)
		}
	}
	nc := natsConn(t, app)
	js, _ := jetstream.New(nc)
	completed := make(chan string, orders)
	var rejected sync.Map
	sub, err := nc.Subscribe("orderflow.default.order.*.>", func(m *nats.Msg) {
		var env eventstore.Envelope
		_ = json.Unmarshal(m.Data, &env)
		switch env.Type {
		case "OrderCompleted":
			completed <- env.AggregateID
		case "TriggerRejected":
			rejected.Store(env.AggregateID, string(env.Data))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// Back to back: each order's seven triggers one right after another.
	for i := range orders {
		for _, tr := range workedTriggers {
			m := nats.NewMsg(eventstore.TriggerSubject("default", fmt.Sprintf("bulk-%d", i), tr))
			if _, err := js.PublishMsgAsync(m); err != nil {
				t.Fatal(err)
			}
		}
		if i%100 == 99 { // keep the publisher's window bounded on a loaded machine
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("triggers not acknowledged")
			}
		}
	}
	<-js.PublishAsyncComplete()
	done := map[string]bool{}
	for len(done) < orders {
		select {
		case id := <-completed:
			done[id] = true
		case <-ctx.Done():
			t.Fatalf("%d of %d orders completed", len(done), orders)
		}
	}
	n := 0
	rejected.Range(func(k, v any) bool { n++; t.Errorf("rejected on %v: %v", k, v); return n < 5 })
	if n > 0 {
		t.Fatal("triggers were rejected")
	}
	// Several lanes did the work.
	lanes := map[string]bool{}
	stream, _ := js.Stream(ctx, eventstore.StreamTriggerLanes)
	for i := range cfg.Lanes {
		ci, err := stream.Consumer(ctx, eventstore.LaneConsumer(i))
		if err != nil {
			t.Fatal(err)
		}
		info, err := ci.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Stream > 0 {
			lanes[info.Name] = true
		}
	}
	if len(lanes) < 4 {
		t.Fatalf("only lanes %v did work", lanes)
	}
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject, msgID string, body []byte) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// orderHistory is GET /v1/orders/{id}/history's answer.
type orderHistory struct {
	Events []struct {
		Type        string          `json:"type"`
		Version     uint64          `json:"version"`
		CausationID string          `json:"causation_id"`
		Data        json.RawMessage `json:"data"`
	} `json:"events"`
}

// historySummary is one line per event of the order (version, type,
// causation and what the data says), for failure messages.
func historySummary(c *httpClient, id string) string {
	r := c.do("GET", "/v1/orders/"+id+"/history", nil)
	var h orderHistory
	if r.Status != 200 || json.Unmarshal(r.Body, &h) != nil {
		return fmt.Sprintf("  (history unavailable: %d %s)", r.Status, r.Body)
	}
	var b strings.Builder
	for _, e := range h.Events {
		fmt.Fprintf(&b, "  v%d %s caused by %q: %s\n", e.Version, e.Type, e.CausationID, e.Data)
	}
	return b.String()
}

func history(t *testing.T, c *httpClient, id string) []map[string]any {
	t.Helper()
	h := c.must(200, "GET", "/v1/orders/"+id+"/history", nil)
	var out []map[string]any
	for _, e := range h["events"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func TestTriggerRules(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	js, _ := jetstream.New(natsConn(t, app))
	place := func(id string) {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
	}
	versionIs := func(v float64) func(map[string]any) bool {
		return func(o map[string]any) bool { return o["version"] == v }
	}

	t.Run("wrong trigger over NATS is rejected and changes no position", func(t *testing.T) {
		place("wrong")
		publishRaw(t, js, "orderflow.default.trigger.wrong.folded", "", []byte(`{"worker":"w9"}`))
		o := waitOrder(t, c, "wrong", versionIs(2), "the rejection")
		if pos := o["position"].(map[string]any); pos["status"] != "pending_pickup" || pos["step"] != float64(0) {
			t.Fatalf("position moved: %v", pos)
		}
		ev := history(t, c, "wrong")[1]
		data := ev["data"].(map[string]any)
		if ev["type"] != "TriggerRejected" || data["reason"] != "unexpected_trigger" || data["expected"] != "picked_up" || data["worker"] != "w9" {
			t.Fatalf("rejection %v", ev)
		}
	})

	t.Run("same trigger id twice over NATS, also with distinct Nats-Msg-Ids", func(t *testing.T) {
		place("dup")
		body := []byte(`{"worker":"w1","trigger_id":"scan-77"}`)
		publishRaw(t, js, "orderflow.default.trigger.dup.picked_up", "msg-1", body)
		publishRaw(t, js, "orderflow.default.trigger.dup.picked_up", "msg-1", body) // JetStream drops this one
		publishRaw(t, js, "orderflow.default.trigger.dup.picked_up", "msg-2", body) // stored, and absorbed by the order
		// A later trigger proves the lane went past all three.
		publishRaw(t, js, "orderflow.default.trigger.dup.items_tagged", "msg-3", nil)
		waitOrder(t, c, "dup", versionIs(3), "two effects")
		hs := history(t, c, "dup")
		if len(hs) != 3 || hs[1]["type"] != "OrderAdvanced" || hs[2]["type"] != "OrderAdvanced" {
			t.Fatalf("history %v", hs)
		}
		// Over HTTP too: the same id answers duplicate.
		res := c.must(200, "POST", "/v1/orders/dup/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "scan-77"})
		if res["outcome"] != "duplicate" {
			t.Fatalf("HTTP repeat: %v", res)
		}
		if n := len(history(t, c, "dup")); n != 3 {
			t.Fatalf("%d events after the HTTP repeat", n)
		}
	})

	t.Run("unknown order goes to the dead letters and the process stays healthy", func(t *testing.T) {
		dl := deadLetters(t, app)
		publishRaw(t, js, "orderflow.default.trigger.ghost.picked_up", "ghost-1", nil)
		awaitDeadLetter(t, dl, "unknown order")
		publishRaw(t, js, "orderflow.default.trigger.ghost.picked_up", "ghost-2", []byte(`{not json`))
		awaitDeadLetter(t, dl, "trigger body")
		c.must(200, "GET", "/readyz", nil)
		place("after-ghost")
		c.must(200, "POST", "/v1/orders/after-ghost/triggers", map[string]any{"trigger": "picked_up"})
	})

	t.Run("held, cancelled and completed orders reject with their reasons", func(t *testing.T) {
		place("held")
		c.must(200, "POST", "/v1/orders/held/hold", map[string]any{"reason": "customer away"})
		p := c.problem(409, "trigger_rejected", "POST", "/v1/orders/held/triggers", map[string]any{"trigger": "picked_up"})
		if p["reason"] != "order_on_hold" {
			t.Fatalf("held: %v", p)
		}
		c.must(200, "POST", "/v1/orders/held/resume", map[string]any{})
		c.must(200, "POST", "/v1/orders/held/triggers", map[string]any{"trigger": "picked_up"})

		place("cancelled")
		c.must(200, "POST", "/v1/orders/cancelled/cancel", map[string]any{"reason": "duplicate order"})
		p = c.problem(409, "trigger_rejected", "POST", "/v1/orders/cancelled/triggers", map[string]any{"trigger": "picked_up"})
		if p["reason"] != "order_cancelled" {
			t.Fatalf("cancelled: %v", p)
		}
		c.problem(409, "conflict", "POST", "/v1/orders/cancelled/resume", map[string]any{})

		place("done")
		for _, tr := range workedTriggers {
			c.must(200, "POST", "/v1/orders/done/triggers", map[string]any{"trigger": tr})
		}
		p = c.problem(409, "trigger_rejected", "POST", "/v1/orders/done/triggers", map[string]any{"trigger": "delivered"})
		if p["reason"] != "order_completed" {
			t.Fatalf("completed: %v", p)
		}
	})
}

// A workflow reordered while an order is inside it: the order finishes on
// its pinned version, a new order uses the new version, and migrate moves
// an order to the new version.
func TestReorderWhileInside(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	_, production, _ := seedWorkedExample(t, c)
	for _, id := range []string{"pinned", "migrating"} {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
		c.must(200, "POST", "/v1/orders/"+id+"/triggers", map[string]any{"trigger": "picked_up"})
		c.must(200, "POST", "/v1/orders/"+id+"/triggers", map[string]any{"trigger": "items_tagged"})
	}
	o := c.must(200, "GET", "/v1/orders/pinned", nil)
	pinnedVersion := o["position"].(map[string]any)["workflow_version"].(float64)
	if o["position"].(map[string]any)["status"] != "washing" {
		t.Fatalf("not in production: %v", o)
	}
	// Reorder: drying first, then washing.
	wf := c.must(200, "POST", "/v1/workflows/"+production+"/steps/move", map[string]any{"from": 1, "to": 0})
	newVersion := wf["version"].(float64)

	// The pinned order still runs washing → drying → folding.
	for _, tr := range []string{"wash_done", "dry_done", "folded"} {
		res := c.must(200, "POST", "/v1/orders/pinned/triggers", map[string]any{"trigger": tr})
		if res["outcome"] != "advanced" {
			t.Fatalf("pinned %s: %v", tr, res)
		}
	}
	o = c.must(200, "GET", "/v1/orders/pinned", nil)
	if o["position"].(map[string]any)["status"] != "ready_for_delivery" {
		t.Fatalf("pinned order at %v", o["position"])
	}
	// A new order enters the new version: drying first.
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "fresh", "order_type_id": "wash_fold_delivery"})
	c.must(200, "POST", "/v1/orders/fresh/triggers", map[string]any{"trigger": "picked_up"})
	c.must(200, "POST", "/v1/orders/fresh/triggers", map[string]any{"trigger": "items_tagged"})
	pos := c.must(200, "GET", "/v1/orders/fresh", nil)["position"].(map[string]any)
	if pos["status"] != "drying" || pos["workflow_version"] != newVersion || *strPtr(pos["expected_trigger"]) != "dry_done" {
		t.Fatalf("fresh order at %v", pos)
	}
	// Migrate the other order from its pinned version to the new one: it
	// keeps its status (washing), now step 1.
	o = c.must(200, "POST", "/v1/orders/migrating/migrate", map[string]any{"workflow_id": production, "to_version": newVersion})
	pos = o["position"].(map[string]any)
	if pos["workflow_version"] != newVersion || pos["status"] != "washing" || pos["step"] != float64(1) || pinnedVersion == newVersion {
		t.Fatalf("migrated to %v", pos)
	}
	hs := history(t, c, "migrating")
	if last := hs[len(hs)-1]; last["type"] != "OrderMigrated" {
		t.Fatalf("last event %v", last)
	}
	// Moving with a reason.
	o = c.must(200, "POST", "/v1/orders/migrating/move", map[string]any{"workflow_id": production, "step": 2, "reason": "already dry"})
	if o["position"].(map[string]any)["status"] != "folding" {
		t.Fatalf("moved to %v", o["position"])
	}
	c.problem(400, "invalid_argument", "POST", "/v1/orders/migrating/move", map[string]any{"workflow_id": production, "step": 0})
}

func strPtr(v any) *string {
	s, _ := v.(string)
	return &s
}

func clientTrigger(order, trigger string) client.Trigger {
	return client.Trigger{OrderID: order, Trigger: trigger, Worker: "test"}
}
