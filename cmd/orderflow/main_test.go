package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
)

// newTestConfig is a config on random ports and a temp data dir.
func newTestConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.NATSListen = "127.0.0.1:0"
	cfg.HTTP = "127.0.0.1:0"
	cfg.ReloadInterval = 0 // tests that change watched files say when to read them
	return cfg
}

// startApp runs an App and closes it when the test ends.
func startApp(t *testing.T, cfg Config) *App {
	t.Helper()
	return startAppWith(t, cfg, nil)
}

// startAppWith runs an App after setup has adjusted it.
func startAppWith(t *testing.T, cfg Config, setup func(*App)) *App {
	t.Helper()
	app := NewApp(cfg, appLogger(t))
	if setup != nil {
		setup(app)
	}
	ctx, cancel := eventstoretest.Context(60 * time.Second)
	defer cancel()
	if err := app.Run(ctx); err != nil {
		t.Fatalf("app run: %v", err)
	}
	t.Cleanup(func() {
		if err := app.Close(); err != nil {
			t.Errorf("app close: %v", err)
		}
	})
	return app
}

// appLogLines is how many of an App's last log lines a failed test prints.
const appLogLines = 2000

// appLogger logs an App's lines, debug ones too, and prints the last
// appLogLines of them if the test fails: the lanes' deliveries, gates and
// handovers say where a trigger waited. It is made before the App, so its
// cleanup runs after the App's Close and prints the shutdown too.
func appLogger(t *testing.T) *slog.Logger {
	r := &lineRing{lines: make([]string, appLogLines)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("the App's last log lines:\n" + r.String())
		}
	})
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lineRing keeps the last len(lines) lines written to it. A slog handler
// writes each record, one line, in one Write.
type lineRing struct {
	mu    sync.Mutex
	lines []string
	n     int // lines written in all
}

func (r *lineRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.n%len(r.lines)] = string(p)
	r.n++
	return len(p), nil
}

func (r *lineRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	if r.n > len(r.lines) {
		fmt.Fprintf(&b, "(%d earlier lines left out)\n", r.n-len(r.lines))
	}
	for i := max(0, r.n-len(r.lines)); i < r.n; i++ {
		b.WriteString(r.lines[i%len(r.lines)])
	}
	return b.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAppServesReadyz(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	if code, body := get(t, "http://"+app.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if code, _ := get(t, "http://"+app.HTTPAddr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
}

// While it starts, orderflow is alive but not ready: /healthz answers
// 200, /readyz 503, and the API a 503 problem with Retry-After that
// changes nothing, so a load balancer and a worker app both wait.
func TestAppWhileStarting(t *testing.T) {
	t.Parallel()
	var starting map[string]response
	app := startAppWith(t, newTestConfig(t), func(a *App) {
		a.afterStoreOpen = func() {
			c := &httpClient{t: t, base: "http://" + a.HTTPAddr()}
			starting = map[string]response{
				"/healthz":          c.do("GET", "/healthz", nil),
				"/readyz":           c.do("GET", "/readyz", nil),
				"GET /v1/orders":    c.do("GET", "/v1/orders", nil),
				"POST /v1/statuses": c.do("POST", "/v1/statuses", map[string]any{"key": "early", "name": "Early", "category": "pending"}),
			}
		}
	})
	if r := starting["/healthz"]; r.Status != http.StatusOK {
		t.Errorf("/healthz while starting = %d %s", r.Status, r.Body)
	}
	if r := starting["/readyz"]; r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "starting") {
		t.Errorf("/readyz while starting = %d %s", r.Status, r.Body)
	}
	for _, route := range []string{"GET /v1/orders", "POST /v1/statuses"} {
		r := starting[route]
		if p := r.json(t); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" ||
			r.Header.Get("Content-Type") != "application/problem+json" || p["status"] != 503.0 || p["code"] != "unavailable" {
			t.Errorf("%s while starting = %d, Retry-After %q, %s %s", route, r.Status, r.Header.Get("Retry-After"), r.Header.Get("Content-Type"), r.Body)
		}
	}
	c := newClient(t, app)
	c.must(200, "GET", "/readyz", nil)
	if r := c.do("GET", "/v1/statuses/early", nil); r.Status != http.StatusNotFound {
		t.Errorf("a status sent while starting: GET = %d %s, want 404 (refused, not stored)", r.Status, r.Body)
	}
}

func TestAppRestartOnSameDataDir(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	app := startApp(t, cfg)
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	app2 := startApp(t, cfg)
	if code, _ := get(t, "http://"+app2.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("restarted /readyz = %d", code)
	}
}

// --demo on a store with definitions of its own (not the worked example)
// seeds nothing and runs no simulated workers, and says so once, instead
// of a refused order every 400 ms.
func TestDemoLeavesAnotherProcessAlone(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	app := startApp(t, cfg)
	newClient(t, app).must(201, "POST", "/v1/statuses", map[string]any{"name": "Received", "category": "pending"})
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Demo = true
	app, logs := startAppLogging(t, cfg)
	if out := logs.String(); !strings.Contains(out, "no simulated workers run") || strings.Contains(out, "demo running") {
		t.Fatalf("--demo on another process's store:\n%s", out)
	}
	if _, orders := streamSeqs(t, app); orders != 0 {
		t.Fatalf("the demo stored %d order events", orders)
	}
	c := newClient(t, app)
	if types := c.must(200, "GET", "/v1/order-types", nil)["items"].([]any); len(types) != 0 {
		t.Fatalf("the demo seeded order types: %v", types)
	}
}

// --demo on an empty store (the README's first command) seeds the worked
// example and runs simulated worker apps, whose triggers, sent over NATS
// under the workers' names, move the orders it places. Close stops them.
// Started again on that store, it seeds nothing and carries on the orders
// it left open.
func TestDemoOnAnEmptyStore(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.Demo = true
	app, logs := startAppLogging(t, cfg)
	if out := logs.String(); !strings.Contains(out, `msg="demo running" seeded_worked_example=true`) {
		t.Fatalf("--demo on an empty store:\n%s", out)
	}
	c := newClient(t, app)
	c.must(200, "GET", "/v1/order-types/"+handlers.WorkedExampleOrderType, nil)
	var moved string // an order a simulated worker moved on
	eventstoretest.Eventually(t, time.Minute, func() bool {
		for _, o := range c.must(200, "GET", "/v1/orders", nil)["items"].([]any) {
			if o := o.(map[string]any); o["version"].(float64) >= 2 {
				moved = o["id"].(string)
				return true
			}
		}
		return false
	}, "a simulated worker moves an order on")
	events := c.must(200, "GET", "/v1/orders/"+moved+"/history", nil)["events"].([]any)
	actor := func(i int) string {
		a := events[i].(map[string]any)["actor"].(map[string]any)
		return fmt.Sprintf("%s:%s", a["kind"], a["id"])
	}
	if actor(0) != "user:demo-desk" || events[1].(map[string]any)["type"] != "OrderAdvanced" ||
		!slices.Contains([]string{"worker:ana", "worker:bo", "worker:chen", "worker:dara"}, actor(1)) {
		t.Fatalf("the demo order's history: %v", events)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	again, logs := startAppLogging(t, cfg)
	if out := logs.String(); !strings.Contains(out, `msg="demo running" seeded_worked_example=false`) {
		t.Fatalf("--demo started again:\n%s", out)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="demo: carrying on the orders an earlier run left open"`)
	}, "the demo carries on its open orders")
	if types := newClient(t, again).must(200, "GET", "/v1/order-types", nil)["items"].([]any); len(types) != 1 {
		t.Fatalf("order types after a second start: %v", types)
	}
}

// A second App can use the first one's embedded server with --nats-url.
func TestAppWithNATSURL(t *testing.T) {
	t.Parallel()
	first := startApp(t, newTestConfig(t))
	cfg := newTestConfig(t)
	cfg.NATSURL = first.NATSURL()
	cfg.DataDir = ""
	second := startApp(t, cfg)
	if code, _ := get(t, "http://"+second.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d", code)
	}
	if second.server != nil {
		t.Fatal("an app with --nats-url started an embedded server")
	}
}

// An App whose HTTP address is taken, or whose configuration is bad, does
// not start: Run says why, and nothing is left behind (no data in its
// data dir); the process that holds the address goes on serving.
func TestAppThatCannotStart(t *testing.T) {
	t.Parallel()
	first := startApp(t, newTestConfig(t))
	taken := newTestConfig(t)
	taken.HTTP = first.HTTPAddr()
	bad := newTestConfig(t)
	bad.LogFormat = "xml"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"the HTTP address taken", taken, "http listen"},
		{"a bad --log-format", bad, `--log-format "xml"`},
	} {
		app := NewApp(tc.cfg, appLogger(t))
		ctx, cancel := eventstoretest.Context(30 * time.Second)
		err := app.Run(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Run = %v, want an error saying %s", tc.name, err, tc.want)
		}
		if err := app.Close(); err != nil {
			t.Errorf("%s: Close after a failed Run: %v", tc.name, err)
		}
		if left, err := os.ReadDir(tc.cfg.DataDir); err != nil || len(left) != 0 {
			t.Errorf("%s: the data dir holds %v (%v)", tc.name, left, err)
		}
	}
	if code, _ := get(t, "http://"+first.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("the first App's /readyz = %d", code)
	}
}

// A second process started with another --lanes than the running one
// does not start: partitioned anew, the running process's lanes would
// split orders' triggers. It says what the lanes are. Nor does one with
// another --ack-wait or --lane-window: the lane consumers are shared.
func TestOtherLaneSettingsAreRefused(t *testing.T) {
	t.Parallel()
	first := startApp(t, newTestConfig(t))
	cfg := newTestConfig(t)
	cfg.NATSURL, cfg.DataDir, cfg.Lanes = first.NATSURL(), "", first.Config.Lanes/2
	app := NewApp(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := eventstoretest.Context(60 * time.Second)
	defer cancel()
	err := app.Run(ctx)
	if err == nil {
		app.Close()
		t.Fatal("a process with another --lanes started")
	}
	if !errors.Is(err, eventstore.ErrLanesInUse) || !strings.Contains(err.Error(), fmt.Sprintf("runs with %d lanes", first.Config.Lanes)) {
		t.Fatalf("start with another --lanes: %v", err)
	}
	app.Close()

	// Another --ack-wait or --lane-window is refused while the first
	// process reads the lanes.
	js := first.Store().JetStream()
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		for i := range first.Config.Lanes {
			c, err := js.Consumer(ctx, eventstore.StreamTriggerLanes, eventstore.LaneConsumer(i))
			if err != nil || c.CachedInfo().NumWaiting == 0 {
				return false
			}
		}
		return true
	}, "the first process reading every lane")
	for _, change := range []func(*Config){
		func(c *Config) { c.AckWait *= 2 },
		func(c *Config) { c.LaneWindow /= 2 },
	} {
		cfg := newTestConfig(t)
		cfg.NATSURL, cfg.DataDir = first.NATSURL(), ""
		change(&cfg)
		app := NewApp(cfg, slog.New(slog.DiscardHandler))
		err := app.Run(ctx)
		app.Close()
		if !errors.Is(err, eventstore.ErrLanesInUse) || !strings.Contains(err.Error(), "--lane-window") {
			t.Fatalf("start with --ack-wait %s --lane-window %d: %v", cfg.AckWait, cfg.LaneWindow, err)
		}
	}
	if code, _ := get(t, "http://"+first.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("the first process's /readyz = %d", code)
	}
}

func TestFlagsReadEnvironment(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	env := map[string]string{
		"ORDERFLOW_HTTP":        "127.0.0.1:9999",
		"ORDERFLOW_REPLICAS":    "3",
		"ORDERFLOW_SYNC":        "always",
		"ORDERFLOW_NATS_LISTEN": "127.0.0.1:1",
		"ORDERFLOW_LANE_WINDOW": "64",
		"ORDERFLOW_MAX_STORE":   "20GiB",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := parseFlags(fs, []string{"--nats-listen", "127.0.0.1:5555"}, lookup); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:9999" || cfg.Replicas != 3 || cfg.Sync != "always" || cfg.LaneWindow != 64 || cfg.MaxStore != 20<<30 {
		t.Fatalf("environment not applied: %+v", cfg)
	}
	if cfg.NATSListen != "127.0.0.1:5555" {
		t.Fatalf("command line should win over the environment: %s", cfg.NATSListen)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.HTTP = "nonsense"
	cfg.Sync = "sometimes"
	cfg.Replicas = 0
	cfg.LogLevel = "loud"
	cfg.LaneWindow = 0
	cfg.RateLimit = 5 // without --api-keys
	cfg.ReloadInterval = -time.Second
	cfg.OrderCache = -1
	cfg.MaxFeeds = 0
	cfg.MaxFeedsPerKey = 0
	cfg.Heartbeat = 10 * time.Millisecond
	cfg.NATSListen = "4222"
	cfg.MaxStore = -1
	cfg.DuplicateWindow = 0
	cfg.AckWait = 500 * time.Millisecond
	cfg.LogFormat = "xml"
	cfg.NATSCA = filepath.Join(t.TempDir(), "no-such-ca.pem") // and no --nats-url
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"--http", "--sync", "--replicas", "--log-level", "--lane-window", "--rate-limit needs --api-keys", "--reload-interval", "--order-cache", "--max-feeds 0", "--max-feeds-per-key 0", "--heartbeat 10ms: must be from 100ms to 5s",
		`--nats-listen "4222"`, "--max-store -1", "--duplicate-window 0s: must be positive", "--ack-wait 500ms: must be at least 1s", `--log-format "xml": want text or json`,
		"--nats-ca needs --nats-url", "no-such-ca.pem"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	// The HTTP API and the embedded server's NATS listener on one port:
	// refused before either is tried (the second would fail to bind, as
	// if another process held the port).
	for _, c := range []struct {
		http, nats string
		same       bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{":8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "0.0.0.0:8080", true},
		{"[::]:4222", "127.0.0.1:4222", true},
		{"127.0.0.1:8080", "127.0.0.1:4222", false},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
	} {
		cfg := DefaultConfig()
		cfg.HTTP, cfg.NATSListen = c.http, c.nats
		err := cfg.Validate()
		want := fmt.Sprintf("--http %s and --nats-listen %s take the same port: give each its own", c.http, c.nats)
		if c.same && (err == nil || err.Error() != want) || !c.same && err != nil {
			t.Errorf("--http %s --nats-listen %s: %v", c.http, c.nats, err)
		}
	}
	// Replicas need a cluster: refused for the embedded server (one
	// node), taken with --nats-url.
	cfg = DefaultConfig()
	cfg.Replicas = 3
	if err := cfg.Validate(); err == nil || err.Error() != "--replicas 3 needs --nats-url: the embedded server is one node and keeps one copy of each stream" {
		t.Errorf("--replicas 3 without --nats-url: %v", err)
	}
	cfg.NATSURL = "nats://n1:4222,nats://n2:4222,nats://n3:4222"
	if err := cfg.Validate(); err != nil {
		t.Errorf("--replicas 3 with --nats-url: %v", err)
	}
	// Connection limits: 0 or more; the embedded server's only without
	// --nats-url.
	cfg = DefaultConfig()
	cfg.MaxConnections, cfg.NATSMaxConnections = -1, -2
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--max-connections -1: must be 0 (from the open-file limit) or more") ||
		!strings.Contains(err.Error(), "--nats-max-connections -2: must be 0") {
		t.Errorf("negative connection limits: %v", err)
	}
	cfg.MaxConnections, cfg.NATSMaxConnections = 100, 100
	if err := cfg.Validate(); err != nil {
		t.Errorf("connection limits of 100: %v", err)
	}
	cfg.NATSURL = "nats://n1:4222"
	if err := cfg.Validate(); err == nil || err.Error() != "--nats-max-connections is for the embedded server; a --nats-url cluster keeps its own limits" {
		t.Errorf("--nats-max-connections with --nats-url: %v", err)
	}
	cfg = DefaultConfig()
	cfg.APIKeys = "keys"
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		cfg.RateLimit = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--rate-limit") {
			t.Errorf("--rate-limit %g: %v", bad, err)
		}
	}
}

func TestMaxStoreFlag(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"0": 0, "536870912": 512 << 20, "512MiB": 512 << 20, "20GB": 20e9, "20 GB": 20e9, "1TiB": 1 << 40, "64KB": 64e3, "100B": 100,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("--max-store %s = %d (%v), want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GB", "ten", "20PB", "9999999TiB", "GB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("--max-store %q accepted as %d", in, b)
		}
	}
	cfg := DefaultConfig()
	cfg.MaxStore, cfg.NATSURL = 1<<30, "nats://127.0.0.1:4222"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--max-store is for the embedded server") {
		t.Errorf("--max-store with --nats-url: %v", err)
	}
}

// The NATS and HTTP addresses swapped: each command says which kind of
// server it found, instead of net/http's or nats.go's own puzzle (a
// "malformed HTTP status code" quoting the NATS server's INFO line, an
// i/o timeout).
func TestAddressesOfTheWrongKind(t *testing.T) {
	t.Parallel()
	natsAddr := strings.TrimPrefix(eventstoretest.StartServer(t).ClientURL(), "nats://")
	for _, args := range [][]string{{"order", "show", "o-1"}, {"events"}, {"status"}} {
		code, _, errOut := runMain(t, append(args, "--server", natsAddr)...)
		want := "http://" + natsAddr + " is a NATS server, not orderflow's HTTP API: --server takes the address serve's --http listens on (default 127.0.0.1:8080)\n"
		if code != 1 || !strings.HasSuffix(errOut, want) {
			t.Errorf("%v --server %s: exit %d, %q", args, natsAddr, code, errOut)
		}
	}
	web := httptest.NewServer(http.NotFoundHandler()) // takes connections, says nothing first
	t.Cleanup(web.Close)
	url := "nats://" + strings.TrimPrefix(web.URL, "http://")
	for _, args := range [][]string{{"verify"}, {"serve", "--http", "127.0.0.1:0"}} {
		code, _, errOut := runMain(t, append(args, "--nats-url", url)...)
		if code != 1 || !strings.Contains(errOut, url+": read tcp ") ||
			!strings.HasSuffix(errOut, "i/o timeout: nothing there spoke NATS in time (is it a NATS server's client port, not an HTTP one such as serve's --http?)\n") {
			t.Errorf("%v --nats-url %s: exit %d, %q", args, url, code, errOut)
		}
	}
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	if code := Main(context.Background(), nil, &out, &errOut, func(string) (string, bool) { return "", false }); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
	if code := Main(context.Background(), []string{"bogus"}, &out, &errOut, func(string) (string, bool) { return "", false }); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := Main(context.Background(), []string{"serve", "--replicas", "0"}, &out, &errOut, func(string) (string, bool) { return "", false }); code != 1 {
		t.Fatalf("bad flags: exit %d (%s)", code, errOut.String())
	}
	// A stray word is refused before anything starts or is opened (the
	// data dir and server named here do not exist).
	missing := filepath.Join(t.TempDir(), "missing")
	for _, args := range [][]string{
		{"serve", "--data-dir", missing, "sync"},
		{"bench", "--nats-url", "nats://127.0.0.1:1", "quick"},
		{"projections", "rebuild", "--server", "127.0.0.1:1", "now"},
		{"verify", "--data-dir", missing, "triggers"},
		{"export", "--data-dir", missing, "out.jsonl"},
		{"import", "--data-dir", missing, "in.jsonl"},
		{"replay", "--data-dir", missing, "--until", "2026-11-30T09:00:00Z", "board"},
		{"openapi", "json"},
	} {
		var out, errOut strings.Builder
		code := Main(context.Background(), args, &out, &errOut, func(string) (string, bool) { return "", false })
		if err := errOut.String(); code != 1 || !strings.Contains(err, "takes no arguments, got [\""+args[len(args)-1]+"\"]") {
			t.Errorf("%v: exit %d, %s", args, code, err)
		}
	}
	// A true-or-false flag with its value as a word of its own would run
	// as true: refused, with how to write it. A word that is not true or
	// false after one is an argument as before (an order's id "1").
	var demoErr strings.Builder
	if code := Main(context.Background(), []string{"serve", "--data-dir", missing, "--demo", "false"}, &out, &demoErr, func(string) (string, bool) { return "", false }); code != 1 ||
		!strings.Contains(demoErr.String(), "--demo false: a true-or-false flag takes its value after '=' (--demo=false)") {
		t.Errorf("serve --demo false: exit %d, %s", code, demoErr.String())
	}
	var showErr strings.Builder
	if code := Main(context.Background(), []string{"order", "show", "--server", "127.0.0.1:1", "--json", "1"}, &out, &showErr, func(string) (string, bool) { return "", false }); code != 1 ||
		strings.Contains(showErr.String(), "true-or-false") || !strings.Contains(showErr.String(), "/v1/orders/1") {
		t.Errorf("order show --json 1: exit %d, %s", code, showErr.String())
	}
	// A mistake in a store command's arguments is told as such before
	// the store is reached (none answers at this URL).
	for args, want := range map[string]string{
		"audit order":                                     "want one ID, got []",
		"audit workflow a b":                              `want one ID, got ["a" "b"]`,
		"deadletters retry":                               "name the dead letters' sequences",
		"deadletters --limit 0":                           "--limit 0: want 1 or more",
		"deadletters list":                                `unexpected "list"`,
		"verify --streams X extra":                        `takes no arguments, got ["extra"]`,
		"replay --until noon":                             `--until "noon": want RFC 3339`,
		"verify --streams ORDERFLOW_ORDERS,":              `--streams "ORDERFLOW_ORDERS,": a stream name is empty`,
		"replay --tenant a.b":                             `invalid tenant "a.b"`,
		"export --out /nonexistent-orderflow-dir/x.jsonl": "--out /nonexistent-orderflow-dir/x.jsonl: stat /nonexistent-orderflow-dir: no such file",
		"export --out main.go/x.jsonl":                    "--out main.go/x.jsonl: main.go is not a directory",
		"audit":                                           "want: audit order ID, audit workflow ID, audit ordertype ID or audit definitions",
		"audit orders o-1":                                "want: audit order ID, audit workflow ID, audit ordertype ID or audit definitions",
	} {
		var errOut strings.Builder
		if code := Main(context.Background(), append(strings.Fields(args), "--nats-url", "nats://127.0.0.1:1"), &out, &errOut,
			func(string) (string, bool) { return "", false }); code != 1 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, %s", args, code, errOut.String())
		}
	}
	// A NATS credential or CA is for a server, not a data dir: refused,
	// and the data dir is not made.
	for _, flag := range []string{"--nats-creds", "--nats-ca"} {
		var errOut strings.Builder
		if code := Main(context.Background(), []string{"verify", "--data-dir", missing, flag, "main.go"}, &out, &errOut,
			func(string) (string, bool) { return "", false }); code != 1 || !strings.Contains(errOut.String(), "--nats-creds and --nats-ca are for --nats-url, not --data-dir") {
			t.Errorf("verify --data-dir %s: exit %d, %s", flag, code, errOut.String())
		}
	}
	// So are replicas: the embedded server is one node. And import
	// takes 1 to 5 of them, as serve does.
	empty := filepath.Join(t.TempDir(), "empty.jsonl") // an export of nothing
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		"import --in " + empty + " --replicas 3 --data-dir " + missing:         "orderflow import: --replicas 3 needs --nats-url: the embedded server is one node and keeps one copy of each stream\n",
		"import --in " + empty + " --replicas 0 --data-dir " + missing:         "orderflow import: --replicas 0: must be 1 to 5\n",
		"import --in " + empty + " --replicas 6 --nats-url nats://127.0.0.1:1": "orderflow import: --replicas 6: must be 1 to 5\n",
		"bench --replicas 2": "orderflow bench: --replicas 2 needs --nats-url: the embedded server is one node and keeps one copy of each stream\n",
	} {
		var errOut strings.Builder
		if code := Main(context.Background(), strings.Fields(args), &out, &errOut,
			func(string) (string, bool) { return "", false }); code != 1 || errOut.String() != want {
			t.Errorf("%s: exit %d, %q", args, code, errOut.String())
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the data dir %s was made: %v", missing, err)
	}
	// So is a mistake in a client command's arguments, before the server
	// is asked (none answers at this address).
	for args, want := range map[string]string{
		"trigger o-1":                 "want ORDER and TRIGGER",
		"trigger o-1 picked_up extra": "want ORDER and TRIGGER",
		"order show":                  "want one ORDER",
		"order hold":                  "want one ORDER",
		"order cancel o-1 o-2":        "want one ORDER",
		"order move --workflow w --step 1 --reason r": "want one ORDER",
		"order place":       "want one ORDER_TYPE",
		"definitions apply": "--file is required",
	} {
		var errOut strings.Builder
		if code := Main(context.Background(), append(strings.Fields(args), "--server", "127.0.0.1:1"), &out, &errOut,
			func(string) (string, bool) { return "", false }); code != 1 || !strings.Contains(errOut.String(), want) || strings.Contains(errOut.String(), "is orderflow running") {
			t.Errorf("%s: exit %d, %s", args, code, errOut.String())
		}
	}
	for args, want := range map[string]string{
		"order":       "want: order show ORDER, order list",
		"projections": "want: projections rebuild",
		"definitions": "want: definitions show, or definitions apply --file F",
	} {
		var errOut strings.Builder
		if code := Main(context.Background(), strings.Fields(args), &out, &errOut, func(string) (string, bool) { return "", false }); code != 1 || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, %s", args, code, errOut.String())
		}
	}
	// A value the flag package cannot read is refused saying what the
	// flag takes, given on the command line or in the environment.
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"serve", "--data-dir", missing, "--ack-wait", "10"}, nil, `--ack-wait "10": want a duration such as 10s`},
		{[]string{"serve", "--data-dir", missing}, map[string]string{"ORDERFLOW_ACK_WAIT": "10"}, `ORDERFLOW_ACK_WAIT="10": want a duration such as 10s`},
		{[]string{"deadletters", "--data-dir", missing, "--limit", "abc"}, nil, `--limit "abc": want a whole number`},
		{[]string{"deadletters", "--data-dir", missing, "--after", "-1"}, nil, `--after "-1": want a whole number, 0 or more`},
		{[]string{"serve", "--data-dir", missing}, map[string]string{"ORDERFLOW_DEMO": "maybe"}, `ORDERFLOW_DEMO="maybe": want true or false`},
	} {
		var errOut strings.Builder
		lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		if code := Main(context.Background(), tc.args, &out, &errOut, lookup); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v %v: exit %d, %s", tc.args, tc.env, code, errOut.String())
		}
	}
	// Every command's -h says what it is for before its flags, and
	// allFlagNames holds every command's flags.
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	var seen []string
	for _, cmd := range []string{"serve", "trigger", "order show", "order list", "order history", "board", "events", "order place", "order hold", "order move", "order migrate",
		"definitions show", "definitions apply", "status", "projections rebuild", "audit order", "audit workflow", "audit ordertype", "audit definitions", "replay", "verify", "export", "import", "deadletters",
		"deadletters retry", "bench", "apikey", "apikey list", "apikey revoke", "openapi"} {
		var errOut strings.Builder
		args := append(strings.Fields(cmd), "-h")
		if code := Main(context.Background(), args, &out, &errOut, func(string) (string, bool) { return "", false }); code != 0 ||
			!strings.HasPrefix(errOut.String(), "Usage: orderflow "+cmd) || !strings.Contains(errOut.String(), "\n\n") {
			t.Errorf("%s -h: exit %d, %.200q", cmd, code, errOut.String())
		}
		for _, m := range flagLine.FindAllStringSubmatch(errOut.String(), -1) {
			seen = append(seen, m[1])
		}
	}
	slices.Sort(seen)
	if seen = slices.Compact(seen); !slices.Equal(seen, allFlagNames) {
		t.Errorf("the commands' flags are\n%q\nallFlagNames holds\n%q", seen, allFlagNames)
	}
	// An error is reported under the subcommand that ran.
	for args, want := range map[[2]string]string{
		{"order", "move"}:     "orderflow order move: ",
		{"apikey", "list"}:    "orderflow apikey list: ",
		{"audit", "workflow"}: "orderflow audit workflow: ",
		{"order", "bogus"}:    "orderflow order: ",
	} {
		var errOut strings.Builder
		if code := Main(context.Background(), append(args[:], "--bogus-flag"), &out, &errOut, func(string) (string, bool) { return "", false }); code == 0 ||
			!strings.Contains(errOut.String(), "\n"+want) && !strings.HasPrefix(errOut.String(), want) {
			t.Errorf("%v: exit %d, %q, want a line starting %q", args, code, errOut.String(), want)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a refused command made its data dir: %v", err)
	}
	// bench checks its figures before it measures anything.
	var benchErr strings.Builder
	if code := Main(context.Background(), []string{"bench", "--orders", "0", "--duration", "0s", "--lanes", "0"}, &out, &benchErr,
		func(string) (string, bool) { return "", false }); code != 1 || benchErr.String() !=
		"orderflow bench: --lanes 0: must be 1 to 1024\n--orders 0: must be 1 or more\n--duration 0s: must be positive\n" {
		t.Errorf("bench with bad flags: exit %d, %q", code, benchErr.String())
	}
}

// With --stage-metrics=false, GET /metrics leaves the board's series
// out (a store of many tenants has a few per tenant, workflow and
// status) and keeps the rest.
func TestStageMetricsCanBeLeftOut(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.StageMetrics = false
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "m-1", "order_type_id": handlers.WorkedExampleOrderType})
	code, body := get(t, "http://"+app.HTTPAddr()+"/metrics")
	if code != 200 || !strings.Contains(body, "orderflow_event_feeds_open 0") {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	for _, left := range []string{"orderflow_stage_orders", "orderflow_stage_oldest_seconds"} {
		if strings.Contains(body, left) {
			t.Errorf("GET /metrics with --stage-metrics=false has %s", left)
		}
	}
}

// /openapi.json documents every route the API serves, and /metrics
// answers in Prometheus text, with the API's requests by route and code.
func TestOpenAPIAndMetrics(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	doc := c.must(200, "GET", "/openapi.json", nil)
	paths := doc["paths"].(map[string]any)
	for _, p := range []string{"/v1/statuses", "/v1/workflows/{id}/steps/move", "/v1/orders/{id}/triggers", "/v1/events", "/metrics"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", doc["openapi"])
	}
	// Every operation has an operationId of its own, which generated
	// clients name their calls by.
	ids := map[string]string{}
	for p, item := range paths {
		for method, op := range item.(map[string]any) {
			id, _ := op.(map[string]any)["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s %s: operationId %q (also %q)", method, p, id, ids[id])
			}
			ids[id] = method + " " + p
		}
	}
	if ids["applyTrigger"] != "post /v1/orders/{id}/triggers" || ids["getHealth"] != "get /healthz" {
		t.Errorf("operationIds %v", ids)
	}
	for _, p := range []string{"/v1/orders", "/v1/orders/{id}/triggers", "/v1/orders/{id}/hold", "/v1/orders/{id}/migrate", "/v1/statuses", "/v1/order-types"} {
		op := paths[p].(map[string]any)["post"].(map[string]any)
		if params, _ := json.Marshal(op["parameters"]); !strings.Contains(string(params), `"in":"header","name":"Idempotency-Key"`) {
			t.Errorf("POST %s parameters %s lack the Idempotency-Key header", p, params)
		}
		responses, _ := json.Marshal(op["responses"])
		if replays := strings.Contains(string(responses), `"Idempotent-Replayed"`); replays != (p != "/v1/orders/{id}/triggers") {
			t.Errorf("POST %s responses %s: Idempotent-Replayed documented %v", p, responses, replays)
		}
	}
	c.must(200, "GET", "/v1/statuses", nil)
	c.must(200, "GET", "/v1/statuses", nil)
	c.problem(404, "not_found", "GET", "/v1/orders/nope", nil)
	// Triggers by outcome, and how the orders' cache served them: placing
	// looks for an order that is not there (a load); after that the
	// order is in memory, where each HTTP trigger looks for its id (3
	// hits) and the processor decides (2 hits). The repeated trigger id is
	// answered there: the processor never sees it.
	if err := handlers.SeedWorkedExample(ctxFor(t, time.Minute), app.cmds); err != nil {
		t.Fatal(err)
	}
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "m-1", "order_type_id": handlers.WorkedExampleOrderType})
	c.must(200, "POST", "/v1/orders/m-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "m-t1"})
	c.must(200, "POST", "/v1/orders/m-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "m-t1"})
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/m-1/triggers", map[string]any{"trigger": "delivered"})
	// The route answers once the outcome is stored; the processor counts
	// it, and acknowledges it in its lane, a moment after.
	var code int
	var body string
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		code, body = get(t, "http://"+app.HTTPAddr()+"/metrics")
		return strings.Contains(body, "orderflow_triggers_applied_total 2") && strings.Contains(body, "orderflow_trigger_lanes_waiting 0")
	}, "the processor counts and acknowledges both triggers")
	for _, want := range []string{
		`orderflow_http_requests_total{route="GET /v1/statuses",code="200"} 2`,
		`orderflow_http_requests_total{route="GET /v1/orders/{id}",code="404"} 1`,
		`orderflow_http_request_seconds_total{route="GET /v1/orders/{id}"} `,
		`orderflow_http_request_duration_seconds_bucket{route="GET /v1/statuses",le="+Inf"} 2`,
		`orderflow_http_request_duration_seconds_count{route="GET /v1/statuses"} 2`,
		`orderflow_http_request_duration_seconds_count{route="POST /v1/orders/{id}/triggers"} 3`,
		`orderflow_trigger_duration_seconds_bucket{le="10"} 2`,
		"orderflow_trigger_duration_seconds_count 2",
		"orderflow_trigger_duration_seconds_sum ",
		// m-1 is at Received, the step after Pending Pickup.
		`orderflow_stage_orders{tenant="default",workflow="laundry_intake",status="received",state="active"} 1`,
		`orderflow_stage_orders{tenant="default",workflow="laundry_intake",status="received",state="on_hold"} 0`,
		`orderflow_stage_orders{tenant="default",workflow="laundry_intake",status="pending_pickup",state="active"} 0`,
		`orderflow_stage_oldest_seconds{tenant="default",workflow="laundry_intake",status="pending_pickup"} 0`,
		`orderflow_stage_oldest_seconds{tenant="default",workflow="laundry_intake",status="received"} `,
		`orderflow_trigger_outcomes_total{outcome="advanced"} 1`,
		`orderflow_trigger_outcomes_total{outcome="rejected",reason="unexpected_trigger"} 1`,
		"orderflow_triggers_applied_total 2",
		"orderflow_trigger_processors 1",
		"orderflow_orders_cached 1",
		// Loads: placing it, and the GET of an order that does not exist.
		// Hits: each HTTP trigger's look for its id (3), the processor's
		// decisions (2), the two answers' order (2), and the outcome of
		// each of the two that were waited for, read from the order as
		// stored (2 each: brought up to date, then asked).
		"orderflow_order_cache_hits_total 11",
		"orderflow_order_loads_total 2",
		"orderflow_order_load_seconds_total ",
		`orderflow_index_caught_up{stream="ORDERFLOW_ORDERS"} 1`,
		`orderflow_stream_messages{stream="ORDERFLOW_ORDERS"} 3`,
		`orderflow_stream_bytes{stream="ORDERFLOW_ORDERS"} `,
		"orderflow_jetstream_storage_bytes ",
		"orderflow_jetstream_storage_limit_bytes ",
		`orderflow_build_info{version="`,
		"process_start_time_seconds ",
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
		"go_gc_cycles_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	checkExposition(t, body)
	stay := regexp.MustCompile(`\norderflow_stage_oldest_seconds\{tenant="default",workflow="laundry_intake",status="received"\} (\S+)\n`).FindStringSubmatch(body)
	if stay == nil {
		t.Fatalf("no time in Received:\n%s", body)
	}
	if s, err := strconv.ParseFloat(stay[1], 64); err != nil || s <= 0 || s > 60 {
		t.Errorf("m-1 has been in Received for %s s", stay[1])
	}
	// Every metric the README names is served.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`orderflow_[a-z_]+`).FindAllString(string(readme), -1) {
		if !strings.Contains(body, "\n"+name+" ") && !strings.Contains(body, "\n"+name+"{") {
			t.Errorf("the README names %s; /metrics has no such figure", name)
		}
	}
	if code != 200 || !strings.Contains(body, "orderflow_ready 1") || !strings.Contains(body, `orderflow_stream_last_sequence{stream="ORDERFLOW_ORDERS"}`) ||
		!strings.Contains(body, "orderflow_trigger_lanes_owned ") || !strings.Contains(body, "orderflow_triggers_handed_back_total ") || !strings.Contains(body, "orderflow_event_feeds_open 0") ||
		!strings.Contains(body, `orderflow_stream_last_sequence{stream="ORDERFLOW_DEADLETTER"} 0`) ||
		!strings.Contains(body, "orderflow_trigger_lanes_waiting 0") || !strings.Contains(body, "orderflow_trigger_lanes_copy_error 0") ||
		!strings.Contains(body, "orderflow_trigger_lanes_copy_idle_seconds ") || !strings.Contains(body, "orderflow_trigger_lanes_copy_restarts_total 0") ||
		!strings.Contains(body, "orderflow_trigger_lanes_copy_resume_at ") {
		t.Fatalf("/metrics %d:\n%s", code, body)
	}
}

// checkExposition checks text in Prometheus' text format: every sample is
// a name, optional labels and a number, under its family's one HELP and
// TYPE lines. A histogram's buckets, for each set of its other labels,
// have rising bounds and counts, and end at +Inf with the _count.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? (-?[0-9][0-9.eE+-]*|NaN|[+-]Inf)$`)
	le := regexp.MustCompile(`,?le="([^"]*)"`)
	typed := map[string]string{}
	helped := map[string]bool{}
	type series struct {
		bound, count float64
		ended        bool
	}
	buckets := map[string]*series{} // by name and the labels besides le
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(f, " ")
			if typed[name] != "" || (kind != "gauge" && kind != "counter" && kind != "histogram") {
				t.Errorf("/metrics: TYPE line %q repeated or of an unknown kind", line)
			}
			typed[name] = kind
			continue
		}
		if f, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(f, " ")
			if helped[name] {
				t.Errorf("/metrics: HELP of %s repeated", name)
			}
			helped[name] = true
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("/metrics: %q is not a sample", line)
			continue
		}
		family := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(m[1], suffix); ok && typed[f] == "histogram" {
				family = f
			}
		}
		if typed[family] == "" || !helped[family] {
			t.Errorf("/metrics: %s has no HELP or TYPE before it", m[1])
		}
		if typed[family] != "histogram" {
			continue
		}
		value, _ := strconv.ParseFloat(m[4], 64)
		labels := strings.Trim(le.ReplaceAllString(m[2], ""), "{},")
		key := family + " " + labels
		switch s := buckets[key]; {
		case strings.HasSuffix(m[1], "_bucket"):
			lm := le.FindStringSubmatch(m[2])
			if lm == nil {
				t.Errorf("/metrics: bucket without le: %q", line)
				continue
			}
			bound, err := strconv.ParseFloat(lm[1], 64)
			if s == nil {
				s = &series{bound: math.Inf(-1)}
				buckets[key] = s
			}
			if err != nil || bound <= s.bound || value < s.count || s.ended {
				t.Errorf("/metrics: bucket %q out of step (after le %g, count %g)", line, s.bound, s.count)
			}
			s.bound, s.count, s.ended = bound, value, math.IsInf(bound, 1)
		case strings.HasSuffix(m[1], "_count"):
			if s == nil || !s.ended || s.count != value {
				t.Errorf("/metrics: %q does not follow its buckets, ending at +Inf with the same count", line)
			}
		}
	}
}

// With --order-cache 0 every trigger reads its order from the store, and
// the answers are the same.
func TestOrderCacheOff(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.OrderCache = 0
	app := startApp(t, cfg)
	c := newClient(t, app)
	if err := handlers.SeedWorkedExample(ctxFor(t, time.Minute), app.cmds); err != nil {
		t.Fatal(err)
	}
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-1", "order_type_id": handlers.WorkedExampleOrderType})
	c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "t-1"})
	if r := c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "t-1"}); r["outcome"] != "duplicate" {
		t.Fatalf("the trigger again: %v", r)
	}
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "delivered"})
	_, body := get(t, "http://"+app.HTTPAddr()+"/metrics")
	// Placing, then each HTTP trigger's look for its id (3), the
	// processor's decision (2), the two answers' order (2) and the outcome
	// of each of the two that were waited for (2 each): all read from the
	// store.
	for _, want := range []string{"orderflow_orders_cached 0", "orderflow_order_cache_hits_total 0", "orderflow_order_loads_total 12"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

// orderflow bench does not run against a cluster that orderflow serves:
// its trigger processor would share the lanes of the processors there,
// and process their triggers.
func TestBenchRefusesAServedCluster(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.Heartbeat = 4 * time.Second // bench hears a process that beats slowly too
	app := startApp(t, cfg)
	// The processor's heartbeats say how often they come (--heartbeat).
	nc := eventstoretest.Connect(t, app.NATSURL())
	beats, err := nc.SubscribeSync(eventstore.ProcessorsSubject)
	if err != nil {
		t.Fatal(err)
	}
	beat, err := beats.NextMsg(eventstoretest.Patience(2 * cfg.Heartbeat))
	if err != nil {
		t.Fatalf("no heartbeat of the processor: %v", err)
	}
	if got := beat.Header.Get("Orderflow-Heartbeat"); got != "4s" {
		t.Fatalf("a heartbeat of the processor says it comes every %q, want 4s", got)
	}
	code, _, errOut := runMain(t, "bench", "--nats-url", app.NATSURL(), "--orders", "10", "--rates", "100", "--duration", "100ms")
	if code == 0 || !strings.Contains(errOut, "orderflow serves this cluster") {
		t.Fatalf("bench against a served cluster: %d %s", code, errOut)
	}
	lc, err := app.Store().LaneCopyState(ctxFor(t, 10*time.Second))
	if err != nil || lc.Lanes != app.Config.Lanes {
		t.Fatalf("the cluster's lanes after bench: %+v, %v", lc, err)
	}
}

// orderflow bench runs end to end (small sizes) and prints JSON figures,
// each orderflow figure with its ratio to a raw baseline.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmark run")
	}
	t.Parallel()
	var out, errOut strings.Builder
	code := Main(context.Background(), []string{"bench", "--orders", "30", "--rates", "200", "--duration", "500ms", "--lanes", "4", "--json"},
		&out, &errOut, func(string) (string, bool) { return "", false })
	if code != 0 {
		t.Fatalf("bench: %d\n%s", code, errOut.String())
	}
	var res struct {
		Figures []struct {
			Name     string  `json:"name"`
			Value    float64 `json:"value"`
			Baseline string  `json:"baseline"`
			Ratio    float64 `json:"ratio"`
		} `json:"figures"`
	}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out.String())
	}
	for _, f := range res.Figures {
		if f.Value <= 0 {
			t.Errorf("%s: %v", f.Name, f.Value)
		}
		if !strings.HasPrefix(f.Name, "raw ") && (f.Baseline == "" || f.Ratio <= 0) {
			t.Errorf("%s has no ratio to a raw baseline", f.Name)
		}
	}
}

// A variable that nearly names a flag's is pointed out; one a flag reads,
// and one far from every flag's (another command's, say), are not.
func TestEnvHints(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg := DefaultConfig()
	cfg.RegisterFlags(fs)
	got := envHints([]string{
		"ORDERFLOW_NATSURL", "ORDERFLOW_NATS_URL", "ORDERFLOW_data_dir", "ORDERFLOW_NATS-URL",
		"ORDERFLOW_SERVER", "ORDERFLOW_TOKEN", "ORDERFLOW_", "PATH", "ORDERFLOW_HTTPS", "ORDERFLOW_LANE",
		"ORDERFLOW_LANES_WINDOW",
	}, fs)
	want := []string{
		"ORDERFLOW_NATSURL is set, but no flag reads it: did you mean ORDERFLOW_NATS_URL (--nats-url)?",
		"ORDERFLOW_data_dir is set, but no flag reads it: did you mean ORDERFLOW_DATA_DIR (--data-dir)?",
		"ORDERFLOW_NATS-URL is set, but no flag reads it: did you mean ORDERFLOW_NATS_URL (--nats-url)?",
		"ORDERFLOW_HTTPS is set, but no flag reads it: did you mean ORDERFLOW_HTTP (--http)?",
		"ORDERFLOW_LANE is set, but no flag reads it: did you mean ORDERFLOW_LANES (--lanes)?",
		"ORDERFLOW_LANES_WINDOW is set, but no flag reads it: did you mean ORDERFLOW_LANE_WINDOW (--lane-window)?",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("hints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A variable another command reads (bench's --orders) is no
	// misspelling of the running command's --order.
	events := flag.NewFlagSet("events", flag.ContinueOnError)
	events.String("order", "", "")
	if got := envHints([]string{"ORDERFLOW_ORDERS", "ORDERFLOW_ODER"}, events); len(got) != 1 || !strings.HasPrefix(got[0], "ORDERFLOW_ODER is set") {
		t.Fatalf("hints for events: %q", got)
	}
}

// A listener open beyond this machine with no one named who may use it is
// warned of at the start; one on loopback, or guarded, is not.
func TestExposures(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	if got := exposures(cfg, "127.0.0.1:8080", true); len(got) != 0 {
		t.Errorf("the defaults: %v", got)
	}
	cfg.NATSListen = "0.0.0.0:4222"
	got := exposures(cfg, "[::]:8080", true)
	if len(got) != 2 || !strings.Contains(got[0], "without --api-keys") || !strings.Contains(got[1], "without --nats-config") {
		t.Errorf("both open: %v", got)
	}
	if got := exposures(cfg, "10.0.0.5:8080", false); len(got) != 1 || !strings.Contains(got[0], "HTTP API") {
		t.Errorf("HTTP on a network address, NATS not embedded: %v", got)
	}
	cfg.APIKeys, cfg.NATSConfig = "keys", "nats.conf"
	if got := exposures(cfg, "[::]:8080", true); len(got) != 0 {
		t.Errorf("both guarded: %v", got)
	}
	cfg = DefaultConfig()
	cfg.NATSListen = "localhost:4222"
	if got := exposures(cfg, "[::1]:8080", true); len(got) != 0 {
		t.Errorf("localhost and ::1: %v", got)
	}
}

// serve --log-format json writes each log line as one JSON object, with
// durations as text; the default stays key=value text.
func TestServeLogsJSON(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut eventstoretest.LogBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--log-format", "json", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"},
			io.Discard, &errOut, func(string) (string, bool) { return "", false })
	}()
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(errOut.String(), `"msg":"orderflow ready"`) }, "orderflow ready")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve: exit %d\n%s", code, errOut.String())
	}
	durations := 0
	for _, line := range strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil || l["time"] == nil || l["level"] == nil || l["msg"] == nil {
			t.Fatalf("not a JSON log line (%v): %s", err, line)
		}
		if took, ok := l["took"]; ok {
			if _, err := time.ParseDuration(fmt.Sprint(took)); err != nil {
				t.Errorf("took %v is not a duration as text: %s", took, line)
			}
			durations++
		}
	}
	if durations == 0 || !strings.Contains(errOut.String(), `"msg":"shutting down"`) {
		t.Fatalf("no line with a duration, or no shutdown line:\n%s", errOut.String())
	}
}
