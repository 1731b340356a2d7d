package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// orderflow status reads a running orderflow's /metrics and sums it up:
// ready, its streams, read models caught up, its lanes and the triggers
// it applied, with their latency.
func TestStatusCommand(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	if err := handlers.SeedWorkedExample(ctxFor(t, time.Minute), app.cmds); err != nil {
		t.Fatal(err)
	}
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "s-1", "order_type_id": handlers.WorkedExampleOrderType})
	c.must(200, "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "picked_up"})
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		_, body := get(t, "http://"+app.HTTPAddr()+"/metrics")
		return strings.Contains(body, "orderflow_triggers_applied_total 1\n") && strings.Contains(body, "orderflow_trigger_duration_seconds_count 1\n") &&
			strings.Contains(body, "orderflow_trigger_lanes_waiting 0\n") // the acknowledgement reaches the server a moment after
	}, "the processor applies and acknowledges the trigger")
	code, out, errOut := runMain(t, "status", "--server", app.HTTPAddr())
	if code != 0 {
		t.Fatalf("status: exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		"orderflow      ready at http://" + app.HTTPAddr() + " (version ",
		"\nstreams        2 order events, 1 triggers, ",
		"\nstorage        ",
		"\nread models    definitions caught up (",
		", orders caught up (2)\n",
		"\ncheckpoints    orders: none saved by this process yet\n",
		"\ntrigger lanes  1 processor(s), 16 lane(s) owned here, 0 trigger(s) waiting\n",
		"\ntriggers       1 applied here, 0 rejected; lane to outcome p50 ≤ ",
		"\nhttp           2 request(s) answered, 0 with 5xx; ",
		" connection(s) open\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// What status counts as trouble (exit 1): not ready, storage 80% full or
// more, an error copying stored triggers into the lanes. A read model
// behind is shown, not trouble: under load it always is, a little.
func TestStatusSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	base := `orderflow_ready 1
orderflow_build_info{version="v1.2.3",revision="abc",go_version="go1.26.8"} 1
process_start_time_seconds 1799996400
orderflow_stream_messages{stream="ORDERFLOW_ORDERS"} 10
orderflow_stream_last_sequence{stream="ORDERFLOW_ORDERS"} 10
orderflow_read_model_applied_sequence{model="orders"} 7
orderflow_checkpoint_saved_sequence{checkpoint="orders"} 6
orderflow_checkpoint_saved_timestamp_seconds{checkpoint="orders"} 1799999988.5
orderflow_checkpoint_failures_total{checkpoint="orders"} 1
orderflow_checkpoint_failures_total{checkpoint="index"} 1
orderflow_jetstream_storage_bytes 900
orderflow_jetstream_storage_limit_bytes 1000
orderflow_trigger_processors 2
orderflow_trigger_lanes_owned 8
orderflow_trigger_lanes_waiting 3
orderflow_trigger_lanes_copy_error 1
orderflow_triggers_applied_total 4
orderflow_trigger_outcomes_total{outcome="rejected",reason="order_on_hold"} 1
orderflow_trigger_outcomes_total{outcome="rejected",reason="unexpected_trigger"} 2
orderflow_trigger_duration_seconds_bucket{le="0.001"} 1
orderflow_trigger_duration_seconds_bucket{le="0.01"} 3
orderflow_trigger_duration_seconds_bucket{le="+Inf"} 4
orderflow_trigger_duration_seconds_count 4
orderflow_http_requests_total{route="GET /v1/board",code="200"} 5
orderflow_http_requests_total{route="POST /v1/orders",code="503"} 1
`
	var b strings.Builder
	problems := parseMetrics(base).print(&b, "http://h", now)
	want := `orderflow      ready at http://h (version v1.2.3, revision abc, go1.26.8, up 1h0m0s)
streams        10 order events
storage        900.0 B of 1000.0 B (90.0%)
read models    orders 3 behind (7 of 10)
checkpoints    orders saved at 6, 12s ago; 2 failed to save (see the log)
trigger lanes  2 processor(s), 8 lane(s) owned here, 3 trigger(s) waiting
               the copy of stored triggers into the lanes reports an error (see the log)
triggers       4 applied here, 3 rejected; lane to outcome p50 ≤ 10ms, p99 > 10ms
http           6 request(s) answered, 1 with 5xx
`
	if b.String() != want || strings.Join(problems, "; ") != "storage 90% full; the lanes' copy reports an error" {
		t.Fatalf("got\n%s%q\nwant\n%s", b.String(), problems, want)
	}
	// Every HTTP connection the process may hold is open: more wait.
	b.Reset()
	problems = parseMetrics(base+"orderflow_http_connections 64\norderflow_http_connections_limit 64\n").print(&b, "http://h", now)
	if !strings.Contains(b.String(), "\nhttp           6 request(s) answered, 1 with 5xx; 64 of 64 connection(s) open\n") ||
		!slices.Contains(problems, "HTTP connections at their limit (--max-connections): more wait to be accepted") {
		t.Fatalf("at the connection limit: %s%q", b.String(), problems)
	}
	b.Reset()
	if problems := parseMetrics("orderflow_ready 0\n").print(&b, "http://h", now); len(problems) != 1 ||
		b.String() != "orderflow  NOT READY at http://h (version unknown)\n" {
		t.Fatalf("not ready: %q %q", b.String(), problems)
	}
}

// Where a quantile lies: the bound of the bucket that holds it, or past
// the last bound, never "≤ +Inf".
func TestQuantile(t *testing.T) {
	t.Parallel()
	const h = "d_bucket{"
	for _, tc := range []struct {
		name, metrics string
		q             float64
		want          string
		count         float64
	}{
		{"no histogram", "other 1\n", 0.5, "", 0},
		{"no observations", h + `le="0.001"} 0` + "\n" + h + `le="+Inf"} 0` + "\n", 0.5, "> 1ms", 0},
		{"in the first bucket", h + `le="0.001"} 4` + "\n" + h + `le="0.01"} 4` + "\n" + h + `le="+Inf"} 4` + "\n", 0.99, "≤ 1ms", 4},
		{"in a later bucket", h + `le="0.01"} 1` + "\n" + h + `le="0.001"} 1` + "\n" + h + `le="2.5"} 100` + "\n" + h + `le="+Inf"} 100` + "\n", 0.5, "≤ 2.5s", 100},
		{"past every bound", h + `le="0.001"} 1` + "\n" + h + `le="10"} 98` + "\n" + h + `le="+Inf"} 100` + "\n", 0.99, "> 10s", 100},
		{"only +Inf", h + `le="+Inf"} 3` + "\n", 0.5, "unknown (no bounded bucket)", 3},
		{"another label set", `d_bucket{route="a",le="0.001"} 1` + "\n" + `d_bucket{route="a",le="+Inf"} 1` + "\n", 0.5, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			where, count := parseMetrics(tc.metrics).quantile("d", "", tc.q)
			if where != tc.want || count != tc.count {
				t.Fatalf("got %q of %v, want %q of %v", where, count, tc.want, tc.count)
			}
		})
	}
	where, count := parseMetrics(`d_bucket{route="a",le="0.001"} 1`+"\n"+`d_bucket{route="a",le="+Inf"} 1`+"\n").quantile("d", `route="a",`, 0.5)
	if where != "≤ 1ms" || count != 1 {
		t.Fatalf("with labels: got %q of %v", where, count)
	}
}

// The board on /metrics counts the orders of a stage active and on hold,
// and times the active one that has waited longest: an order on hold
// waits on purpose.
func TestStageMetrics(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	orders := projections.NewOrders(nil)
	at := domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: "washing"}
	for i, e := range []struct {
		id string
		at time.Time
		ev domain.Event
	}{
		{"held", t0, domain.OrderPlaced{OrderTypeID: "ot", To: at, Workflows: []string{"wf"}}},
		{"waiting", t0.Add(time.Hour), domain.OrderPlaced{OrderTypeID: "ot", To: at, Workflows: []string{"wf"}}},
		{"held", t0.Add(90 * time.Minute), domain.OrderHeld{Reason: "customer away"}},
	} {
		data, err := json.Marshal(e.ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := orders.Apply(eventstore.Event{Sequence: uint64(i + 1), Envelope: eventstore.Envelope{Tenant: "default", AggregateType: "order",
			AggregateID: e.id, Type: e.ev.EventType(), OccurredAt: e.at, Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	writeStageMetrics(&b, orders, t0.Add(2*time.Hour))
	for _, want := range []string{
		`orderflow_stage_orders{tenant="default",workflow="wf",status="washing",state="active"} 1` + "\n",
		`orderflow_stage_orders{tenant="default",workflow="wf",status="washing",state="on_hold"} 1` + "\n",
		`orderflow_stage_oldest_seconds{tenant="default",workflow="wf",status="washing"} 3600` + "\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %s in\n%s", want, b.String())
		}
	}
}

// orderflow projections rebuild rebuilds a running server's orders read
// model and says from how many events; the model answers as before.
func TestProjectionsRebuildCommand(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	for _, id := range []string{"rb-1", "rb-2"} {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
	}
	c.must(200, "POST", "/v1/orders/rb-1/triggers", map[string]any{"trigger": "picked_up"})
	before := []any{listAll(t, c, nil, 100), c.must(200, "GET", "/v1/board", nil)}
	code, out, errOut := runMain(t, "projections", "rebuild", "--server", app.HTTPAddr())
	var events int
	if _, err := fmt.Sscanf(out, "rebuilt the orders read model from %d events in", &events); code != 0 || err != nil || events != 3 {
		t.Fatalf("projections rebuild: exit %d, %q %q; want it rebuilt from the 3 order events", code, out, errOut)
	}
	if after := []any{listAll(t, c, nil, 100), c.must(200, "GET", "/v1/board", nil)}; !reflect.DeepEqual(before, after) {
		t.Fatalf("the read model differs after the rebuild:\n%v\n%v", before, after)
	}
}

// /metrics says which orders checkpoint this process saved last, and
// when, and counts the checkpoints that failed; a rebuild saves one.
func TestCheckpointMetrics(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "cp-1", "order_type_id": "wash_fold_delivery"})
	m := metricValues(t, c)
	if m[`orderflow_checkpoint_saved_sequence{checkpoint="orders"}`] != 0 || m[`orderflow_checkpoint_saved_timestamp_seconds{checkpoint="orders"}`] != 0 {
		t.Fatalf("a checkpoint before any was saved: %v", m)
	}
	before := time.Now()
	c.must(200, "POST", "/v1/projections/rebuild", nil)
	m = metricValues(t, c)
	applied := m[`orderflow_read_model_applied_sequence{model="orders"}`]
	at := m[`orderflow_checkpoint_saved_timestamp_seconds{checkpoint="orders"}`]
	if applied == 0 || m[`orderflow_checkpoint_saved_sequence{checkpoint="orders"}`] != applied ||
		at < float64(before.Unix()) || at > float64(time.Now().Unix()+1) {
		t.Fatalf("after a rebuild: saved %v at %v, applied %v (rebuilt from %v)", m[`orderflow_checkpoint_saved_sequence{checkpoint="orders"}`], at, applied, before.Unix())
	}
	for _, cp := range []string{"orders", "index"} {
		if v, ok := m[`orderflow_checkpoint_failures_total{checkpoint="`+cp+`"}`]; !ok || v != 0 {
			t.Errorf("failures of the %s checkpoint: %v %v", cp, v, ok)
		}
	}
}
