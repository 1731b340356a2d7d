package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// client talks JSON to one App.
type httpClient struct {
	t     *testing.T
	base  string
	token string       // an API key's bearer token, sent when set
	hc    *http.Client // nil: http.DefaultClient
	// answered, when set, sees every answer (the path with its query),
	// after checkAnswer.
	answered func(method, path string, r response)
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

func newClient(t *testing.T, app *App) *httpClient {
	return &httpClient{t: t, base: "http://" + app.HTTPAddr()}
}

// do sends body (marshalled unless it is a string or []byte) and returns
// the response; headers are pairs of name, value.
func (c *httpClient) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	given := map[string]bool{}
	for i := 0; i+1 < len(headers); i += 2 {
		if given[headers[i]] { // named again: sent twice
			req.Header.Add(headers[i], headers[i+1])
			continue
		}
		given[headers[i]] = true
		req.Header.Set(headers[i], headers[i+1])
	}
	hc := c.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if id := r.Header.Get("X-Request-ID"); !given["X-Request-ID"] && id == "" {
		c.t.Errorf("%s %s = %d: no X-Request-ID, which every answer to a request without one carries", method, path, r.Status)
	}
	checkAnswer(c.t, method, path, r)
	if c.answered != nil {
		c.answered(method, path, r)
	}
	return r
}

// must sends a request and fails the test unless the status is want.
func (c *httpClient) must(want int, method, path string, body any, headers ...string) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body, headers...)
	if r.Status != want {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.json(c.t)
}

// problem asserts a problem response with the given status and code.
func (c *httpClient) problem(status int, code, method, path string, body any, headers ...string) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body, headers...)
	if r.Status != status {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		c.t.Fatalf("%s %s: content type %q, want application/problem+json", method, path, ct)
	}
	p := r.json(c.t)
	if p["code"] != code || p["status"] != float64(status) || p["title"] == "" {
		c.t.Fatalf("%s %s: problem %v, want code %s", method, path, p, code)
	}
	return p
}

func steps(w map[string]any) []string {
	var out []string
	for _, s := range w["steps"].([]any) {
		m := s.(map[string]any)
		out = append(out, m["status"].(string)+"<-"+m["trigger"].(string))
	}
	return out
}

// seedWorkedExample defines DESIGN.md's worked example over HTTP the way
// the admin screens do, and returns the ids of the three workflows.
func seedWorkedExample(t *testing.T, c *httpClient) (intake, production, delivery string) {
	t.Helper()
	for _, s := range []map[string]any{
		{"name": "Pending Pickup", "category": "pending"},
		{"name": "Received", "category": "in_progress"},
		{"name": "Washing", "category": "in_progress"},
		{"name": "Drying", "category": "in_progress"},
		{"name": "Folding", "category": "in_progress"},
		{"name": "Ready for Delivery", "category": "ready"},
		{"name": "Out for Delivery", "category": "in_progress"},
	} {
		c.must(201, "POST", "/v1/statuses", s)
	}
	for _, tr := range []map[string]any{
		{"key": "picked_up", "name": "Picked up"},
		{"key": "items_tagged", "name": "Items tagged"},
		{"key": "wash_done", "name": "Wash done"},
		{"key": "dry_done", "name": "Dry done"},
		{"key": "folded", "name": "Folded"},
		{"key": "out_for_delivery", "name": "Out for delivery"},
		{"key": "delivered", "name": "Delivered", "description": "handed to the customer"},
	} {
		c.must(201, "POST", "/v1/triggers", tr)
	}
	// Each workflow starts with one step and grows step by step.
	wf := c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Laundry Intake", "type": "intake",
		"steps": []map[string]any{{"status": "pending_pickup", "trigger": "picked_up"}}})
	intake = wf["id"].(string)
	c.must(200, "POST", "/v1/workflows/"+intake+"/steps", map[string]any{"status": "received", "trigger": "items_tagged"})

	wf = c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Standard Laundry Production", "type": "production",
		"steps": []map[string]any{{"status": "folding", "trigger": "folded"}}})
	production = wf["id"].(string)
	c.must(200, "POST", "/v1/workflows/"+production+"/steps", map[string]any{"status": "drying", "trigger": "dry_done", "position": 0})
	c.must(200, "POST", "/v1/workflows/"+production+"/steps", map[string]any{"status": "washing", "trigger": "wash_done"})
	// Drag and drop: washing (index 2) to the front.
	wf = c.must(200, "POST", "/v1/workflows/"+production+"/steps/move", map[string]any{"from": 2, "to": 0})
	if got := strings.Join(steps(wf), ","); got != "washing<-wash_done,drying<-dry_done,folding<-folded" {
		t.Fatalf("after the move: %s", got)
	}

	wf = c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Home Delivery", "type": "fulfillment",
		"fulfillment_method": "home_delivery",
		"steps":              []map[string]any{{"status": "out_for_delivery", "trigger": "delivered"}, {"status": "ready_for_delivery", "trigger": "out_for_delivery"}}})
	delivery = wf["id"].(string)
	// Reorder by replacing the whole step list.
	wf = c.must(200, "PUT", "/v1/workflows/"+delivery+"/steps", map[string]any{"steps": []map[string]any{
		{"status": "ready_for_delivery", "trigger": "out_for_delivery"}, {"status": "out_for_delivery", "trigger": "delivered"}}})
	if got := strings.Join(steps(wf), ","); got != "ready_for_delivery<-out_for_delivery,out_for_delivery<-delivered" {
		t.Fatalf("after PUT steps: %s", got)
	}
	c.must(201, "POST", "/v1/order-types", map[string]any{"name": "Wash & Fold Delivery",
		"intake": intake, "production": production, "fulfillment": []string{delivery}})
	return intake, production, delivery
}

func TestDefinitionsWorkedExampleOverHTTP(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	intake, production, delivery := seedWorkedExample(t, c)
	if intake != "laundry_intake" || production != "standard_laundry_production" || delivery != "home_delivery" {
		t.Fatalf("ids %s %s %s", intake, production, delivery)
	}

	// The workflows table.
	table := c.must(200, "GET", "/v1/workflows", nil)
	items := table["items"].([]any)
	if len(items) != 3 {
		t.Fatalf("workflows table has %d rows", len(items))
	}
	names := map[string]bool{}
	for _, it := range items {
		names[it.(map[string]any)["name"].(string)] = true
	}
	if !names["Laundry Intake"] || !names["Standard Laundry Production"] || !names["Home Delivery"] {
		t.Fatalf("workflows table %v", names)
	}

	// Answers carry users' text as it is, and tell browsers not to take
	// them for HTML.
	r := c.do("GET", "/v1/order-types", nil)
	if !strings.Contains(string(r.Body), `"Wash & Fold Delivery"`) || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("order types: X-Content-Type-Options %q: %s", r.Header.Get("X-Content-Type-Options"), r.Body)
	}

	// Every answer names its request: the caller's X-Request-ID, or one
	// made for it, which a command's events carry as their correlation id.
	r = c.do("PATCH", "/v1/statuses/washing", map[string]any{"name": "Washing"}, "X-Request-ID", "req-7")
	if r.Status != 200 || r.Header.Get("X-Request-ID") != "req-7" {
		t.Fatalf("PATCH with X-Request-ID req-7: %d, X-Request-ID %q", r.Status, r.Header.Get("X-Request-ID"))
	}
	r = c.do("POST", "/v1/orders", map[string]any{"id": "rid-1", "order_type_id": "wash_fold_delivery"})
	made := r.Header.Get("X-Request-ID")
	if _, err := uuid.Parse(made); r.Status != 201 || err != nil {
		t.Fatalf("POST without X-Request-ID: %d, X-Request-ID %q", r.Status, made)
	}
	placed := c.must(200, "GET", "/v1/orders/rid-1/history", nil)["events"].([]any)[0].(map[string]any)
	if placed["correlation_id"] != made {
		t.Fatalf("the order's OrderPlaced has correlation id %v, its answer X-Request-ID %q", placed["correlation_id"], made)
	}
	r = c.do("POST", "/v1/orders", map[string]any{"id": "rid-2", "order_type_id": "wash_fold_delivery"}, "X-Request-ID", strings.Repeat("x", 129))
	if r.Status != 400 || r.Header.Get("X-Request-ID") != "" {
		t.Fatalf("POST with a 129-byte X-Request-ID: %d, X-Request-ID %q", r.Status, r.Header.Get("X-Request-ID"))
	}

	// One workflow, with names and an ETag.
	r = c.do("GET", "/v1/workflows/"+production, nil)
	if r.Status != 200 || r.Header.Get("ETag") != `"4"` {
		t.Fatalf("GET workflow: %d etag %s", r.Status, r.Header.Get("ETag"))
	}
	wf := r.json(t)
	if wf["type"] != "production" || wf["version"] != float64(4) || wf["archived"] != false || wf["fulfillment_method"] != nil {
		t.Fatalf("workflow %v", wf)
	}
	first := wf["steps"].([]any)[0].(map[string]any)
	if first["status"] != "washing" || first["status_name"] != "Washing" || first["trigger"] != "wash_done" || first["trigger_name"] != "Wash done" {
		t.Fatalf("first step %v", first)
	}

	// Version 1 of the reordered workflow is as it was created.
	v1 := c.must(200, "GET", "/v1/workflows/"+production+"/versions/1", nil)
	if got := strings.Join(steps(v1), ","); got != "folding<-folded" || v1["version"] != float64(1) {
		t.Fatalf("version 1: %s (v%v)", got, v1["version"])
	}
	v3 := c.must(200, "GET", "/v1/workflows/"+production+"/versions/3", nil)
	if got := strings.Join(steps(v3), ","); got != "drying<-dry_done,folding<-folded,washing<-wash_done" {
		t.Fatalf("version 3: %s", got)
	}
	c.problem(404, "not_found", "GET", "/v1/workflows/"+production+"/versions/9", nil)

	hd := c.must(200, "GET", "/v1/workflows/"+delivery, nil)
	if hd["fulfillment_method"] != "home_delivery" {
		t.Fatalf("delivery workflow %v", hd)
	}
	ot := c.must(200, "GET", "/v1/order-types/wash_fold_delivery", nil)
	if ot["intake"] != intake || ot["production"] != production || ot["fulfillment"].([]any)[0] != delivery {
		t.Fatalf("order type %v", ot)
	}
	st := c.must(200, "GET", "/v1/statuses", nil)
	if n := len(st["items"].([]any)); n != 7 {
		t.Fatalf("%d statuses", n)
	}
	// One entry of a library, with the library's version as ETag, as the
	// list has it.
	for _, lib := range []struct{ path, key, name string }{{"/v1/statuses", "drying", "Drying"}, {"/v1/triggers", "dry_done", "Dry done"}} {
		all, one := c.do("GET", lib.path, nil), c.do("GET", lib.path+"/"+lib.key, nil)
		if m := one.json(t); one.Status != 200 || m["key"] != lib.key || m["name"] != lib.name || one.Header.Get("ETag") != all.Header.Get("ETag") {
			t.Fatalf("GET %s/%s: %d ETag %q (the list's %q): %s", lib.path, lib.key, one.Status, one.Header.Get("ETag"), all.Header.Get("ETag"), one.Body)
		}
		c.problem(404, "not_found", "GET", lib.path+"/nope", nil)
		c.problem(400, "invalid_argument", "GET", lib.path+"/a.b", nil)
	}
}
