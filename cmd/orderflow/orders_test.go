package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/handlers"
)

var workedTriggers = []string{"picked_up", "items_tagged", "wash_done", "dry_done", "folded", "out_for_delivery", "delivered"}

func TestOrderTriggersOverHTTP(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	o := c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-1", "order_type_id": "wash_fold_delivery"})
	pos := o["position"].(map[string]any)
	if o["state"] != "active" || pos["status"] != "pending_pickup" || pos["expected_trigger"] != "picked_up" ||
		pos["status_name"] != "Pending Pickup" || pos["workflow_name"] != "Laundry Intake" || pos["category"] != "pending" {
		t.Fatalf("placed order %v", o)
	}
	// A wrong trigger is rejected with the expected one, and changes no position.
	p := c.problem(409, "trigger_rejected", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "wash_done", "trigger_id": "t-wrong"})
	if p["reason"] != "unexpected_trigger" || p["expected"] != "picked_up" {
		t.Fatalf("rejection %v", p)
	}
	for i, tr := range workedTriggers {
		res := c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": tr, "trigger_id": "t-" + tr, "worker": "w1"})
		want := "advanced"
		if i == len(workedTriggers)-1 {
			want = "completed"
		}
		if res["outcome"] != want {
			t.Fatalf("%s: %v", tr, res)
		}
	}
	// The same trigger id again: one effect.
	res := c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "delivered", "trigger_id": "t-delivered"})
	if res["outcome"] != "duplicate" {
		t.Fatalf("repeat: %v", res)
	}
	// The id of one trigger sent for another: a conflict, nothing stored;
	// a rejected trigger's id too.
	p = c.problem(409, "conflict", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "t-delivered"})
	if d, _ := p["detail"].(string); !strings.Contains(d, `"t-delivered" is already the id of trigger "delivered" on order "o-1" (completed)`) {
		t.Fatalf("a trigger's id for another trigger: %v", p)
	}
	p = c.problem(409, "conflict", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "t-wrong"})
	if d, _ := p["detail"].(string); !strings.Contains(d, `"t-wrong" is already the id of trigger "wash_done" on order "o-1" (rejected)`) {
		t.Fatalf("a rejected trigger's id for another trigger: %v", p)
	}
	// The rejected trigger's id again: the same rejection, as recorded
	// (a worker app that lost the first answer must not take it for a
	// success), and nothing new stored.
	p = c.problem(409, "trigger_rejected", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "wash_done", "trigger_id": "t-wrong"})
	if p["reason"] != "unexpected_trigger" || p["expected"] != "picked_up" {
		t.Fatalf("the rejected trigger again: %v", p)
	}
	o = c.must(200, "GET", "/v1/orders/o-1", nil)
	if o["state"] != "completed" || o["version"] != float64(9) {
		t.Fatalf("final order %v", o)
	}
	h := c.must(200, "GET", "/v1/orders/o-1/history", nil)
	events := h["events"].([]any)
	if len(events) != 9 {
		t.Fatalf("history has %d events", len(events))
	}
	// A trigger that names no worker over HTTP is recorded as the API's,
	// as other requests that name nobody are.
	rejected := events[1].(map[string]any)
	if rejected["type"] != "TriggerRejected" || rejected["actor"].(map[string]any)["id"] != "api" || rejected["data"].(map[string]any)["worker"] != "api" {
		t.Fatalf("a trigger without a worker: %v", rejected)
	}
	last := events[8].(map[string]any)
	if last["type"] != "OrderCompleted" || last["causation_id"] != "t-delivered" || last["actor"].(map[string]any)["kind"] != "worker" {
		t.Fatalf("last event %v", last)
	}
	// The same history a page at a time.
	var paged []any
	for path, pages := "/v1/orders/o-1/history?limit=4", 0; path != ""; pages++ {
		h := c.must(200, "GET", path, nil)
		paged = append(paged, h["events"].([]any)...)
		path = ""
		if next, _ := h["next_cursor"].(string); next != "" {
			path = "/v1/orders/o-1/history?limit=4&cursor=" + next
		}
		if pages > 3 {
			t.Fatalf("history pages: %v", h)
		}
	}
	if !reflect.DeepEqual(paged, events) {
		t.Fatalf("history by pages of 4:\n%v\nwhole:\n%v", paged, events)
	}
	c.problem(400, "invalid_argument", "GET", "/v1/orders/o-1/history?limit=0", nil)
	c.problem(400, "invalid_argument", "GET", "/v1/orders/o-1/history?cursor=zzz", nil)
	c.problem(400, "invalid_argument", "GET", "/v1/orders/o-1/history?after=3", nil)
	c.problem(404, "not_found", "GET", "/v1/orders/nope/history", nil)
	c.problem(404, "not_found", "POST", "/v1/orders/nope/triggers", map[string]any{"trigger": "picked_up"})
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "delivered"})

	// o-1's trigger id sent for another order: JetStream deduplicates ids
	// across the stream and stores nothing, so it is refused at once
	// instead of waiting for an outcome that would never come.
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-2", "order_type_id": "wash_fold_delivery"})
	p = c.problem(409, "conflict", "POST", "/v1/orders/o-2/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "t-picked_up"})
	if d, _ := p["detail"].(string); !strings.Contains(d, `"t-picked_up" is already the id of a trigger for order "o-1" (picked_up)`) {
		t.Fatalf("reused trigger id: %v", p)
	}
	if o := c.must(200, "GET", "/v1/orders/o-2", nil); o["version"] != float64(1) {
		t.Fatalf("o-2 changed: %v", o)
	}
	if res := c.must(200, "POST", "/v1/orders/o-2/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "o-2-picked_up"}); res["outcome"] != "advanced" {
		t.Fatalf("o-2 with an id of its own: %v", res)
	}
}

func TestTriggerAndOrderShowCommands(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "cli-1", "order_type_id": "wash_fold_delivery"})
	env := func(k string) (string, bool) {
		if k == "ORDERFLOW_SERVER" {
			return "http://" + app.HTTPAddr(), true
		}
		return "", false
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := Main(context.Background(), args, &out, &errOut, env)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := run("trigger", "cli-1", "picked_up", "--worker", "ana")
	if code != 0 || !strings.Contains(out, "advanced") || !strings.Contains(out, "waiting for items_tagged") {
		t.Fatalf("trigger: %d %q %q", code, out, errOut)
	}
	code, out, _ = run("order", "show", "cli-1")
	if code != 0 || !strings.Contains(out, "at Received (received)") {
		t.Fatalf("order show: %d %q", code, out)
	}
	// --server also takes the bare address that serve's --http takes.
	code, out, errOut = run("order", "show", "--server", app.HTTPAddr(), "cli-1")
	if code != 0 || !strings.Contains(out, "at Received (received)") {
		t.Fatalf("order show --server %s: %d %q %q", app.HTTPAddr(), code, out, errOut)
	}
	code, _, errOut = run("trigger", "cli-1", "delivered")
	if code != 1 || !strings.Contains(errOut, "unexpected_trigger") || !strings.Contains(errOut, "items_tagged") {
		t.Fatalf("rejected trigger: %d %q", code, errOut)
	}
	code, _, errOut = run("order", "show", "nope")
	if code != 1 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("unknown order: %d %q", code, errOut)
	}

	// order place: placed; sent again with its key, already placed; a
	// new request (a key of its own) for the same id, a conflict.
	code, out, errOut = run("order", "place", "--id", "cli-2", "--key", "cli-2-key", "wash_fold_delivery")
	if code != 0 || !strings.HasPrefix(out, "placed\norder cli-2 (wash_fold_delivery): active, version 1") || !strings.Contains(out, "waiting for picked_up") {
		t.Fatalf("order place: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("order", "place", "--id", "cli-2", "--key", "cli-2-key", "wash_fold_delivery")
	if code != 0 || !strings.HasPrefix(out, "already placed\norder cli-2") {
		t.Fatalf("order place again: %d %q %q", code, out, errOut)
	}
	code, _, errOut = run("order", "place", "--id", "cli-2", "wash_fold_delivery")
	if code != 1 || !strings.Contains(errOut, "conflict") {
		t.Fatalf("order place of a taken id: %d %q", code, errOut)
	}
	code, out, errOut = run("order", "place", "--key", "cli-key", "wash_fold_delivery")
	if id := handlers.OrderIDForKey("cli-key"); code != 0 || !strings.HasPrefix(out, "placed\norder "+id+" ") {
		t.Fatalf("order place with a key: %d %q %q", code, out, errOut)
	}
	code, _, errOut = run("order", "place", "nope")
	if code != 1 || !strings.Contains(errOut, "invalid_argument") || !strings.Contains(errOut, `unknown order type "nope"`) {
		t.Fatalf("order place of an unknown type: %d %q", code, errOut)
	}
	if code, _, _ = run("order", "place"); code != 2 && code != 1 {
		t.Fatalf("order place without a type: %d", code)
	}

	// Supervisors' actions: each prints what it did and the order; sent
	// again with its key, "already …" and nothing recorded; refusals
	// are the server's problems.
	for _, step := range []struct {
		args             []string
		out, state, also string
	}{
		{[]string{"hold", "--reason", "customer away", "--key", "cli-h", "cli-2"}, "held\n", "on_hold, version 2", ""},
		{[]string{"hold", "--reason", "customer away", "--key", "cli-h", "cli-2"}, "already held\n", "on_hold, version 2", "\n  on hold: waiting to be resumed, then for picked_up\n"},
		{[]string{"resume", "--key", "cli-r", "cli-2"}, "resumed\n", "active, version 3", "\n  waiting for picked_up\n"},
		{[]string{"move", "--workflow", "laundry_intake", "--step", "1", "--reason", "tagged at the counter", "--key", "cli-m", "cli-2"}, "moved\n", "active, version 4", "\n  waiting for items_tagged\n"},
		{[]string{"move", "--workflow", "laundry_intake", "--step", "1", "--reason", "tagged at the counter", "--key", "cli-m", "cli-2"}, "already moved\n", "active, version 4", ""},
		{[]string{"cancel", "--reason", "customer cancelled", "cli-2"}, "cancelled\n", "cancelled, version 5", ""},
	} {
		code, out, errOut := run(append([]string{"order"}, step.args...)...)
		if code != 0 || !strings.HasPrefix(out, step.out+"order cli-2 (wash_fold_delivery): "+step.state) || !strings.Contains(out, step.also) {
			t.Fatalf("order %v: %d %q %q", step.args, code, out, errOut)
		}
	}
	if code, _, errOut = run("order", "hold", "cli-2"); code != 1 || !strings.Contains(errOut, "conflict") {
		t.Fatalf("order hold of a cancelled order: %d %q", code, errOut)
	}
	if code, _, errOut = run("order", "hold", "--key", "cli-m", "cli-2"); code != 1 || !strings.Contains(errOut, "recorded OrderMoved") {
		t.Fatalf("order hold with a move's key: %d %q", code, errOut)
	}
	if code, _, errOut = run("order", "move", "--workflow", "laundry_intake", "cli-2"); code != 2 && code != 1 || !strings.Contains(errOut, "--step") {
		t.Fatalf("order move without a step: %d %q", code, errOut)
	}
	// A step that is given but is none is the server's to refuse, saying
	// why; step 0 is a step like any other.
	if code, _, errOut = run("order", "move", "--workflow", "laundry_intake", "--step", "-1", "--reason", "r", "cli-1"); code != 1 ||
		!strings.Contains(errOut, `step: -1 is not a step of workflow "laundry_intake"`) {
		t.Fatalf("order move --step -1: %d %q", code, errOut)
	}
	if code, out, errOut := run("order", "move", "--workflow", "laundry_intake", "--step", "0", "--reason", "back to pickup", "cli-1"); code != 0 ||
		!strings.HasPrefix(out, "moved\n") || !strings.Contains(out, "waiting for picked_up") {
		t.Fatalf("order move --step 0: %d %q %q", code, out, errOut)
	}
}

// `order list` pages through the orders a filter names, and `board`
// prints the board, both as the API answers them.
func TestOrderListAndBoardCommands(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	for _, id := range []string{"l-1", "l-2", "l-3"} {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
	}
	c.must(200, "POST", "/v1/orders/l-2/triggers", map[string]any{"trigger": "picked_up"})
	c.must(200, "POST", "/v1/orders/l-3/hold", map[string]any{"reason": "away"})
	server := "http://" + app.HTTPAddr()

	code, out, errOut := runMain(t, "order", "list", "--server", server, "--state", "active", "--limit", "1")
	if code != 0 || !strings.Contains(out, "l-1  ") || strings.Contains(out, "l-2") || !strings.Contains(out, "Pending Pickup") ||
		!regexp.MustCompile(`Laundry Intake v\d+, step 0`).MatchString(out) || !strings.Contains(out, "picked_up") ||
		!strings.HasPrefix(errOut, "more follow: orderflow order list --state active --limit 1 --cursor ") {
		t.Fatalf("order list, first page: %d %q %q", code, out, errOut)
	}
	next := strings.Fields(strings.TrimPrefix(errOut, "more follow: orderflow "))
	code, out, errOut = runMain(t, append(next, "--server", server)...)
	if code != 0 || !strings.Contains(out, "l-2  ") || !strings.Contains(out, "Received") || errOut != "" {
		t.Fatalf("order list, the page it named: %d %q %q", code, out, errOut)
	}
	code, out, _ = runMain(t, "order", "list", "--server", server, "--state", "on_hold", "--json")
	var res struct{ Items []struct{ ID string } }
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Items) != 1 || res.Items[0].ID != "l-3" {
		t.Fatalf("order list --json: %d %q", code, out)
	}
	// --oldest: those longest in their stage first, a page at a time.
	// l-2 entered Received after l-1 and l-3 entered Pending Pickup.
	var order []string
	for args := []string{"order", "list", "--oldest", "--limit", "2"}; ; {
		code, out, errOut = runMain(t, append(args, "--server", server)...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			order = append(order, strings.Fields(line)[0])
		}
		next, ok := strings.CutPrefix(errOut, "more follow: orderflow ")
		if !ok {
			break
		}
		if args = strings.Fields(next); !slices.Contains(args, "--oldest") {
			t.Fatalf("the next page's command leaves --oldest out: %s", next)
		}
	}
	if !slices.Equal(order, []string{"l-1", "l-3", "l-2"}) {
		t.Fatalf("order list --oldest: %v", order)
	}
	if code, _, errOut = runMain(t, "order", "list", "--server", server, "--state", "lost"); code != 1 || !strings.Contains(errOut, "invalid_argument") {
		t.Fatalf("order list --state lost: %d %q", code, errOut)
	}
	// None match: the heading alone, and a word on stderr.
	if code, out, errOut = runMain(t, "order", "list", "--server", server, "--state", "cancelled"); code != 0 ||
		strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ORDER") || errOut != "no orders match\n" {
		t.Fatalf("order list --state cancelled: %d %q %q", code, out, errOut)
	}

	// order history: every event, past the API's page of 500.
	for i := range 500 {
		c.do("POST", "/v1/orders/l-2/triggers", map[string]any{"trigger": "delivered", "trigger_id": fmt.Sprint("wrong-", i)}) // 409 each
	}
	code, out, errOut = runMain(t, "order", "history", "--server", server, "l-2")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 503 || !strings.HasPrefix(lines[0], "TIME") ||
		!regexp.MustCompile(`^\S+ +1 +OrderPlaced +user:api +→ Pending Pickup \(laundry_intake v\d+\)$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^\S+ +2 +OrderAdvanced +worker:api +picked_up: Pending Pickup → Received$`).MatchString(lines[2]) ||
		!regexp.MustCompile(`^\S+ +502 +TriggerRejected +worker:api +delivered rejected: unexpected_trigger, expected items_tagged$`).MatchString(lines[502]) {
		t.Fatalf("order history: %d, %d lines\n%.600s\n%s", code, len(lines), out, errOut)
	}
	code, out, _ = runMain(t, "order", "history", "--server", server, "--json", "l-1")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, `{"id":`) {
		t.Fatalf("order history --json: %d %q", code, out)
	}
	if code, _, errOut = runMain(t, "order", "history", "--server", server, "nope"); code != 1 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("order history of an unknown order: %d %q", code, errOut)
	}

	code, out, errOut = runMain(t, "board", "--server", server)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 8 || !strings.HasPrefix(lines[0], "WORKFLOW") ||
		!regexp.MustCompile(`^Laundry Intake +Pending Pickup +2 +1 +\S+ +1 +0s$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^Laundry Intake +Received +1 +0 `).MatchString(lines[2]) ||
		!regexp.MustCompile(`^Standard Laundry Production +Washing +0 +0 +0 +0s$`).MatchString(lines[3]) {
		t.Fatalf("board: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runMain(t, "board", "--server", server, "--workflow", "home_delivery")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], "Home Delivery") {
		t.Fatalf("board --workflow home_delivery: %d\n%s", code, out)
	}
	// --json prints GET /v1/board's answer, indented.
	code, out, _ = runMain(t, "board", "--server", server, "--workflow", "laundry_intake", "--json")
	var board struct {
		Items []struct {
			Status string `json:"status"`
			Count  int    `json:"count"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &board); code != 0 || err != nil || !strings.HasPrefix(out, "{\n  ") ||
		len(board.Items) != 2 || board.Items[0].Status != "pending_pickup" || board.Items[0].Count != 2 {
		t.Fatalf("board --json: %d %v\n%s", code, err, out)
	}
}

// `order migrate` moves every in-flight order of an older workflow
// version to the latest (or the ones named), held ones too, and names
// those it cannot move.
func TestOrderMigrateCommand(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	_, production, _ := seedWorkedExample(t, c)
	// o-1 at Washing, o-2 at Drying, o-3 at Folding and held, o-4 still in intake.
	for i, steps := range []int{2, 3, 4, 0} {
		id := fmt.Sprintf("o-%d", i+1)
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
		for _, tr := range workedTriggers[:steps] {
			c.must(200, "POST", "/v1/orders/"+id+"/triggers", map[string]any{"trigger": tr})
		}
	}
	c.must(200, "POST", "/v1/orders/o-3/hold", map[string]any{"reason": "stain check"})
	// The next version of production has no drying step.
	old := c.must(200, "GET", "/v1/workflows/"+production, nil)["version"].(float64)
	latest := c.must(200, "DELETE", "/v1/workflows/"+production+"/steps/1", nil)["version"].(float64)
	url := "http://" + app.HTTPAddr()
	code, out, errOut := runMain(t, "order", "migrate", "--server", url, "--workflow", production, "--dry-run")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("3 orders of workflow %s would move to version %v", production, latest)) {
		t.Fatalf("dry run: exit %d: %s%s", code, out, errOut)
	}
	if o := c.must(200, "GET", "/v1/orders/o-1", nil); o["position"].(map[string]any)["workflow_version"] != old {
		t.Fatalf("the dry run moved o-1: %v", o)
	}
	// Named orders only; one that is not in flight in an older version
	// (o-4, in intake) or not at all is refused before any moves.
	code, out, errOut = runMain(t, "order", "migrate", "--server", url, "--workflow", production, "o-1", "o-4", "nope", "o-4")
	if code != 1 || out != "" || !strings.Contains(errOut, fmt.Sprintf("o-4, nope: not in flight inside a version of workflow %s before %v", production, latest)) {
		t.Fatalf("migrate o-1 o-4 nope: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "order", "migrate", "--server", url, "--workflow", production, "o-1", "o-1")
	if code != 0 || out != fmt.Sprintf("migrated 1 of 1 orders of workflow %s to version %v\n", production, latest) {
		t.Fatalf("migrate o-1: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "order", "migrate", "--server", url, "--workflow", production)
	if code != 1 || !strings.Contains(out, "migrated 1 of 2 orders") || !strings.Contains(out, "o-2: not migrated") ||
		!strings.Contains(out, `no step in status "drying"`) || !strings.Contains(errOut, "1 of 2 orders not migrated (see above): move each to a step whose status version") {
		t.Fatalf("migrate: exit %d: %s%s", code, out, errOut)
	}
	for id, want := range map[string][3]any{
		"o-1": {latest, float64(0), "active"},
		"o-2": {old, float64(1), "active"},
		"o-3": {latest, float64(1), "on_hold"},
	} {
		o := c.must(200, "GET", "/v1/orders/"+id, nil)
		pos := o["position"].(map[string]any)
		if pos["workflow_version"] != want[0] || pos["step"] != want[1] || o["state"] != want[2] {
			t.Fatalf("%s after the migration: %v", id, o)
		}
	}
	if o := c.must(200, "GET", "/v1/orders/o-4", nil); o["version"] != float64(1) {
		t.Fatalf("o-4, not in the workflow, changed: %v", o)
	}
	// Again: only o-2 is left, and it still cannot move.
	if code, out, _ = runMain(t, "order", "migrate", "--server", url, "--workflow", production); code != 1 ||
		!strings.Contains(out, "migrated 0 of 1 orders") {
		t.Fatalf("second run: exit %d: %s", code, out)
	}
	if code, _, errOut = runMain(t, "order", "migrate", "--server", url); code != 1 || !strings.Contains(errOut, "want --workflow ID") {
		t.Fatalf("without --workflow: exit %d: %s", code, errOut)
	}
}

// `orderflow trigger` makes the trigger id itself, so a trigger whose
// answer was lost or was a 503 can be sent again and still take effect
// once: it sends a trigger answered 503 (or a proxy's 502 or 504) again
// by itself with the same id, and
// names the id when the answer never came. A POST that carries no key of
// its own is not sent again after a 503.
func TestTriggerCommandSendsAgainWithItsID(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	_, production, _ := seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "again", "order_type_id": "wash_fold_delivery"})

	// In front of the server: the first request of each path goes through
	// and is applied, but its answer is lost the way the test's mode says.
	var (
		mu   sync.Mutex
		mode string
		seen []string // method, path and trigger id of each request
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var tr struct {
			TriggerID string `json:"trigger_id"`
		}
		_ = json.Unmarshal(body, &tr)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+tr.TriggerID)
		first, m := len(seen) == 1, mode
		if m == "503post" { // the first POST, not the first request
			posts := 0
			for _, s := range seen {
				if strings.HasPrefix(s, "POST ") {
					posts++
				}
			}
			first, m = r.Method == "POST" && posts == 1, "503"
		}
		mu.Unlock()
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+app.HTTPAddr()+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("forward: %v", err)
			return
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case first && m == "503":
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"title":"Service Unavailable","code":"unavailable","detail":"the store did not answer in time; send it again with the same ids"}`)
		case first && (m == "502" || m == "504"): // a proxy that gave up on the server, which took the request
			code, _ := strconv.Atoi(m)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", code, http.StatusText(code))
		case first && m == "500":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"title":"Internal error","code":"internal","detail":"lost on its way"}`)
		case first && m == "cut":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		default:
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			w.Write(answer)
		}
	}))
	t.Cleanup(front.Close)
	reset := func(m string) {
		mu.Lock()
		defer mu.Unlock()
		mode, seen = m, nil
	}
	requests := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}

	// A 503: sent again with the same id, which the server finds applied.
	reset("503")
	code, out, errOut := runMain(t, "trigger", "--server", front.URL, "again", "picked_up")
	if code != 0 || !strings.HasPrefix(out, "duplicate") || !strings.Contains(errOut, "the first attempt had taken effect") {
		t.Fatalf("trigger after a 503: exit %d: %q %q", code, out, errOut)
	}
	if r := requests(); len(r) != 2 || r[0] != r[1] || strings.HasSuffix(r[0], " ") {
		t.Fatalf("requests after a 503: %q", r)
	}

	// A proxy's 504 the same way (the server took the trigger, the proxy
	// gave up waiting for its answer).
	reset("504")
	code, out, errOut = runMain(t, "trigger", "--server", front.URL, "again", "items_tagged")
	if code != 0 || !strings.HasPrefix(out, "duplicate") || !strings.Contains(errOut, "sent again after a 504: the first attempt had taken effect") {
		t.Fatalf("trigger after a 504: exit %d: %q %q", code, out, errOut)
	}
	if r := requests(); len(r) != 2 || r[0] != r[1] {
		t.Fatalf("requests after a 504: %q", r)
	}

	// An answer cut off: the error names the id, and sending the trigger
	// again with it takes no second effect.
	reset("cut")
	code, _, errOut = runMain(t, "trigger", "--server", front.URL, "again", "wash_done")
	id := strings.Fields(requests()[0])[2]
	if code != 1 || !strings.Contains(errOut, "--trigger-id "+id) {
		t.Fatalf("trigger cut off: exit %d: %q", code, errOut)
	}
	if code, out, errOut := runMain(t, "trigger", "--server", front.URL, "--trigger-id", id, "again", "wash_done"); code != 0 || !strings.HasPrefix(out, "duplicate") {
		t.Fatalf("trigger sent again: exit %d: %q %q", code, out, errOut)
	}
	if o := c.must(200, "GET", "/v1/orders/again", nil); o["version"] != float64(4) {
		t.Fatalf("order after three triggers each sent twice: %v", o)
	}

	// No connection made: nothing was sent, so no hint.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := "http://" + ln.Addr().String()
	ln.Close()
	if code, _, errOut := runMain(t, "trigger", "--server", nobody, "again", "wash_done"); code != 1 ||
		!strings.Contains(errOut, "is orderflow running") || strings.Contains(errOut, "--trigger-id") {
		t.Fatalf("trigger with no server: exit %d: %q", code, errOut)
	}

	if code, _, errOut := runMain(t, "trigger", "--server", front.URL, "--server-ca", filepath.Join(t.TempDir(), "none.pem"), "again", "wash_done"); code != 1 ||
		strings.Contains(errOut, "--trigger-id") {
		t.Fatalf("trigger with an unreadable CA file: exit %d: %q", code, errOut)
	}

	// order place the same way: a 503 is sent again with the same key,
	// and the server answers the order the first attempt placed.
	reset("503")
	code, out, errOut = runMain(t, "order", "place", "--server", front.URL, "wash_fold_delivery")
	if code != 0 || !strings.HasPrefix(out, "already placed\n") || !strings.Contains(errOut, "the first attempt had placed it") || len(requests()) != 2 {
		t.Fatalf("order place after a 503: exit %d: %q %q, requests %q", code, out, errOut, requests())
	}
	// and after a proxy's 502.
	reset("502")
	code, out, errOut = runMain(t, "order", "place", "--server", front.URL, "wash_fold_delivery")
	if code != 0 || !strings.HasPrefix(out, "already placed\n") || !strings.Contains(errOut, "sent again after a 502: the first attempt had placed it") || len(requests()) != 2 {
		t.Fatalf("order place after a 502: exit %d: %q %q, requests %q", code, out, errOut, requests())
	}
	// An answer lost (a cut connection would be sent again by Go's HTTP
	// client itself, since the request carries an Idempotency-Key): the
	// error names the key, and placing again with it places nothing new.
	reset("500")
	code, _, errOut = runMain(t, "order", "place", "--server", front.URL, "wash_fold_delivery")
	_, key, _ := strings.Cut(errOut, "--key ")
	key, _, _ = strings.Cut(key, " ")
	if code != 1 || key == "" {
		t.Fatalf("order place answered 500: exit %d: %q", code, errOut)
	}
	if code, out, errOut := runMain(t, "order", "place", "--server", front.URL, "--key", key, "wash_fold_delivery"); code != 0 || !strings.HasPrefix(out, "already placed\n") {
		t.Fatalf("order place sent again: exit %d: %q %q", code, out, errOut)
	}
	if o := c.must(200, "GET", "/v1/orders/"+handlers.OrderIDForKey(key), nil); o["version"] != float64(1) {
		t.Fatalf("order placed twice over: %v", o)
	}
	// A supervisor's action the same way, on that order: held once, and
	// after a 500 the error names the key to send it again with.
	reset("503")
	code, out, errOut = runMain(t, "order", "hold", "--server", front.URL, "--reason", "customer away", handlers.OrderIDForKey(key))
	if code != 0 || !strings.HasPrefix(out, "already held\n") || !strings.Contains(errOut, "the first attempt had held it") || len(requests()) != 2 {
		t.Fatalf("order hold after a 503: exit %d: %q %q, requests %q", code, out, errOut, requests())
	}
	reset("500")
	code, _, errOut = runMain(t, "order", "resume", "--server", front.URL, handlers.OrderIDForKey(key))
	if code != 1 || !strings.Contains(errOut, "the order may have been resumed; send it again with --key ") {
		t.Fatalf("order resume answered 500: exit %d: %q", code, errOut)
	}
	if o := c.must(200, "GET", "/v1/orders/"+handlers.OrderIDForKey(key), nil); o["version"] != float64(3) || o["state"] != "active" {
		t.Fatalf("held and resumed once each: %v", o)
	}

	// A rejected trigger is an answer: no hint, nothing sent again.
	reset("")
	code, _, errOut = runMain(t, "trigger", "--server", front.URL, "again", "delivered")
	if code != 1 || !strings.Contains(errOut, "unexpected_trigger") || strings.Contains(errOut, "--trigger-id") || len(requests()) != 1 {
		t.Fatalf("rejected trigger: exit %d: %q, requests %q", code, errOut, requests())
	}

	// A rebuild carries no key of its own: a 503 is not sent again.
	reset("503")
	if code, _, errOut := runMain(t, "projections", "rebuild", "--server", front.URL); code != 1 || !strings.Contains(errOut, "unavailable") || len(requests()) != 1 {
		t.Fatalf("rebuild after a 503: exit %d: %q, requests %q", code, errOut, requests())
	}

	// order migrate's moves carry a key each: a move answered 503 is
	// sent again, and the order moves once.
	c.must(200, "PATCH", "/v1/workflows/"+production, map[string]any{"name": "Laundry Production"})
	reset("503post")
	code, out, errOut = runMain(t, "order", "migrate", "--server", front.URL, "--workflow", production)
	var posts []string
	for _, r := range requests() {
		if strings.HasPrefix(r, "POST ") {
			posts = append(posts, r)
		}
	}
	if code != 0 || !strings.Contains(out, "migrated 1 of 1 orders") || len(posts) != 2 || posts[0] != "POST /v1/orders/again/migrate " {
		t.Fatalf("migrate after a 503: exit %d: %q %q, requests %q", code, out, errOut, requests())
	}
	migrated := 0
	for _, e := range c.must(200, "GET", "/v1/orders/again/history", nil)["events"].([]any) {
		if e.(map[string]any)["type"] == "OrderMigrated" {
			migrated++
		}
	}
	if migrated != 1 {
		t.Fatalf("%d OrderMigrated events, want 1", migrated)
	}
}

// TestPlaceOrderWithIdempotencyKey: POST /v1/orders with an
// Idempotency-Key is safe to send again, at once or much later, and from
// several clients at the same time: one order is placed, and every
// answer names it.
func TestPlaceOrderWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	_, _, delivery := seedWorkedExample(t, c)
	place := map[string]any{"order_type_id": "wash_fold_delivery"}

	key := "0b9cf7a4-6f0e-4c1b-9a7e-5d2f1c3b8e41"
	first := c.do("POST", "/v1/orders", place, "Idempotency-Key", key)
	o := first.json(t)
	id, _ := o["id"].(string)
	if first.Status != 201 || id != handlers.OrderIDForKey(key) || first.Header.Get("Idempotent-Replayed") != "" ||
		first.Header.Get("Location") != "/v1/orders/"+id {
		t.Fatalf("first placing: %d %v %v", first.Status, first.Header, o)
	}
	// Sent again, bare or as the draft's quoted string, and after the
	// order moved on: the same order as it is now, and nothing placed.
	c.must(200, "POST", "/v1/orders/"+id+"/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "k-picked_up"})
	for _, k := range []string{key, `"` + key + `"`} {
		again := c.do("POST", "/v1/orders", place, "Idempotency-Key", k)
		o := again.json(t)
		if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || o["id"] != id || o["version"] != float64(2) {
			t.Fatalf("sent again with %s: %d %v %v", k, again.Status, again.Header, o)
		}
	}
	events := c.must(200, "GET", "/v1/orders/"+id+"/history", nil)["events"].([]any)
	if len(events) != 2 || events[0].(map[string]any)["causation_id"] != key {
		t.Fatalf("history %v, want OrderPlaced caused by the key, and OrderAdvanced", events)
	}
	// The same key for another request is a conflict, and stores nothing.
	p := c.problem(409, "conflict", "POST", "/v1/orders", map[string]any{"order_type_id": "other"}, "Idempotency-Key", key)
	if d, _ := p["detail"].(string); !strings.Contains(d, "with order type \"wash_fold_delivery\"") {
		t.Fatalf("another request with the key: %v", p)
	}
	c.problem(409, "conflict", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery", "fulfillment_workflow_id": "elsewhere"},
		"Idempotency-Key", key)
	again := c.do("POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery", "fulfillment_workflow_id": delivery},
		"Idempotency-Key", key)
	if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("sent again naming the fulfillment workflow it runs: %d %s", again.Status, again.Body)
	}

	// With an id in the body the key makes the resend answer the order.
	// Another request for that id is still a conflict: with no key, or
	// another key; and so is a key for an order placed without one.
	idBody := map[string]any{"id": "o-keyed", "order_type_id": "wash_fold_delivery"}
	c.must(201, "POST", "/v1/orders", idBody, "Idempotency-Key", "k-2")
	if r := c.do("POST", "/v1/orders", idBody, "Idempotency-Key", "k-2"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("an id and a key, sent again: %d %s", r.Status, r.Body)
	}
	c.problem(409, "conflict", "POST", "/v1/orders", idBody)
	p = c.problem(409, "conflict", "POST", "/v1/orders", idBody, "Idempotency-Key", "k-other")
	if d, _ := p["detail"].(string); !strings.Contains(d, `order "o-keyed" already exists`) {
		t.Fatalf("the id with another key: %v", p)
	}
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-unkeyed", "order_type_id": "wash_fold_delivery"})
	c.problem(409, "conflict", "POST", "/v1/orders", map[string]any{"id": "o-unkeyed", "order_type_id": "wash_fold_delivery"}, "Idempotency-Key", "k-late")
	for _, id := range []string{"o-keyed", "o-unkeyed"} {
		if o := c.must(200, "GET", "/v1/orders/"+id, nil); o["version"] != float64(1) {
			t.Fatalf("%s after the conflicts: %v", id, o)
		}
	}

	// A key names one order: sent for another id, or for none (an id
	// derived from the key), it is a conflict that places nothing.
	for _, body := range []map[string]any{{"id": "o-second", "order_type_id": "wash_fold_delivery"}, place} {
		p := c.problem(409, "conflict", "POST", "/v1/orders", body, "Idempotency-Key", "k-2")
		if d, _ := p["detail"].(string); !strings.Contains(d, `"k-2" is the key of a request for order "o-keyed"`) {
			t.Fatalf("the key of o-keyed for %v: %v", body, p)
		}
	}
	for _, id := range []string{"o-second", handlers.OrderIDForKey("k-2")} {
		c.problem(404, "not_found", "GET", "/v1/orders/"+id, nil)
	}
	// A request refused for what it asks placed nothing: its key may then
	// place another order.
	c.problem(400, "invalid_argument", "POST", "/v1/orders", map[string]any{"id": "o-typo", "order_type_id": "wash_fold_deliverry"},
		"Idempotency-Key", "k-typo")
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-fixed", "order_type_id": "wash_fold_delivery"}, "Idempotency-Key", "k-typo")
	c.problem(404, "not_found", "GET", "/v1/orders/o-typo", nil)
	// Clients racing with one key for different ids: one order placed.
	const racers = 6
	raced := make([]response, racers)
	var rg sync.WaitGroup
	for i := range racers {
		rg.Go(func() {
			raced[i] = c.do("POST", "/v1/orders", map[string]any{"id": fmt.Sprintf("o-race-%d", i), "order_type_id": "wash_fold_delivery"},
				"Idempotency-Key", "k-race-ids")
		})
	}
	rg.Wait()
	won := 0
	for i, a := range raced {
		switch a.Status {
		case 201:
			won++
		case 409:
			c.problem(404, "not_found", "GET", fmt.Sprintf("/v1/orders/o-race-%d", i), nil)
		default:
			t.Fatalf("racing request for o-race-%d: %d %s", i, a.Status, a.Body)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d requests racing with one key for different ids placed an order; want 1", won, racers)
	}

	// Bad keys are refused and place nothing.
	for _, k := range []string{`""`, " ", strings.Repeat("k", 256), "clé", `a"b`, `a\b`} {
		c.problem(400, "invalid_argument", "POST", "/v1/orders", place, "Idempotency-Key", k)
	}
	req, err := http.NewRequest("POST", c.base+"/v1/orders", strings.NewReader(`{"order_type_id":"wash_fold_delivery"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Idempotency-Key", "k-3")
	req.Header.Add("Idempotency-Key", "k-4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("two keys: %d", resp.StatusCode)
	}
	for _, k := range []string{"k-3", "k-4", strings.Repeat("k", 256)} {
		c.problem(404, "not_found", "GET", "/v1/orders/"+handlers.OrderIDForKey(k), nil)
	}

	// Eight clients send the same request at once: one order, placed by
	// one of them, and every answer names it.
	const n = 8
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = c.do("POST", "/v1/orders", place, "Idempotency-Key", "k-race") })
	}
	wg.Wait()
	placed := 0
	for _, a := range answers {
		if a.Status != 201 || a.json(t)["id"] != handlers.OrderIDForKey("k-race") {
			t.Fatalf("racing request: %d %s", a.Status, a.Body)
		}
		if a.Header.Get("Idempotent-Replayed") == "" {
			placed++
		}
	}
	if placed != 1 {
		t.Fatalf("%d of %d racing requests say they placed the order", placed, n)
	}
	if n := len(c.must(200, "GET", "/v1/orders/"+handlers.OrderIDForKey("k-race")+"/history", nil)["events"].([]any)); n != 1 {
		t.Fatalf("the raced order has %d events", n)
	}
}

// TestTriggerWithIdempotencyKey: over HTTP, an Idempotency-Key is the
// trigger's id when the body gives none, so a resend takes effect once.
func TestTriggerWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "ik-1", "order_type_id": "wash_fold_delivery"})
	path := "/v1/orders/ik-1/triggers"
	if res := c.must(200, "POST", path, map[string]any{"trigger": "picked_up"}, "Idempotency-Key", "ik-t1"); res["outcome"] != "advanced" {
		t.Fatalf("trigger with a key: %v", res)
	}
	if res := c.must(200, "POST", path, map[string]any{"trigger": "picked_up"}, "Idempotency-Key", `"ik-t1"`); res["outcome"] != "duplicate" {
		t.Fatalf("sent again with the key: %v", res)
	}
	if res := c.must(200, "POST", path, map[string]any{"trigger": "picked_up", "trigger_id": "ik-t1"}, "Idempotency-Key", "ik-t1"); res["outcome"] != "duplicate" {
		t.Fatalf("sent again with the key as trigger_id too: %v", res)
	}
	// A key that is not the body's trigger_id, or cannot be a trigger
	// id, is refused and stores nothing.
	p := c.problem(400, "invalid_argument", "POST", path, map[string]any{"trigger": "items_tagged", "trigger_id": "ik-t2"}, "Idempotency-Key", "ik-t3")
	if d, _ := p["detail"].(string); !strings.Contains(d, "differs from the Idempotency-Key") {
		t.Fatalf("two ids: %v", p)
	}
	p = c.problem(400, "invalid_argument", "POST", path, map[string]any{"trigger": "items_tagged"}, "Idempotency-Key", "with space")
	if d, _ := p["detail"].(string); !strings.HasPrefix(d, "Idempotency-Key, the trigger's id: trigger_id: must not contain spaces") {
		t.Fatalf("a key that cannot be a trigger id: %v", p)
	}
	c.problem(400, "invalid_argument", "POST", path, map[string]any{"trigger": "items_tagged"}, "Idempotency-Key", strings.Repeat("k", 129))
	h := c.must(200, "GET", "/v1/orders/ik-1/history", nil)["events"].([]any)
	if len(h) != 2 || h[1].(map[string]any)["causation_id"] != "ik-t1" {
		t.Fatalf("history: %v", h)
	}
}

// TestSupervisorActionsWithIdempotencyKey: hold, resume, cancel, move and
// migrate with an Idempotency-Key record it as the event's causation id;
// a resend answers the order as it stands and records nothing, from the
// orders' cache, from the store (no cache), and from a process whose
// cached copy of the order predates the first request.
func TestSupervisorActionsWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	first := startApp(t, newTestConfig(t))
	cfg := newTestConfig(t)
	cfg.NATSURL, cfg.DataDir, cfg.OrderCache = first.NATSURL(), "", 0
	uncached := startApp(t, cfg)
	a, b := newClient(t, first), newClient(t, uncached)
	_, production, _ := seedWorkedExample(t, a)
	a.must(201, "POST", "/v1/orders", map[string]any{"id": "sv-1", "order_type_id": "wash_fold_delivery"})
	o := "/v1/orders/sv-1"

	check := func(r response, replayed bool, state string, version float64) {
		t.Helper()
		m := r.json(t)
		if r.Status != 200 || (r.Header.Get("Idempotent-Replayed") == "true") != replayed || m["state"] != state || m["version"] != version {
			t.Fatalf("%d, replayed %q: %v; want state %s, version %v, replayed %v", r.Status, r.Header.Get("Idempotent-Replayed"), m, state, version, replayed)
		}
	}
	hold := map[string]any{"reason": "customer away"}
	check(a.do("POST", o+"/hold", hold, "Idempotency-Key", "k-hold"), false, "on_hold", 2)
	check(a.do("POST", o+"/hold", hold, "Idempotency-Key", "k-hold"), true, "on_hold", 2)
	check(b.do("POST", o+"/hold", hold, "Idempotency-Key", "k-hold"), true, "on_hold", 2)
	a.problem(409, "conflict", "POST", o+"/hold", hold) // without the key: held already
	// The key sent with another body is a key used for two requests, not
	// a resend: refused by either process, and nothing is recorded.
	for _, c := range []*httpClient{a, b} {
		p := c.problem(409, "conflict", "POST", o+"/hold", map[string]any{"reason": "another"}, "Idempotency-Key", "k-hold")
		if d, _ := p["detail"].(string); !strings.Contains(d, `with reason "customer away"; this request asks for reason "another"`) {
			t.Fatalf("the hold's key with another reason: %v", p)
		}
	}

	// With If-Match too: the resend carries the version the first
	// attempt saw and moved on, and is still answered as a resend.
	check(b.do("POST", o+"/resume", nil, "Idempotency-Key", "k-resume", "If-Match", `"2"`), false, "active", 3)
	check(b.do("POST", o+"/resume", nil, "Idempotency-Key", "k-resume", "If-Match", `"2"`), true, "active", 3)
	check(a.do("POST", o+"/resume", nil, "Idempotency-Key", "k-resume", "If-Match", `"2"`), true, "active", 3)
	a.problem(412, "precondition_failed", "POST", o+"/hold", hold, "Idempotency-Key", "k-hold-2", "If-Match", `"2"`)
	// The hold sent again after the resume: it took effect, so the
	// order is answered as it now stands, not held again.
	check(a.do("POST", o+"/hold", hold, "Idempotency-Key", "k-hold"), true, "active", 3)
	check(a.do("POST", o+"/resume", nil, "Idempotency-Key", "k-resume"), true, "active", 3)

	// A key that caused another action is a conflict, and records nothing.
	p := a.problem(409, "conflict", "POST", o+"/cancel", nil, "Idempotency-Key", "k-hold")
	if d, _ := p["detail"].(string); !strings.Contains(d, "recorded OrderHeld") {
		t.Fatalf("a hold's key sent for a cancel: %v", p)
	}

	move := map[string]any{"workflow_id": production, "step": 1, "reason": "skipped ahead"}
	check(a.do("POST", o+"/move", move, "Idempotency-Key", "k-move"), false, "active", 4)
	check(b.do("POST", o+"/move", move, "Idempotency-Key", "k-move"), true, "active", 4)
	p = b.problem(409, "conflict", "POST", o+"/move", map[string]any{"workflow_id": production, "step": 2, "reason": "skipped ahead"}, "Idempotency-Key", "k-move")
	if d, _ := p["detail"].(string); !strings.Contains(d, "this request asks for step 2 of workflow") {
		t.Fatalf("the move's key for another step: %v", p)
	}

	// The cached copy in the first process is older than a cancel that
	// the second stores: the first looks in the store before deciding.
	a.must(200, "GET", o, nil)
	check(b.do("POST", o+"/cancel", nil, "Idempotency-Key", "k-cancel"), false, "cancelled", 5)
	check(a.do("POST", o+"/cancel", nil, "Idempotency-Key", "k-cancel"), true, "cancelled", 5)
	a.problem(409, "conflict", "POST", o+"/cancel", nil)

	events := a.must(200, "GET", o+"/history", nil)["events"].([]any)
	var got []string
	for _, e := range events {
		m := e.(map[string]any)
		c, _ := m["causation_id"].(string)
		got = append(got, m["type"].(string)+":"+c)
	}
	want := []string{"OrderPlaced:", "OrderHeld:k-hold", "OrderResumed:k-resume", "OrderMoved:k-move", "OrderCancelled:k-cancel"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	for _, k := range []string{"", strings.Repeat("k", 256), "clé"} {
		a.problem(400, "invalid_argument", "POST", o+"/hold", hold, "Idempotency-Key", k)
	}

	// A key names one order: sent for an action on another, it is a
	// conflict that records nothing there. A request refused for what it
	// asks (the 412 above) did nothing, and its key is free again.
	a.must(201, "POST", "/v1/orders", map[string]any{"id": "sv-2", "order_type_id": "wash_fold_delivery"})
	p = b.problem(409, "conflict", "POST", "/v1/orders/sv-2/hold", hold, "Idempotency-Key", "k-move")
	if d, _ := p["detail"].(string); !strings.Contains(d, `"k-move" is the key of a request for order "sv-1"`) {
		t.Fatalf("the key of sv-1's move sent for a hold of sv-2: %v", p)
	}
	if o := a.must(200, "GET", "/v1/orders/sv-2", nil); o["state"] != "active" || o["version"] != float64(1) {
		t.Fatalf("sv-2 after another order's key: %v", o)
	}
	check(a.do("POST", "/v1/orders/sv-2/hold", hold, "Idempotency-Key", "k-hold-2"), false, "on_hold", 2)
	// The first process answered two holds and a resume as resends.
	metrics := string(a.do("GET", "/metrics", nil).Body)
	for _, want := range []string{`orderflow_http_idempotent_replays_total{route="POST /v1/orders/{id}/hold"} 2`,
		`orderflow_http_idempotent_replays_total{route="POST /v1/orders/{id}/resume"} 2`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Over HTTP, as over NATS, a worker may add a note and the time of its
// action by its clock: both are recorded with the outcome. A note against
// the rules is refused and stores nothing.
func TestTriggerNoteOverHTTP(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "note-1", "order_type_id": "wash_fold_delivery"})
	for _, body := range []map[string]any{
		{"trigger": "picked_up", "note": strings.Repeat("é", 2001)},
		{"trigger": "picked_up", "note": "a\u0000b"},
		{"trigger": "picked_up", "occurred_at": "yesterday"},
		{"trigger": "picked_up", "occurred_at": "0000-01-01T00:00:00+05:00"},
	} {
		c.problem(400, "invalid_argument", "POST", "/v1/orders/note-1/triggers", body)
	}
	// A time past year 9999 in UTC, which no outcome can record: refused,
	// not stored to be tried again for good.
	if p := c.problem(400, "invalid_argument", "POST", "/v1/orders/note-1/triggers", map[string]any{"trigger": "picked_up", "occurred_at": "9999-12-31T23:59:59-23:00"}); p["detail"] !=
		"occurred_at: is year 10000 in UTC; a time from year 0 to 9999 in UTC is recorded" {
		t.Fatalf("a time past year 9999: %v", p["detail"])
	}
	if p := c.problem(400, "invalid_argument", "POST", "/v1/orders/note-1/triggers", map[string]any{"trigger": "picked_up", "occurred_at": 1}); p["detail"] !=
		`bad request: occurred_at: not an RFC 3339 time such as "2026-11-28T09:00:00Z"` {
		t.Fatalf("a time that is no time: %v", p["detail"])
	}
	c.must(200, "POST", "/v1/orders/note-1/triggers", map[string]any{"trigger": "picked_up", "worker": "ana",
		"note": "torn sleeve", "occurred_at": "2026-11-30T09:00:00Z"})
	code, out, errOut := runMain(t, "trigger", "--server", app.HTTPAddr(), "--note", "two bags", "note-1", "items_tagged")
	if code != 0 || !strings.HasPrefix(out, "advanced") {
		t.Fatalf("trigger --note: %d %s%s", code, out, errOut)
	}
	events := c.must(200, "GET", "/v1/orders/note-1/history", nil)["events"].([]any)
	if len(events) != 3 {
		t.Fatalf("history: %v", events)
	}
	first, second := events[1].(map[string]any)["data"].(map[string]any), events[2].(map[string]any)["data"].(map[string]any)
	if first["note"] != "torn sleeve" || first["worker_occurred_at"] != "2026-11-30T09:00:00Z" || first["worker"] != "ana" || second["note"] != "two bags" {
		t.Fatalf("the notes recorded: %v / %v", first, second)
	}
}

// The commands that change something name who acts (--actor, by default
// the operating system's user), and the events they make record it.
func TestCommandsNameTheActor(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	url := "http://" + app.HTTPAddr()
	run := func(env map[string]string, args ...string) {
		t.Helper()
		var out, errOut strings.Builder
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		if code := Main(context.Background(), append(args, "--server", url), &out, &errOut, lookup); code != 0 {
			t.Fatalf("%v: exit %d %s%s", args, code, out.String(), errOut.String())
		}
	}
	run(nil, "order", "place", "--id", "who-1", "--actor", "kim", "wash_fold_delivery")
	run(map[string]string{"ORDERFLOW_ACTOR": "lee"}, "order", "hold", "--reason", "customer away", "who-1")
	run(nil, "order", "resume", "--actor", "", "who-1")
	run(nil, "order", "cancel", "--reason", "not wanted", "who-1")
	var actors []string
	for _, ev := range c.must(200, "GET", "/v1/orders/who-1/history", nil)["events"].([]any) {
		a := ev.(map[string]any)["actor"].(map[string]any)
		actors = append(actors, a["kind"].(string)+":"+a["id"].(string))
	}
	me, err := user.Current()
	if err != nil {
		t.Skip("no operating system user to default to:", err)
	}
	if !slices.Equal(actors, []string{"user:kim", "user:lee", "user:api", "user:" + me.Username}) {
		t.Fatalf("actors of who-1's events: %q", actors)
	}

	doc := filepath.Join(t.TempDir(), "process.json")
	_, shown, _ := runMain(t, "definitions", "show", "--server", url)
	if err := os.WriteFile(doc, []byte(strings.Replace(shown, `"Washing"`, `"Wash"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	run(nil, "definitions", "apply", "--file", doc, "--actor", "sam")
	whats := auditDefinitions(t, app)
	if last := whats[len(whats)-1]; last != `StatusRenamed washing: "Washing" → "Wash"` {
		t.Fatalf("the last change: %q", last)
	}
	code, out, _ := runMain(t, "audit", "definitions", "--nats-url", app.NATSURL())
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || !strings.Contains(lines[len(lines)-1], " user:sam ") {
		t.Fatalf("who renamed washing: %s", lines[len(lines)-1])
	}
}
