package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

type sseEvent struct {
	ID   uint64
	Type string
	Data map[string]any
}

// sseStream reads Server-Sent Events from GET /v1/events.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openSSE opens the feed; headers are pairs of name, value.
func openSSE(t *testing.T, app *App, query, lastEventID string, headers ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+app.HTTPAddr()+"/v1/events"+query, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 256), cancel: cancel}
	ready := make(chan struct{})
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first && strings.HasPrefix(line, ":") {
				close(ready) // the server has subscribed
				first = false
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID, _ = strconv.ParseUint(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &ev.Data)
			case line == "" && ev.ID != 0:
				s.events <- ev
				ev = sseEvent{}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(eventstoretest.Patience(10 * time.Second)):
		t.Fatal("the feed did not start")
	}
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next is the feed's next event, checked against the OpenAPI document's
// Event schema (the feed sends Events, as histories do).
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("feed closed")
		}
		if errs := document().check("event", map[string]any{"$ref": "#/components/schemas/Event"}, ev.Data); len(errs) > 0 || ev.Data["type"] != ev.Type {
			t.Errorf("feed event %d (%s) does not match the Event schema: %v\n%v", ev.ID, ev.Type, errs, ev.Data)
		}
		return ev
	case <-time.After(eventstoretest.Patience(15 * time.Second)):
		t.Fatal("no event on the feed")
	}
	return sseEvent{}
}

// A feed client sees events sent after it connected; it disconnects, more
// events happen, and reconnecting with Last-Event-ID brings exactly the
// missed ones, in order.
func TestEventFeedResumes(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "early", "order_type_id": "wash_fold_delivery"})

	feed := openSSE(t, app, "", "")
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "sse-1", "order_type_id": "wash_fold_delivery"})
	c.must(200, "POST", "/v1/orders/sse-1/triggers", map[string]any{"trigger": "picked_up"})
	ev := feed.next(t)
	if ev.Type != "OrderPlaced" || ev.Data["aggregate_id"] != "sse-1" {
		t.Fatalf("first event %+v (events before connecting must not appear)", ev)
	}
	ev = feed.next(t)
	if ev.Type != "OrderAdvanced" || ev.Data["aggregate_id"] != "sse-1" {
		t.Fatalf("second event %+v", ev)
	}
	lastSeen := ev.ID
	feed.close()

	// Missed while away: six more events.
	for _, tr := range workedTriggers[1:4] {
		c.must(200, "POST", "/v1/orders/sse-1/triggers", map[string]any{"trigger": tr})
	}
	c.must(200, "POST", "/v1/orders/early/hold", map[string]any{"reason": "away"})
	c.problem(409, "trigger_rejected", "POST", "/v1/orders/early/triggers", map[string]any{"trigger": "picked_up"})
	c.must(200, "POST", "/v1/orders/early/resume", map[string]any{})
	wantTypes := []string{"OrderAdvanced", "OrderAdvanced", "OrderAdvanced", "OrderHeld", "TriggerRejected", "OrderResumed"}

	again := openSSE(t, app, "", strconv.FormatUint(lastSeen, 10))
	prev := lastSeen
	for i, want := range wantTypes {
		ev := again.next(t)
		if ev.Type != want || ev.ID <= prev {
			t.Fatalf("missed event %d: %+v (want %s after %d)", i, ev, want, prev)
		}
		prev = ev.ID
	}
	// And then live again, nothing repeated.
	c.must(200, "POST", "/v1/orders/early/cancel", map[string]any{})
	if ev := again.next(t); ev.Type != "OrderCancelled" || ev.ID <= prev {
		t.Fatalf("live after resume: %+v", ev)
	}

	// Filters: one order, some types.
	// A type named twice is one filter (JetStream refuses overlapping ones).
	only := openSSE(t, app, "?order_id=sse-1&types=OrderAdvanced,OrderCompleted,OrderAdvanced", "")
	for _, tr := range workedTriggers[4:] {
		c.must(200, "POST", "/v1/orders/sse-1/triggers", map[string]any{"trigger": tr})
	}
	for _, want := range []string{"OrderAdvanced", "OrderAdvanced", "OrderCompleted"} {
		if ev := only.next(t); ev.Type != want || ev.Data["aggregate_id"] != "sse-1" {
			t.Fatalf("filtered feed: %+v, want %s", ev, want)
		}
	}
	c.problem(400, "invalid_argument", "GET", "/v1/events?types=Nope", nil)
	c.problem(400, "invalid_argument", "GET", "/v1/events?order_id=a.b", nil)

	// An event id past the stream's end (another store's) follows from the
	// end instead of waiting for the stream to get there.
	ahead := openSSE(t, app, "", "999999999")
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "sse-late", "order_type_id": "wash_fold_delivery"})
	if ev := ahead.next(t); ev.Type != "OrderPlaced" || ev.Data["aggregate_id"] != "sse-late" {
		t.Fatalf("feed from an id past the end: %+v", ev)
	}
}

// A dashboard still reading the event feed does not hold up shutdown: the
// feed ends when the app closes, and Close reports no error.
func TestCloseEndsOpenFeeds(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	resp, err := http.Get("http://" + app.HTTPAddr() + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": orderflow") {
		t.Fatalf("feed opened with %q, %v", line, err)
	}
	if err := app.Close(); err != nil {
		t.Fatalf("close with a feed open: %v", err)
	}
	if _, err := io.ReadAll(rd); err != nil {
		t.Fatalf("feed did not end cleanly: %v", err)
	}
}

// A process serves at most --max-feeds event feeds at once (each holds a
// JetStream consumer, and a stream takes only so many): one more is
// answered 503 with Retry-After, and a feed that ends makes room.
func TestEventFeedsAreCapped(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.MaxFeeds = 2
	app := startApp(t, cfg)
	c := newClient(t, app)
	first, second := openSSE(t, app, "", ""), openSSE(t, app, "", "")
	defer second.close()
	r := c.do("GET", "/v1/events", nil)
	if r.Status != 503 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "--max-feeds") {
		t.Fatalf("a third feed: %d, Retry-After %q: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	first.close()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return app.api.OpenFeeds() == 1 }, "the closed feed to end")
	openSSE(t, app, "", "").close()
}

// With API keys, one key holds at most --max-feeds-per-key feeds: one
// more is 429, while another key still opens feeds, and a feed closed
// makes room for the key again.
func TestEventFeedsPerKeyAreCapped(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.MaxFeedsPerKey = 2
	app, _, tokens := startAppWithKeys(t, cfg, keySpec{"board", "default", "reader"}, keySpec{"wall", "default", "reader"})
	feed := func(key string) *sseStream { return openSSE(t, app, "", "", "Authorization", "Bearer "+tokens[key]) }
	first, second := feed("board"), feed("board")
	defer second.close()
	c := newClient(t, app)
	c.token = tokens["board"]
	r := c.do("GET", "/v1/events", nil)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "--max-feeds-per-key") {
		t.Fatalf("a third feed of one key: %d, Retry-After %q: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	feed("wall").close() // another key is not held back
	first.close()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return app.api.OpenFeeds() == 1 }, "the closed feeds to end")
	feed("board").close()
}

// orderflow events prints each order event as it is stored, from the
// first with --after 0, and follows on after the server restarts, from
// the last event it printed.
func TestEventsCommand(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "ev-1", "order_type_id": "wash_fold_delivery"})
	none := func(string) (string, bool) { return "", false }
	// The command reads through a proxy, as behind a load balancer: the
	// server restarts on another port, and answers 502 while it is down.
	var backend atomic.Pointer[url.URL]
	backend.Store(&url.URL{Scheme: "http", Host: app.HTTPAddr()})
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(backend.Load()) },
		FlushInterval: -1, // each event as it comes
		ErrorLog:      log.New(io.Discard, "", 0),
	})
	defer proxy.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut eventstoretest.LogBuffer
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"events", "--server", proxy.URL, "--order", "ev-1", "--after", "0"}, &out, &errOut, none)
	}()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		eventstoretest.Eventually(t, 30*time.Second, cond, what+"; printed:\n"+out.String()+errOut.String())
	}
	has := func(s string) func() bool { return func() bool { return strings.Contains(out.String(), s) } }
	eventually("the placing", has("  ev-1  OrderPlaced  user:api  → Pending Pickup (laundry_intake v"))
	c.must(200, "POST", "/v1/orders/ev-1/triggers", map[string]any{"trigger": "picked_up", "worker": "ana"})
	eventually("the first trigger", has("  ev-1  OrderAdvanced  worker:ana  picked_up: Pending Pickup → Received"))

	// The server restarts: the command follows on.
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	eventually("a 502 while the server is down", func() bool { return strings.Contains(errOut.String(), "waiting for the server") })
	again := startApp(t, cfg)
	backend.Store(&url.URL{Scheme: "http", Host: again.HTTPAddr()})
	newClient(t, again).must(200, "POST", "/v1/orders/ev-1/triggers", map[string]any{"trigger": "items_tagged", "worker": "bo"})
	eventually("the trigger after the restart", has("  ev-1  OrderAdvanced  worker:bo  items_tagged: Received → Washing"))
	if !strings.Contains(errOut.String(), "the feed ended; following again after event ") {
		t.Errorf("stderr: %s", errOut.String())
	}
	cancel()
	if got := <-code; got != 0 {
		t.Fatalf("events ended with %d: %s", got, errOut.String())
	}
	var seqs []uint64
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		seq, err := strconv.ParseUint(strings.Fields(line)[0], 10, 64)
		if err != nil || len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
			t.Fatalf("line %q after sequences %v", line, seqs)
		}
		seqs = append(seqs, seq)
	}
	if len(seqs) != 3 {
		t.Fatalf("printed %d events, want 3 (each once):\n%s", len(seqs), out.String())
	}

	// --json prints the envelopes; a refusal or no server is an error.
	short, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	var js strings.Builder
	if got := Main(short, []string{"events", "--server", "http://" + again.HTTPAddr(), "--after", fmt.Sprint(seqs[1]), "--json"}, &js, io.Discard, none); got != 0 ||
		!strings.HasPrefix(js.String(), `{"id":`) || !strings.Contains(js.String(), `"trigger":"items_tagged"`) || strings.Count(js.String(), "\n") != 1 {
		t.Fatalf("events --json: %d %q", got, js.String())
	}
	// An event id past the stream's end (a store since replaced) is
	// followed from the stream's end, and the command says why.
	var past strings.Builder
	shortAgain, stopAgain := context.WithTimeout(context.Background(), 2*time.Second)
	defer stopAgain()
	if got := Main(shortAgain, []string{"events", "--server", "http://" + again.HTTPAddr(), "--after", "999999", "--json"}, io.Discard, &past, none); got != 0 ||
		!strings.Contains(past.String(), "event id 999999 is past the stream's last event: not from this store") {
		t.Fatalf("events --after 999999: %d %q", got, past.String())
	}
	if got, _, errOut := runMain(t, "events", "--server", proxy.URL, "--types", "OrderAdvance"); got != 1 || !strings.Contains(errOut, "invalid_argument") {
		t.Fatalf("events --types OrderAdvance: %d %s", got, errOut)
	}
	if got, _, errOut := runMain(t, "events", "--server", "127.0.0.1:1"); got != 1 || !strings.Contains(errOut, "is orderflow running") {
		t.Fatalf("events with no server: %d %s", got, errOut)
	}
}

// orderflow events reads the feed's comment lines: the heading's note and
// any other comment go to stderr, keep-alives nowhere; after a feed that
// ends it follows again from the last event it printed, and a refusal
// then (an API key revoked, say) ends it with the server's problem.
func TestEventsCommandReadsTheFeedsComments(t *testing.T) {
	t.Parallel()
	const event = `{"id":"e-7","type":"OrderHeld","tenant":"default","aggregate_type":"order","aggregate_id":"o-1","version":2,` +
		`"occurred_at":"2026-12-06T10:00:00Z","actor":{"kind":"user","id":"ana"},"data":{"reason":"r"}}`
	var asked atomic.Int32
	var resumedFrom atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" { // the status names, for lines that are not --json
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"items":[]}`)
			return
		}
		if asked.Add(1) > 1 {
			resumedFrom.Store(r.Header.Get("Last-Event-ID"))
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"status":401,"title":"Unauthenticated","detail":"no such API key","code":"unauthenticated"}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": orderflow order events after sequence 6 (a note from the server)\n\n"+
			": keep-alive\n\n"+
			": the API key this feed was opened with no longer lets it in\n\n"+
			"id: 7\nevent: OrderHeld\ndata: "+event+"\n\n")
	}))
	defer srv.Close()
	code, out, errOut := runMain(t, "events", "--server", srv.URL, "--json")
	if code != 1 || out != event+"\n" {
		t.Fatalf("exit %d, printed %q (stderr %q); want exit 1 and the one event", code, out, errOut)
	}
	for _, want := range []string{"a note from the server", "no longer lets it in", "following again after event 7", "(unauthenticated): no such API key"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not say %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "keep-alive") || resumedFrom.Load() != "7" {
		t.Errorf("stderr %q; followed again from %v, want 7", errOut, resumedFrom.Load())
	}
}
