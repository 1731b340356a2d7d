package main

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// startOperatorServer runs a NATS server in operator mode (decentralized
// JWT authentication, as a managed cluster has it) with JetStream, and
// writes a user's credentials file for its one account.
func startOperatorServer(t *testing.T) (url, creds string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	system, err := nkeys.CreateAccount()
	must(err)
	account, err := nkeys.CreateAccount()
	must(err)
	user, err := nkeys.CreateUser()
	must(err)
	pub := func(kp nkeys.KeyPair) string {
		k, err := kp.PublicKey()
		must(err)
		return k
	}
	oc := jwt.NewOperatorClaims(pub(operator))
	oc.SystemAccount = pub(system)
	_, err = oc.Encode(operator) // fills the claims' issuer and id
	must(err)
	resolver := &server.MemAccResolver{}
	sysJWT, err := jwt.NewAccountClaims(pub(system)).Encode(operator)
	must(err)
	must(resolver.Store(pub(system), sysJWT))
	ac := jwt.NewAccountClaims(pub(account))
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(operator)
	must(err)
	must(resolver.Store(pub(account), accJWT))
	userJWT, err := jwt.NewUserClaims(pub(user)).Encode(account)
	must(err)
	seed, err := user.Seed()
	must(err)
	file, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	creds = filepath.Join(t.TempDir(), "orderflow.creds")
	must(os.WriteFile(creds, file, 0o600))

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver, SystemAccount: pub(system)})
	must(err)
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return ns.ClientURL(), creds
}

// orderflow serve and the store subcommands connect with --nats-creds to
// a cluster that requires a credentials file; without it they are
// refused, and a missing file is reported before anything connects.
func TestNATSCredsFile(t *testing.T) {
	t.Parallel()
	url, creds := startOperatorServer(t)

	cfg := newTestConfig(t)
	cfg.DataDir, cfg.NATSURL, cfg.NATSCreds = "", url, creds
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(http.StatusCreated, "POST", "/v1/orders", map[string]any{"id": "o-creds", "order_type_id": "wash_fold_delivery"})
	// Applied by the trigger processor, on a connection of its own.
	c.must(http.StatusOK, "POST", "/v1/orders/o-creds/triggers", map[string]any{"trigger": "picked_up"})
	if code, out, errOut := runMain(t, "deadletters", "--nats-url="+url, "--nats-creds="+creds); code != 0 || !strings.Contains(out, "SEQ") {
		t.Fatalf("deadletters with --nats-creds: exit %d\n%s%s", code, out, errOut)
	}

	cfg.NATSCreds = ""
	ctx := ctxFor(t, time.Minute)
	if err := NewApp(cfg, slog.New(slog.DiscardHandler)).Run(ctx); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("without credentials: got %v, want an authorization violation", err)
	}
	if code, _, errOut := runMain(t, "deadletters", "--nats-url="+url); code == 0 || !strings.Contains(errOut, "Authorization Violation") {
		t.Fatalf("deadletters without --nats-creds: exit %d, %s", code, errOut)
	}

	missing := filepath.Join(t.TempDir(), "none.creds")
	for _, tc := range []struct {
		cfg  func(*Config)
		want string
	}{
		{func(c *Config) { c.NATSCreds = missing }, "--nats-creds: open " + missing},
		{func(c *Config) { c.NATSURL, c.NATSCreds = "", creds }, "--nats-creds needs --nats-url"},
	} {
		bad := cfg
		tc.cfg(&bad)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
	if code, _, errOut := runMain(t, "deadletters", "--nats-url="+url, "--nats-creds="+missing); code == 0 || !strings.Contains(errOut, "--nats-creds: open") {
		t.Fatalf("deadletters with a missing file: exit %d, %s", code, errOut)
	}
}
