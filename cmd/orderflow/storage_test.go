package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// When the streams have used all the storage they may (--max-store here;
// a full disk or a cluster account's limit alike), orderflow refuses what
// it cannot store with a clear 503, changes nothing, stays healthy and puts
// no trigger aside; triggers stored before the limit was reached wait and
// take effect, each once, when a restart with a higher limit makes room.
func TestStorageFull(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.MaxStore = 384 << 10
	app := startApp(t, cfg)
	if err := handlers.SeedWorkedExample(ctxFor(t, time.Minute), app.cmds); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, app)

	// Orders until the store is full: the refusal says why, and the order
	// refused does not exist.
	var placed []string
	for i := 0; ; i++ {
		id := fmt.Sprintf("full-%04d", i)
		r := c.do("POST", "/v1/orders", map[string]any{"id": id, "order_type_id": handlers.WorkedExampleOrderType})
		if r.Status == 201 {
			placed = append(placed, id)
			continue
		}
		p := r.json(t)
		if r.Status != 503 || p["code"] != "unavailable" || !strings.Contains(p["detail"].(string), "no storage left") {
			t.Fatalf("order %d refused with %d: %s", i, r.Status, r.Body)
		}
		c.problem(404, "not_found", "GET", "/v1/orders/"+id, nil)
		break
	}
	if len(placed) < 50 {
		t.Fatalf("only %d orders fit", len(placed))
	}
	// A request that names no order: the 503 names the id made for it,
	// so that the client can look the order up before placing it again.
	p := c.problem(503, "unavailable", "POST", "/v1/orders", map[string]any{"order_type_id": handlers.WorkedExampleOrderType})
	if made, _ := p["order_id"].(string); made == "" {
		t.Fatalf("the 503 of an order without id names none: %v", p)
	} else {
		c.problem(404, "not_found", "GET", "/v1/orders/"+made, nil)
	}
	p = c.problem(503, "unavailable", "POST", "/v1/orders/"+placed[0]+"/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "full-http"})
	if p["trigger_id"] != "full-http" {
		t.Fatalf("the 503 of a trigger names another id: %v", p)
	}
	c.must(200, "GET", "/readyz", nil)
	if m := metricValues(t, c); m["orderflow_jetstream_storage_limit_bytes"] != float64(cfg.MaxStore) ||
		m["orderflow_jetstream_storage_bytes"] < float64(cfg.MaxStore)*0.9 {
		t.Fatalf("/metrics does not show the storage used up: %v", m)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}

	// A little more room, less than the triggers need: worker apps'
	// triggers are stored until it is used up, by them, their copies in
	// the lanes and their outcomes. A trigger refused is not stored; one
	// stored waits for room.
	cfg.MaxStore += 16 << 10
	app = startApp(t, cfg)
	c = newClient(t, app)
	nc := eventstoretest.Connect(t, app.NATSURL())
	wc, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var accepted []string
	for _, id := range placed {
		ctx, cancel := eventstoretest.Context(10 * time.Second)
		_, err := wc.PublishTrigger(ctx, client.Trigger{OrderID: id, Trigger: "picked_up", TriggerID: id + "-t0", Worker: "w"})
		cancel()
		if err != nil {
			if !errors.Is(eventstore.Refusal(err), eventstore.ErrStorageFull) {
				t.Fatalf("trigger of %s refused with %v", id, err)
			}
			break
		}
		accepted = append(accepted, id)
	}
	if len(accepted) == 0 || len(accepted) == len(placed) {
		t.Fatalf("%d of %d triggers stored: the limit was not reached in between", len(accepted), len(placed))
	}
	t.Logf("%d orders placed, %d triggers stored", len(placed), len(accepted))
	// The stored triggers wait, in the lanes or to be copied into them,
	// which the metrics show; or, when their copies and outcomes found
	// room before a trigger was refused (the processor may be quicker than
	// the worker app), every one took effect. None is put aside, and
	// orderflow serves.
	waitingOrApplied := func(m map[string]float64) bool {
		return m[`orderflow_trigger_lanes_copied_sequence`] < m[`orderflow_stream_last_sequence{stream="ORDERFLOW_TRIGGERS"}`] ||
			m["orderflow_trigger_lanes_waiting"] > 0 || m["orderflow_triggers_applied_total"] == float64(len(accepted))
	}
	m := metricValues(t, c)
	for deadline := time.Now().Add(eventstoretest.Patience(10 * time.Second)); !waitingOrApplied(m); m = metricValues(t, c) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics shows no trigger waiting, and not every stored trigger applied: %v", m)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	if m[`orderflow_stream_last_sequence{stream="ORDERFLOW_DEADLETTER"}`] != 0 {
		t.Fatalf("triggers put aside: %v", m)
	}
	c.must(200, "GET", "/readyz", nil)
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}

	// Room again: every stored trigger takes effect once.
	cfg.MaxStore = 0
	app = startApp(t, cfg)
	c = newClient(t, app)
	for _, id := range accepted {
		waitOrder(t, c, id, func(o map[string]any) bool { return o["version"] == float64(2) }, "the trigger stored before the limit")
		hs := history(t, c, id)
		if len(hs) != 2 || hs[1]["type"] != "OrderAdvanced" || hs[1]["causation_id"] != id+"-t0" {
			t.Fatalf("%s: %v", id, hs)
		}
	}
	for _, id := range placed[len(accepted):] {
		if o := c.must(200, "GET", "/v1/orders/"+id, nil); o["version"] != float64(1) {
			t.Fatalf("%s moved without a stored trigger: %v", id, o)
		}
	}
	code, out, errOut := runMain(t, "verify", "--triggers", "--nats-url="+app.NATSURL())
	if code != 0 || !strings.Contains(out, fmt.Sprintf("accounted for %d stored triggers: %d answered", len(accepted), len(accepted))) ||
		!strings.Contains(out, "0 dead letters") {
		t.Fatalf("verify --triggers: exit %d\n%s%s", code, out, errOut)
	}
}

// metricValues reads /metrics into a map from each sample's name and
// labels to its value.
func metricValues(t *testing.T, c *httpClient) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, line := range strings.Split(string(c.do("GET", "/metrics", nil).Body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// When the disk itself fills, the embedded server shuts JetStream down
// (as here): orderflow then reports itself not ready, saying why, so a
// load balancer or orchestrator stops sending it work. Closing it then
// skips the final checkpoints, which could only wait out their timeouts.
func TestNotReadyWithoutJetStream(t *testing.T) {
	t.Parallel()
	var log eventstoretest.LogBuffer
	app := startAppWith(t, newTestConfig(t), func(a *App) {
		a.Logger = slog.New(slog.NewMultiHandler(a.Logger.Handler(), slog.NewTextHandler(&log, nil)))
	})
	c := newClient(t, app)
	c.must(200, "GET", "/readyz", nil)
	if err := app.server.NATS().ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	p := c.problem(503, "unavailable", "GET", "/readyz", nil)
	if !strings.Contains(p["detail"].(string), "JetStream is shut down") {
		t.Fatalf("readyz: %v", p)
	}
	if m := metricValues(t, c); m["orderflow_ready"] != 0 {
		t.Fatalf("orderflow_ready = %v", m["orderflow_ready"])
	}
	if err := app.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !strings.Contains(log.String(), "final checkpoint skipped: the embedded server stores nothing until a restart") {
		t.Fatalf("close did not skip the final checkpoints:\n%s", log.String())
	}
}

// A write the disk refuses (here: a file size limit, `ulimit -f`, which
// fails writes as a full disk does, without needing one) leaves the
// embedded server's stream refusing every later write until a restart.
// orderflow then answers /healthz and /readyz with 503 saying so; after a
// restart with room, every order it acknowledged is there and the hash
// chains verify.
func TestDiskWriteErrorNeedsARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	child := newChildServer(t)
	start := func(prefix string) *exec.Cmd {
		cmd := child.start(t, prefix, "--lanes", "2")
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG.
	cmd := start("ulimit -f 512; ") // 512 KiB per file
	c := &httpClient{t: t, base: "http://" + child.httpAddr}
	seedWorkedExample(t, c)
	var placed []string
	refused := ""
	for i := 0; i < 5000 && refused == ""; i++ {
		id := fmt.Sprintf("disk-%04d", i)
		r := c.do("POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
		switch {
		case r.Status == 201:
			placed = append(placed, id)
		case r.Status == 503 && strings.Contains(string(r.Body), "outcome unknown"):
			refused = id
		default:
			t.Fatalf("placing %s: %d %s", id, r.Status, r.Body)
		}
	}
	if refused == "" || len(placed) < 100 {
		t.Fatalf("%d orders placed, none refused", len(placed))
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		eventstoretest.Eventually(t, 30*time.Second, func() bool {
			r := c.do("GET", path, nil)
			return r.Status == 503 && strings.Contains(string(r.Body), "could not write a stream's files")
		}, path+" to say a restart is needed")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	start("")
	for _, id := range placed {
		c.must(200, "GET", "/v1/orders/"+id, nil)
	}
	// The refused order's outcome was unknown to its caller: sent again,
	// it is placed (or found placed).
	if r := c.do("POST", "/v1/orders", map[string]any{"id": refused, "order_type_id": "wash_fold_delivery"}); r.Status != 201 && r.Status != 409 {
		t.Fatalf("placing %s again: %d %s", refused, r.Status, r.Body)
	}
	c.must(200, "GET", "/v1/orders/"+refused, nil)
	if code, out, errOut := runMain(t, "verify", "--nats-url=nats://"+child.natsAddr); code != 0 || !strings.Contains(out, " 0 break(s)") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("%d orders placed before the write error", len(placed))
}

// Checkpoints come every CheckpointInterval, or further apart when one
// takes more than a twentieth of that.
func TestCheckpointWait(t *testing.T) {
	t.Parallel()
	for took, want := range map[time.Duration]time.Duration{
		0:                       CheckpointInterval,
		500 * time.Millisecond:  CheckpointInterval,
		1500 * time.Millisecond: CheckpointInterval,
		3 * time.Second:         time.Minute,
	} {
		if got := checkpointWait(CheckpointInterval, took); got != want {
			t.Errorf("checkpointWait(%s, %s) = %s, want %s", CheckpointInterval, took, got, want)
		}
	}
}

// A running process saves the orders read model and the load indexes
// on its own, every CheckpointInterval (shortened here), whenever they
// have moved on: a process killed later starts from them.
func TestCheckpointsWhileRunning(t *testing.T) {
	t.Parallel()
	app := startAppWith(t, newTestConfig(t), func(a *App) { a.checkpointEvery = 20 * time.Millisecond })
	c := newClient(t, app)
	seedWorkedExample(t, c)
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()
	for _, id := range []string{"run-cp-1", "run-cp-2"} {
		// The answer comes once the read model shows the order, so the
		// applied sequence read after it includes the order.
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
		applied := metricValues(t, c)[`orderflow_read_model_applied_sequence{model="orders"}`]
		// Polled on /metrics alone: loading the checkpoint in a tight loop
		// slows its saves, and a slow save stretches the wait for the next
		// one (checkpointWait).
		eventstoretest.Eventually(t, 20*time.Second, func() bool {
			return metricValues(t, c)[`orderflow_checkpoint_saved_sequence{checkpoint="orders"}`] >= applied
		}, fmt.Sprintf("the orders checkpoint to reach sequence %v after placing %s", applied, id))
		b, found, err := app.store.LoadCheckpoint(ctx, projections.CheckpointName)
		if err != nil || !found || !strings.Contains(string(b), `"`+id+`"`) {
			t.Fatalf("the saved orders checkpoint lacks %s (found %v, err %v)", id, found, err)
		}
	}
	for _, stream := range []string{eventstore.StreamOrders, eventstore.StreamDefinitions} {
		name := "index-" + stream // as eventstore names a load index checkpoint
		eventstoretest.Eventually(t, 20*time.Second, func() bool {
			_, found, err := app.store.LoadCheckpoint(ctx, name)
			return err == nil && found
		}, "the checkpoint "+name)
	}
	m := metricValues(t, c)
	for _, cp := range []string{"orders", "index"} {
		if v := m[`orderflow_checkpoint_failures_total{checkpoint="`+cp+`"}`]; v != 0 {
			t.Errorf("failures of the %s checkpoint: %v", cp, v)
		}
	}
}
