package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// readmeNATSConfig is the README's --nats-config example (under
// "Authentication and tenants"): a worker app of the default tenant may
// publish its tenant's triggers and follow its tenant's orders, and
// nothing else; a dashboard may only follow.
func readmeNATSConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Authentication and tenants\n")
	_, block, ok2 := strings.Cut(section, "```\nauthorization {")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("the README has no --nats-config example under \"Authentication and tenants\"")
	}
	return "authorization {" + block
}

// startAppWithNATSConfig starts an App whose embedded server takes the
// nats-server configuration conf (--nats-config), with the worked example
// defined and order o-1 placed.
func startAppWithNATSConfig(t *testing.T, conf string) (*App, *httpClient) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := newTestConfig(t)
	cfg.NATSConfig = path
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "o-1", "order_type_id": "wash_fold_delivery"})
	return app, c
}

// With --nats-config (the README's example file) the embedded server's NATS
// listener lets in only the file's users, each within its permissions, while orderflow itself runs
// as its own user: a worker app applies its tenant's triggers, another
// tenant's subjects and anonymous clients are refused.
func TestNATSConfigOnTheEmbeddedServer(t *testing.T) {
	t.Parallel()
	app, c := startAppWithNATSConfig(t, readmeNATSConfig(t))

	if nc, err := nats.Connect(app.NATSURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	}
	if nc, err := nats.Connect(app.NATSURL(), nats.UserInfo("van-7", "wrong")); err == nil {
		nc.Close()
		t.Fatal("a wrong password was let in")
	}

	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}) // the refusals below are expected; LastError has them
	van7 := []nats.Option{nats.UserInfo("van-7", "s3cret"), nats.CustomInboxPrefix("_INBOX_van-7"), quiet}
	nc, err := nats.Connect(app.NATSURL(), van7...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wc, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, time.Minute)
	res, err := wc.ApplyTrigger(ctx, client.Trigger{OrderID: "o-1", Trigger: "picked_up", Worker: "ana"})
	if err != nil || res.Outcome != domain.OutcomeAdvanced {
		t.Fatalf("the worker's trigger: %+v, %v", res, err)
	}
	// A trigger id of the caller's is first looked for in the order's
	// history, through a consumer the permissions allow on its tenant only.
	res, err = wc.ApplyTrigger(ctx, client.Trigger{OrderID: "o-1", Trigger: "picked_up", TriggerID: res.TriggerID})
	if err != nil || res.Outcome != domain.OutcomeDuplicate {
		t.Fatalf("the same trigger id again: %+v, %v", res, err)
	}
	// The same permissions let it follow its tenant's stage changes from
	// the stream.
	errEnough := errors.New("enough")
	var followed []client.StageChange
	if err := wc.FollowStageChanges(ctx, "", 0, func(sc client.StageChange) error {
		followed = append(followed, sc)
		if len(followed) == 2 {
			return errEnough
		}
		return nil
	}); !errors.Is(err, errEnough) || followed[1].Type != domain.TypeOrderAdvanced || followed[1].OrderID != "o-1" {
		t.Fatalf("following the tenant's stage changes: %v, %+v", err, followed)
	}
	// A consumer on another tenant's orders is refused: by the permissions
	// when the request's subject names that filter (no answer comes), by
	// the server when the subject names this tenant's and the
	// configuration another.
	snoop, err := nats.Connect(app.NATSURL(), van7...)
	if err != nil {
		t.Fatal(err)
	}
	defer snoop.Close()
	req, _ := json.Marshal(map[string]any{"stream_name": eventstore.StreamOrders,
		"config": jetstream.ConsumerConfig{FilterSubject: "orderflow.acme.order.>", AckPolicy: jetstream.AckNonePolicy}})
	create := "$JS.API.CONSUMER.CREATE." + eventstore.StreamOrders + ".snoop."
	if res, err := snoop.RequestWithContext(ctxExactly(t, 2*time.Second), create+"orderflow.acme.order.>", req); err == nil {
		t.Fatalf("a consumer on another tenant's orders: %s", res.Data)
	}
	// Asked again while no answer comes: under a loaded machine one such
	// request went unanswered for a minute once (in a full test run), and
	// it is the server's answer, when it comes, that this checks.
	var answer *nats.Msg
	for ctx.Err() == nil {
		if answer, err = snoop.RequestWithContext(ctxExactly(t, 5*time.Second), create+"orderflow.default.order.>", req); err == nil {
			break
		}
	}
	if err != nil || !strings.Contains(string(answer.Data), "did not match filtered subject") {
		t.Fatalf("a consumer on another tenant's orders, asked for as this tenant's: %v", err)
	}

	// Its tenant's dead letters reach it; another tenant's, those of all
	// tenants together, and other users' replies are refused.
	var dead *client.DeadLetterError
	if _, err := wc.ApplyTrigger(ctx, client.Trigger{OrderID: "ghost", Trigger: "picked_up"}); !errors.As(err, &dead) || !strings.Contains(dead.Reason, "unknown order") {
		t.Fatalf("a trigger for an unknown order: %v", err)
	}
	for _, subject := range []string{eventstore.DeadLetterSubject, eventstore.DeadLetterSubject + ".>", eventstore.DeadLetterSubject + ".acme.>", "_INBOX.>"} {
		snoop, err := nats.Connect(app.NATSURL(), van7...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snoop.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		if err := waitLastError(snoop); !strings.Contains(err.Error(), "Permissions Violation") {
			t.Fatalf("subscribing to %s: %v", subject, err)
		}
		snoop.Close()
	}

	// Another tenant's subjects are refused by the server.
	other, err := client.New(nc, client.WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	short := ctxExactly(t, 2*time.Second)
	if _, err := other.PublishTrigger(short, client.Trigger{OrderID: "o-1", Trigger: "picked_up"}); err == nil {
		t.Fatal("a trigger of another tenant was stored")
	}
	if err := waitLastError(nc); !strings.Contains(err.Error(), "Permissions Violation") {
		t.Fatalf("publishing to another tenant: %v", err)
	}

	// A dashboard user follows stage changes and cannot publish triggers.
	bc, err := nats.Connect(app.NATSURL(), nats.UserInfo("board", "s3cret"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	dash, _ := client.New(bc)
	changes := make(chan client.StageChange, 8)
	sub, err := dash.SubscribeStageChanges("o-1", func(sc client.StageChange) { changes <- sc })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := bc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "items_tagged"})
	select {
	case sc := <-changes:
		if sc.Type != "OrderAdvanced" || sc.OrderID != "o-1" {
			t.Fatalf("the dashboard saw %+v", sc)
		}
	case <-ctx.Done():
		t.Fatal("the dashboard saw no stage change")
	}
	if err := bc.Publish("orderflow.default.trigger.o-1.wash_done", nil); err != nil {
		t.Fatal(err)
	}
	if err := waitLastError(bc); !strings.Contains(err.Error(), "Permissions Violation") {
		t.Fatalf("the dashboard publishing a trigger: %v", err)
	}
	c.must(200, "GET", "/readyz", nil)
}

// waitLastError waits (bounded) for the server's asynchronous answer to a
// refused publish.
func waitLastError(nc *nats.Conn) error {
	deadline := time.Now().Add(eventstoretest.Patience(10 * time.Second))
	for nc.LastError() == nil && time.Now().Before(deadline) {
		_ = nc.Flush()
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	if err := nc.LastError(); err != nil {
		return err
	}
	return os.ErrDeadlineExceeded
}

// A NATS config file orderflow cannot use stops the start with the reason, and
// --nats-config is refused beside --nats-url.
func TestNATSConfigFileMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"no users":        "authorization { timeout: 2 }\n",
		"verify_and_map":  "tls { cert_file: a, key_file: b, verify_and_map: true }\n",
		"a single user":   "authorization { user: a, password: b }\n",
		"a token":         "authorization { token: abc }\n",
		"orderflow's own": "authorization { users = [ { user: orderflow-internal, password: x } ] }\n",
		"not a config":    "authorization {\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".conf")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := newTestConfig(t)
			cfg.NATSConfig = path
			if err := NewApp(cfg, nil).Run(ctxFor(t, time.Minute)); err == nil || !strings.Contains(err.Error(), "nats config") {
				t.Fatalf("start with %s: %v", name, err)
			}
		})
	}
	cfg := newTestConfig(t)
	cfg.NATSConfig = filepath.Join(dir, "x.conf")
	cfg.NATSURL = "nats://127.0.0.1:4222"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--nats-config") {
		t.Fatalf("--nats-config with --nats-url: %v", err)
	}
}

// A tls block in the --nats-config file makes the embedded server's
// listener ask TLS of every client, while orderflow's own connections,
// in-process, need none: a worker app connects over TLS with its user and
// moves an order on; a plain connection is refused; an auditor's command
// trusts the certificate with --nats-ca.
func TestNATSConfigWithTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, 7)
	app, _ := startAppWithNATSConfig(t, fmt.Sprintf("tls { cert_file: %q, key_file: %q }\n"+
		"authorization { users = [ { user: van-7, password: s3cret } ] }\n", certFile, keyFile))

	if nc, err := nats.Connect(app.NATSURL(), nats.UserInfo("van-7", "s3cret")); err == nil {
		nc.Close()
		t.Fatal("a client without TLS was let in")
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	nc, err := nats.Connect(app.NATSURL(), nats.UserInfo("van-7", "s3cret"), nats.Secure(&tls.Config{RootCAs: roots}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Fatal("the server does not ask for TLS")
	}
	wc, _ := client.New(nc)
	res, err := wc.ApplyTrigger(ctxFor(t, time.Minute), client.Trigger{OrderID: "o-1", Trigger: "picked_up"})
	if err != nil || res.Outcome != domain.OutcomeAdvanced {
		t.Fatalf("a trigger over TLS: %+v, %v", res, err)
	}

	// An auditor's command checks the certificate against --nats-ca.
	url := strings.Replace(app.NATSURL(), "tls://", "tls://van-7:s3cret@", 1)
	if code, out, errOut := runMain(t, "verify", "--nats-url", url, "--nats-ca", certFile); code != 0 || !strings.Contains(out, "0 break(s)") {
		t.Fatalf("verify with --nats-ca: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "verify", "--nats-url", url); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("verify without --nats-ca: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runMain(t, "verify", "--nats-url", url, "--nats-ca", keyFile); code == 0 || !strings.Contains(errOut, "no PEM certificate") {
		t.Fatalf("verify with a key for a CA: exit %d: %s", code, errOut)
	}

	// So does a second orderflow process that shares the work over TLS.
	cfg2 := newTestConfig(t)
	cfg2.NATSURL, cfg2.NATSCA = url, certFile
	second := newClient(t, startApp(t, cfg2))
	second.must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "items_tagged"})
}

// A worker app whose NATS user may not read order histories (the
// README's --nats-config without the $JS.API.CONSUMER.* lines) applies
// triggers through a client made WithoutHistory, with the ids the client
// makes; a trigger id of the caller's is refused before anything is sent.
func TestApplyTriggerWithoutHistory(t *testing.T) {
	t.Parallel()
	app, c := startAppWithNATSConfig(t, `authorization { users = [ { user: van-9, password: "s3cret", permissions: {
    publish: ["orderflow.default.trigger.>"]
    subscribe: ["_INBOX_van-9.>", "orderflow.default.order.>", "orderflow._deadletter.triggers.default.>"] } } ] }
`)
	nc, err := nats.Connect(app.NATSURL(), nats.UserInfo("van-9", "s3cret"), nats.CustomInboxPrefix("_INBOX_van-9"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wc, err := client.New(nc, client.WithoutHistory())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, time.Minute)
	if res, err := wc.ApplyTrigger(ctx, client.Trigger{OrderID: "o-1", Trigger: "picked_up", Worker: "ana"}); err != nil || res.Outcome != domain.OutcomeAdvanced {
		t.Fatalf("a trigger: %+v, %v", res, err)
	}
	if _, err := wc.ApplyTrigger(ctx, client.Trigger{OrderID: "o-1", Trigger: "items_tagged", TriggerID: "van-9-1"}); !errors.Is(err, client.ErrNeedsHistory) {
		t.Fatalf("a trigger id of the caller's: %v", err)
	}
	if r := c.must(200, "GET", "/v1/orders/o-1", nil); r["version"] != float64(2) {
		t.Fatalf("the order after: %v (want version 2: the refused trigger was not sent)", r)
	}
}
