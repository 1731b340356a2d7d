package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/handlers"
)

// definitions show prints a tenant's live definitions as one document;
// definitions apply makes another server's match it, and then has
// nothing left to change. An edited document changes what differs (a
// dry run first, which changes nothing); orders then run on the result.
// With --prune, what a document leaves out is archived.
func TestDefinitionsShowAndApply(t *testing.T) {
	t.Parallel()
	from := startApp(t, newTestConfig(t))
	if err := handlers.SeedWorkedExample(ctxFor(t, time.Minute), from.cmds); err != nil {
		t.Fatal(err)
	}
	to := startApp(t, newTestConfig(t))
	c := newClient(t, to)
	dir := t.TempDir()
	show := func(app *App) string {
		t.Helper()
		code, out, errOut := runMain(t, "definitions", "show", "--server", app.HTTPAddr())
		if code != 0 {
			t.Fatalf("definitions show: exit %d: %s", code, errOut)
		}
		return out
	}
	write := func(name, doc string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	apply := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runMain(t, append([]string{"definitions", "apply", "--server", to.HTTPAddr()}, args...)...)
		if code != 0 {
			t.Fatalf("definitions apply %v: exit %d: %s%s", args, code, out, errOut)
		}
		return out, errOut
	}

	doc := show(from)
	if !strings.Contains(doc, `"name": "Wash & Fold Delivery"`) {
		t.Fatalf("definitions show escapes text:\n%s", doc)
	}
	// The README offers the worked example as a document to apply.
	if example, err := os.ReadFile("../../docs/worked-example.json"); err != nil || string(example) != doc {
		t.Errorf("docs/worked-example.json is not what definitions show prints of the worked example (%v); it prints\n%s", err, doc)
	}
	var p process
	if err := json.Unmarshal([]byte(doc), &p); err != nil || len(p.Statuses) != 7 || len(p.Triggers) != 7 || len(p.Workflows) != 3 || len(p.OrderTypes) != 1 {
		t.Fatalf("definitions show: %v\n%s", err, doc)
	}
	worked := write("worked.json", doc)
	out, _ := apply("--file", worked)
	if !strings.HasPrefix(out, "added status pending_pickup (\"Pending Pickup\", pending)\n") || !strings.HasSuffix(out, "\n18 change(s) made\n") ||
		!strings.Contains(out, "created workflow standard_laundry_production (\"Standard Laundry Production\", production, [washing←wash_done, drying←dry_done, folding←folded])\n") ||
		!strings.Contains(out, "created order type wash_fold_delivery (\"Wash & Fold Delivery\": laundry_intake → standard_laundry_production → home_delivery)\n") {
		t.Fatalf("apply to an empty server:\n%s", out)
	}
	if got := show(to); got != doc {
		t.Fatalf("after apply the server shows\n%s\nthe document was\n%s", got, doc)
	}
	if out, _ := apply("--file", worked); out != "nothing to change\n" {
		t.Fatalf("apply again: %q", out)
	}

	// Edited: a status and a trigger added (keys from their names), a
	// trigger renamed, a step put in, a workflow and an order type added
	// without ids (the ids the server gives them are foretold), and the
	// order type's fulfillment changed.
	edited := strings.Replace(doc, `"name": "Picked up"`, `"name": "Collected"`, 1)
	edited = strings.Replace(edited, `"statuses": [`, `"statuses": [{"name": "Ironing", "category": "in_progress"},`, 1)
	edited = strings.Replace(edited, `"triggers": [`, `"triggers": [{"name": "Ironed", "description": "pressed and on a hanger"},`, 1)
	edited = strings.Replace(edited, `{
          "status": "folding",`, `{"status": "ironing", "trigger": "ironed"}, {
          "status": "folding",`, 1)
	edited = strings.Replace(edited, `"order_types": [`, `"order_types": [{"name": "Pressed Pickup", "production": "standard_laundry_production", "fulfillment": ["store_pickup"]},`, 1)
	edited = strings.Replace(edited, `"workflows": [`, `"workflows": [{"name": "Store Pickup", "type": "fulfillment", "fulfillment_method": "store_pickup",
		"steps": [{"status": "ready_for_delivery", "trigger": "delivered"}]},`, 1)
	edited = strings.Replace(edited, `"home_delivery"
      ]`, `"home_delivery", "store_pickup"
      ]`, 1)
	path := write("edited.json", edited)
	changes := []string{
		"add status ironing (\"Ironing\", in_progress)",
		"add trigger ironed (\"Ironed\")",
		"change trigger picked_up: name \"Picked up\" → \"Collected\"",
		"create workflow store_pickup (\"Store Pickup\", fulfillment, [ready_for_delivery←delivered])",
		"change workflow standard_laundry_production: steps [washing←wash_done, drying←dry_done, folding←folded] → [washing←wash_done, drying←dry_done, ironing←ironed, folding←folded]",
		"create order type pressed_pickup (\"Pressed Pickup\": standard_laundry_production → store_pickup)",
		"change order type wash_fold_delivery: fulfillment [home_delivery] → [home_delivery, store_pickup]",
	}
	var dry, made string
	for _, line := range changes {
		verb, rest, _ := strings.Cut(line, " ")
		dry += "would " + line + "\n"
		made += pastTense[verb] + " " + rest + "\n"
	}
	if out, _ := apply("--file", path, "--dry-run"); out != dry+"7 change(s); none made (--dry-run)\n" {
		t.Fatalf("dry run:\n%s\nwant\n%s", out, dry)
	}
	if got := show(to); got != doc {
		t.Fatalf("a dry run changed the definitions:\n%s", got)
	}
	if out, _ = apply("--file", path); out != made+"7 change(s) made\n" {
		t.Fatalf("apply the edited document:\n%s\nwant\n%s", out, made)
	}
	if out, _ := apply("--file", path); out != "nothing to change\n" {
		t.Fatalf("apply the edited document again: %q", out)
	}
	// The result runs: an order of the new type goes through the new
	// workflow, and the production workflow's new step.
	o := c.must(201, "POST", "/v1/orders", map[string]any{"id": "pressed-1", "order_type_id": "pressed_pickup"})
	for _, trig := range []string{"wash_done", "dry_done", "ironed", "folded", "delivered"} {
		o = c.must(200, "POST", "/v1/orders/pressed-1/triggers", map[string]any{"trigger": trig})["order"].(map[string]any)
	}
	if o["state"] != "completed" {
		t.Fatalf("an order of the applied order type: %v", o)
	}

	// The first document again, with --prune: what the edit changed goes
	// back, then what it added is archived (order type, workflow, status,
	// trigger: each before what it uses), and the server shows the first
	// document again.
	out, _ = apply("--file", worked, "--prune")
	wantOut := "changed trigger picked_up: name \"Collected\" → \"Picked up\"\n" +
		"changed workflow standard_laundry_production: steps [washing←wash_done, drying←dry_done, ironing←ironed, folding←folded] → [washing←wash_done, drying←dry_done, folding←folded]\n" +
		"changed order type wash_fold_delivery: fulfillment [home_delivery, store_pickup] → [home_delivery]\n" +
		"archived order type pressed_pickup (\"Pressed Pickup\")\n" +
		"archived workflow store_pickup (\"Store Pickup\")\n" +
		"archived status ironing (\"Ironing\")\n" +
		"archived trigger ironed (\"Ironed\")\n" +
		"7 change(s) made\n"
	if out != wantOut {
		t.Fatalf("apply --prune:\n%s\nwant\n%s", out, wantOut)
	}
	if got := show(to); got != doc {
		t.Fatalf("after apply --prune the server shows\n%s\nthe document was\n%s", got, doc)
	}
	if out, _ := apply("--file", worked, "--prune"); out != "nothing to change\n" {
		t.Fatalf("apply --prune again: %q", out)
	}
}

// definitions apply refuses, before it changes anything, a document
// that names a definition twice, names an archived one, gives a new
// workflow an id the server would not give it, lacks a name or a
// category, or has a field it does not know (none of the four lists
// changes); a change someone else made since apply read the definitions
// stops it (412); a change the API refuses stops it, saying how many
// were made.
func TestDefinitionsApplyRefuses(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Spare", "category": "draft"})
	c.must(200, "DELETE", "/v1/statuses/spare", nil)
	c.must(201, "POST", "/v1/triggers", map[string]any{"key": "spare_done", "name": "Spare done"})
	c.must(200, "DELETE", "/v1/triggers/spare_done", nil)
	c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Old Flow", "type": "production", "steps": []map[string]any{{"status": "washing", "trigger": "wash_done"}}})
	c.must(200, "POST", "/v1/workflows/old_flow/archive", nil)
	c.must(201, "POST", "/v1/order-types", map[string]any{"name": "Gone", "fulfillment": []string{"home_delivery"}})
	c.must(200, "POST", "/v1/order-types/gone/archive", nil)
	// Two order types of one name (which the API allows).
	for range 2 {
		c.must(201, "POST", "/v1/order-types", map[string]any{"name": "Twin", "fulfillment": []string{"home_delivery"}})
	}
	dir := t.TempDir()
	lists := []string{"/v1/statuses", "/v1/triggers", "/v1/workflows", "/v1/order-types"}
	before := map[string]any{}
	for _, l := range lists {
		before[l] = c.must(200, "GET", l, nil)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"twice":    {`{"statuses": [{"name": "Washing", "category": "in_progress"}, {"key": "washing", "name": "Washing", "category": "pending"}]}`, `status "washing" is in the document twice`},
		"archived": {`{"statuses": [{"name": "New", "category": "draft"}, {"key": "spare", "name": "Spare", "category": "draft"}]}`, "status spare is archived"},
		"new id": {`{"workflows": [{"id": "quick", "name": "Quick Wash", "type": "production", "steps": [{"status": "washing", "trigger": "wash_done"}]}]}`,
			"there is no workflow quick, and a new one named \"Quick Wash\" gets the id quick_wash (made from its name): use that id, or leave it out"},
		"same name": {`{"order_types": [{"name": "Quick", "fulfillment": ["home_delivery"]}, {"name": "quick", "fulfillment": ["home_delivery"]}]}`,
			`order type "quick" is in the document twice`},
		"ambiguous":     {`{"order_types": [{"name": "Twin", "fulfillment": []}]}`, `the order types twin and twin-2 are named "Twin": give the id of the one meant`},
		"no category":   {`{"statuses": [{"name": "New"}]}`, "statuses[0]: category is required"},
		"trigger twice": {`{"triggers": [{"key": "wash_done", "name": "Washed"}, {"name": "Wash done"}]}`, `trigger "wash_done" is in the document twice`},
		"archived trigger": {`{"triggers": [{"key": "spare_done", "name": "Spare done"}]}`,
			"trigger spare_done is archived, and an archived key is not taken again: give the trigger another key"},
		"trigger without a name": {`{"triggers": [{"key": "rinsed"}]}`, "triggers[0]: name is required"},
		"workflow twice": {`{"workflows": [{"id": "laundry_intake", "name": "Laundry Intake", "type": "intake", "steps": []}, {"id": "laundry_intake", "name": "Laundry Intake", "type": "intake", "steps": []}]}`,
			`workflow "laundry_intake" is in the document twice`},
		"archived workflow": {`{"workflows": [{"id": "old_flow", "name": "Old Flow", "type": "production", "steps": [{"status": "washing", "trigger": "wash_done"}]}]}`,
			"workflow old_flow is archived, and an archived workflow does not change: leave its id out to create a new one"},
		"archived order type": {`{"order_types": [{"id": "gone", "name": "Gone", "fulfillment": ["home_delivery"]}]}`,
			"order type gone is archived, and an archived order type does not change: leave its id out to create a new one"},
		"order type without a name": {`{"order_types": [{"fulfillment": ["home_delivery"]}]}`, "order_types[0]: name is required"},
		"no name":                   {`{"workflows": [{"type": "production", "steps": []}]}`, "workflows[0]: name is required"},
		"type of a used workflow": {`{"workflows": [{"id": "laundry_intake", "name": "Laundry Intake", "type": "production", "steps": [{"status": "pending_pickup", "trigger": "picked_up"}]}]}`,
			"workflow laundry_intake changes type (intake → production) while live order types use it (wash_fold_delivery): first apply a document that takes it out of them"},
		"unknown field": {`{"statuses": [{"name": "New", "category": "draft", "colour": "red"}]}`, `unknown field "colour"`},
		"bad category":  {`{"statuses": [{"name": "New", "category": "soon"}]}`, `"soon" is not one of`},
		"wrong kind":    {`{"workflows": [{"name": 5, "type": "intake", "steps": []}]}`, "wrong kind.json: field workflows.name: a JSON number where a string belongs"},
		"not an object": {`[{"statuses": []}]`, "not an object.json: the document is a JSON array; send a JSON object"},
		"enum kind":     {`{"statuses": [{"name": "New", "category": 1}]}`, "enum kind.json: category: a JSON number where a string belongs"},
		"two documents": {`{"statuses": [{"name": "New", "category": "draft"}]} {"statuses": []}`, "two documents.json: more than one JSON document"},
		"cut short":     {`{"statuses": [{"name": "New", "category": "dr`, "cut short.json: malformed JSON: unexpected EOF"},
	} {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runMain(t, "definitions", "apply", "--server", app.HTTPAddr(), "--file", path)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d: %q %q", name, code, out, errOut)
		}
	}
	if code, out, errOut := runMain(t, "definitions", "apply", "--server", app.HTTPAddr(), "--file", filepath.Join(dir, "missing.json")); code != 1 || out != "" ||
		!strings.Contains(errOut, "missing.json: no such file") {
		t.Errorf("a file that is not there: exit %d: %q %q", code, out, errOut)
	}
	for _, l := range lists {
		if after := c.must(200, "GET", l, nil); !reflect.DeepEqual(after, before[l]) {
			t.Fatalf("a refused document changed %s:\n%v\nwas\n%v", l, after, before[l])
		}
	}

	// A change made by someone else after apply read the definitions.
	server := &apiServer{url: app.HTTPAddr()}
	ctx := context.Background()
	live, err := readDefinitions(ctx, server, "")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := planDefinitions(process{Statuses: []processStatus{{Key: "washing", Name: "Wash", Category: domain.CategoryInProgress}}}, live, false)
	if err != nil || len(changes) != 1 {
		t.Fatalf("plan: %v %v", changes, err)
	}
	c.must(200, "PATCH", "/v1/statuses/drying", map[string]any{"name": "Tumble Drying"})
	if err := changes[0].send(ctx, server, live.versions); err == nil || !strings.Contains(err.Error(), "changed by someone else since it was read") {
		t.Fatalf("a change on a stale version: %v", err)
	}
	if s := c.must(200, "GET", "/v1/statuses/washing", nil); s["name"] != "Washing" {
		t.Fatalf("the stale change was made: %v", s)
	}

	// The API refuses the second change (a step at a status that does
	// not exist): the first stays made, and the error says so.
	path := filepath.Join(dir, "unknown-status.json")
	if err := os.WriteFile(path, []byte(`{"triggers": [{"name": "Rinsed"}],
		"workflows": [{"name": "Rinse", "type": "production", "steps": [{"status": "rinsing", "trigger": "rinsed"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMain(t, "definitions", "apply", "--server", app.HTTPAddr(), "--file", path)
	if code != 1 || out != "added trigger rinsed (\"Rinsed\")\n" || !strings.Contains(errOut, "create workflow rinse") ||
		!strings.Contains(errOut, "(1 of 2 change(s) made; run it again to make the rest)") {
		t.Fatalf("a refused change: exit %d: %q %q", code, out, errOut)
	}
}

// definitions apply changes every field a document holds: a status's
// name and category, a trigger's name and description (taken away
// too), a workflow's name, steps, method and type (fulfillment to
// production takes its method away), an order type's slots (intake
// taken away, production given). The server then shows the document.
func TestDefinitionsApplyChangesEveryField(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	dir := t.TempDir()
	apply := func(doc string) process {
		t.Helper()
		path := filepath.Join(dir, "process.json")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := runMain(t, "definitions", "apply", "--server", app.HTTPAddr(), "--file", path); code != 0 {
			t.Fatalf("apply: exit %d: %s%s", code, out, errOut)
		}
		want, err := readProcess(path)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runMain(t, "definitions", "show", "--server", app.HTTPAddr())
		if code != 0 {
			t.Fatalf("show: exit %d: %s", code, errOut)
		}
		var got process
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*process{&want, &got} { // the server lists in its own order
			slices.SortFunc(p.Statuses, func(a, b processStatus) int { return strings.Compare(a.Key, b.Key) })
			slices.SortFunc(p.Triggers, func(a, b processTrigger) int { return strings.Compare(a.Key, b.Key) })
			slices.SortFunc(p.Workflows, func(a, b processWorkflow) int { return strings.Compare(a.ID, b.ID) })
			slices.SortFunc(p.OrderTypes, func(a, b processOrderType) int { return strings.Compare(a.ID, b.ID) })
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("the server shows\n%+v\nthe document was\n%+v", got, want)
		}
		return got
	}
	apply(`{
		"statuses": [{"key": "a", "name": "A", "category": "draft"}, {"key": "b", "name": "B", "category": "pending"}],
		"triggers": [{"key": "x", "name": "X", "description": "first"}, {"key": "y", "name": "Y"}],
		"workflows": [
			{"id": "w1", "name": "W1", "type": "intake", "steps": [{"status": "a", "trigger": "x"}]},
			{"id": "w2", "name": "W2", "type": "fulfillment", "fulfillment_method": "store_pickup", "steps": [{"status": "b", "trigger": "y"}]},
			{"id": "w4", "name": "W4", "type": "production", "steps": [{"status": "a", "trigger": "y"}]},
			{"id": "w5", "name": "W5", "type": "fulfillment", "fulfillment_method": "home_delivery", "steps": [{"status": "b", "trigger": "x"}]}],
		"order_types": [{"id": "ot", "name": "OT", "intake": "w1", "fulfillment": ["w2"]}]}`)
	apply(`{
		"statuses": [{"key": "a", "name": "A2", "category": "in_progress"}, {"key": "b", "name": "B", "category": "pending"}],
		"triggers": [{"key": "x", "name": "X2"}, {"key": "y", "name": "Y", "description": "given"}],
		"workflows": [
			{"id": "w1", "name": "Intake Two", "type": "intake", "steps": [{"status": "a", "trigger": "x"}, {"status": "b", "trigger": "y"}]},
			{"id": "w2", "name": "W2", "type": "fulfillment", "fulfillment_method": "on_site", "steps": [{"status": "b", "trigger": "y"}]},
			{"id": "w3", "name": "W3", "type": "production", "steps": [{"status": "b", "trigger": "x"}]},
			{"id": "w4", "name": "W4", "type": "intake", "steps": [{"status": "a", "trigger": "y"}]},
			{"id": "w5", "name": "W5", "type": "production", "steps": [{"status": "b", "trigger": "x"}]}],
		"order_types": [{"id": "ot", "name": "OT renamed", "production": "w3", "fulfillment": ["w2"]}]}`)
}

// definitions show reads the four lists again until two reads agree, so
// a status created while they were read shows together with the
// workflow that uses it; definitions that never stop changing are an
// error.
func TestReadDefinitionsAsOfOneMoment(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	statusReads, always := 0, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/statuses":
			statusReads++
			if statusReads == 1 || always { // then "b" is added, just before the workflow that uses it
				w.Header().Set("ETag", fmt.Sprintf("%q", strconv.Itoa(statusReads)))
				fmt.Fprint(w, `{"items":[{"key":"a","name":"A","category":"draft","archived":false}]}`)
				return
			}
			w.Header().Set("ETag", `"2"`)
			fmt.Fprint(w, `{"items":[{"key":"a","name":"A","category":"draft","archived":false},{"key":"b","name":"B","category":"draft","archived":false}]}`)
		case "/v1/triggers":
			w.Header().Set("ETag", `"1"`)
			fmt.Fprint(w, `{"items":[{"key":"x","name":"X","description":"","archived":false}]}`)
		case "/v1/workflows":
			fmt.Fprint(w, `{"items":[{"id":"w","name":"W","type":"intake","fulfillment_method":null,"version":1,"archived":false,
				"steps":[{"status":"b","status_name":"B","trigger":"x","trigger_name":"X"}]}]}`)
		case "/v1/order-types":
			fmt.Fprint(w, `{"items":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	live, err := readDefinitions(context.Background(), &apiServer{url: srv.URL}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(live.statuses) != 2 || statusReads != 3 {
		t.Fatalf("statuses %+v after %d reads; want a and b after 3", live.statuses, statusReads)
	}
	mu.Lock()
	always, statusReads = true, 0
	mu.Unlock()
	if _, err := readDefinitions(context.Background(), &apiServer{url: srv.URL}, ""); err == nil || !strings.Contains(err.Error(), "changed each time they were read") {
		t.Fatalf("definitions that keep changing: %v", err)
	}
}

// replay --definitions prints the definitions as they stood at a time,
// in the form definitions apply reads: applying it with --prune puts a
// process edited since then back the way it was (as new versions; the
// history keeps both).
func TestDefinitionsPutBackFromReplay(t *testing.T) {
	t.Parallel()
	app, clock := startClockedApp(t)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	_, before, _ := runMain(t, "definitions", "show", "--server", app.HTTPAddr())
	clock.add(time.Minute)
	cut := clock.now()
	clock.add(time.Minute)
	c.must(200, "PATCH", "/v1/workflows/laundry_intake", map[string]any{"name": "Intake & Tagging"})
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Ironing", "category": "in_progress"})
	c.must(200, "PUT", "/v1/workflows/standard_laundry_production/steps", map[string]any{"steps": []map[string]any{
		{"status": "washing", "trigger": "wash_done"}, {"status": "ironing", "trigger": "folded"}}})

	code, doc, errOut := runMain(t, "replay", "--nats-url", app.NATSURL(), "--until", cut.Format(time.RFC3339Nano), "--definitions")
	if code != 0 || doc != before {
		t.Fatalf("replay --definitions: exit %d %s\n%s\nwant\n%s", code, errOut, doc, before)
	}
	// The same over HTTP, as of the same instant (?as_of= on the four lists).
	showAsOf := func() (int, string, string) {
		return runMain(t, "definitions", "show", "--server", app.HTTPAddr(), "--as-of", cut.Format(time.RFC3339Nano))
	}
	if code, asOf, errOut := showAsOf(); code != 0 || asOf != before {
		t.Fatalf("definitions show --as-of: exit %d %s\n%s\nwant\n%s", code, errOut, asOf, before)
	}
	path := filepath.Join(t.TempDir(), "before.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMain(t, "definitions", "apply", "--server", app.HTTPAddr(), "--file", path, "--prune")
	if code != 0 || !strings.HasSuffix(out, "archived status ironing (\"Ironing\")\n3 change(s) made\n") {
		t.Fatalf("apply what replay printed: exit %d: %s%s", code, out, errOut)
	}
	if _, now, _ := runMain(t, "definitions", "show", "--server", app.HTTPAddr()); now != before {
		t.Fatalf("put back:\n%s\nwant\n%s", now, before)
	}
	// Putting back made new versions: the instant before the edits reads the same.
	if code, asOf, errOut := showAsOf(); code != 0 || asOf != before {
		t.Fatalf("definitions show --as-of after the put-back: exit %d %s\n%s\nwant\n%s", code, errOut, asOf, before)
	}
	if code, _, errOut := runMain(t, "definitions", "show", "--server", app.HTTPAddr(), "--as-of", "last friday"); code != 1 || !strings.Contains(errOut, "as_of") {
		t.Fatalf("definitions show --as-of with no time: exit %d %s", code, errOut)
	}
	if code, _, errOut := runMain(t, "replay", "--nats-url", app.NATSURL(), "--definitions", "--out", path); code != 1 || !strings.Contains(errOut, "give one of them") {
		t.Fatalf("replay --definitions --out: exit %d %s", code, errOut)
	}
}
