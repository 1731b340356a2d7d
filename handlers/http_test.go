package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// What the store could not do in time, or not now, is a 503 with
// Retry-After, not a 500: a worker app or dashboard sends the same request
// again a moment later (a cluster electing a stream leader answers reads
// and writes with timeouts for a few seconds).
func TestStoreTroubleAnswersUnavailable(t *testing.T) {
	api := &API{Log: slog.New(slog.DiscardHandler)}
	for _, err := range []error{
		fmt.Errorf("last sequence of orderflow.default.order.o1.> from the leader: %w", context.DeadlineExceeded),
		fmt.Errorf("append: %w: %w", eventstore.ErrOutcomeUnknown, context.DeadlineExceeded),
		fmt.Errorf("append: %w", eventstore.ErrNoLeader),
		fmt.Errorf("load orderflow.default.order.o1.>: %w", nats.ErrNoResponders),
		fmt.Errorf("last sequence of orderflow.default.order.o1.> from the leader: %w",
			&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}),
		fmt.Errorf("append: %w", eventstore.ErrStorageFull),
		fmt.Errorf("load orderflow.default.order.o1.>: %w: ORDERFLOW_ORDERS sequence 7, stored, was not among the events read", eventstore.ErrIncompleteRead),
	} {
		w := httptest.NewRecorder()
		api.fail(w, httptest.NewRequest(http.MethodGet, "/v1/orders/o1", nil), err)
		var p Problem
		if jerr := json.Unmarshal(w.Body.Bytes(), &p); jerr != nil || w.Code != http.StatusServiceUnavailable ||
			p.Code != "unavailable" || p.Detail != err.Error() || w.Header().Get("Retry-After") != "1" {
			t.Errorf("%v: HTTP %d, Retry-After %q, %s", err, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	w := httptest.NewRecorder()
	api.fail(w, httptest.NewRequest(http.MethodGet, "/v1/orders/o1", nil), fmt.Errorf("something else"))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Retry-After") != "" {
		t.Errorf("an unexpected error: HTTP %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
}

// Requests answered 503 during an election log one line, not one each;
// every 500 is logged.
func TestUnavailableLoggedOnce(t *testing.T) {
	var logged bytes.Buffer
	api := &API{Log: slog.New(slog.NewTextHandler(&logged, nil))}
	for range 50 {
		api.fail(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/orders/o1/triggers", nil),
			fmt.Errorf("append: %w", eventstore.ErrNoLeader))
	}
	for range 2 {
		api.fail(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/orders/o1", nil), errors.New("something else"))
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "requests answered 503") ||
		!strings.Contains(lines[1], "level=ERROR") || !strings.Contains(lines[2], "something else") {
		t.Fatalf("logged:\n%s", logged.String())
	}
}

// A request whose client went away while the store was slow is not the
// server's failure: no line above debug, and the metrics count it as 499.
func TestClientGoneIsNotLogged(t *testing.T) {
	var logged bytes.Buffer
	api := &API{Log: slog.New(slog.NewTextHandler(&logged, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	api.fail(w, httptest.NewRequest(http.MethodGet, "/v1/orders/o1", nil).WithContext(ctx),
		fmt.Errorf("last sequence of orderflow.default.order.o1.> from the leader: %w", context.Canceled))
	if w.Code != statusClientClosed || logged.Len() != 0 {
		t.Fatalf("HTTP %d, logged %q", w.Code, logged.String())
	}
	// The same error for a client still there is the server's: a 500, logged.
	w = httptest.NewRecorder()
	api.fail(w, httptest.NewRequest(http.MethodGet, "/v1/orders/o1", nil), fmt.Errorf("load: %w", context.Canceled))
	if w.Code != http.StatusInternalServerError || !strings.Contains(logged.String(), "level=ERROR") {
		t.Fatalf("HTTP %d, logged %q", w.Code, logged.String())
	}
}

// A reporter lets a condition through once per reportEvery, and counts
// the times it held back.
func TestReporter(t *testing.T) {
	var r reporter
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		at       time.Duration
		ok       bool
		unlogged int64
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{2 * time.Second, false, 0},
		{reportEvery - time.Nanosecond, false, 0},
		{reportEvery, true, 3},
		{reportEvery + time.Second, false, 0},
		{3 * reportEvery, true, 1},
	} {
		if unlogged, ok := r.due(t0.Add(c.at)); ok != c.ok || unlogged != c.unlogged {
			t.Errorf("%d: at +%v: %d, %v; want %d, %v", i, c.at, unlogged, ok, c.unlogged, c.ok)
		}
	}
}

// A trigger sent over HTTP without an id of its own is given one, and an
// answer that is not a success names it: a 503 (stored, its outcome not
// seen in time: no processor runs yet) so that the worker app can send it
// again with that id, which then takes effect once; and a rejection, which
// is recorded under it.
func TestTriggerProblemNamesTheTriggerID(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-named")
	f.c.ReadTimeout = time.Second // a trigger's outcome is waited for twice as long
	mux := http.NewServeMux()
	(&API{Commands: f.c, Log: quiet}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(body string) (int, Problem, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(f.ctx, http.MethodPost, srv.URL+"/v1/orders/o-named/triggers", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(resp.Body)
		var p Problem
		_ = json.Unmarshal(raw.Bytes(), &p)
		return resp.StatusCode, p, raw.Bytes()
	}

	code, p, raw := post(`{"trigger": "picked_up"}`)
	if code != http.StatusServiceUnavailable || p.Code != "unavailable" || p.TriggerID == "" ||
		!strings.Contains(p.Detail, "trigger "+p.TriggerID+" is stored") {
		t.Fatalf("a trigger without a processor: %d %s", code, raw)
	}
	first := p.TriggerID
	startProcessor(t, f.c, f.srv.ClientURL(), nil)
	code, _, raw = post(fmt.Sprintf(`{"trigger": "picked_up", "trigger_id": %q}`, first))
	var a triggerAnswer
	if code != http.StatusOK || json.Unmarshal(raw, &a) != nil || a.Outcome != "duplicate" ||
		a.Order.Version != 2 || a.Order.Position.Status != "received" {
		t.Fatalf("sent again with its id: %d %s", code, raw)
	}

	code, p, raw = post(`{"trigger": "picked_up"}`)
	if code != http.StatusConflict || p.Code != "trigger_rejected" || p.Reason != "unexpected_trigger" || p.TriggerID == "" {
		t.Fatalf("a trigger not the current step's: %d %s", code, raw)
	}
	resp, err := http.Get(srv.URL + "/v1/orders/o-named/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Events []struct {
			Type string
			Data struct {
				TriggerID string `json:"trigger_id"`
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	var types, ids []string
	for _, e := range h.Events[1:] {
		types, ids = append(types, e.Type), append(ids, e.Data.TriggerID)
	}
	if !slices.Equal(types, []string{"OrderAdvanced", "TriggerRejected"}) || !slices.Equal(ids, []string{first, p.TriggerID}) {
		t.Fatalf("history after the placing: %v %v; want one advance by %s, one rejection by %s", types, ids, first, p.TriggerID)
	}
}
