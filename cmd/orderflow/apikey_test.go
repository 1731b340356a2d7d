package main

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// newKey makes an API key with `orderflow apikey` into keysFile and
// returns its token.
func newKey(t *testing.T, keysFile, name, tenant, role string) string {
	t.Helper()
	code, out, errOut := runMain(t, "apikey", "--name", name, "--tenant", tenant, "--role", role, "--keys-file", keysFile)
	if code != 0 {
		t.Fatalf("apikey %s: exit %d: %s", name, code, errOut)
	}
	return strings.TrimSpace(out)
}

// keySpec is an API key to make: its name, tenant and role.
type keySpec struct{ name, tenant, role string }

// startAppWithKeys starts an App with --api-keys, on a keys file made with
// `orderflow apikey`, and returns it, the file and each key's token.
func startAppWithKeys(t *testing.T, cfg Config, specs ...keySpec) (app *App, keysFile string, tokens map[string]string) {
	t.Helper()
	keysFile = filepath.Join(t.TempDir(), "keys")
	tokens = map[string]string{}
	for _, k := range specs {
		tokens[k.name] = newKey(t, keysFile, k.name, k.tenant, k.role)
	}
	cfg.APIKeys = keysFile
	return startApp(t, cfg), keysFile, tokens
}

// With --api-keys, every /v1 route asks for a key's bearer token and a
// role high enough; a key acts for its own tenant only, under its name;
// refused requests store nothing; health, readiness and the OpenAPI
// document stay open.
func TestAPIKeysAuthenticateAuthorizeAndScopeByTenant(t *testing.T) {
	t.Parallel()
	app, keys, tokens := startAppWithKeys(t, newTestConfig(t),
		keySpec{"admin", "default", "admin"}, keySpec{"acme-admin", "acme", "admin"},
		keySpec{"board", "default", "reader"}, keySpec{"van-7", "default", "worker"}, keySpec{"lead", "default", "supervisor"},
		keySpec{"ops", "default", "operator"})
	if fi, err := os.Stat(keys); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keys file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if b, _ := os.ReadFile(keys); strings.Contains(string(b), tokens["admin"]) {
		t.Fatal("the keys file holds a token, not only its hash")
	}
	as := func(name string) *httpClient {
		return &httpClient{t: t, base: "http://" + app.HTTPAddr(), token: tokens[name]}
	}
	anon := newClient(t, app)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json"} {
		anon.must(200, "GET", path, nil)
	}

	seedWorkedExample(t, as("admin"))
	seedWorkedExample(t, as("acme-admin")) // the same ids, in another tenant
	as("van-7").must(201, "POST", "/v1/orders", map[string]any{"id": "o-1", "order_type_id": "wash_fold_delivery"})
	as("van-7").must(200, "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "picked_up", "worker": "ana"})

	r := anon.do("GET", "/v1/statuses", nil)
	if r.Status != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d, WWW-Authenticate %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	refused := []refusedRequest{
		{"no token", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery"}, nil, 401, "unauthenticated"},
		{"unknown token", "GET", "/v1/orders/o-1", nil, []string{"Authorization", "Bearer of_nope"}, 401, "unauthenticated"},
		{"not a bearer token", "GET", "/v1/orders/o-1", nil, []string{"Authorization", "Basic " + tokens["admin"]}, 401, "unauthenticated"},
		{"reader places an order", "POST", "/v1/orders", map[string]any{"order_type_id": "wash_fold_delivery"},
			[]string{"Authorization", "Bearer " + tokens["board"]}, 403, "forbidden"},
		{"reader applies a trigger", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "items_tagged"},
			[]string{"Authorization", "Bearer " + tokens["board"]}, 403, "forbidden"},
		{"worker holds an order", "POST", "/v1/orders/o-1/hold", map[string]any{"reason": "r"},
			[]string{"Authorization", "Bearer " + tokens["van-7"]}, 403, "forbidden"},
		{"supervisor adds a status", "POST", "/v1/statuses", map[string]any{"name": "Ironing", "category": "in_progress"},
			[]string{"Authorization", "Bearer " + tokens["lead"]}, 403, "forbidden"},
		{"supervisor rebuilds the read models", "POST", "/v1/projections/rebuild", nil,
			[]string{"Authorization", "Bearer " + tokens["lead"]}, 403, "forbidden"},
		{"a tenant's admin rebuilds every tenant's read models", "POST", "/v1/projections/rebuild", nil,
			[]string{"Authorization", "Bearer " + tokens["acme-admin"]}, 403, "forbidden"},
		{"token in the query of a route that is not the feed", "GET", "/v1/orders/o-1?access_token=" + tokens["admin"], nil, nil, 401, "unauthenticated"},
		{"another tenant's order", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "items_tagged"},
			[]string{"Authorization", "Bearer " + tokens["acme-admin"]}, 404, "not_found"},
	}
	expectRefused(t, app, anon, refused)
	if p := as("acme-admin").problem(403, "forbidden", "POST", "/v1/projections/rebuild", nil); p["detail"] !=
		`forbidden: key "acme-admin" has the role admin; POST /v1/projections/rebuild needs operator` {
		t.Errorf("an admin rebuilds the read models: %v", p["detail"])
	}

	// Each role may do what the roles below it may.
	as("board").must(200, "GET", "/v1/orders/o-1", nil)
	as("lead").must(200, "POST", "/v1/orders/o-1/hold", map[string]any{"reason": "customer away"}, "X-Orderflow-Actor", "kim")
	as("admin").must(200, "POST", "/v1/orders/o-1/resume", map[string]any{"reason": "back"})
	as("ops").must(200, "GET", "/v1/projections", nil)

	// The actor of each event is the key's name (and the worker the body
	// names, or the caller's own X-Orderflow-Actor, after it).
	var actors []string
	for _, ev := range as("board").must(200, "GET", "/v1/orders/o-1/history", nil)["events"].([]any) {
		actors = append(actors, ev.(map[string]any)["actor"].(map[string]any)["id"].(string))
	}
	if got := strings.Join(actors, " "); got != "van-7 van-7/ana lead/kim admin" {
		t.Fatalf("actors %q, want the keys' names", got)
	}

	// The other tenant sees only its own orders, board and feed (each
	// tenant's feeds have a reader of their own).
	acme := as("acme-admin")
	feed := openSSE(t, app, "?access_token="+tokens["acme-admin"], "") // as a browser's EventSource asks
	ownFeed := openSSE(t, app, "", "", "Authorization", "Bearer "+tokens["board"])
	acme.must(201, "POST", "/v1/orders", map[string]any{"id": "a-1", "order_type_id": "wash_fold_delivery"})
	acme.must(200, "POST", "/v1/orders/a-1/triggers", map[string]any{"trigger": "picked_up", "trigger_id": "acme-t1"})
	for _, want := range []string{"OrderPlaced", "OrderAdvanced"} {
		if ev := feed.next(t); ev.Type != want || ev.Data["tenant"] != "acme" || ev.Data["aggregate_id"] != "a-1" {
			t.Fatalf("acme's feed: %s %v, want its own %s", ev.Type, ev.Data, want)
		}
	}
	// A worker app of that tenant on NATS moves its order on too.
	wc, err := client.New(natsConn(t, app), client.WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wc.ApplyTrigger(ctxFor(t, time.Minute), client.Trigger{OrderID: "a-1", Trigger: "items_tagged", Worker: "sam"}); err != nil ||
		res.Outcome != domain.OutcomeAdvanced {
		t.Fatalf("acme's trigger over NATS: %+v, %v", res, err)
	}
	if ev := feed.next(t); ev.Type != "OrderAdvanced" || ev.Data["tenant"] != "acme" {
		t.Fatalf("acme's feed: %s %v", ev.Type, ev.Data)
	}
	as("lead").must(200, "POST", "/v1/orders/o-1/hold", map[string]any{"reason": "a look"})
	as("lead").must(200, "POST", "/v1/orders/o-1/resume", map[string]any{"reason": "done"})
	for _, want := range []string{"OrderHeld", "OrderResumed"} { // and nothing of acme's before them
		if ev := ownFeed.next(t); ev.Type != want || ev.Data["tenant"] != "default" || ev.Data["aggregate_id"] != "o-1" {
			t.Fatalf("the default tenant's feed: %s %v, want its own %s", ev.Type, ev.Data, want)
		}
	}
	for name, want := range map[string]string{"acme-admin": "a-1", "board": "o-1"} {
		items := as(name).must(200, "GET", "/v1/orders", nil)["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["id"] != want {
			t.Fatalf("%s lists %v, want only %s", name, items, want)
		}
	}
	as("board").problem(404, "not_found", "GET", "/v1/orders/a-1", nil)
	// A trigger id another tenant used is refused without naming its order.
	p := as("van-7").problem(409, "conflict", "POST", "/v1/orders/o-1/triggers", map[string]any{"trigger": "items_tagged", "trigger_id": "acme-t1"})
	if d, _ := p["detail"].(string); !strings.Contains(d, "a trigger for another order") || strings.Contains(d, "a-1") {
		t.Fatalf("another tenant's trigger id: %v", p)
	}
	// An Idempotency-Key names one order in its tenant: the same key
	// places an order in each.
	for name, id := range map[string]string{"van-7": "o-keyed", "acme-admin": "a-keyed"} {
		as(name).must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"}, "Idempotency-Key", "shared-key")
	}

	// The client commands send the token.
	url := "http://" + app.HTTPAddr()
	if code, out, errOut := runMain(t, "trigger", "--server", url, "--token", tokens["van-7"], "o-1", "items_tagged"); code != 0 || !strings.HasPrefix(out, "advanced") {
		t.Fatalf("trigger with a token: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "order", "show", "--server", url, "o-1"); code == 0 || !strings.Contains(errOut, "unauthenticated") {
		t.Fatalf("order show without a token: exit %d: %s", code, errOut)
	}
}

// A keys file that cannot be used stops the start with the reason, and
// `orderflow apikey` refuses to add a key the file could not take.
func TestAPIKeysFileMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	newKey(t, keys, "admin", "default", "admin")
	before, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runMain(t, "apikey", "--name", "admin", "--role", "reader", "--keys-file", keys); code == 0 || out != "" ||
		!strings.Contains(errOut, keys+` has a key named "admin" already: take it back first (orderflow apikey revoke --name admin), or choose another name`) {
		t.Fatalf("a second key of the same name: exit %d: %q %s", code, out, errOut)
	}
	// A file that is unreadable already is told as such, and left alone.
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("ana default boss sha256:"+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runMain(t, "apikey", "--name", "bo", "--role", "reader", "--keys-file", broken); code == 0 || !strings.Contains(errOut, broken+": line 1: ") {
		t.Fatalf("a key added to an unreadable file: exit %d: %s", code, errOut)
	}
	if after, err := os.ReadFile(keys); err != nil || string(after) != string(before) {
		t.Fatalf("the refused key changed the file: %v\n%s", err, after)
	}
	for name, content := range map[string]string{
		"missing":        "",
		"empty":          "# no keys yet\n",
		"unknown role":   "ana default boss sha256:" + strings.Repeat("ab", 32) + "\n",
		"unsafe tenant":  "ana a.b reader sha256:" + strings.Repeat("ab", 32) + "\n",
		"short hash":     "ana default reader sha256:abcd\n",
		"a token itself": "ana default reader of_SECRET\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if name != "missing" {
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := newTestConfig(t)
			cfg.APIKeys = path
			err := NewApp(cfg, nil).Run(ctxFor(t, time.Minute))
			if err == nil || !strings.Contains(err.Error(), "--api-keys") {
				t.Fatalf("start with a %s keys file: %v", name, err)
			}
		})
	}
}

// ReloadAPIKeys (SIGHUP in serve) lets in a key added to the file and
// refuses one taken out (`apikey revoke`), from the next request on; a
// file that cannot be used leaves the keys in use alone.
func TestAPIKeysReload(t *testing.T) {
	t.Parallel()
	app, keys, tokens := startAppWithKeys(t, newTestConfig(t), keySpec{"admin", "default", "admin"})
	admin := tokens["admin"]
	as := func(token string) *httpClient {
		return &httpClient{t: t, base: "http://" + app.HTTPAddr(), token: token}
	}

	late := newKey(t, keys, "late", "default", "reader")
	as(late).problem(401, "unauthenticated", "GET", "/v1/statuses", nil)
	if err := app.ReloadAPIKeys(); err != nil {
		t.Fatal(err)
	}
	as(late).must(200, "GET", "/v1/statuses", nil)

	if code, out, errOut := runMain(t, "apikey", "list", "--keys-file", keys); code != 0 ||
		!regexp.MustCompile(`(?m)^admin +default +admin +never\nlate +default +reader +never$`).MatchString(out) {
		t.Fatalf("apikey list: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "apikey", "revoke", "--keys-file", keys, "--name", "admin"); code != 0 {
		t.Fatalf("apikey revoke: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runMain(t, "apikey", "revoke", "--keys-file", keys, "--name", "late"); code == 0 || !strings.Contains(errOut, "no keys") {
		t.Fatalf("revoking the last key: exit %d: %s", code, errOut)
	}
	// A name the file does not hold, or that is no key name, changes nothing.
	kept, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"ghost": `has no key "ghost"`, "a.b": "key name"} {
		if code, _, errOut := runMain(t, "apikey", "revoke", "--keys-file", keys, "--name", name); code == 0 || !strings.Contains(errOut, want) {
			t.Fatalf("revoking %q: exit %d: %s", name, code, errOut)
		}
	}
	if now, err := os.ReadFile(keys); err != nil || string(now) != string(kept) {
		t.Fatalf("a refused revoke changed the keys file: %q (%v), was %q", now, err, kept)
	}
	as(admin).must(200, "GET", "/v1/statuses", nil) // until the reload
	if err := app.ReloadAPIKeys(); err != nil {
		t.Fatal(err)
	}
	as(admin).problem(401, "unauthenticated", "GET", "/v1/statuses", nil)

	if err := os.WriteFile(keys, []byte("late default reader not-a-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadAPIKeys(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	as(late).must(200, "GET", "/v1/statuses", nil)
}

// An event feed lasts as long as its dashboard stays, but does not
// outlive its key: a key taken out of the file ends its open feeds when
// the file is read again, and opens no new one; other keys' feeds go on
// until their key expires.
func TestFeedsEndWithTheirKeys(t *testing.T) {
	t.Parallel()
	app, keys, tokens := startAppWithKeys(t, newTestConfig(t), keySpec{"admin", "default", "admin"}, keySpec{"board", "default", "reader"})
	c := newClient(t, app)
	c.token = tokens["admin"]
	seedWorkedExample(t, c)
	feed := func(key string) *sseStream { return openSSE(t, app, "", "", "Authorization", "Bearer "+tokens[key]) }
	board, admin := feed("board"), feed("admin")
	if code, _, errOut := runMain(t, "apikey", "revoke", "--keys-file", keys, "--name", "board"); code != 0 {
		t.Fatalf("apikey revoke: exit %d: %s", code, errOut)
	}
	if err := app.ReloadAPIKeys(); err != nil {
		t.Fatal(err)
	}
	ended(t, board, "the revoked key's feed")
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "after-revoke", "order_type_id": "wash_fold_delivery"})
	if ev := admin.next(t); ev.Type != "OrderPlaced" || ev.Data["aggregate_id"] != "after-revoke" {
		t.Fatalf("the admin's feed after another key was revoked: %+v", ev)
	}
	c.token = tokens["board"]
	c.problem(401, "unauthenticated", "GET", "/v1/events", nil)

	// A key given an expiry ends its feed when it expires.
	b, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	if err := os.WriteFile(keys, []byte(strings.Replace(string(b), "\n", " expires="+expires+"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadAPIKeys(); err != nil {
		t.Fatal(err)
	}
	ended(t, admin, "the expired key's feed")
}

// ended waits for a feed to end.
func ended(t *testing.T, s *sseStream, what string) {
	t.Helper()
	deadline := time.After(eventstoretest.Patience(10 * time.Second))
	for {
		select {
		case _, open := <-s.events:
			if !open {
				return
			}
		case <-deadline:
			t.Fatalf("%s is still open", what)
		}
	}
}

// A dashboard page of an allowed origin calls the API from a browser: the
// preflight is answered without a key, and the answer to the real request
// (with its key) is marked readable by the page; another origin's is not.
func TestCORSForBrowserDashboards(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.CORSOrigins = "https://board.example.com"
	app, _, tokens := startAppWithKeys(t, cfg, keySpec{"board", "default", "reader"})
	token := tokens["board"]
	c := newClient(t, app)
	r := c.do("OPTIONS", "/v1/orders", nil, "Origin", "https://board.example.com",
		"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://board.example.com" {
		t.Fatalf("preflight: %d %v", r.Status, r.Header)
	}
	r = c.do("GET", "/v1/orders", nil, "Origin", "https://board.example.com", "Authorization", "Bearer "+token)
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://board.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Orderflow-Sequence") {
		t.Fatalf("request from the allowed origin: %d %v", r.Status, r.Header)
	}
	r = c.do("GET", "/v1/orders", nil, "Origin", "https://other.example.com", "Authorization", "Bearer "+token)
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin was allowed: %v", r.Header)
	}
	cfg.CORSOrigins = "board.example.com"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--cors-origins") {
		t.Fatalf("an origin without a scheme: %v", err)
	}
}

// A key made with --expires-in is let in until then, and refused with 401
// after; `apikey list` shows when each key expires, and serve warns of
// keys expired or about to.
func TestAPIKeysExpire(t *testing.T) {
	t.Parallel()
	keys := filepath.Join(t.TempDir(), "keys")
	newKey(t, keys, "admin", "default", "admin")
	code, out, errOut := runMain(t, "apikey", "--name", "temp", "--role", "reader", "--expires-in", "1d", "--keys-file", keys)
	if code != 0 {
		t.Fatalf("apikey --expires-in 1d: exit %d: %s", code, errOut)
	}
	temp := strings.TrimSpace(out)
	for _, bad := range []string{"0d", "-1h", "soon", "1.5d", "99999d"} {
		if code, _, errOut := runMain(t, "apikey", "--name", "bad", "--role", "reader", "--expires-in", bad, "--keys-file", keys); code == 0 || !strings.Contains(errOut, "--expires-in") {
			t.Errorf("apikey --expires-in %s: exit %d: %s", bad, code, errOut)
		} else if !strings.Contains(errOut, "at most 36500d") { // 99999d: how long is allowed
			t.Errorf("apikey --expires-in %s does not say the limit: %s", bad, errOut)
		}
	}
	// A key that expired (written by hand: apikey makes none in the past).
	sum := sha256.Sum256([]byte("of_OLD"))
	f, err := os.OpenFile(keys, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "old default reader sha256:%x expires=2026-01-01T00:00:00Z\n", sum); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if code, out, errOut := runMain(t, "apikey", "list", "--keys-file", keys); code != 0 ||
		!regexp.MustCompile(`(?m)^admin +default +admin +never\nold +default +reader +2026-01-01T00:00:00Z \(expired\)\ntemp +default +reader +20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(out) {
		t.Fatalf("apikey list: exit %d: %s%s", code, out, errOut)
	}

	cfg := newTestConfig(t)
	cfg.APIKeys = keys
	var log eventstoretest.LogBuffer
	app := startAppWith(t, cfg, func(a *App) { a.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	if l := log.String(); !strings.Contains(l, `expired are refused; revoke them or make new ones" keys=[old]`) ||
		!strings.Contains(l, `expire within 7 days" keys=[temp]`) {
		t.Errorf("no warning of expired keys in the log:\n%s", l)
	}
	(&httpClient{t: t, base: "http://" + app.HTTPAddr(), token: temp}).must(200, "GET", "/v1/statuses", nil)
	r := (&httpClient{t: t, base: "http://" + app.HTTPAddr(), token: "of_OLD"}).do("GET", "/v1/statuses", nil)
	if r.Status != 401 || !strings.Contains(string(r.Body), `key \"old\" expired at 2026-01-01T00:00:00Z`) ||
		!strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("an expired key: %d %v %s", r.Status, r.Header, r.Body)
	}
}

// With --rate-limit, a key that sends more than its rate gets 429
// rate_limited with Retry-After, and stores nothing; other keys go on.
func TestAPIKeysRateLimit(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.RateLimit = 0.001 // one request, then one each 1,000 s
	app, _, tokens := startAppWithKeys(t, cfg, keySpec{"van-7", "default", "worker"}, keySpec{"board", "default", "reader"})
	as := func(name string) *httpClient {
		return &httpClient{t: t, base: "http://" + app.HTTPAddr(), token: tokens[name]}
	}
	as("van-7").must(200, "GET", "/v1/orders", nil)
	p := as("van-7").problem(429, "rate_limited", "POST", "/v1/orders", map[string]any{"id": "o-1", "order_type_id": "x"})
	if !strings.Contains(p["detail"].(string), `key "van-7" may send 0.001 requests a second`) {
		t.Fatalf("problem %v", p)
	}
	if r := as("van-7").do("GET", "/v1/orders", nil); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %v", r.Status, r.Header)
	}
	as("board").must(404, "GET", "/v1/orders/o-1", nil) // nothing stored
	// A client command does not wait out a Retry-After longer than it may take.
	url := "http://" + app.HTTPAddr()
	if code, _, errOut := runMain(t, "order", "show", "--server", url, "--token", tokens["board"], "o-1"); code != 1 ||
		!strings.Contains(errOut, "rate_limited") {
		t.Fatalf("order show over the rate: exit %d: %s", code, errOut)
	}
}

// The client commands send a request the rate limit refused again once
// the server's Retry-After has passed.
func TestClientCommandsWaitOutTheRateLimit(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.RateLimit = 2 // bursts of two
	app, _, tokens := startAppWithKeys(t, cfg, keySpec{"board", "default", "reader"})
	url := "http://" + app.HTTPAddr()
	for i := range 3 {
		if code, _, errOut := runMain(t, "order", "show", "--server", url, "--token", tokens["board"], "o-1"); code != 1 ||
			!strings.Contains(errOut, "not_found") {
			t.Fatalf("order show %d: exit %d: %s", i, code, errOut)
		}
	}
}

// apikey's commands say which flag is missing, or left over.
func TestAPIKeyCommandMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apikey", "--role", "admin"}, "--name is required"},
		{[]string{"apikey", "--name", "x", "--role", "admin", "extra"}, `takes no arguments, got ["extra"]`},
		{[]string{"apikey", "list"}, "--keys-file is required"},
		{[]string{"apikey", "list", "--keys-file", "k", "--name", "x"}, "--name is for revoke"},
		{[]string{"apikey", "revoke", "--keys-file", "k"}, "--name is required: the key to take back"},
		{[]string{"apikey", "revoke", "--keys-file", "k", "--name", "x", "y"}, `takes no arguments, got ["y"]`},
	} {
		if code, _, errOut := runMain(t, tc.args...); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %s", tc.args, code, errOut)
		}
	}
}
