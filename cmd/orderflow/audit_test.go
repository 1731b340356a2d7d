package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
)

// testClock is a clock the test moves by hand.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func startClockedApp(t *testing.T) (*App, *testClock) {
	clock := &testClock{}
	clock.set(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	app := startAppWith(t, newTestConfig(t), func(a *App) { a.Now = clock.now })
	return app, clock
}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := Main(context.Background(), args, &out, &errOut, func(string) (string, bool) { return "", false })
	return code, out.String(), errOut.String()
}

// as_of at every instant boundary: before placement 404; at or after each
// event and before the next, the position after that event.
func TestOrderAsOf(t *testing.T) {
	t.Parallel()
	app, clock := startClockedApp(t)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	clock.add(time.Hour)
	placedAt := clock.now()
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "asof", "order_type_id": "wash_fold_delivery"})
	times := []time.Time{placedAt}
	statuses := []string{"pending_pickup"}
	for _, tr := range workedTriggers[:4] {
		clock.add(10 * time.Minute)
		times = append(times, clock.now())
		o := c.must(200, "POST", "/v1/orders/asof/triggers", map[string]any{"trigger": tr})
		statuses = append(statuses, o["order"].(map[string]any)["position"].(map[string]any)["status"].(string))
	}
	at := func(ts time.Time) string { return "/v1/orders/asof?as_of=" + ts.Format(time.RFC3339Nano) }
	if p := c.problem(404, "not_found", "GET", at(placedAt.Add(-time.Nanosecond)), nil); !strings.Contains(p["detail"].(string), `order "asof" did not exist at`) {
		t.Fatalf("as of before the order: %v", p)
	}
	c.problem(404, "not_found", "GET", "/v1/orders/nobody?as_of="+placedAt.Format(time.RFC3339Nano), nil)
	// orderflow order show --as-of asks the same.
	code, out, errOut := runMain(t, "order", "show", "--server", app.HTTPAddr(), "--as-of", times[1].Format(time.RFC3339Nano), "asof")
	if code != 0 || !strings.HasPrefix(out, "as of ") || !strings.Contains(out, "("+statuses[1]+")") {
		t.Fatalf("order show --as-of: %d %s%s", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "order", "show", "--server", app.HTTPAddr(), "--as-of", placedAt.Add(-time.Second).Format(time.RFC3339Nano), "asof"); code != 1 ||
		!strings.Contains(errOut, "did not exist at") {
		t.Fatalf("order show --as-of before the order: %d %s", code, errOut)
	}
	// The zero time is a time like any other, before everything: not
	// "no as_of", which would answer with the order as it is now.
	for _, path := range []string{"/v1/orders/asof", "/v1/workflows/laundry_intake"} {
		if p := c.problem(404, "not_found", "GET", path+"?as_of=0001-01-01T00:00:00Z", nil); !strings.Contains(p["detail"].(string), "did not exist at 0001-01-01T00:00:00Z") {
			t.Fatalf("%s as of the zero time: %v", path, p)
		}
	}
	for i, ts := range times {
		for _, q := range []time.Time{ts, ts.Add(5 * time.Minute), ts.Add(10*time.Minute - time.Nanosecond)} {
			if i == len(times)-1 && q.After(ts) {
				q = ts.Add(time.Hour)
			}
			o := c.must(200, "GET", at(q), nil)
			if o["version"] != float64(i+1) || o["position"].(map[string]any)["status"] != statuses[i] {
				t.Fatalf("as of %s: version %v at %v, want %d at %s", q, o["version"], o["position"], i+1, statuses[i])
			}
		}
	}
	c.problem(400, "invalid_argument", "GET", "/v1/orders/asof?as_of=yesterday", nil)
	// The same instant in another zone, its "+" sent unescaped (as curl
	// sends what it is given) and escaped.
	plus := times[1].In(time.FixedZone("", 3600)).Format(time.RFC3339Nano)
	for _, q := range []string{plus, url.QueryEscape(plus)} {
		if o := c.must(200, "GET", "/v1/orders/asof?as_of="+q, nil); o["version"] != float64(2) {
			t.Fatalf("as of %s: version %v, want 2", q, o["version"])
		}
	}

	// A workflow as of a time: the version in force then.
	before := clock.now()
	clock.add(time.Minute)
	c.must(200, "POST", "/v1/workflows/standard_laundry_production/steps/move", map[string]any{"from": 0, "to": 2})
	old := c.must(200, "GET", "/v1/workflows/standard_laundry_production?as_of="+before.Format(time.RFC3339Nano), nil)
	now := c.must(200, "GET", "/v1/workflows/standard_laundry_production", nil)
	if old["version"].(float64) != now["version"].(float64)-1 || strings.Join(steps(old), ",") == strings.Join(steps(now), ",") {
		t.Fatalf("workflow as of %s: v%v %v; now v%v %v", before, old["version"], steps(old), now["version"], steps(now))
	}
	c.problem(404, "not_found", "GET", "/v1/workflows/standard_laundry_production?as_of=2020-01-01T00:00:00Z", nil)

	// An order type as of a time, the same way.
	before = clock.now()
	clock.add(time.Minute)
	c.must(200, "PATCH", "/v1/order-types/wash_fold_delivery", map[string]any{"name": "Wash & Fold", "intake": ""})
	old = c.must(200, "GET", "/v1/order-types/wash_fold_delivery?as_of="+before.Format(time.RFC3339Nano), nil)
	now = c.must(200, "GET", "/v1/order-types/wash_fold_delivery", nil)
	if old["version"] != float64(1) || old["name"] != "Wash & Fold Delivery" || old["intake"] != "laundry_intake" ||
		now["version"] != float64(2) || now["name"] != "Wash & Fold" || now["intake"] != nil {
		t.Fatalf("order type as of %s: %v; now %v", before, old, now)
	}
	c.problem(404, "not_found", "GET", "/v1/order-types/wash_fold_delivery?as_of=2020-01-01T00:00:00Z", nil)
	c.problem(404, "not_found", "GET", "/v1/order-types/nope?as_of="+before.Format(time.RFC3339Nano), nil)
	c.problem(400, "invalid_argument", "GET", "/v1/order-types/wash_fold_delivery?as_of=yesterday", nil)

	// The libraries, one entry and the lists, as of a time.
	before = clock.now()
	clock.add(time.Minute)
	c.must(200, "PATCH", "/v1/statuses/received", map[string]any{"name": "Checked In"})
	c.must(201, "POST", "/v1/triggers", map[string]any{"key": "pressed", "name": "Pressed"})
	q := "?as_of=" + before.Format(time.RFC3339Nano)
	if s := c.must(200, "GET", "/v1/statuses/received"+q, nil); s["name"] != "Received" {
		t.Fatalf("status as of %s: %v", before, s)
	}
	c.problem(404, "not_found", "GET", "/v1/triggers/pressed"+q, nil)
	c.must(200, "GET", "/v1/triggers/pressed", nil)
	names := func(path, field string) []string {
		var out []string
		for _, it := range c.must(200, "GET", path, nil)["items"].([]any) {
			out = append(out, it.(map[string]any)[field].(string))
		}
		return out
	}
	if got := names("/v1/statuses"+q, "name"); !slices.Contains(got, "Received") || slices.Contains(got, "Checked In") {
		t.Fatalf("statuses as of %s: %q", before, got)
	}
	if got := names("/v1/triggers"+q, "key"); slices.Contains(got, "pressed") || len(got) != 7 {
		t.Fatalf("triggers as of %s: %q", before, got)
	}
	if got := names("/v1/order-types"+q, "name"); !slices.Equal(got, []string{"Wash & Fold"}) {
		t.Fatalf("order types as of %s: %q", before, got)
	}
	early := "?as_of=2020-01-01T00:00:00Z"
	if got := names("/v1/workflows"+early, "id"); len(got) != 0 {
		t.Fatalf("workflows before any: %q", got)
	}
	c.problem(400, "invalid_argument", "GET", "/v1/statuses?as_of=yesterday", nil)

	// A clock that went back (another process's): a status added at 10:02
	// and renamed at 10:01 is, as of 10:01, as renamed, its library's
	// events taken whole up to the last that occurred by then.
	clock.set(time.Date(2026, 11, 27, 12, 2, 0, 0, time.UTC))
	c.must(201, "POST", "/v1/statuses", map[string]any{"key": "skewed", "name": "Skewed", "category": "ready"})
	clock.set(time.Date(2026, 11, 27, 12, 1, 0, 0, time.UTC))
	c.must(200, "PATCH", "/v1/statuses/skewed", map[string]any{"name": "Skewed Back"})
	if s := c.must(200, "GET", "/v1/statuses/skewed?as_of=2026-11-27T12:01:30Z", nil); s["name"] != "Skewed Back" {
		t.Fatalf("a status as of a time between its events' out-of-order clocks: %v", s)
	}
	// replay reads the streams the same way.
	_, shown, _ := runMain(t, "definitions", "show", "--server", app.HTTPAddr(), "--as-of", "2026-11-27T12:01:30Z")
	code, replayed, errOut := runMain(t, "replay", "--nats-url", app.NATSURL(), "--until", "2026-11-27T12:01:30Z", "--definitions")
	if code != 0 || replayed != shown || !strings.Contains(shown, `"name": "Skewed Back"`) {
		t.Fatalf("replay --definitions (exit %d %s):\n%s\ndefinitions show --as-of:\n%s", code, errOut, replayed, shown)
	}
}

// replay --until T gives the read models the live projections had at T.
func TestReplayUntil(t *testing.T) {
	t.Parallel()
	app, clock := startClockedApp(t)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	step := func(method, path string, body any) {
		clock.add(time.Minute)
		r := c.do(method, path, body)
		if r.Status >= 300 && r.Status != 409 {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
	}
	for i := range 6 {
		step("POST", "/v1/orders", map[string]any{"id": fmt.Sprintf("r-%d", i), "order_type_id": "wash_fold_delivery"})
		for _, tr := range workedTriggers[:i] {
			step("POST", fmt.Sprintf("/v1/orders/r-%d/triggers", i), map[string]any{"trigger": tr})
		}
	}
	step("POST", "/v1/orders/r-2/hold", map[string]any{})
	cut := clock.now()
	// What the API answers at T, which the replay must give back as is.
	live := map[string]any{}
	for key, path := range map[string]string{"statuses": "/v1/statuses", "triggers": "/v1/triggers", "workflows": "/v1/workflows",
		"order_types": "/v1/order-types", "orders": "/v1/orders?limit=500", "board": "/v1/board"} {
		live[key] = c.must(200, "GET", path, nil)["items"]
	}
	// Later events must not show in the replay.
	for i := range 6 {
		step("POST", fmt.Sprintf("/v1/orders/r-%d/triggers", i), map[string]any{"trigger": workedTriggers[i]})
	}
	step("POST", "/v1/orders", map[string]any{"id": "late", "order_type_id": "wash_fold_delivery"})
	c.must(200, "PATCH", "/v1/workflows/laundry_intake", map[string]any{"name": "Intake & Tagging"})

	out := filepath.Join(t.TempDir(), "replay.json")
	code, stdout, stderr := runMain(t, "replay", "--nats-url", app.NATSURL(), "--until", cut.Format(time.RFC3339Nano), "--out", out)
	if code != 0 {
		t.Fatalf("replay: %d %s %s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["until"] != cut.Format(time.RFC3339Nano) || doc["tenant"] != "default" || doc["applied_sequence"] == float64(0) {
		t.Fatalf("replay --out: until %v, tenant %v, applied %v", doc["until"], doc["tenant"], doc["applied_sequence"])
	}
	for key, want := range live {
		if !reflect.DeepEqual(doc[key], want) {
			t.Errorf("replayed %s:\n%v\nthe API's at T:\n%v", key, doc[key], want)
		}
	}
	if !bytes.Contains(b, []byte(`"Wash & Fold Delivery"`)) {
		t.Errorf("replay --out escapes text: %s", b)
	}
	// Printed as a table too.
	code, stdout, _ = runMain(t, "replay", "--nats-url", app.NATSURL(), "--until", cut.Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(stdout, "Standard Laundry Production") {
		t.Fatalf("replay table: %d %s", code, stdout)
	}
	// The zero time is a time, before every event: nothing is applied
	// (it is not "no --until", which would replay everything).
	code, stdout, stderr = runMain(t, "replay", "--nats-url", app.NATSURL(), "--until", "0001-01-01T00:00:00Z")
	if code != 0 || strings.Contains(stdout, "Laundry") || !strings.HasPrefix(stderr, "replayed 0 of ") ||
		!strings.Contains(stderr, `nothing of tenant "default" was stored by then`) {
		t.Fatalf("replay --until the zero time: %d %s %s", code, stdout, stderr)
	}
	// A tenant or an id that is no subject token is refused, not read as
	// a filter ("*" would show every order's events as one timeline).
	for _, args := range [][]string{
		{"replay", "--tenant", "a.b"},
		{"audit", "order", "--tenant", "a>b", "r-1"},
		{"audit", "order", "*"},
		{"audit", "workflow", "laundry_*"},
		{"audit", "ordertype", "wash_*"},
		{"audit", "definitions", "--tenant", "*"},
	} {
		code, stdout, stderr := runMain(t, append(args, "--nats-url", app.NATSURL())...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "invalid ") {
			t.Errorf("%v: exit %d, %q %q", args, code, stdout, stderr)
		}
	}
}

// verify passes on a clean store and fails, naming the place, on a
// tampered copy of a stream.
func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "v-1", "order_type_id": "wash_fold_delivery"})
	c.must(200, "POST", "/v1/orders/v-1/triggers", map[string]any{"trigger": "picked_up"})
	code, out, errOut := runMain(t, "verify", "--nats-url", app.NATSURL())
	if code != 0 || !strings.Contains(out, "0 break(s)") {
		t.Fatalf("clean verify: %d %s %s", code, out, errOut)
	}
	nc := natsConn(t, app)
	js, _ := jetstream.New(nc)
	ctx := ctxFor(t, time.Minute)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS_COPY", Subjects: []string{"ordercopy.>"}}); err != nil {
		t.Fatal(err)
	}
	stream, _ := js.Stream(ctx, eventstore.StreamOrders)
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		data := m.Data
		if seq == 2 {
			data = []byte(strings.Replace(string(data), `"worker":"`, `"worker":"mallory`, 1))
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "ordercopy." + m.Subject, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = runMain(t, "verify", "--nats-url", app.NATSURL(), "--streams", "ORDERS_COPY")
	if code != 1 || !strings.Contains(out, "ORDERS_COPY sequence 2") || !strings.Contains(out, "altered") {
		t.Fatalf("tampered verify: %d %s", code, out)
	}
}

// export → import into a fresh data dir → the same read models, the same
// verify result and the same history for every order.
func TestExportImport(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	for i := range 5 {
		id := fmt.Sprintf("x-%d", i)
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
		for _, tr := range workedTriggers[:i+1] {
			c.do("POST", "/v1/orders/"+id+"/triggers", map[string]any{"trigger": tr})
		}
	}
	c.do("POST", "/v1/orders/x-0/triggers", map[string]any{"trigger": "delivered"}) // a rejection
	// Text that encoding/json escapes by default, in the envelope itself.
	c.must(200, "POST", "/v1/orders/x-1/hold", map[string]any{"reason": "<late> & wet"}, "X-Orderflow-Actor", "kim & co <desk>", "X-Request-ID", "<a&b>")
	// An order's history carries each event byte for byte as stored, so
	// an auditor can check its hash from the answer.
	orders, err := jetStreamAt(t, app.NATSURL()).Stream(context.Background(), eventstore.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	held, err := orders.GetLastMsgForSubject(context.Background(), "orderflow.default.order.x-1.OrderHeld")
	if err != nil {
		t.Fatal(err)
	}
	if raw := c.do("GET", "/v1/orders/x-1/history", nil).Body; !bytes.Contains(raw, held.Data) {
		t.Fatalf("the history does not hold the stored event as it is:\n%s\n%s", held.Data, raw)
	}
	dump, fresh := exportImported(t, app)
	// Importing again into the now full store is refused.
	if code, _, errOut := runMain(t, "import", "--data-dir", fresh, "--in", dump); code == 0 || !strings.Contains(errOut, "empty store") || strings.Contains(errOut, "nil") {
		t.Fatalf("second import: %d %s", code, errOut)
	}
	// An export cut short (a copy interrupted), or one with a line that
	// is not in export's order, is read through first and refused whole:
	// nothing is stored, and the whole export then imports there. (From
	// a pipe lines are stored as they are read: TestImportFromAPipe.)
	whole, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	second := bytes.IndexByte(whole, '\n') + 1
	// The file is checked before the store is opened: a bad one makes no
	// store at a --data-dir that is not there yet (a mistyped one, say).
	refused := filepath.Join(t.TempDir(), "not-yet")
	for name, body := range map[string][]byte{
		"line 2: malformed JSON: unexpected EOF; nothing was imported":                                                          whole[:second+20],
		"line 2: ORDERFLOW_DEFINITIONS sequence 1 where 2 is due: the export has gaps or is out of order; nothing was imported": append(whole[:second:second], whole...),
	} {
		bad := filepath.Join(t.TempDir(), "bad.jsonl")
		if err := os.WriteFile(bad, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runMain(t, "import", "--data-dir", refused, "--in", bad); code == 0 || !strings.Contains(errOut, name) {
			t.Fatalf("import of a bad export: %d %s, want %q", code, errOut, name)
		}
		if _, err := os.Stat(refused); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused import made %s: %v", refused, err)
		}
	}
	if code, out, errOut := runMain(t, "import", "--data-dir", refused, "--in", dump); code != 0 || !strings.Contains(out, "imported") {
		t.Fatalf("import of the whole export where bad ones were refused: %d %s %s", code, out, errOut)
	}
	cfg := newTestConfig(t)
	cfg.DataDir = fresh
	restored := startApp(t, cfg)
	rc := newClient(t, restored)

	for _, path := range []string{"/v1/workflows", "/v1/statuses", "/v1/triggers", "/v1/order-types", "/v1/board"} {
		a, b := c.must(200, "GET", path, nil), rc.must(200, "GET", path, nil)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differs after import:\n%v\n%v", path, a, b)
		}
	}
	orig := listAll(t, c, nil, 100)
	copied := listAll(t, rc, nil, 100)
	if !reflect.DeepEqual(orig, copied) {
		t.Fatalf("orders differ after import")
	}
	for _, o := range orig {
		id := o["id"].(string)
		if a, b := history(t, c, id), history(t, rc, id); !reflect.DeepEqual(a, b) {
			t.Fatalf("history of %s differs after import", id)
		}
	}
	codeA, outA, _ := runMain(t, "verify", "--nats-url", app.NATSURL())
	codeB, outB, _ := runMain(t, "verify", "--nats-url", restored.NATSURL())
	trim := func(s string) string { return s[:strings.Index(s, " in ")] }
	if codeA != 0 || codeB != 0 || trim(outA) != trim(outB) {
		t.Fatalf("verify differs: %d %q vs %d %q", codeA, outA, codeB, outB)
	}
	// An export written with encoding/json's default escapes (as export
	// wrote them before) imports with every hash intact.
	escaped := filepath.Join(t.TempDir(), "escaped.jsonl")
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	var rewritten bytes.Buffer
	for line := range bytes.Lines(b) {
		var l exportLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(&rewritten).Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(rewritten.Bytes(), []byte(`kim \u0026 co`)) {
		t.Fatal("the rewritten export escapes nothing")
	}
	if err := os.WriteFile(escaped, rewritten.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	again := t.TempDir()
	if code, out, errOut := runMain(t, "import", "--data-dir", again, "--in", escaped); code != 0 {
		t.Fatalf("import of the escaped export: %d %s %s", code, out, errOut)
	}
	if code, out, _ := runMain(t, "verify", "--data-dir", again); code != 0 || trim(out) != trim(outA) {
		t.Fatalf("verify after importing the escaped export: %d %q", code, out)
	}

	code, out, _ := runMain(t, "audit", "order", "x-2", "--nats-url", restored.NATSURL())
	if code != 0 || !strings.Contains(out, "OrderAdvanced") || !strings.Contains(out, "Pending Pickup → Received") {
		t.Fatalf("audit order: %d %s", code, out)
	}
	code, out, _ = runMain(t, "audit", "order", "x-1", "--nats-url", restored.NATSURL())
	if code != 0 || !strings.Contains(out, "user:kim & co <desk>  reason: <late> & wet") {
		t.Fatalf("audit order: %d %s", code, out)
	}
	code, out, _ = runMain(t, "audit", "workflow", "standard_laundry_production", "--nats-url", restored.NATSURL())
	if code != 0 || !strings.Contains(out, "WorkflowStepMoved") || !strings.Contains(out, "Washing until wash_done; ") {
		t.Fatalf("audit workflow: %d %s", code, out)
	}
}

// exportImported exports app's store to the file dump and imports it into
// the new data dir fresh.
func exportImported(t *testing.T, app *App) (dump, fresh string) {
	t.Helper()
	dump = filepath.Join(t.TempDir(), "export.jsonl")
	if code, out, errOut := runMain(t, "export", "--nats-url", app.NATSURL(), "--out", dump); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	// Written beside it and renamed once whole: nothing else is left.
	if files, err := os.ReadDir(filepath.Dir(dump)); err != nil || len(files) != 1 || files[0].Name() != filepath.Base(dump) {
		t.Fatalf("the export's directory holds %v (%v), want %s alone", files, err, filepath.Base(dump))
	}
	fresh = t.TempDir()
	if code, out, errOut := runMain(t, "import", "--data-dir", fresh, "--in", dump); code != 0 || !strings.Contains(out, "imported") {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}
	return dump, fresh
}

// jetStreamAt connects to a NATS server for the test's duration.
func jetStreamAt(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}

// publishTrigger publishes an order's trigger over NATS with id as its
// Nats-Msg-Id and no body.
func publishTrigger(t *testing.T, ctx context.Context, js jetstream.JetStream, order, trigger, id string) *jetstream.PubAck {
	t.Helper()
	m := nats.NewMsg(eventstore.TriggerSubject("default", order, trigger))
	m.Header.Set(jetstream.MsgIDHeader, id)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// checkExport reads a whole export before anything is stored and refuses
// one that is not as export writes it, naming the first line that is not.
func TestCheckExport(t *testing.T) {
	t.Parallel()
	line := func(stream string, seq uint64, subject string) string {
		return fmt.Sprintf(`{"stream":%q,"seq":%d,"subject":%q}`+"\n", stream, seq, subject)
	}
	defs, orders, triggers := eventstore.StreamDefinitions, eventstore.StreamOrders, eventstore.StreamTriggers
	ok := line(defs, 1, "orderflow.default.status.washing.v1") + line(defs, 2, "orderflow.default.trigger-def.washed.v1") +
		line(orders, 1, "orderflow.default.order.o-1.OrderPlaced") + line(triggers, 1, "orderflow.default.trigger.o-1.picked_up")
	for _, tc := range []struct{ name, export, want string }{
		{"a whole export", ok, ""},
		{"an empty one", "", ""},
		{"orders only", line(orders, 1, "orderflow.default.order.o-1.OrderPlaced"), ""},
		{"a stream export does not write", ok + line("KV_orderflow", 1, "x"), `line 5: stream "KV_orderflow" is not one export writes (ORDERFLOW_DEFINITIONS, ORDERFLOW_ORDERS, ORDERFLOW_TRIGGERS, ORDERFLOW_DEADLETTER)`},
		{"streams out of order", ok + line(defs, 3, "orderflow.default.status.drying.v1"), "line 5: ORDERFLOW_DEFINITIONS comes after ORDERFLOW_TRIGGERS: not in export's order"},
		{"a gap", line(defs, 1, "a") + line(defs, 3, "b"), "line 2: ORDERFLOW_DEFINITIONS sequence 3 where 2 is due: the export has gaps or is out of order"},
		{"not from sequence 1", line(orders, 2, "a"), "line 1: ORDERFLOW_ORDERS sequence 2 where 1 is due"},
		{"no subject", line(defs, 1, "a") + line(defs, 2, ""), "line 2: no subject"},
		{"not JSON", line(defs, 1, "a") + "{\"stream\":\n", "line 2: malformed JSON: unexpected EOF"},
		{"a sequence that is no number", line(defs, 1, "a") + `{"stream":"ORDERFLOW_DEFINITIONS","seq":"2","subject":"b"}`, `line 2: field seq: a JSON string where a whole number, 0 or more belongs`},
		{"data that is no base64 string", line(defs, 1, "a") + `{"stream":"ORDERFLOW_TRIGGERS","seq":1,"subject":"b","data":5}`, "line 2: field data: a JSON number where a base64 string belongs"},
		{"a line that is no object", line(defs, 1, "a") + "[]\n", "line 2: the line is a JSON array; send a JSON object"},
	} {
		err := checkExport(strings.NewReader(tc.export))
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A trigger sent again with its Nats-Msg-Id after the duplicate window
// (an offline worker app catching up, say) is stored twice. An export of
// that store imports: the second copy is not taken for a duplicate of the
// first, and the import leaves the streams' duplicate window as it was.
func TestImportTakesATriggerSentAgainAfterTheWindow(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.DuplicateWindow = 100 * time.Millisecond
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "again-1", "order_type_id": "wash_fold_delivery"})
	js := jetStreamAt(t, app.NATSURL())
	ctx := ctxFor(t, time.Minute)
	send := func() *jetstream.PubAck { return publishTrigger(t, ctx, js, "again-1", "picked_up", "again-t1") }
	first := send()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return !send().Duplicate }, "the trigger stored again past the window")
	_, fresh := exportImported(t, app)
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: fresh, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	s, err := jetStreamAt(t, srv.ClientURL()).Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.Config.Duplicates != 2*time.Minute {
		t.Fatalf("imported triggers: %d messages, duplicate window %s; want both copies (the first at %d), and the window of a new store (%s)",
			info.State.Msgs, info.Config.Duplicates, first.Sequence, 2*time.Minute)
	}
	srv.Shutdown() // the data dir is served next

	// Served, the restored store accounts for both copies.
	rcfg := newTestConfig(t)
	rcfg.DataDir = fresh
	restored := startApp(t, rcfg)
	var out string
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		var code int
		code, out, _ = runMain(t, "verify", "--triggers", "--nats-url", restored.NATSURL())
		return code == 0
	}, "verify --triggers on the restored store")
	if !strings.Contains(out, "0 missing") {
		t.Fatalf("verify --triggers: %s", out)
	}
}

// A trigger larger than the trigger stream now takes, which a store of an
// earlier version took (it took messages of up to 1 MiB) and put aside,
// imports: import lifts the stream's limit while it runs and puts it
// back, and the restored store accounts for the trigger by its dead
// letter.
func TestImportTakesATriggerOverTheSizeLimit(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "large-1", "order_type_id": "wash_fold_delivery"})
	js := jetStreamAt(t, app.NATSURL())
	ctx := ctxFor(t, time.Minute)
	s, err := js.Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = 1 << 20 // as an earlier version made it
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(eventstore.TriggerSubject("default", "large-1", "picked_up"))
	m.Header.Set(jetstream.MsgIDHeader, "large-t1")
	m.Data = []byte(`{"note":"` + strings.Repeat("x", 100<<10) + `"}`)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		dls, err := handlers.ReadDeadLetters(ctx, app.Store(), handlers.DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1
	}, "the large trigger put aside")

	rcfg := newTestConfig(t)
	_, rcfg.DataDir = exportImported(t, app)
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: rcfg.DataDir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	s, err = jetStreamAt(t, srv.ClientURL()).Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	if info := s.CachedInfo(); info.State.Msgs != 1 || info.Config.MaxMsgSize != eventstore.MaxTriggerMsgSize {
		t.Fatalf("imported trigger stream: %d messages, messages of up to %d bytes; want the large trigger, and %d",
			info.State.Msgs, info.Config.MaxMsgSize, eventstore.MaxTriggerMsgSize)
	}
	srv.Shutdown() // the data dir is served next

	restored := startApp(t, rcfg)
	if code, out, _ := runMain(t, "verify", "--triggers", "--nats-url", restored.NATSURL()); code != 0 || !strings.Contains(out, "1 dead letters") || !strings.Contains(out, "0 missing") {
		t.Fatalf("verify --triggers on the restored store: %d %s", code, out)
	}
}

// A trigger put aside for an order not placed yet stays put aside on a
// store restored from an export: the export carries the dead letters.
// The restored store's lanes start after it; where they were there
// before the import (a server running during it), the trigger processor
// reads every imported trigger again, and does not process that one
// again (before, it took effect there, an event the original store never
// had).
func TestRestoredStoreKeepsTriggersPutAside(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	ctx := ctxFor(t, time.Minute)
	publishTrigger(t, ctx, jetStreamAt(t, app.NATSURL()), "early-1", "picked_up", "early-t1")
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		dls, err := handlers.ReadDeadLetters(ctx, app.Store(), handlers.DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1
	}, "the trigger for an order not placed yet put aside")
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "early-1", "order_type_id": "wash_fold_delivery"})
	dump := filepath.Join(t.TempDir(), "export.jsonl")
	if code, out, errOut := runMain(t, "export", "--nats-url", app.NATSURL(), "--out", dump); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}

	for _, tc := range []struct {
		name       string
		lanesFirst bool
		said       string
	}{
		{"lanes made by the import", false, "the trigger lanes start at trigger 2: the 1 before it were answered or put aside"},
		{"lanes there before the import", true, "the trigger lanes were there before the import: a trigger processor reads every imported trigger again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTestConfig(t)
			srv := eventstoretest.StartServerIn(t, cfg.DataDir)
			if tc.lanesFirst {
				st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
				if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: cfg.Lanes}); err != nil {
					t.Fatal(err)
				}
			}
			if code, out, errOut := runMain(t, "import", "--nats-url", srv.ClientURL(), "--in", dump); code != 0 || !strings.Contains(out, tc.said) {
				t.Fatalf("import: %d %s %s; want %q", code, out, errOut, tc.said)
			}
			srv.Shutdown() // the data dir is served next
			restored := startApp(t, cfg)
			// A new trigger of the order comes after the imported one in
			// its lane: once it is answered, the imported one, if the lanes
			// copied it, has been read again.
			publishTrigger(t, ctx, jetStreamAt(t, restored.NATSURL()), "early-1", "picked_up", "early-t2")
			rc := newClient(t, restored)
			eventstoretest.Eventually(t, 30*time.Second, func() bool {
				return rc.must(200, "GET", "/v1/orders/early-1", nil)["version"].(float64) >= 2
			}, "the new trigger answered on the restored store")
			events := history(t, rc, "early-1")
			if len(events) != 2 || events[1]["causation_id"] != "early-t2" {
				t.Fatalf("restored history: %v; want the order placed and advanced by early-t2 only", events)
			}
			if code, out, _ := runMain(t, "deadletters", "--nats-url", restored.NATSURL()); code != 0 || !strings.Contains(out, "early-1") {
				t.Fatalf("deadletters on the restored store: %d %s", code, out)
			}
			if code, out, _ := runMain(t, "verify", "--triggers", "--nats-url", restored.NATSURL()); code != 0 || !strings.Contains(out, "1 dead letters") {
				t.Fatalf("verify --triggers on the restored store: %d %s", code, out)
			}
		})
	}
}

// A line the store refuses part way stops the import there: the lines
// before it are stored, each at its sequence (its batch, refused whole,
// stored one line at a time), nothing after it, and the import says what
// the store holds; a second import there is refused.
func TestImportStopsAtALineTheStoreRefuses(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	for i := range 5 {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": fmt.Sprintf("refused-%d", i), "order_type_id": "wash_fold_delivery"})
	}
	dump, _ := exportImported(t, app)
	whole, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(whole), "\n")
	bad := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "refused-3") })
	if bad < 0 {
		t.Fatal("no line of order refused-3 in the export")
	}
	// A subject no stream takes: the orders' stream wants five tokens.
	lines[bad] = strings.Replace(lines[bad], "orderflow.default.order.refused-3.OrderPlaced", "orderflow.default.order.refused-3", 1)
	if err := os.WriteFile(dump, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	into := t.TempDir()
	code, out, errOut := runMain(t, "import", "--data-dir", into, "--in", dump)
	want := fmt.Sprintf("line %d (ORDERFLOW_ORDERS", bad+1)
	if code != 1 || out != "" || !strings.Contains(errOut, want) || !strings.Contains(errOut, fmt.Sprintf("the store now holds the %d lines before it", bad)) {
		t.Fatalf("import: %d %q %q; want it stopped at %q", code, out, errOut, want)
	}
	srv := eventstoretest.StartServerIn(t, into)
	js := jetStreamAt(t, srv.ClientURL())
	ctx := ctxFor(t, 30*time.Second)
	held := 0
	for _, stream := range exportStreams {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		state := st.CachedInfo().State
		if state.Msgs != state.LastSeq {
			t.Fatalf("%s holds %d messages up to %d", stream, state.Msgs, state.LastSeq)
		}
		held += int(state.Msgs)
	}
	if held != bad {
		t.Fatalf("the store holds %d messages, want the %d lines before the refused one", held, bad)
	}
	srv.Shutdown()
	if code, _, errOut := runMain(t, "import", "--data-dir", into, "--in", dump); code != 1 || !strings.Contains(errOut, "import needs an empty store") {
		t.Fatalf("a second import: %d %q", code, errOut)
	}
}

// A restored store's lanes start at the first imported trigger still to
// be read: the triggers before it (one put aside, one answered) are not
// read again; the two stored while no processor ran take effect, and a
// trigger sent again after them with an answered id is answered as a
// duplicate.
func TestRestoredStoreReadsOnlyTriggersStillToRead(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	for _, id := range []string{"still-1", "still-2"} {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
	}
	ctx := ctxFor(t, time.Minute)
	js := jetStreamAt(t, app.NATSURL())
	publishTrigger(t, ctx, js, "ghost", "picked_up", "still-t0")   // 1: put aside
	publishTrigger(t, ctx, js, "still-1", "picked_up", "still-t1") // 2: answered
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		dls, err := handlers.ReadDeadLetters(ctx, app.Store(), handlers.DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1 && c.must(200, "GET", "/v1/orders/still-1", nil)["version"].(float64) == 2
	}, "the first trigger put aside and the second answered")
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	// Stored while no processor runs.
	srv := eventstoretest.StartServerIn(t, cfg.DataDir)
	js = jetStreamAt(t, srv.ClientURL())
	publishTrigger(t, ctx, js, "still-2", "picked_up", "still-t2")    // 3
	publishTrigger(t, ctx, js, "still-1", "items_tagged", "still-t3") // 4
	again := nats.NewMsg(eventstore.TriggerSubject("default", "still-1", "picked_up"))
	again.Header.Set(jetstream.MsgIDHeader, "still-t1-again")
	again.Data = []byte(`{"trigger_id":"still-t1"}`)
	if _, err := js.PublishMsg(ctx, again); err != nil { // 5
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "export.jsonl")
	if code, out, errOut := runMain(t, "export", "--nats-url", srv.ClientURL(), "--out", dump); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	srv.Shutdown()
	fresh := t.TempDir()
	code, out, errOut := runMain(t, "import", "--data-dir", fresh, "--in", dump)
	if code != 0 || !strings.Contains(out, "the trigger lanes start at trigger 3: the 2 before it were answered or put aside") {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}

	rcfg := newTestConfig(t)
	rcfg.DataDir = fresh
	restored := startApp(t, rcfg)
	rc := newClient(t, restored)
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		lc, err := restored.Store().LaneCopyState(ctx)
		return err == nil && lc.Copied == 5 && lc.Waiting == 0 && restored.proc.Handled() >= 3
	}, "the three triggers from the third on read")
	if got, want := restored.proc.Outcomes(), []handlers.TriggerCount{{Outcome: domain.OutcomeAdvanced, N: 2}, {Outcome: domain.OutcomeDuplicate, N: 1}}; !slices.Equal(got, want) {
		t.Fatalf("outcomes on the restored store: %+v, want %+v (the first two triggers not read again)", got, want)
	}
	for id, version := range map[string]float64{"still-1": 3, "still-2": 2} {
		if v := rc.must(200, "GET", "/v1/orders/"+id, nil)["version"].(float64); v != version {
			t.Fatalf("order %s at version %v, want %v", id, v, version)
		}
	}
	if code, out, _ := runMain(t, "verify", "--triggers", "--nats-url", restored.NATSURL()); code != 0 ||
		!strings.Contains(out, "accounted for 5 stored triggers: 4 answered in their order's history, 1 dead letters, 0 on their way, 0 missing") {
		t.Fatalf("verify --triggers on the restored store: %d %s", code, out)
	}
}

// import makes its streams with --replicas: into a cluster's streams of
// three replicas, an import without it is refused before it stores
// anything (it would have scaled them down to one copy), and with
// --replicas 3 it goes in.
func TestImportIntoAClusterTakesReplicas(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	eventstoretest.OpenStore(t, c.URLs(), eventstore.Config{Replicas: 3})
	app := startApp(t, newTestConfig(t))
	dump := filepath.Join(t.TempDir(), "export.jsonl")
	if code, out, errOut := runMain(t, "export", "--nats-url", app.NATSURL(), "--out", dump); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "import", "--nats-url", c.URLs(), "--in", dump); code == 0 || !strings.Contains(errOut, "--replicas 3") {
		t.Fatalf("import without --replicas into streams of 3: %d %s", code, errOut)
	}
	if code, out, errOut := runMain(t, "import", "--nats-url", c.URLs(), "--replicas", "3", "--in", dump); code != 0 || !strings.Contains(out, "imported") {
		t.Fatalf("import --replicas 3: %d %s %s", code, out, errOut)
	}
}

// The commands that read the streams refuse a --data-dir that holds no
// store (and make nothing there) and a server with none of orderflow's
// streams, instead of reading them as an empty store.
func TestStoreCommandsRefuseWhatIsNoStore(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "mistyped")
	bare := eventstoretest.StartServer(t)
	for _, args := range [][]string{{"verify"}, {"export"}, {"replay"}, {"deadletters"}, {"audit", "order", "o-1"}} {
		code, out, errOut := runMain(t, append(args, "--data-dir", missing)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "--data-dir "+missing+" holds no store") {
			t.Errorf("%v --data-dir (missing): %d %q %q", args, code, out, errOut)
		}
		code, out, errOut = runMain(t, append(args, "--nats-url", bare.ClientURL())...)
		if code != 1 || out != "" || !strings.Contains(errOut, "holds none of orderflow's streams") {
			t.Errorf("%v --nats-url (no streams): %d %q %q", args, code, out, errOut)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a command made the missing data dir: %v", err)
	}
}

// audit names statuses as they were when each event occurred: a status
// renamed later shows its old name in the events before the rename. It
// names the workflow version an order enters.
func TestAuditNamesStatusesAsTheyWere(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "n-1", "order_type_id": "wash_fold_delivery"})
	c.must(200, "POST", "/v1/orders/n-1/triggers", map[string]any{"trigger": "picked_up"})
	c.must(200, "PATCH", "/v1/statuses/received", map[string]any{"name": "Checked In"})
	c.must(200, "POST", "/v1/orders/n-1/triggers", map[string]any{"trigger": "items_tagged"})
	c.must(200, "POST", "/v1/orders/n-1/triggers", map[string]any{"trigger": "wash_done"})
	c.must(200, "POST", "/v1/orders/n-1/move", map[string]any{"workflow_id": "home_delivery", "step": 0, "reason": "no drying needed"})

	// A step within a workflow says nothing more; one into another
	// workflow names the version the order pinned there.
	code, out, errOut := runMain(t, "audit", "order", "n-1", "--nats-url", app.NATSURL())
	for _, want := range []string{
		"picked_up: Pending Pickup → Received\n",
		"items_tagged: Checked In → Washing (standard_laundry_production v4)\n",
		"wash_done: Washing → Drying\n",
		"Drying → Ready for Delivery (home_delivery v2): no drying needed\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("audit order: want %q in %d %s%s", want, code, out, errOut)
		}
	}
	code, out, errOut = runMain(t, "audit", "workflow", "laundry_intake", "--nats-url", app.NATSURL())
	if code != 0 || !strings.Contains(out, "Received until items_tagged") || strings.Contains(out, "Checked In") {
		t.Fatalf("audit workflow: %d %s%s", code, out, errOut)
	}
}

// audit workflow says what each change did before the steps it left.
func TestAuditWorkflowSaysWhatChanged(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Repair", "type": "intake",
		"steps": []map[string]any{{"status": "pending_pickup", "trigger": "picked_up"}, {"status": "received", "trigger": "items_tagged"}}})
	c.must(200, "PATCH", "/v1/workflows/repair", map[string]any{"name": "Repair Intake"})
	c.must(200, "POST", "/v1/workflows/repair/steps", map[string]any{"status": "washing", "trigger": "wash_done", "position": 1})
	c.must(200, "POST", "/v1/workflows/repair/steps/move", map[string]any{"from": 2, "to": 0})
	c.must(200, "DELETE", "/v1/workflows/repair/steps/1", nil)
	c.must(200, "PUT", "/v1/workflows/repair/steps", map[string]any{"steps": []map[string]any{{"status": "received", "trigger": "items_tagged"}}})
	c.must(200, "PATCH", "/v1/workflows/repair", map[string]any{"type": "fulfillment", "fulfillment_method": "store_pickup"})
	c.must(200, "POST", "/v1/workflows/repair/archive", nil)

	code, out, errOut := runMain(t, "audit", "workflow", "repair", "--nats-url", app.NATSURL())
	for _, want := range []string{
		`WorkflowCreated        user:api  "Repair" intake: Pending Pickup until picked_up; Received until items_tagged`,
		`WorkflowRenamed        user:api  renamed from "Repair"; "Repair Intake" intake:`,
		`WorkflowStepAdded      user:api  added step 1 (Washing until wash_done); "Repair Intake" intake: Pending Pickup until picked_up; Washing until wash_done; Received until items_tagged`,
		`WorkflowStepMoved      user:api  moved step 2 (Received) to 0; "Repair Intake" intake: Received until items_tagged; Pending Pickup until picked_up; Washing until wash_done`,
		`WorkflowStepRemoved    user:api  removed step 1 (Pending Pickup until picked_up); "Repair Intake" intake: Received until items_tagged; Washing until wash_done`,
		`WorkflowStepsReplaced  user:api  replaced the steps; "Repair Intake" intake: Received until items_tagged`,
		`WorkflowTypeChanged    user:api  type was intake; "Repair Intake" fulfillment (store_pickup): Received until items_tagged`,
		`WorkflowArchived       user:api  archived; "Repair Intake" fulfillment (store_pickup): Received until items_tagged`,
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("audit workflow: want a line with\n%s\ngot %d\n%s%s", want, code, out, errOut)
		}
	}
}

// audit ordertype and audit definitions say what each change to the
// process did, naming statuses and workflows as they were then.
func TestAuditDefinitions(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	seeded := len(auditDefinitions(t, app))
	cut := time.Now()
	c.must(200, "PATCH", "/v1/statuses/received", map[string]any{"name": "Checked In"})
	c.must(200, "PATCH", "/v1/statuses/folding", map[string]any{"category": "ready"})
	c.must(200, "PATCH", "/v1/triggers/folded", map[string]any{"name": "Folded and bagged", "description": "bagged for delivery"})
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Pressing", "category": "in_progress"})
	c.must(201, "POST", "/v1/triggers", map[string]any{"key": "pressed", "name": "Pressed", "description": "ironed flat"})
	c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Pressing Only", "type": "production",
		"steps": []map[string]any{{"status": "pressing", "trigger": "pressed"}}})
	c.must(200, "PATCH", "/v1/order-types/wash_fold_delivery", map[string]any{"name": "Press & Deliver", "intake": "", "production": "pressing_only"})
	c.must(200, "PATCH", "/v1/workflows/pressing_only", map[string]any{"name": "Pressing"})
	c.must(200, "POST", "/v1/order-types/wash_fold_delivery/archive", nil)
	c.must(200, "POST", "/v1/workflows/pressing_only/archive", nil)
	c.must(200, "DELETE", "/v1/triggers/pressed", nil)
	c.must(200, "DELETE", "/v1/statuses/pressing", nil)

	code, out, errOut := runMain(t, "audit", "ordertype", "wash_fold_delivery", "--nats-url", app.NATSURL())
	want := []string{
		`OrderTypeCreated   user:api  "Wash & Fold Delivery": intake Laundry Intake, production Standard Laundry Production, fulfillment Home Delivery`,
		`OrderTypeChanged   user:api  name was "Wash & Fold Delivery", intake was Laundry Intake, production was Standard Laundry Production; "Press & Deliver": intake none, production Pressing Only, fulfillment Home Delivery`,
		`OrderTypeArchived  user:api  archived; "Press & Deliver": intake none, production Pressing, fulfillment Home Delivery`,
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 4 {
		t.Fatalf("audit ordertype: %d\n%s%s", code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("audit ordertype: want a line with\n%s\ngot\n%s", w, out)
		}
	}

	whats := auditDefinitions(t, app)
	if len(whats) != seeded+12 {
		t.Fatalf("audit definitions: %d events, want %d and 12\n%q", len(whats), seeded, whats)
	}
	for i, w := range []string{
		`StatusAdded pending_pickup: "Pending Pickup" (pending)`,
		`TriggerAdded picked_up: "Picked up"`,
		`OrderTypeCreated wash_fold_delivery: "Wash & Fold Delivery": intake Laundry Intake, production Standard Laundry Production, fulfillment Home Delivery`,
	} {
		if !slices.Contains(whats[:seeded], w) {
			t.Errorf("audit definitions: no %d %q in the worked example's events", i, w)
		}
	}
	for i, w := range []string{
		`StatusRenamed received: "Received" → "Checked In"`,
		`StatusRecategorized folding "Folding": in_progress → ready`,
		`TriggerRenamed folded: "Folded" → "Folded and bagged", description "" → "bagged for delivery"`,
		`StatusAdded pressing: "Pressing" (in_progress)`,
		`TriggerAdded pressed: "Pressed", "ironed flat"`,
		`WorkflowCreated pressing_only: "Pressing Only" production: Pressing until pressed`,
		`OrderTypeChanged wash_fold_delivery: name was "Wash & Fold Delivery", intake was Laundry Intake, production was Standard Laundry Production; "Press & Deliver": intake none, production Pressing Only, fulfillment Home Delivery`,
		`WorkflowRenamed pressing_only: renamed from "Pressing Only"; "Pressing" production: Pressing until pressed`,
		`OrderTypeArchived wash_fold_delivery: archived; "Press & Deliver": intake none, production Pressing, fulfillment Home Delivery`,
		`WorkflowArchived pressing_only: archived; "Pressing" production: Pressing until pressed`,
		`TriggerArchived pressed "Pressed"`,
		`StatusArchived pressing "Pressing"`,
	} {
		if got := whats[seeded+i]; got != w {
			t.Errorf("audit definitions, change %d:\n got %s\nwant %s", i, got, w)
		}
	}

	// --since leaves out what occurred before it, naming the rest as then.
	code, out, errOut = runMain(t, "audit", "definitions", "--nats-url", app.NATSURL(), "--since", cut.Format(time.RFC3339Nano))
	_, all, _ := runMain(t, "audit", "definitions", "--nats-url", app.NATSURL())
	squeezed := func(text string) []string { // the columns' widths differ
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
		return lines
	}
	lines, allLines := squeezed(out), squeezed(all)
	if code != 0 || len(lines) != 1+12 || lines[0] != allLines[0] || !slices.Equal(lines[1:], allLines[len(allLines)-12:]) {
		t.Fatalf("audit definitions --since the changes: %d\n%s%s\nall:\n%s", code, out, errOut, all)
	}
	code, out, errOut = runMain(t, "audit", "definitions", "--nats-url", app.NATSURL(), "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("audit definitions --since later: %d %s%s", code, out, errOut)
	}
	code, _, errOut = runMain(t, "audit", "definitions", "--nats-url", app.NATSURL(), "--since", "monday")
	if code != 1 || !strings.Contains(errOut, `--since "monday": want RFC 3339`) {
		t.Fatalf("audit definitions --since monday: %d %s", code, errOut)
	}

	// Another tenant's definitions are not this one's; a tenant with none is said so.
	code, out, errOut = runMain(t, "audit", "definitions", "--tenant", "other", "--nats-url", app.NATSURL())
	if code != 1 || out != "" || !strings.Contains(errOut, `no definitions in tenant "other"`) {
		t.Fatalf("audit definitions of an empty tenant: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runMain(t, "audit", "definitions", "extra", "--nats-url", app.NATSURL())
	if code != 1 || out != "" || !strings.Contains(errOut, "orderflow audit definitions: takes no arguments") {
		t.Fatalf("audit definitions with an argument: %d %q %q", code, out, errOut)
	}
	code, _, errOut = runMain(t, "audit", "ordertype", "nope", "--nats-url", app.NATSURL())
	if code != 1 || !strings.Contains(errOut, `no order type "nope"`) {
		t.Fatalf("audit of an unknown order type: %d %q", code, errOut)
	}
}

// auditDefinitions runs audit definitions and returns each line's event
// type and what it says.
func auditDefinitions(t *testing.T, app *App) []string {
	t.Helper()
	code, out, errOut := runMain(t, "audit", "definitions", "--nats-url", app.NATSURL())
	if code != 0 {
		t.Fatalf("audit definitions: %d %s%s", code, out, errOut)
	}
	var whats []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := regexp.MustCompile(`  +`).Split(line, 5)
		if len(f) != 5 {
			t.Fatalf("audit definitions: line %q", line)
		}
		whats = append(whats, f[2]+" "+f[4])
	}
	return whats
}

// audit order says who did what: what supervisors did and why (or that no
// reason was given), the worker a trigger sent over HTTP named, the
// version a migration took the order to, and why a trigger was rejected,
// with the trigger expected when there was one.
func TestAuditOrderSaysWhatSupervisorsDid(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "s-1", "order_type_id": "wash_fold_delivery"})
	pinned := c.must(200, "GET", "/v1/orders/s-1", nil)["position"].(map[string]any)["workflow_version"].(float64)
	c.must(200, "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "picked_up", "worker": "ana"})
	c.must(200, "POST", "/v1/orders/s-1/hold", map[string]any{"reason": "stain check"})
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "items_tagged"})
	c.must(200, "POST", "/v1/orders/s-1/resume", nil)
	c.must(200, "POST", "/v1/workflows/laundry_intake/steps/move", map[string]any{"from": 0, "to": 1})
	c.must(200, "POST", "/v1/orders/s-1/migrate", map[string]any{"workflow_id": "laundry_intake", "to_version": pinned + 1})
	c.must(200, "POST", "/v1/orders/s-1/cancel", map[string]any{"reason": "customer left"})
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "items_tagged"})

	code, out, errOut := runMain(t, "audit", "order", "s-1", "--nats-url", app.NATSURL())
	var whats []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] { // after the heading
		f := strings.Fields(l) // TIME V EVENT WHO WHAT...
		whats = append(whats, strings.Join(f[2:], " "))
	}
	want := []string{
		fmt.Sprintf("OrderPlaced user:api → Pending Pickup (laundry_intake v%d)", int(pinned)),
		"OrderAdvanced worker:ana picked_up: Pending Pickup → Received",
		"OrderHeld user:api reason: stain check",
		"TriggerRejected worker:api items_tagged rejected: order_on_hold, expected items_tagged",
		"OrderResumed user:api (no reason given)",
		fmt.Sprintf("OrderMigrated user:api laundry_intake v%d → v%[2]d: migrated to version %[2]d", int(pinned), int(pinned)+1),
		"OrderCancelled user:api reason: customer left",
		"TriggerRejected worker:api items_tagged rejected: order_cancelled",
	}
	if code != 0 || !slices.Equal(whats, want) {
		t.Fatalf("audit order: exit %d\ngot  %q\nwant %q\n%s%s", code, whats, want, out, errOut)
	}
}
