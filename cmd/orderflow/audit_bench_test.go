package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

var benchAuditOrders = flag.Int("bench.audit-orders", 25000, "orders (8 events each) in BenchmarkAudit")

// BenchmarkAudit measures, in one run on one embedded server, the raw
// ordered-consumer read rate of ORDERFLOW_ORDERS and, against it, the rates
// of replay --until, export and verify over the same events:
//
//	go test -run '^$' -bench Audit -benchtime 1x ./cmd/orderflow/
func BenchmarkAudit(b *testing.B) {
	dir := b.TempDir()
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	st, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	n := *benchAuditOrders
	writeOrders(b, st, n)
	total := uint64(n * 8)

	rate := func(events uint64, d time.Duration) float64 { return float64(events) / d.Seconds() }
	b.ResetTimer()
	start := time.Now()
	read, err := st.ReadStream(ctx, eventstore.StreamOrders, func(eventstore.StoredMsg) error { return nil }, nil)
	if err != nil || read != total {
		b.Fatalf("raw read %d of %d: %v", read, total, err)
	}
	raw := rate(read, time.Since(start))

	_, _, stats, err := projections.Replay(ctx, st, new(time.Now()), nil)
	if err != nil {
		b.Fatal(err)
	}
	replay := rate(stats.Events, stats.Took)

	out := filepath.Join(dir, "export.jsonl")
	start = time.Now()
	code, _, errOut := runMainB(b, "export", "--nats-url", srv.ClientURL(), "--out", out)
	if code != 0 {
		b.Fatal(errOut)
	}
	export := rate(total, time.Since(start))
	fi, _ := os.Stat(out)

	rep, err := st.Verify(ctx, []string{eventstore.StreamOrders}, nil)
	if err != nil || len(rep.Breaks) != 0 {
		b.Fatalf("verify: %v %v", err, rep.Breaks)
	}
	verify := rate(rep.Events, rep.Took)
	b.StopTimer()

	b.ReportMetric(raw, "raw-read/s")
	b.ReportMetric(replay/raw, "replay-ratio")
	b.ReportMetric(export/raw, "export-ratio")
	b.ReportMetric(verify/raw, "verify-ratio")
	b.Logf("%d events: raw ordered-consumer read %.0f/s; replay %.0f/s (%.2f×); export %.0f/s (%.2f×, %d MB); verify %.0f/s (%.2f×)",
		total, raw, replay, replay/raw, export, export/raw, fi.Size()>>20, verify, verify/raw)
}

// writeOrders stores n worked-example orders' full histories: placed,
// six advances, completed.
func writeOrders(b *testing.B, st *eventstore.Store, n int) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	const window = 2048
	inflight := make([]*eventstore.PendingAppend, 0, window)
	for i := 0; i < n; i += window {
		inflight = inflight[:0]
		for j := range min(window, n-i) {
			id := fmt.Sprintf("bench-%d", i+j)
			var events []eventstore.Envelope
			for k, e := range workedOrderEvents(id) {
				events = append(events, benchEnvelope(uint64(k+1), at.Add(time.Duration(k+1)*time.Minute), e))
			}
			p, err := st.AppendAsync(ctx, eventstore.Aggregate{Tenant: "default", Type: "order", ID: id}, eventstore.ExpectNew, events...)
			if err != nil {
				b.Fatal(err)
			}
			inflight = append(inflight, p)
		}
		for _, p := range inflight {
			if _, err := p.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// workedOrderEvents is a worked-example order's whole history: placed, six
// advances, completed.
func workedOrderEvents(id string) []domain.Event {
	route := []string{"laundry_intake", "standard_laundry_production", "home_delivery"}
	pos := func(wf string, step int, status string) domain.Position {
		return domain.Position{WorkflowID: wf, WorkflowVersion: 1, Step: step, Status: status}
	}
	path := []domain.Position{pos(route[0], 0, "pending_pickup"), pos(route[0], 1, "received"), pos(route[1], 0, "washing"),
		pos(route[1], 1, "drying"), pos(route[1], 2, "folding"), pos(route[2], 0, "ready_for_delivery"), pos(route[2], 1, "out_for_delivery")}
	triggers := handlers.WorkedExampleTriggers
	events := []domain.Event{domain.OrderPlaced{OrderTypeID: handlers.WorkedExampleOrderType, To: path[0], Workflows: route}}
	for k := 1; k < 7; k++ {
		events = append(events, domain.OrderAdvanced{Trigger: triggers[k-1], TriggerID: id + triggers[k-1], Worker: "w", From: path[k-1], To: path[k]})
	}
	return append(events, domain.OrderCompleted{Trigger: triggers[6], TriggerID: id + triggers[6], Worker: "w", From: path[6]})
}

// benchEnvelope wraps a domain event for a direct append.
func benchEnvelope(version uint64, at time.Time, e domain.Event) eventstore.Envelope {
	data, _ := json.Marshal(e)
	return eventstore.Envelope{ID: uuid.Must(uuid.NewV7()).String(), Type: e.EventType(), Version: version,
		OccurredAt: at, Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}, Data: data}
}

func runMainB(b *testing.B, args ...string) (int, string, string) {
	b.Helper()
	var out, errOut stringsBuilder
	code := Main(context.Background(), args, &out, &errOut, func(string) (string, bool) { return "", false })
	return code, out.String(), errOut.String()
}

type stringsBuilder = strings.Builder
