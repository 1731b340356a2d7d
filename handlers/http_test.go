package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// What the store could not do in time, or not now, is a 503 with
// Retry-After, not a 500: a worker app or dashboard sends the same request
// again a moment later (a cluster electing a stream leader answers reads
// and writes with timeouts for a few seconds).
func TestStoreTroubleAnswersUnavailable(t *testing.T) {
	api := &API{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, err := range []error{
		fmt.Errorf("last sequence of orderflow.default.order.o1.> from the leader: %w", context.DeadlineExceeded),
		fmt.Errorf("append: %w: %w", eventstore.ErrOutcomeUnknown, context.DeadlineExceeded),
		fmt.Errorf("append: %w", eventstore.ErrNoLeader),
		fmt.Errorf("load orderflow.default.order.o1.>: %w", nats.ErrNoResponders),
		fmt.Errorf("last sequence of orderflow.default.order.o1.> from the leader: %w",
			&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}),
		fmt.Errorf("append: %w", eventstore.ErrStorageFull),
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
