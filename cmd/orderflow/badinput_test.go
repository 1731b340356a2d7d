package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// refusedRequest is one request that must be refused with a problem.
type refusedRequest struct {
	name         string
	method, path string
	body         any
	headers      []string
	status       int
	code         string
}

// expectRefused sends each request and checks its status and problem
// code, and that neither stream gained an event.
func expectRefused(t *testing.T, app *App, c *httpClient, cases []refusedRequest) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &httpClient{t: t, base: c.base, token: c.token}
			d0, o0 := streamSeqs(t, app)
			c.problem(tc.status, tc.code, tc.method, tc.path, tc.body, tc.headers...)
			if d1, o1 := streamSeqs(t, app); d1 != d0 || o1 != o0 {
				t.Fatalf("a refused request appended events (definitions %d→%d, orders %d→%d)", d0, d1, o0, o1)
			}
		})
	}
}

func streamSeqs(t *testing.T, app *App) (defs, orders uint64) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	d, err := app.Store().LastSequence(ctx, eventstore.StreamDefinitions)
	if err != nil {
		t.Fatal(err)
	}
	o, err := app.Store().LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	return d, o
}

// Bad order requests over HTTP: each gets its problem code and appends
// nothing. (TestDefinitionsRefuseBadInput covers the definitions routes.)
func TestBadOrderInputOverHTTP(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "ok-1", "order_type_id": "wash_fold_delivery"},
		"Content-Type", "application/json; charset=UTF-8") // as browsers send it
	c.must(201, "POST", "/v1/order-types", map[string]any{"name": "Retired Service", "production": "standard_laundry_production"})
	c.must(200, "POST", "/v1/order-types/retired_service/archive", nil)
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	cases := []refusedRequest{
		{"place: unknown order type", "POST", "/v1/orders", map[string]any{"order_type_id": "nope"}, nil, 400, "invalid_argument"},
		{"place: archived order type", "POST", "/v1/orders", map[string]any{"order_type_id": "retired_service"}, nil, 400, "invalid_argument"},
		{"place: missing order type", "POST", "/v1/orders", map[string]any{"id": "x"}, nil, 400, "invalid_argument"},
		{"place: unsafe id", "POST", "/v1/orders", map[string]any{"id": "a.b", "order_type_id": "wash_fold_delivery"}, nil, 400, "invalid_argument"},
		{"place: wildcard id", "POST", "/v1/orders", map[string]any{"id": ">", "order_type_id": "wash_fold_delivery"}, nil, 400, "invalid_argument"},
		{"place: duplicate id", "POST", "/v1/orders", map[string]any{"id": "ok-1", "order_type_id": "wash_fold_delivery"}, nil, 409, "conflict"},
		{"place: fulfillment not offered", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery", "fulfillment_workflow_id": "laundry_intake"}, nil, 400, "invalid_argument"},
		{"place: deep nesting", "POST", "/v1/orders", deep, nil, 400, "invalid_argument"},
		{"place: truncated JSON", "POST", "/v1/orders", `{"order_type_id": "wash_fo`, nil, 400, "invalid_argument"},
		{"place: wrong type", "POST", "/v1/orders", map[string]any{"order_type_id": 12}, nil, 400, "invalid_argument"},
		{"place: unknown field", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery", "priority": 1}, nil, 400, "invalid_argument"},
		{"place: a charset other than UTF-8", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery"}, []string{"Content-Type", "application/json; charset=iso-8859-1"}, 400, "invalid_argument"},
		{"place: wrong content type", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery"}, []string{"Content-Type", "application/xml"}, 400, "invalid_argument"},
		{"place: huge body", "POST", "/v1/orders", `{"id":"` + strings.Repeat("a", 2<<20) + `"}`, nil, 413, "payload_too_large"},
		{"place: huge malformed body", "POST", "/v1/orders", strings.Repeat("a", 2<<20), nil, 413, "payload_too_large"},
		{"trigger: unknown order", "POST", "/v1/orders/ghost/triggers", map[string]any{"trigger": "picked_up"}, nil, 404, "not_found"},
		{"trigger: unsafe trigger key", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked.up"}, nil, 400, "invalid_argument"},
		{"trigger: not in the trigger library", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "teleported"}, nil, 400, "invalid_argument"},
		{"trigger: empty trigger", "POST", "/v1/orders/ok-1/triggers", map[string]any{}, nil, 400, "invalid_argument"},
		{"trigger: trigger id with spaces", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "a b"}, nil, 400, "invalid_argument"},
		{"trigger: unknown field", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up", "when": "now"}, nil, 400, "invalid_argument"},
		{"trigger: worker not UTF-8", "POST", "/v1/orders/ok-1/triggers", "{\"trigger\":\"picked_up\",\"worker\":\"caf\xe9\"}", nil, 400, "invalid_argument"},
		{"trigger: half a surrogate pair", "POST", "/v1/orders/ok-1/triggers", `{"trigger":"picked_up","trigger_id":"t-\ud800"}`, nil, 400, "invalid_argument"},
		{"trigger: worker with a control character", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up", "worker": "a\x00b"}, nil, 400, "invalid_argument"},
		{"trigger: a field name in another case", "POST", "/v1/orders/ok-1/triggers", map[string]any{"Trigger": "picked_up"}, nil, 400, "invalid_argument"},
		{"trigger: If-Match", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up"}, []string{"If-Match", `"1"`}, 400, "invalid_argument"},
		{"trigger: actor given twice", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up"}, []string{"X-Orderflow-Actor", "ann", "X-Orderflow-Actor", "bob"}, 400, "invalid_argument"},
		{"trigger: worker other than the actor header", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up", "worker": "ann"}, []string{"X-Orderflow-Actor", "bob"}, 400, "invalid_argument"},
		{"trigger: request id not UTF-8", "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up"}, []string{"X-Request-ID", "caf\xe9"}, 400, "invalid_argument"},
		{"hold: actor header not UTF-8", "POST", "/v1/orders/ok-1/hold", map[string]any{}, []string{"X-Orderflow-Actor", "caf\xe9"}, 400, "invalid_argument"},
		{"hold: reason with a control character", "POST", "/v1/orders/ok-1/hold", map[string]any{"reason": "a\x07b"}, nil, 400, "invalid_argument"},
		{"hold: actor given twice", "POST", "/v1/orders/ok-1/hold", map[string]any{}, []string{"X-Orderflow-Actor", "ann", "X-Orderflow-Actor", "bob"}, 400, "invalid_argument"},
		{"hold: If-Match given twice", "POST", "/v1/orders/ok-1/hold", map[string]any{}, []string{"If-Match", `"1"`, "If-Match", `"2"`}, 400, "invalid_argument"},
		{"hold: request id not UTF-8", "POST", "/v1/orders/ok-1/hold", map[string]any{}, []string{"X-Request-ID", "caf\xe9"}, 400, "invalid_argument"},
		{"place: a byte-order mark", "POST", "/v1/orders", "\xef\xbb\xbf{\"order_type_id\":\"wash_fold_delivery\"}", nil, 400, "invalid_argument"},
		{"place: id not UTF-8", "POST", "/v1/orders", "{\"id\":\"o-\xff\",\"order_type_id\":\"wash_fold_delivery\"}", nil, 400, "invalid_argument"},
		{"trigger: unsafe order id in path", "POST", "/v1/orders/o*/triggers", map[string]any{"trigger": "picked_up"}, nil, 400, "invalid_argument"},
		{"hold: unknown order", "POST", "/v1/orders/ghost/hold", map[string]any{}, nil, 404, "not_found"},
		{"hold: a field of move", "POST", "/v1/orders/ok-1/hold", map[string]any{"reason": "r", "step": 2}, nil, 400, "invalid_argument"},
		{"cancel: a field of migrate", "POST", "/v1/orders/ok-1/cancel", map[string]any{"reason": "r", "to_version": 2}, nil, 400, "invalid_argument"},
		{"move: a field of migrate", "POST", "/v1/orders/ok-1/move", map[string]any{"workflow_id": "laundry_intake", "step": 1, "to_version": 2, "reason": "r"}, nil, 400, "invalid_argument"},
		{"migrate: a field of move", "POST", "/v1/orders/ok-1/migrate", map[string]any{"workflow_id": "laundry_intake", "to_version": 1, "step": 1}, nil, 400, "invalid_argument"},
		{"resume: active order", "POST", "/v1/orders/ok-1/resume", map[string]any{}, nil, 409, "conflict"},
		{"move: workflow not on the route", "POST", "/v1/orders/ok-1/move", map[string]any{"workflow_id": "nope", "step": 0, "reason": "r"}, nil, 400, "invalid_argument"},
		{"move: missing fields", "POST", "/v1/orders/ok-1/move", map[string]any{"reason": "r"}, nil, 400, "invalid_argument"},
		{"migrate: missing fields", "POST", "/v1/orders/ok-1/migrate", map[string]any{"workflow_id": "laundry_intake"}, nil, 400, "invalid_argument"},
		{"migrate: no newer version", "POST", "/v1/orders/ok-1/migrate", map[string]any{"workflow_id": "laundry_intake", "to_version": 9}, nil, 400, "invalid_argument"},
		{"list: bad limit", "GET", "/v1/orders?limit=abc", nil, nil, 400, "invalid_argument"},
		{"list: bad min_seq", "GET", "/v1/orders?min_seq=-1", nil, nil, 400, "invalid_argument"},
		{"list: min_seq past the stream", "GET", "/v1/orders?min_seq=999999999", nil, nil, 400, "invalid_argument"},
		{"list: unsafe status", "GET", "/v1/orders?status=a.b", nil, nil, 400, "invalid_argument"},
		{"list: unsafe workflow id", "GET", "/v1/orders?workflow_id=a*b", nil, nil, 400, "invalid_argument"},
		{"list: unsafe order type id", "GET", "/v1/orders?order_type_id=a%20b", nil, nil, 400, "invalid_argument"},
		{"list: a parameter given twice", "GET", "/v1/orders?status=drying&status=washing", nil, nil, 400, "invalid_argument"},
		{"list: a query that does not parse", "GET", "/v1/orders?status=%zz", nil, nil, 400, "invalid_argument"},
		{"list: unknown sort", "GET", "/v1/orders?sort=placed_at", nil, nil, 400, "invalid_argument"},
		{"list: an id cursor by entry time", "GET", "/v1/orders?sort=entered_at&cursor=bC0x", nil, nil, 400, "invalid_argument"},
		{"list: an entry cursor by id", "GET", "/v1/orders?cursor=ZToyMDI2LTExLTMwVDE0OjEwOjI5LjY5ODM2MjM0N1ovbXktMQ", nil, nil, 400, "invalid_argument"},
		{"list: an entry cursor that is not base64", "GET", "/v1/orders?sort=entered_at&cursor=e:2026", nil, nil, 400, "invalid_argument"},
		{"history: unsafe order id", "GET", "/v1/orders/o*/history", nil, nil, 400, "invalid_argument"},
		{"history: unknown order", "GET", "/v1/orders/ghost/history", nil, nil, 404, "not_found"},
		{"history: a cursor that is not one", "GET", "/v1/orders/ok-1/history?limit=1&cursor=abc", nil, nil, 400, "invalid_argument"},
		{"list: an entry cursor with no time", "GET", "/v1/orders?sort=entered_at&cursor=ZTpub29uL215LTE", nil, nil, 400, "invalid_argument"},
		{"board: unknown parameter", "GET", "/v1/board?status=washing", nil, nil, 400, "invalid_argument"},
		{"order: a parameter given twice", "GET", "/v1/orders/ok-1?as_of=2020-01-01T00:00:00Z&as_of=2030-01-01T00:00:00Z", nil, nil, 400, "invalid_argument"},
		{"place: a query parameter on a route that takes none", "POST", "/v1/orders?dry_run=true", map[string]any{"order_type_id": "wash_fold_delivery"}, nil, 400, "invalid_argument"},
		{"board: min_seq past the stream", "GET", "/v1/board?min_seq=999999999", nil, nil, 400, "invalid_argument"},
		{"as_of: bad time", "GET", "/v1/orders/ok-1?as_of=noon", nil, nil, 400, "invalid_argument"},
		{"feed: bad Last-Event-ID", "GET", "/v1/events", nil, []string{"Last-Event-ID", "abc"}, 400, "invalid_argument"},
		{"board: unsafe workflow id", "GET", "/v1/board?workflow_id=a.b", nil, nil, 400, "invalid_argument"},
		{"If-Match: not a version", "PATCH", "/v1/workflows/laundry_intake", map[string]any{"name": "X"}, []string{"If-Match", `"abc"`}, 400, "invalid_argument"},
		{"no such route", "GET", "/v1/customers", nil, nil, 404, "not_found"},
		{"no such route under an order", "POST", "/v1/orders/ok-1/teleport", map[string]any{}, nil, 404, "not_found"},
		{"method the route does not take", "DELETE", "/v1/orders", nil, nil, 405, "method_not_allowed"},
	}
	expectRefused(t, app, c, cases)
	// An id too long for an order is refused with the order's limit,
	// however long it is (the store's token check allows twice as long).
	for _, n := range []int{65, 129} {
		p := c.problem(400, "invalid_argument", "POST", "/v1/orders", map[string]any{"id": strings.Repeat("a", n), "order_type_id": "wash_fold_delivery"})
		if p["detail"] != "id: longer than 64 characters" {
			t.Errorf("an id of %d characters: %v", n, p["detail"])
		}
	}
	if r := c.do("PUT", "/v1/orders/ok-1", nil); r.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("405 Allow %q, want GET, HEAD: %s", r.Header.Get("Allow"), r.Body)
	}
	// A trigger without a worker names the caller's X-Orderflow-Actor.
	c.must(200, "POST", "/v1/orders/ok-1/triggers", map[string]any{"trigger": "picked_up"}, "X-Orderflow-Actor", "van-3")
	if h := history(t, c, "ok-1"); h[len(h)-1]["actor"].(map[string]any)["id"] != "van-3" || h[len(h)-1]["data"].(map[string]any)["worker"] != "van-3" {
		t.Fatalf("a trigger sent with X-Orderflow-Actor: %v", h[len(h)-1])
	}
	c.must(200, "GET", "/readyz", nil)
}

// Bad triggers over NATS: each is refused by JetStream or dead-lettered
// with its reason, appends no order event, and the process stays healthy.
func TestBadTriggersOverNATS(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "n-1", "order_type_id": "wash_fold_delivery"})
	nc := natsConn(t, app)
	js, _ := jetstream.New(nc)
	dl := deadLetters(t, app)
	ctx := ctxFor(t, time.Minute)
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	deadLettered := []struct {
		name, subject, body, reason string
		msgID                       string // Nats-Msg-Id, if any
	}{
		{"unknown order", "orderflow.default.trigger.ghost.picked_up", "", "unknown order", ""},
		{"malformed body", "orderflow.default.trigger.n-1.picked_up", `{"worker":`, "trigger body", ""},
		{"truncated body", "orderflow.default.trigger.n-1.picked_up", `{"worker":"a`, "trigger body", ""},
		{"body of the wrong type", "orderflow.default.trigger.n-1.picked_up", `["picked_up"]`, "trigger body", ""},
		{"field of the wrong type", "orderflow.default.trigger.n-1.picked_up", `{"worker":7}`, "trigger body", ""},
		{"unknown field", "orderflow.default.trigger.n-1.picked_up", `{"worker":"a","colour":"red"}`, "trigger body", ""},
		{"deep nesting", "orderflow.default.trigger.n-1.picked_up", deep, "trigger body", ""},
		{"body over its limit", "orderflow.default.trigger.n-1.picked_up", `{"note":"` + strings.Repeat("n", eventstore.MaxTriggerBody) + `"}`, "byte limit", ""},
		{"unsafe order id token", "orderflow.default.trigger.n$1.picked_up", "", "order id", ""},
		{"unsafe trigger key token", "orderflow.default.trigger.n-1.picked$up", "", "trigger key", ""},
		{"unsafe tenant token", "orderflow.acme$.trigger.n-1.picked_up", "", "tenant", ""},
		{"order of another tenant", "orderflow.acme.trigger.n-1.picked_up", "", "unknown order", ""},
		{"worker not UTF-8", "orderflow.default.trigger.n-1.picked_up", "{\"worker\":\"caf\xe9\"}", "not valid UTF-8", ""},
		{"half a surrogate pair", "orderflow.default.trigger.n-1.picked_up", `{"worker":"\udc00"}`, "surrogate", ""},
		{"note with a control character", "orderflow.default.trigger.n-1.picked_up", `{"note":"a\u0007"}`, "control characters", ""},
		{"worker with a control character", "orderflow.default.trigger.n-1.picked_up", `{"worker":"a\u0000b"}`, "worker", ""},
		{"trigger id with a space", "orderflow.default.trigger.n-1.picked_up", `{"trigger_id":"a b"}`, "trigger_id", ""},
		{"a field given twice", "orderflow.default.trigger.n-1.picked_up", `{"worker":"ana","worker":"bo"}`, "given twice", ""},
		{"Nats-Msg-Id with a space", "orderflow.default.trigger.n-1.picked_up", "", "trigger_id", "a b"},
	}
	for _, tc := range deadLettered {
		t.Run(tc.name, func(t *testing.T) {
			_, o0 := streamSeqs(t, app)
			m := nats.NewMsg(tc.subject)
			m.Data = []byte(tc.body)
			if tc.msgID != "" {
				m.Header.Set(jetstream.MsgIDHeader, tc.msgID)
			}
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatalf("JetStream refused what it should store: %v", err)
			}
			// Put aside under its own tenant, order and trigger key, where
			// NATS permissions can give that tenant's worker apps its own.
			tok := strings.Split(tc.subject, ".")
			if got, want := awaitDeadLetter(t, dl, tc.reason).Subject, eventstore.DeadLetterSubjectFor(tok[1], tok[3], tok[4]); got != want {
				t.Fatalf("dead letter on %q, want %q", got, want)
			}
			if _, o1 := streamSeqs(t, app); o1 != o0 {
				t.Fatalf("a poison trigger appended %d order events", o1-o0)
			}
		})
	}
	// Subjects outside the contract, and messages over the trigger
	// stream's size, are not stored at all: the publisher hears so at
	// once.
	for _, subject := range []string{"orderflow.default.trigger.n-1", "orderflow.default.triggers.n-1.picked_up"} {
		if _, err := js.PublishMsg(ctx, nats.NewMsg(subject)); err == nil {
			t.Errorf("%s was stored", subject)
		}
	}
	huge := nats.NewMsg("orderflow.default.trigger.n-1.picked_up")
	huge.Data = []byte(`{"note":"` + strings.Repeat("n", 100<<10) + `"}`)
	if _, err := js.PublishMsg(ctx, huge); !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		t.Errorf("a trigger of 100 KiB: %v, want %v", err, jetstream.ErrStreamMessageExceedsMaximum)
	}
	// An out-of-order trigger is not poison: it is recorded as rejected,
	// and the order does not move.
	m := nats.NewMsg("orderflow.default.trigger.n-1.delivered")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	o := waitOrder(t, c, "n-1", func(o map[string]any) bool { return o["version"] == float64(2) }, "the rejection")
	if o["position"].(map[string]any)["status"] != "pending_pickup" {
		t.Fatalf("out-of-order trigger moved the order: %v", o["position"])
	}
	c.must(200, "GET", "/readyz", nil)
	c.must(200, "POST", "/v1/orders/n-1/triggers", map[string]any{"trigger": "picked_up"})
}

// A message that is not an event, published by hand onto an order's
// subject (a NATS client with publish rights there: any client of an
// embedded server run without --nats-config), makes that order
// unreadable, and says so: 500 naming the message over HTTP, its
// triggers put aside as dead letters, never retried forever; other
// orders and the process carry on. The read models pass over it, so a
// wait for a later sequence ends, and one on a definitions subject does
// not hold up every definition write of the tenant.
func TestForeignMessageOnAnOrderSubject(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	for _, id := range []string{"f-1", "f-2"} {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
	}
	js, _ := jetstream.New(natsConn(t, app))
	dl := deadLetters(t, app)
	ctx := ctxFor(t, time.Minute)
	ack, err := js.Publish(ctx, "orderflow.default.order.f-1.OrderAdvanced", []byte("not an event"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ORDERFLOW_ORDERS sequence %d", ack.Sequence)
	p := c.problem(500, "internal", "GET", "/v1/orders/f-1", nil)
	if !strings.Contains(p["detail"].(string), want) {
		t.Fatalf("the unreadable order's problem does not name the message: %v", p)
	}
	publishRaw(t, js, "orderflow.default.trigger.f-1.picked_up", "", nil)
	if reason := awaitDeadLetter(t, dl, "not a readable event").Header.Get("reason_poisoned"); !strings.Contains(reason, want) {
		t.Fatalf("dead letter reason %q does not name the message", reason)
	}
	c.must(200, "POST", "/v1/orders/f-2/triggers", map[string]any{"trigger": "picked_up"})
	c.must(200, "GET", fmt.Sprintf("/v1/orders?min_seq=%d", ack.Sequence), nil)

	if _, err := js.Publish(ctx, "orderflow.default.def.workflow.junk.WorkflowCreated", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Mending", "category": "in_progress"})
	c.must(200, "GET", "/readyz", nil)

	// The last message of the definitions stream not an event: a start
	// used to wait for the read model to reach it, and gave up after a
	// minute.
	if _, err := js.Publish(ctx, "orderflow.default.def.workflow.junk.WorkflowRenamed", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	app = startApp(t, cfg)
	newClient(t, app).must(201, "POST", "/v1/statuses", map[string]any{"name": "Pressing", "category": "in_progress"})
}
