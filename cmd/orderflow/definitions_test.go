package main

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// Every refused request gets its problem code and appends nothing.
func TestDefinitionsRefuseBadInput(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	intake, production, _ := seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Spare", "category": "draft"})
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Retired", "category": "draft"})
	c.must(200, "DELETE", "/v1/statuses/retired", map[string]any{}) // {}: a body with nothing in it

	huge := `{"name":"` + strings.Repeat("x", 2<<20) + `","category":"draft"}`
	cases := []refusedRequest{
		{"duplicate status name, other case", "POST", "/v1/statuses", map[string]any{"name": "WASHING", "key": "washing2", "category": "pending"}, nil, 409, "conflict"},
		{"duplicate status key", "POST", "/v1/statuses", map[string]any{"name": "Other", "key": "washing", "category": "pending"}, nil, 409, "conflict"},
		{"duplicate workflow name, other case", "POST", "/v1/workflows", map[string]any{"name": "laundry INTAKE", "type": "intake",
			"steps": []map[string]any{{"status": "spare", "trigger": "picked_up"}}}, nil, 409, "conflict"},
		{"unknown status in steps", "POST", "/v1/workflows/" + intake + "/steps", map[string]any{"status": "nope", "trigger": "picked_up"}, nil, 400, "invalid_argument"},
		{"archived status in steps", "POST", "/v1/workflows/" + intake + "/steps", map[string]any{"status": "retired", "trigger": "picked_up"}, nil, 400, "invalid_argument"},
		{"unknown trigger in steps", "POST", "/v1/workflows/" + intake + "/steps", map[string]any{"status": "spare", "trigger": "nope"}, nil, 400, "invalid_argument"},
		{"same status twice", "POST", "/v1/workflows/" + intake + "/steps", map[string]any{"status": "received", "trigger": "picked_up"}, nil, 400, "invalid_argument"},
		{"a step's field name in another case", "PUT", "/v1/workflows/" + intake + "/steps", map[string]any{"steps": []map[string]any{
			{"status": "spare", "trigger": "picked_up"}, {"Status": "received", "trigger": "items_tagged"}}}, nil, 400, "invalid_argument"},
		{"same status twice in PUT", "PUT", "/v1/workflows/" + intake + "/steps", map[string]any{"steps": []map[string]any{
			{"status": "spare", "trigger": "picked_up"}, {"status": "spare", "trigger": "folded"}}}, nil, 400, "invalid_argument"},
		{"no steps", "PUT", "/v1/workflows/" + intake + "/steps", map[string]any{"steps": []any{}}, nil, 400, "invalid_argument"},
		{"fulfillment without method", "POST", "/v1/workflows", map[string]any{"name": "Pickup", "type": "fulfillment",
			"steps": []map[string]any{{"status": "spare", "trigger": "picked_up"}}}, nil, 400, "invalid_argument"},
		{"unknown fulfillment method", "POST", "/v1/workflows", map[string]any{"name": "Drone", "type": "fulfillment", "fulfillment_method": "drone",
			"steps": []map[string]any{{"status": "spare", "trigger": "picked_up"}}}, nil, 400, "invalid_argument"},
		{"unknown fulfillment method in a PATCH", "PATCH", "/v1/workflows/" + production, map[string]any{"fulfillment_method": "drone"}, nil, 400, "invalid_argument"},
		{"unknown workflow type", "POST", "/v1/workflows", map[string]any{"name": "X", "type": "teleport",
			"steps": []map[string]any{{"status": "spare", "trigger": "picked_up"}}}, nil, 400, "invalid_argument"},
		{"unknown category", "POST", "/v1/statuses", map[string]any{"name": "X", "category": "someday"}, nil, 400, "invalid_argument"},
		{"stale If-Match", "PATCH", "/v1/workflows/" + production, map[string]any{"name": "Renamed"}, []string{"If-Match", `"1"`}, 412, "precondition_failed"},
		{"stale If-Match on the library", "PATCH", "/v1/statuses/spare", map[string]any{"name": "Spare 2"}, []string{"If-Match", `"2"`}, 412, "precondition_failed"},
		{"archive a status in use", "DELETE", "/v1/statuses/washing", nil, nil, 409, "conflict"},
		{"archive a trigger in use", "DELETE", "/v1/triggers/wash_done", nil, nil, 409, "conflict"},
		{"archive a workflow an order type uses", "POST", "/v1/workflows/" + intake + "/archive", nil, nil, 409, "conflict"},
		{"malformed JSON", "POST", "/v1/statuses", `{"name": "X",`, nil, 400, "invalid_argument"},
		{"not an object", "POST", "/v1/statuses", `["X"]`, nil, 400, "invalid_argument"},
		{"trailing data", "POST", "/v1/statuses", `{"name":"X","category":"draft"} {}`, nil, 400, "invalid_argument"},
		{"empty body", "POST", "/v1/statuses", "", nil, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/statuses", map[string]any{"name": "X", "category": "draft", "colour": "red"}, nil, 400, "invalid_argument"},
		{"wrong type", "POST", "/v1/statuses", map[string]any{"name": 7, "category": "draft"}, nil, 400, "invalid_argument"},
		{"wrong type in steps", "POST", "/v1/workflows/" + intake + "/steps/move", map[string]any{"from": "first", "to": 0}, nil, 400, "invalid_argument"},
		{"missing move fields", "POST", "/v1/workflows/" + intake + "/steps/move", map[string]any{"from": 0}, nil, 400, "invalid_argument"},
		{"body over the limit", "POST", "/v1/statuses", huge, nil, 413, "payload_too_large"},
		{"unsafe key", "POST", "/v1/statuses", map[string]any{"key": "a.b", "name": "AB", "category": "draft"}, nil, 400, "invalid_argument"},
		{"wildcard key", "POST", "/v1/triggers", map[string]any{"key": "*", "name": "Star"}, nil, 400, "invalid_argument"},
		{"unsafe id in the path", "GET", "/v1/workflows/a*b", nil, nil, 400, "invalid_argument"},
		{"unknown workflow", "PATCH", "/v1/workflows/nope", map[string]any{"name": "X"}, nil, 404, "not_found"},
		{"unknown status", "PATCH", "/v1/statuses/nope", map[string]any{"name": "X"}, nil, 404, "not_found"},
		{"unknown trigger", "PATCH", "/v1/triggers/nope", map[string]any{"name": "X"}, nil, 404, "not_found"},
		{"unknown order type", "PATCH", "/v1/order-types/nope", map[string]any{"name": "X"}, nil, 404, "not_found"},
		{"an unknown workflow", "GET", "/v1/workflows/nope", nil, nil, 404, "not_found"},
		{"a version of an unsafe workflow id", "GET", "/v1/workflows/a*b/versions/1", nil, nil, 400, "invalid_argument"},
		{"a step at a negative position", "POST", "/v1/workflows/" + intake + "/steps", map[string]any{"status": "spare", "trigger": "picked_up", "position": -1}, nil, 400, "invalid_argument"},
		{"archive an unknown order type", "POST", "/v1/order-types/nope/archive", nil, nil, 404, "not_found"},
		{"a string for an order type's fulfillment list", "POST", "/v1/order-types", map[string]any{"name": "X", "fulfillment": "home_delivery"}, nil, 400, "invalid_argument"},
		{"a version of an unknown workflow", "GET", "/v1/workflows/nope/versions/1", nil, nil, 404, "not_found"},
		{"a version past the workflow's last", "GET", "/v1/workflows/" + intake + "/versions/99", nil, nil, 404, "not_found"},
		{"a status renamed to nothing", "PATCH", "/v1/statuses/spare", map[string]any{"name": "  "}, nil, 400, "invalid_argument"},
		{"a status renamed to another's name", "PATCH", "/v1/statuses/spare", map[string]any{"name": "washing"}, nil, 409, "conflict"},
		{"a status renamed and given no category", "PATCH", "/v1/statuses/spare", map[string]any{"name": "Spare 2", "category": ""}, nil, 400, "invalid_argument"},
		{"a status renamed and given an unknown category", "PATCH", "/v1/statuses/spare", map[string]any{"name": "Spare 2", "category": "someday"}, nil, 400, "invalid_argument"},
		{"step index out of range", "DELETE", "/v1/workflows/" + intake + "/steps/9", nil, nil, 404, "not_found"},
		{"step index with a leading zero", "DELETE", "/v1/workflows/" + intake + "/steps/01", nil, nil, 400, "invalid_argument"},
		{"step index with a sign", "PATCH", "/v1/workflows/" + intake + "/steps/+1", map[string]any{"trigger": "picked_up"}, nil, 400, "invalid_argument"},
		{"version with a leading zero", "GET", "/v1/workflows/" + intake + "/versions/01", nil, nil, 400, "invalid_argument"},
		{"wrong content type", "POST", "/v1/statuses", map[string]any{"name": "X", "category": "draft"}, []string{"Content-Type", "text/plain"}, 400, "invalid_argument"},
		{"order type with wrong slot", "POST", "/v1/order-types", map[string]any{"name": "Bad", "intake": production}, nil, 400, "invalid_argument"},
		{"order type with nothing", "POST", "/v1/order-types", map[string]any{"name": "Empty"}, nil, 400, "invalid_argument"},
		{"key derived from punctuation", "POST", "/v1/statuses", map[string]any{"name": "!!!", "category": "draft"}, nil, 400, "invalid_argument"},
		{"key derived from a long name", "POST", "/v1/triggers", map[string]any{"name": strings.Repeat("Wash ", 14)}, nil, 400, "invalid_argument"},
		{"a reason for an archive, which takes no body", "DELETE", "/v1/statuses/spare", map[string]any{"reason": "not needed"}, nil, 400, "invalid_argument"},
		{"a body for a workflow's archive", "POST", "/v1/workflows/" + production + "/archive", map[string]any{"reason": "old"}, nil, 400, "invalid_argument"},
		{"nothing to change in a status", "PATCH", "/v1/statuses/spare", map[string]any{}, nil, 400, "invalid_argument"},
		{"only nulls for a trigger", "PATCH", "/v1/triggers/wash_done", map[string]any{"name": nil, "description": nil}, nil, 400, "invalid_argument"},
		{"nothing to change in a workflow", "PATCH", "/v1/workflows/" + production, map[string]any{"type": nil}, nil, 400, "invalid_argument"},
		{"nothing to change in an order type", "PATCH", "/v1/order-types/wash_fold_delivery", map[string]any{}, nil, 400, "invalid_argument"},
	}
	expectRefused(t, app, c, cases)
	if p := c.problem(400, "invalid_argument", "POST", "/v1/statuses", map[string]any{"name": "!!!", "category": "draft"}); !strings.Contains(p["detail"].(string),
		`key: none was sent, and the one derived from the name is not a key ("___" may hold only letters`) {
		t.Fatalf("a key derived from punctuation: %v", p)
	}
	// A value of the wrong kind is named with the kind the field takes.
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"name": "X", "fulfillment": "home_delivery"}, "field fulfillment: a JSON string where an array belongs"},
		{map[string]any{"name": 12, "fulfillment": []string{"home_delivery"}}, "field name: a JSON number where a string belongs"},
	} {
		if p := c.problem(400, "invalid_argument", "POST", "/v1/order-types", tc.body); !strings.Contains(p["detail"].(string), tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.body, p["detail"], tc.want)
		}
	}
	// A field given as null stays as it is, like one left out; "" takes
	// an order type's slot away.
	ot := c.must(200, "PATCH", "/v1/order-types/wash_fold_delivery", map[string]any{"name": "Wash & Fold", "intake": nil, "production": nil, "fulfillment": nil})
	if ot["name"] != "Wash & Fold" || ot["intake"] != intake || ot["production"] != production {
		t.Fatalf("after a PATCH with nulls: %v", ot)
	}
	if ot := c.must(200, "PATCH", "/v1/order-types/wash_fold_delivery", map[string]any{"intake": ""}); ot["intake"] != nil {
		t.Fatalf("intake after a PATCH with \"\": %v", ot)
	}
	if tr := c.must(200, "PATCH", "/v1/triggers/delivered", map[string]any{"name": "Handed over", "description": nil}); tr["description"] != "handed to the customer" {
		t.Fatalf("description after a PATCH with null: %v", tr)
	}
	// Still healthy afterwards.
	c.must(200, "GET", "/v1/workflows", nil)
}

// Two writers on one workflow: with the same If-Match one wins and one
// gets 412; without If-Match both edits land.
func TestConcurrentWorkflowWriters(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	_, production, _ := seedWorkedExample(t, c)
	version := func() float64 { return c.must(200, "GET", "/v1/workflows/"+production, nil)["version"].(float64) }

	v := version()
	etag := `"` + jsonNumber(v) + `"`
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, name := range []string{"Production A", "Production B"} {
		wg.Go(func() {
			codes[i] = c.do("PATCH", "/v1/workflows/"+production, map[string]any{"name": name}, "If-Match", etag).Status
		})
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 412 || codes[0] == 412 && codes[1] == 200) {
		t.Fatalf("with the same If-Match: %v, want one 200 and one 412", codes)
	}
	if got := version(); got != v+1 {
		t.Fatalf("version %v after one winning edit from %v", got, v)
	}

	v = version()
	for i, name := range []string{"Production C", "Production D"} {
		wg.Go(func() {
			codes[i] = c.do("PATCH", "/v1/workflows/"+production, map[string]any{"name": name}).Status
		})
	}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("without If-Match: %v, want both 200", codes)
	}
	if got := version(); got != v+2 {
		t.Fatalf("version %v after two edits from %v", got, v)
	}
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// A subscriber on orderflow.default.def.> sees each edit with the
// contract's envelope and type name.
func TestDefinitionEventsOnNATS(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	nc, err := nats.Connect(app.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe("orderflow.default.def.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, app)
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Washing", "category": "in_progress"})
	c.must(200, "PATCH", "/v1/statuses/washing", map[string]any{"name": "Wash"})
	c.must(201, "POST", "/v1/triggers", map[string]any{"name": "Wash done"})
	c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Production", "type": "production",
		"steps": []map[string]any{{"status": "washing", "trigger": "wash_done"}}})
	c.must(200, "PATCH", "/v1/workflows/production", map[string]any{"name": "Laundry Production"})

	want := []struct{ subject, typ, aggType, aggID string }{
		{"orderflow.default.def.statuses.library.StatusAdded", "StatusAdded", "statuses", "library"},
		{"orderflow.default.def.statuses.library.StatusRenamed", "StatusRenamed", "statuses", "library"},
		{"orderflow.default.def.triggers.library.TriggerAdded", "TriggerAdded", "triggers", "library"},
		{"orderflow.default.def.workflow.production.WorkflowCreated", "WorkflowCreated", "workflow", "production"},
		{"orderflow.default.def.workflow.production.WorkflowRenamed", "WorkflowRenamed", "workflow", "production"},
	}
	for i, w := range want {
		var m *nats.Msg
		select {
		case m = <-msgs:
		case <-time.After(eventstoretest.Patience(10 * time.Second)):
			t.Fatalf("event %d (%s) not seen", i, w.typ)
		}
		if m.Subject != w.subject {
			t.Fatalf("event %d on %s, want %s", i, m.Subject, w.subject)
		}
		var env map[string]any
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "type", "tenant", "aggregate_type", "aggregate_id", "version", "occurred_at", "actor", "correlation_id", "data"} {
			if _, ok := env[k]; !ok {
				t.Fatalf("envelope lacks %q: %s", k, m.Data)
			}
		}
		if env["type"] != w.typ || env["tenant"] != "default" || env["aggregate_type"] != w.aggType || env["aggregate_id"] != w.aggID {
			t.Fatalf("envelope %s", m.Data)
		}
		if actor := env["actor"].(map[string]any); actor["kind"] != "user" {
			t.Fatalf("actor %v", actor)
		}
		if _, err := time.Parse(time.RFC3339, env["occurred_at"].(string)); err != nil {
			t.Fatalf("occurred_at: %v", err)
		}
		if m.Header.Get("Nats-Msg-Id") != env["id"] {
			t.Fatalf("Nats-Msg-Id %q is not the event id %v", m.Header.Get("Nats-Msg-Id"), env["id"])
		}
	}
}

// Names unique among live workflows hold under concurrency: of several
// admins creating the same name at once, exactly one succeeds.
func TestConcurrentWorkflowNamesStayUnique(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	const writers = 6
	codes := make([]int, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			name := "Express Service"
			if i%2 == 1 {
				name = "EXPRESS service"
			}
			codes[i] = c.do("POST", "/v1/workflows", map[string]any{"name": name, "type": "production",
				"steps": []map[string]any{{"status": "washing", "trigger": "wash_done"}}}).Status
		})
	}
	wg.Wait()
	created := 0
	for _, code := range codes {
		switch code {
		case 201:
			created++
		case 409:
		default:
			t.Fatalf("unexpected status %d (%v)", code, codes)
		}
	}
	if created != 1 {
		t.Fatalf("%d workflows created with one name: %v", created, codes)
	}
	n := 0
	for _, it := range c.must(200, "GET", "/v1/workflows", nil)["items"].([]any) {
		if strings.EqualFold(it.(map[string]any)["name"].(string), "express service") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d live workflows named express service", n)
	}
}

// TestCreateDefinitionsWithIdempotencyKey: creating a status, trigger,
// workflow or order type with an Idempotency-Key is safe to send again,
// to the same process or another: a resend creates nothing and answers
// what the first created; the key sent with another body, or for
// another kind of definition, is a conflict and creates nothing.
func TestCreateDefinitionsWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	first := startApp(t, newTestConfig(t))
	cfg := newTestConfig(t)
	cfg.NATSURL, cfg.DataDir = first.NATSURL(), ""
	second := startApp(t, cfg)
	a, b := newClient(t, first), newClient(t, second)
	_, production, delivery := seedWorkedExample(t, a)

	count := func(path string) int {
		t.Helper()
		return len(a.must(200, "GET", path, nil)["items"].([]any))
	}
	create := func(c *httpClient, path string, body map[string]any, key string, replayed bool) (id, location string) {
		t.Helper()
		r := c.do("POST", path, body, "Idempotency-Key", key)
		m := r.json(t)
		id, _ = m["id"].(string)
		if k, ok := m["key"].(string); ok {
			id = k
		}
		if r.Status != 201 || (r.Header.Get("Idempotent-Replayed") == "true") != replayed || r.Header.Get("Location") != path+"/"+id {
			t.Fatalf("POST %s with key %s: %d %v %s; want 201, replayed %v", path, key, r.Status, r.Header, r.Body, replayed)
		}
		return id, r.Header.Get("Location")
	}
	steps := []map[string]any{{"status": "washing", "trigger": "wash_done"}, {"status": "drying", "trigger": "dry_done"}}
	for _, tc := range []struct {
		path        string
		body, other map[string]any
	}{
		{"/v1/statuses", map[string]any{"name": "Ironing", "category": "in_progress"}, map[string]any{"name": "Ironing", "category": "ready"}},
		{"/v1/triggers", map[string]any{"key": "ironed", "name": "Ironed"}, map[string]any{"key": "ironed", "name": "Ironed", "description": "pressed"}},
		{"/v1/workflows", map[string]any{"name": "Express Production", "type": "production", "steps": steps},
			map[string]any{"name": "Express Production", "type": "production", "steps": steps[:1]}},
		{"/v1/order-types", map[string]any{"name": "Express", "production": production, "fulfillment": []string{delivery}},
			map[string]any{"name": "Express", "production": production}},
	} {
		key := "k" + tc.path
		before := count(tc.path)
		id, location := create(a, tc.path, tc.body, key, false)
		if got := a.must(200, "GET", location, nil); got["id"] != id && got["key"] != id { // a Location names what one can read
			t.Fatalf("GET %s: %v", location, got)
		}
		for _, c := range []*httpClient{b, a} {
			if again, _ := create(c, tc.path, tc.body, key, true); again != id {
				t.Fatalf("POST %s sent again: %s, the first created %s", tc.path, again, id)
			}
		}
		p := b.problem(409, "conflict", "POST", tc.path, tc.other, "Idempotency-Key", key)
		if d, _ := p["detail"].(string); !strings.Contains(d, "with another body than this request's") {
			t.Fatalf("POST %s, the key with another body: %v", tc.path, p)
		}
		if n := count(tc.path); n != before+1 {
			t.Fatalf("%s: %d definitions after one creation and its resends, want %d", tc.path, n, before+1)
		}
	}
	// A resend after the definition changed answers it as it now stands,
	// and still creates nothing.
	a.must(200, "PATCH", "/v1/workflows/express_production", map[string]any{"name": "Express Wash"})
	r := b.do("POST", "/v1/workflows", map[string]any{"name": "Express Production", "type": "production", "steps": steps}, "Idempotency-Key", "k/v1/workflows")
	if w := r.json(t); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" || w["id"] != "express_production" || w["name"] != "Express Wash" || w["version"] != float64(2) {
		t.Fatalf("the workflow's creation sent again after a rename: %d %v", r.Status, w)
	}
	p := a.problem(409, "conflict", "POST", "/v1/triggers", map[string]any{"name": "Pressed"}, "Idempotency-Key", "k/v1/statuses")
	if d, _ := p["detail"].(string); !strings.Contains(d, `recorded StatusAdded "ironing", not of a request for TriggerAdded`) {
		t.Fatalf("a status's key sent for a trigger: %v", p)
	}
	a.problem(400, "invalid_argument", "POST", "/v1/statuses", map[string]any{"name": "Spare", "category": "draft"}, "Idempotency-Key", "clé")

	// A key names one request across definitions and orders: a status's
	// key sent to place an order, or an order's key sent to create a
	// status, is a conflict, and nothing is placed or created.
	p = b.problem(409, "conflict", "POST", "/v1/orders", map[string]any{"id": "by-status-key", "order_type_id": "wash_fold_delivery"}, "Idempotency-Key", "k/v1/statuses")
	if d, _ := p["detail"].(string); !strings.Contains(d, `recorded StatusAdded "ironing", not of a request for order "by-status-key"`) {
		t.Fatalf("a status's key sent to place an order: %v", p)
	}
	a.problem(404, "not_found", "GET", "/v1/orders/by-status-key", nil)
	a.must(201, "POST", "/v1/orders", map[string]any{"id": "keyed-order", "order_type_id": "wash_fold_delivery"}, "Idempotency-Key", "k-order")
	statuses := count("/v1/statuses")
	p = b.problem(409, "conflict", "POST", "/v1/statuses", map[string]any{"name": "Pressing", "category": "in_progress"}, "Idempotency-Key", "k-order")
	if d, _ := p["detail"].(string); !strings.Contains(d, `the key of a request for order "keyed-order"`) {
		t.Fatalf("an order's key sent to create a status: %v", p)
	}
	if n := count("/v1/statuses"); n != statuses {
		t.Fatalf("%d statuses after a refused creation, want %d", n, statuses)
	}

	// Eight clients send one order type's creation at once, with one key:
	// one order type, created by one of them, and every answer names it.
	// Without a key, the same body sent twice makes two.
	body := map[string]any{"name": "Same Day", "production": production}
	before := count("/v1/order-types")
	const n = 8
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		c := []*httpClient{a, b}[i%2]
		wg.Go(func() { answers[i] = c.do("POST", "/v1/order-types", body, "Idempotency-Key", "k-race") })
	}
	wg.Wait()
	made := 0
	for _, r := range answers {
		if r.Status != 201 || r.json(t)["id"] != "same_day" {
			t.Fatalf("racing request: %d %s", r.Status, r.Body)
		}
		if r.Header.Get("Idempotent-Replayed") == "" {
			made++
		}
	}
	if got := count("/v1/order-types"); made != 1 || got != before+1 {
		t.Fatalf("%d racing requests say they created it; %d order types, want %d", made, got, before+1)
	}
	a.must(201, "POST", "/v1/order-types", body)
	if got := count("/v1/order-types"); got != before+2 {
		t.Fatalf("without a key, a second order type: %d, want %d", got, before+2)
	}
}

// A read of the libraries or an order type whose If-None-Match holds the
// ETag it would answer with is answered 304 Not Modified, without a body;
// a tag of another version, or a route without an ETag, is answered in
// full. A workflow's and an order's ETags are their versions, which a
// renamed status does not change though their answers show its name:
// they are always answered in full.
func TestConditionalGet(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "cg-1", "order_type_id": "wash_fold_delivery"})

	for _, path := range []string{"/v1/statuses", "/v1/statuses/washing", "/v1/triggers", "/v1/triggers/wash_done", "/v1/order-types/wash_fold_delivery"} {
		full := c.do("GET", path, nil)
		etag := full.Header.Get("ETag")
		if full.Status != 200 || etag == "" || full.Header.Get("Vary") != "Authorization" {
			t.Fatalf("GET %s: %d, ETag %q, Vary %q", path, full.Status, etag, full.Header.Get("Vary"))
		}
		for _, inm := range []string{etag, "W/" + etag, `"999", ` + etag, "*"} {
			r := c.do("GET", path, nil, "If-None-Match", inm)
			if r.Status != 304 || len(r.Body) != 0 || r.Header.Get("ETag") != etag || r.Header.Get("Content-Type") != "" {
				t.Fatalf("GET %s with If-None-Match %s: %d %v %q, want 304 with the ETag and no body", path, inm, r.Status, r.Header, r.Body)
			}
		}
		if r := c.do("GET", path, nil, "If-None-Match", `"999"`); r.Status != 200 || string(r.Body) != string(full.Body) {
			t.Fatalf("GET %s with another version's tag: %d %s", path, r.Status, r.Body)
		}
	}
	// A renamed status changes the library's ETag; the order's and the
	// workflow's stay, and they answer in full with the new name.
	statuses := c.do("GET", "/v1/statuses", nil).Header.Get("ETag")
	order := c.do("GET", "/v1/orders/cg-1", nil).Header.Get("ETag")
	workflow := c.do("GET", "/v1/workflows/laundry_intake", nil).Header.Get("ETag")
	c.must(200, "PATCH", "/v1/statuses/pending_pickup", map[string]any{"name": "Waiting for pickup"})
	if r := c.do("GET", "/v1/statuses", nil, "If-None-Match", statuses); r.Status != 200 {
		t.Fatalf("the library after a rename, with its old tag: %d", r.Status)
	}
	for path, etag := range map[string]string{"/v1/orders/cg-1": order, "/v1/workflows/laundry_intake": workflow} {
		r := c.do("GET", path, nil, "If-None-Match", etag)
		if r.Status != 200 || r.Header.Get("ETag") != etag || !strings.Contains(string(r.Body), "Waiting for pickup") {
			t.Fatalf("GET %s with its unchanged ETag %s after a status rename: %d %v %s", path, etag, r.Status, r.Header, r.Body)
		}
	}
	// No ETag, no 304; nor for an error.
	if r := c.do("GET", "/v1/orders", nil, "If-None-Match", "*"); r.Status != 200 || len(r.Body) == 0 {
		t.Fatalf("a list without an ETag, with If-None-Match *: %d", r.Status)
	}
	c.problem(404, "not_found", "GET", "/v1/order-types/nope", nil, "If-None-Match", "*")
}
