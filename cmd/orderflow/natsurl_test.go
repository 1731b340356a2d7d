package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://orderflow:s3cret@n1:4222", "nats://orderflow:xxxxx@n1:4222"},
		{"nats://s3cret@n1:4222", "nats://xxxxx@n1:4222"},
		{"tls://a:s3cret@n1:4222,tls://a:s3cret@n2:4222", "tls://a:xxxxx@n1:4222,tls://a:xxxxx@n2:4222"},
		{"nats://a:s3 cret%zz@n1:4222", "nats://xxxxx@n1:4222"}, // not a URL, still hidden
	} {
		if got := redactURLs(tc.in); got != tc.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// startAppLogging runs an App whose log the test reads, and closes it when
// the test ends.
func startAppLogging(t *testing.T, cfg Config) (*App, *eventstoretest.LogBuffer) {
	t.Helper()
	logs := &eventstoretest.LogBuffer{}
	app := NewApp(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	if err := app.Run(ctx); err != nil {
		t.Fatalf("app run: %v", err)
	}
	t.Cleanup(func() { _ = app.Close() })
	return app, logs
}

// orderflow runs against a NATS server that requires a user and password,
// given in --nats-url, and its logs and errors never show the password.
func TestNATSURLWithCredentials(t *testing.T) {
	t.Parallel()
	const password = "s3cret-pw"
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: "orderflow", Password: password, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	addr := strings.TrimPrefix(ns.ClientURL(), "nats://")

	cfg := newTestConfig(t)
	cfg.DataDir, cfg.NATSURL = "", "nats://orderflow:"+password+"@"+addr
	app, logs := startAppLogging(t, cfg)
	ctx := ctxFor(t, time.Minute)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(http.StatusCreated, "POST", "/v1/orders", map[string]any{"id": "o-auth", "order_type_id": "wash_fold_delivery"})
	c.must(http.StatusOK, "POST", "/v1/orders/o-auth/triggers", map[string]any{"trigger": "picked_up"})
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); strings.Contains(out, password) || !strings.Contains(out, "orderflow:xxxxx@") {
		t.Errorf("logs show the password or no redacted URL:\n%s", out)
	}

	cfg.NATSURL = "nats://orderflow:wrong-" + password + "@" + addr
	err = NewApp(cfg, slog.New(slog.DiscardHandler)).Run(ctx)
	if err == nil || strings.Contains(err.Error(), password) {
		t.Fatalf("a wrong password: got %v, want an error that does not show it", err)
	}
}

// A process for a cluster (--nats-url) that starts before the cluster
// listens waits for it, not ready meanwhile, and starts once it listens.
func TestServeWaitsForNATS(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))
	cfg := newTestConfig(t)
	cfg.DataDir, cfg.NATSURL = "", "nats://"+addr
	logs := &eventstoretest.LogBuffer{}
	app := NewApp(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	ran := make(chan error, 1)
	go func() { ran <- app.Run(ctxFor(t, 2*time.Minute)) }()
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), "no NATS server reachable yet") },
		"the process to say it waits for NATS")
	t.Cleanup(func() { _ = app.Close() })
	c := newClient(t, app)
	if r := c.do("GET", "/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while waiting for NATS = %d: %s", r.Status, r.Body)
	}
	select {
	case err := <-ran:
		t.Fatalf("the start ended while no NATS server listens: %v", err)
	default:
	}
	eventstoretest.StartServerAt(t, t.TempDir(), addr)
	if err := <-ran; err != nil {
		t.Fatalf("start once NATS listens: %v", err)
	}
	c.must(http.StatusOK, "GET", "/readyz", nil)
	seedWorkedExample(t, c)
	c.must(http.StatusCreated, "POST", "/v1/orders", map[string]any{"id": "o-late", "order_type_id": "wash_fold_delivery"})
}

// A server that goes away while the process starts, right after the
// streams are open, delays the start instead of failing it. The test puts
// a NATS server without JetStream on the address meanwhile, so every
// request of the start is answered "no responders" at once, and brings
// JetStream back only once that server has refused a good number of them.
func TestStartOutlastsAServerRestart(t *testing.T) {
	t.Parallel()
	port := eventstoretest.FreePort(t)
	dir, addr := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", port)
	js := eventstoretest.StartServerAt(t, dir, addr)
	cfg := newTestConfig(t)
	cfg.DataDir, cfg.NATSURL = "", "nats://"+addr
	type restart struct {
		srv *eventstore.Server
		err error
	}
	back := make(chan restart, 1)
	var restarted *eventstore.Server
	t.Cleanup(func() { // after the App's Close (cleanups run last first)
		if restarted != nil {
			restarted.Shutdown()
		}
	})
	app := startAppWith(t, cfg, func(a *App) {
		a.afterStoreOpen = func() {
			js.Shutdown()
			plain, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
			if err != nil {
				t.Fatal(err)
			}
			go plain.Start()
			t.Cleanup(plain.Shutdown)
			if !plain.ReadyForConnections(10 * time.Second) {
				t.Fatal("nats server without JetStream not ready")
			}
			go func() {
				deadline := time.Now().Add(eventstoretest.Patience(30 * time.Second))
				for time.Now().Before(deadline) {
					if v, err := plain.Varz(nil); err == nil && v.InMsgs >= 10 {
						break
					}
					time.Sleep(10 * time.Millisecond) // polling the refused requests
				}
				plain.Shutdown()
				srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: addr})
				back <- restart{srv, err}
			}()
		}
	})
	r := <-back
	if r.err != nil {
		t.Fatalf("restart JetStream: %v", r.err)
	}
	restarted = r.srv
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(http.StatusCreated, "POST", "/v1/orders", map[string]any{"id": "o-restart", "order_type_id": "wash_fold_delivery"})
	c.must(http.StatusOK, "POST", "/v1/orders/o-restart/triggers", map[string]any{"trigger": "picked_up"})
}
