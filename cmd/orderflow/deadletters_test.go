package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A worker app's trigger for an order not placed yet is dead-lettered;
// once the order is placed, `deadletters retry` publishes it again and it
// takes effect, once, however often it is retried. A dead letter that can
// never be processed is refused. Each dead letter is logged as a warning.
func TestDeadLettersRetry(t *testing.T) {
	t.Parallel()
	app, logs := startAppLogging(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	dl := deadLetters(t, app)
	ctx := ctxFor(t, time.Minute)

	// Too early: the order is not there yet.
	ack, err := workerClient(t, app).PublishTrigger(ctx, client.Trigger{OrderID: "late-1", Trigger: "picked_up", Worker: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	awaitDeadLetter(t, dl, "unknown order")
	// Never processable: its body is not a trigger body.
	js, _ := jetstream.New(natsConn(t, app))
	m := nats.NewMsg("orderflow.default.trigger.late-1.picked_up")
	m.Data = []byte(`{"colour":"red"}`)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	awaitDeadLetter(t, dl, "trigger body")
	// Put aside as the first was (no order yet), but never processable
	// either: its worker holds a control character.
	m = nats.NewMsg("orderflow.default.trigger.late-1.picked_up")
	m.Data = []byte(`{"worker":"a\u0000b","trigger_id":"nul-worker"}`)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	awaitDeadLetter(t, dl, "unknown order")

	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, `unknown order \"late-1\"`) {
		t.Errorf("no warning logged for the dead letter:\n%s", out)
	}

	url := "--nats-url=" + app.NATSURL()
	// The subscription above can hear a dead letter a moment before its
	// stream has stored it: list until both are there.
	var (
		code        int
		out, errOut string
		lines       []string
	)
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		code, out, errOut = runMain(t, "deadletters", url)
		lines = strings.Split(strings.TrimSpace(out), "\n")
		return code != 0 || len(lines) >= 4
	}, "the dead letters listed")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[1], "late-1") || !strings.Contains(lines[1], ack.TriggerID) ||
		!strings.Contains(lines[1], "unknown order") || !strings.Contains(lines[2], "trigger body") || !strings.Contains(lines[3], "nul-worker") {
		t.Fatalf("deadletters: %d\n%s%s", code, out, errOut)
	}

	c.must(201, "POST", "/v1/orders", map[string]any{"id": "late-1", "order_type_id": "wash_fold_delivery"})
	for range 2 { // the second changes nothing
		if code, out, errOut := runMain(t, "deadletters", "retry", url, "1"); code != 0 || !strings.Contains(out, "published again") {
			t.Fatalf("deadletters retry 1: %d %q %q", code, out, errOut)
		}
	}
	o := waitOrder(t, c, "late-1", func(o map[string]any) bool { return o["version"] == float64(2) }, "the retried trigger")
	if o["position"].(map[string]any)["status"] != "received" {
		t.Fatalf("after the retried trigger: %v", o["position"])
	}
	// The list shows that the order has answered the first since.
	code, out, errOut = runMain(t, "deadletters", url)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[0], "ANSWERED") || !strings.Contains(lines[1], "OrderAdvanced") ||
		strings.Contains(lines[2], "Order") || strings.Contains(lines[3], "Order") {
		t.Fatalf("deadletters after the retry: %d\n%s%s", code, out, errOut)
	}
	// A page of the list says when more follow, and where from.
	code, out, errOut = runMain(t, "deadletters", url, "--limit", "2")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 3 || errOut != "more follow: orderflow deadletters --after 2\n" {
		t.Fatalf("deadletters --limit 2: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = runMain(t, "deadletters", url, "--after", "2", "--limit", "1"); code != 0 || errOut != "" {
		t.Fatalf("deadletters --after 2 --limit 1 (the last): %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = runMain(t, "deadletters", url, "--limit", "0"); code != 1 || !strings.Contains(errOut, "--limit 0: want 1 or more") {
		t.Fatalf("deadletters --limit 0: %d %s", code, errOut)
	}
	// The list keeps one tenant's, or one order's, when asked: another
	// tenant's trigger for an order it does not have is left out.
	m = nats.NewMsg("orderflow.acme.trigger.late-1.picked_up")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	awaitDeadLetter(t, dl, "unknown order")
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		code, out, errOut = runMain(t, "deadletters", url, "--tenant", "acme")
		return code != 0 || strings.Count(out, "\n") >= 2
	}, "acme's dead letter listed")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "acme") {
		t.Fatalf("deadletters --tenant acme: %d\n%s%s", code, out, errOut)
	}
	// --order alone is the default tenant's; a page names the filter in
	// the command that lists the next.
	code, out, errOut = runMain(t, "deadletters", url, "--order", "late-1", "--limit", "2")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 3 || strings.Contains(out, "acme") ||
		errOut != "more follow: orderflow deadletters --order late-1 --tenant default --after 2\n" {
		t.Fatalf("deadletters --order late-1 --limit 2: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "deadletters", url, "--order", "late-1", "--tenant", "acme")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "acme") {
		t.Fatalf("deadletters --order late-1 --tenant acme: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = runMain(t, "deadletters", url, "--order", "nope"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("deadletters --order nope: %d\n%s%s", code, out, errOut)
	}
	// For scripts: a JSON object a line, the same fields.
	code, out, errOut = runMain(t, "deadletters", url, "--json", "--limit", "1")
	var line map[string]any
	if err := json.Unmarshal([]byte(out), &line); code != 0 || err != nil || line["seq"] != float64(1) || line["order_id"] != "late-1" ||
		line["trigger"] != "picked_up" || line["trigger_id"] != ack.TriggerID || line["answered"] != "OrderAdvanced" ||
		!strings.Contains(line["reason"].(string), "unknown order") || errOut != "more follow: orderflow deadletters --json --after 1\n" {
		t.Fatalf("deadletters --json: %d %v\n%s%s", code, err, out, errOut)
	}
	h := c.must(200, "GET", "/v1/orders/late-1/history", nil)
	events := h["events"].([]any)
	if last := events[len(events)-1].(map[string]any); last["causation_id"] != ack.TriggerID {
		t.Fatalf("the outcome's causation id is %v, want the original trigger id %s", last["causation_id"], ack.TriggerID)
	}

	code, _, errOut = runMain(t, "deadletters", "retry", url, "2", "3", "99", "x")
	for _, want := range []string{"dead letter cannot be processed: dead letter 2", "dead letter cannot be processed: dead letter 3: worker", "dead letter 99: there is none at that sequence", `dead letter "x"`} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("deadletters retry 2 3 99 x: %d %q, want %q", code, errOut, want)
		}
	}
	o = c.must(200, "GET", "/v1/orders/late-1", nil)
	if o["version"] != float64(2) {
		t.Fatalf("the order moved on to version %v", o["version"])
	}
}
