package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
)

// triggerFeeder is a worker app that publishes every trigger of every
// order, round-robin across orders, retrying each (same trigger id) until
// JetStream acknowledges it, and counts acknowledgements.
type triggerFeeder struct {
	acked atomic.Int64
	done  chan struct{}
	total int
}

func feedTriggers(t *testing.T, url string, orders []string) *triggerFeeder {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		if t.Failed() { // what was put aside and where the lanes stand, while the servers still run
			_, out, errOut := runMain(t, "deadletters", "--nats-url="+url)
			_, missing, _ := runMain(t, "verify", "--triggers", "--nats-url="+url)
			t.Logf("dead letters:\n%s%s\nlanes:\n%s\nverify --triggers:\n%s", out, errOut, laneState(url), missing)
		}
	})
	js, _ := jetstream.New(nc)
	f := &triggerFeeder{done: make(chan struct{}), total: 7 * len(orders)}
	go func() {
		defer close(f.done)
		deadline := time.Now().Add(3 * time.Minute)
		for k, tr := range handlers.WorkedExampleTriggers {
			for _, id := range orders {
				m := nats.NewMsg(eventstore.TriggerSubject("default", id, tr))
				m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-t%d", id, k))
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := js.PublishMsg(ctx, m)
					cancel()
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						return
					}
					time.Sleep(20 * time.Millisecond) // the server is down: retry, as a worker app would
				}
				f.acked.Add(1)
			}
		}
	}()
	return f
}

// waitAcked polls until n triggers are acknowledged.
func (f *triggerFeeder) waitAcked(t *testing.T, n int) {
	t.Helper()
	eventstoretest.Eventually(t, 3*time.Minute, func() bool { return int(f.acked.Load()) >= n }, fmt.Sprintf("%d acknowledged triggers", n))
}

func (f *triggerFeeder) wait(t *testing.T) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(4 * time.Minute):
		t.Fatal("the feeder did not finish")
	}
	if int(f.acked.Load()) != f.total {
		t.Fatalf("%d of %d triggers acknowledged", f.acked.Load(), f.total)
	}
}

// checkExactlyOnce: every order completed with exactly its seven triggers,
// in order, each once, nothing rejected.
func checkExactlyOnce(t *testing.T, c *httpClient, orders []string) {
	t.Helper()
	for _, id := range orders {
		waitOrder(t, c, id, func(o map[string]any) bool { return o["state"] == "completed" }, "completion")
		hs := history(t, c, id)
		if len(hs) != 8 {
			t.Fatalf("%s has %d events, want 8 (placed, 6 advances, completed)", id, len(hs))
		}
		for k, ev := range hs[1:] {
			if ev["type"] == "TriggerRejected" || ev["causation_id"] != fmt.Sprintf("%s-t%d", id, k) {
				t.Fatalf("%s event %d: %v", id, k+2, ev)
			}
		}
	}
}

// childServer is where an `orderflow serve` child process runs: its
// binary, data dir and addresses, and its log (warnings and errors of
// every run), shown when the test fails.
type childServer struct {
	bin, dir, httpAddr, natsAddr string
	logs                         *eventstoretest.LogBuffer
}

func newChildServer(t *testing.T) *childServer {
	t.Helper()
	c := &childServer{bin: buildBinary(t), dir: t.TempDir(), logs: &eventstoretest.LogBuffer{},
		httpAddr: fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t)),
		natsAddr: fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("orderflow's warnings and errors:\n%s", c.logs)
		}
	})
	return c
}

// start runs `orderflow serve` with the child's places and the extra
// flags, through a shell running prefix first when it is not empty, and
// waits until it is ready. Stopping it is the caller's.
func (c *childServer) start(t *testing.T, prefix string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"serve", "--data-dir", c.dir, "--http", c.httpAddr, "--nats-listen", c.natsAddr, "--log-level", "warn"}, extra...)
	cmd := exec.Command(c.bin, args...)
	if prefix != "" {
		cmd = exec.Command("bash", append([]string{"-c", prefix + `exec "$0" "$@"`, c.bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitServing(t, c.httpAddr)
	return cmd
}

// waitServing waits up to a minute (times eventstoretest.Slack) for the
// orderflow process serving HTTP at addr to answer /readyz with 200.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	eventstoretest.Eventually(t, time.Minute, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "orderflow ready")
}

func placeOrders(t *testing.T, c *httpClient, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		c.must(201, "POST", "/v1/orders", map[string]any{"id": ids[i], "order_type_id": "wash_fold_delivery"})
	}
	return ids
}

// orderflow serve as a child process is SIGKILLed three times while
// triggers are in flight and restarted on the same data dir: every
// acknowledged trigger takes effect exactly once, and the read models
// equal a fresh rebuild.
func TestCrashAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	// Fault tests run one at a time (not in parallel with the rest): they
	// kill and restart servers, and a loaded 2-core machine only slows
	// their recovery.
	child := newChildServer(t)
	httpAddr, natsAddr := child.httpAddr, child.natsAddr
	start := func() *exec.Cmd { return child.start(t, "", "--lanes", "4", "--ack-wait", "2s") }
	cmd := start()
	// A cleanup, not a defer: the feeder's diagnosis of a failure (its
	// own cleanup, run first) needs the server.
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &httpClient{t: t, base: "http://" + httpAddr}
	seedWorkedExample(t, c)
	orders := placeOrders(t, c, "crash", 60)
	feeder := feedTriggers(t, "nats://"+natsAddr, orders)
	for kill := 1; kill <= 3; kill++ {
		feeder.waitAcked(t, kill*feeder.total/4)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		cmd = start()
	}
	feeder.wait(t)
	checkExactlyOnce(t, c, orders)
	// An auditor's account agrees: every stored trigger is answered (a
	// trigger the lanes skipped at a kill is stored twice: as sent, and as
	// published again by the processor that found it).
	code, out, errOut := runMain(t, "verify", "--triggers", "--nats-url=nats://"+natsAddr)
	_, account, _ := strings.Cut(out, "accounted for ")
	var stored, answered int
	if _, err := fmt.Sscanf(account, "%d stored triggers: %d answered in their order's history, 0 dead letters, 0 on their way, 0 missing",
		&stored, &answered); code != 0 || err != nil || stored < 420 || answered != stored {
		t.Fatalf("verify --triggers: exit %d\n%s%s", code, out, errOut)
	}

	before := []any{listAll(t, c, nil, 100), c.must(200, "GET", "/v1/board", nil)}
	c.must(200, "POST", "/v1/projections/rebuild", nil)
	after := []any{listAll(t, c, nil, 100), c.must(200, "GET", "/v1/board", nil)}
	if !reflect.DeepEqual(before, after) {
		t.Fatal("read models differ from a fresh rebuild")
	}
	if st := c.must(200, "GET", "/v1/projections", nil); st["applied"] != st["stream_last"] || st["rebuilding"] != false {
		t.Fatalf("projection status after the rebuild: %v", st)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
}

func clusterApp(t *testing.T, cl *eventstoretest.Cluster) *App {
	cfg := newTestConfig(t)
	cfg.NATSURL, cfg.DataDir, cfg.Replicas, cfg.Lanes, cfg.AckWait = cl.URLs(), "", 3, 4, 2*time.Second
	return startApp(t, cfg)
}

// clusterWithOrders starts three embedded NATS servers and an App on them
// (replicas=3), seeds the worked example and places n orders.
func clusterWithOrders(t *testing.T, prefix string, n int) (*eventstoretest.Cluster, *App, *httpClient, []string) {
	t.Helper()
	cl := eventstoretest.StartCluster(t, 3)
	app := clusterApp(t, cl)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	return cl, app, c, placeOrders(t, c, prefix, n)
}

// Three embedded NATS servers with replicas=3; one stops under load and
// comes back: nothing is lost or doubled.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	cl, _, c, orders := clusterWithOrders(t, "node", 40)
	feeder := feedTriggers(t, cl.URLs(), orders)
	feeder.waitAcked(t, feeder.total/3)
	cl.Stop(0)
	feeder.waitAcked(t, 2*feeder.total/3)
	cl.Restart(0)
	feeder.wait(t)
	checkExactlyOnce(t, c, orders)
}

// Two orderflow processes share the trigger lanes; one stops under load
// and the other takes over, per-order order intact.
func TestTwoProcessesShareWork(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	cl := eventstoretest.StartCluster(t, 3)
	first := clusterApp(t, cl)
	second := clusterApp(t, cl)
	c := newClient(t, first)
	seedWorkedExample(t, c)
	orders := placeOrders(t, c, "two", 40)
	feeder := feedTriggers(t, cl.URLs(), orders)
	feeder.waitAcked(t, feeder.total/2)
	eventstoretest.Eventually(t, time.Minute, func() bool { return second.proc.Handled() > 0 && first.proc.Handled() > 0 },
		"both processes to apply triggers")
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	feeder.wait(t)
	checkExactlyOnce(t, c, orders)
}

// Two orderflow processes share the lanes, the second on the first's NATS
// server (--nats-url), and the second is killed (SIGKILL) while triggers
// flow. JetStream would keep its lanes pinned to it for --ack-wait (five
// minutes here, longer than the test waits); the first takes them when
// its heartbeats stop and releases their pins at once, and every
// acknowledged trigger takes effect exactly once.
func TestKilledProcessesLanesGoOn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	flags := []string{"--lanes", "4", "--ack-wait", "5m"}
	host := newChildServer(t)
	hostCmd := host.start(t, "", flags...)
	t.Cleanup(func() { _ = hostCmd.Process.Kill(); _ = hostCmd.Wait() })
	natsURL := "nats://" + host.natsAddr
	peer := &childServer{bin: host.bin, dir: t.TempDir(), logs: host.logs,
		httpAddr: fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))}
	peerCmd := peer.start(t, "", append(flags, "--nats-url", natsURL)...)
	t.Cleanup(func() { _ = peerCmd.Process.Kill(); _ = peerCmd.Wait() })
	metrics := func(addr string) string { _, body := get(t, "http://"+addr+"/metrics"); return body }
	eventstoretest.Eventually(t, time.Minute, func() bool { return strings.Contains(metrics(host.httpAddr), "\norderflow_trigger_lanes_owned 2\n") },
		"the two processes to share the lanes")

	c := &httpClient{t: t, base: "http://" + host.httpAddr}
	seedWorkedExample(t, c)
	before := placeOrders(t, c, "before", 40)
	feeder := feedTriggers(t, natsURL, before)
	eventstoretest.Eventually(t, time.Minute, func() bool {
		return !strings.Contains(metrics(peer.httpAddr), "\norderflow_triggers_applied_total 0\n")
	}, "the second process to apply triggers")
	_ = peerCmd.Process.Signal(syscall.SIGKILL)
	_ = peerCmd.Wait()
	// Orders whose triggers all come after the kill: half of them in the
	// killed process's lanes.
	after := placeOrders(t, c, "after", 40)
	afterFeeder := feedTriggers(t, natsURL, after)
	feeder.wait(t)
	afterFeeder.wait(t)
	checkExactlyOnce(t, c, append(before, after...))
	body := metrics(host.httpAddr)
	if !strings.Contains(body, "\norderflow_trigger_lanes_owned 4\n") || strings.Contains(body, "\norderflow_trigger_lanes_unpinned_total 0\n") {
		t.Fatalf("the lanes of the killed process were not released:\n%s", body)
	}
}

// The app loses its NATS connection for a while and recovers without
// losing or doubling work.
func TestNATSReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))
	srv := eventstoretest.StartServerAt(t, dir, addr)
	cfg := newTestConfig(t)
	cfg.NATSURL, cfg.DataDir, cfg.Lanes, cfg.AckWait = "nats://"+addr, "", 4, 2*time.Second
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	orders := placeOrders(t, c, "reconnect", 40)
	feeder := feedTriggers(t, "nats://"+addr, orders)
	feeder.waitAcked(t, feeder.total/3)
	srv.Shutdown()
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return c.do("GET", "/readyz", nil).Status == 503 }, "not ready while NATS is away")
	eventstoretest.StartServerAt(t, dir, addr)
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return c.do("GET", "/readyz", nil).Status == 200 }, "ready again")
	feeder.wait(t)
	checkExactlyOnce(t, c, orders)
	// Before the server's cleanup stops it: an App closed right after its
	// server went, before its connection noticed, waits out the final
	// checkpoint's 10 s timeout (in 6 of 150 runs).
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
}

// On a cluster the node leading ORDERFLOW_TRIGGERS stops. The lanes' copy
// loses its source there without reporting an error, and nats-server
// would set it up again only at its next check (10 to 20 s on); the
// processor finds the copy silent and has it set up again at once (a
// step-down of the lane stream's leader), and the order's next trigger
// takes effect.
func TestClusterCopyRestartsWhenItsSourceGoes(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	cl, app, c, orders := clusterWithOrders(t, "source", 1)
	order := orders[0]
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	defer cancel()
	js := app.store.JetStream()
	leader := func(stream string) string {
		st, err := js.Stream(ctx, stream)
		if err != nil || st.CachedInfo().Cluster == nil {
			return ""
		}
		return st.CachedInfo().Cluster.Leader
	}
	// The copy's source lives with the ORDERFLOW_TRIGGERS leader. The lane
	// stream's leader must be another node: one that stops with it is
	// succeeded by a leader that sets the copy up anyway.
	// A step-down does not always move the leader away (the same node can
	// win the election again): try for a while, every 2 s.
	var attempts []string
	for deadline := time.Now().Add(eventstoretest.Patience(90 * time.Second)); ; time.Sleep(2 * time.Second) {
		tl, ll := leader(eventstore.StreamTriggers), leader(eventstore.StreamTriggerLanes)
		if tl != "" && ll != "" && tl != ll {
			break
		}
		if time.Now().After(deadline) {
			t.Skipf("the trigger and lane streams stayed led from one node: %q", attempts)
		}
		if ll != "" {
			err := app.store.RestartLaneCopy(ctx)
			attempts = append(attempts, fmt.Sprintf("triggers led by %q, lanes by %q: step-down: %v", tl, ll, err))
		}
	}
	publish := func(k int) {
		m := nats.NewMsg(eventstore.TriggerSubject("default", order, handlers.WorkedExampleTriggers[k]))
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-t%d", order, k))
		eventstoretest.Eventually(t, time.Minute, func() bool {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second) // an attempt during an election may go unanswered
			defer cancel()
			_, err := js.PublishMsg(actx, m)
			return err == nil
		}, "the trigger stored")
	}
	publish(0)
	waitOrder(t, c, order, func(o map[string]any) bool { return o["version"] == 2.0 }, "the first trigger")

	gone, restarts := leader(eventstore.StreamTriggers), app.proc.CopyRestarts()
	for i, s := range cl.Servers {
		if s.NATS().Name() == gone {
			cl.Stop(i)
		}
	}
	publish(1)
	waitOrder(t, c, order, func(o map[string]any) bool { return o["version"] == 3.0 }, "the second trigger")
	if app.proc.CopyRestarts() == restarts {
		t.Fatal("the second trigger took effect without the processor restarting the copy: the server set it up by itself")
	}
}
