package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// BenchmarkHTTPTrigger: POST /v1/orders/{id}/triggers, one request at a
// time, round-robin over enough orders that each gets its seven triggers,
// each answered with the outcome the processor stored. Reports latency
// and the order histories read from the store per trigger.
//
//	go test -run '^$' -bench HTTPTrigger -benchtime 5000x ./cmd/orderflow/
func BenchmarkHTTPTrigger(b *testing.B) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NATSListen, cfg.HTTP, cfg.ReloadInterval = b.TempDir(), "127.0.0.1:0", "127.0.0.1:0", 0
	app := NewApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	if err := app.Run(ctx); err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		b.Fatal(err)
	}
	orders := b.N/len(handlers.WorkedExampleTriggers) + 1
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "bench"}}
	for i := range orders {
		if _, err := app.cmds.PlaceOrder(ctx, meta, fmt.Sprintf("h-%d", i), handlers.WorkedExampleOrderType, ""); err != nil {
			b.Fatal(err)
		}
	}
	base := "http://" + app.HTTPAddr()
	before := app.cmds.OrderCacheStats()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"trigger":%q}`, handlers.WorkedExampleTriggers[i/orders])
		t := time.Now()
		resp, err := http.Post(fmt.Sprintf("%s/v1/orders/h-%d/triggers", base, i%orders), "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t))
		if resp.StatusCode != 200 {
			b.Fatalf("trigger %d: %d %s", i, resp.StatusCode, out)
		}
	}
	b.StopTimer()
	after := app.cmds.OrderCacheStats()
	b.ReportMetric(float64(after.Loads-before.Loads)/float64(b.N), "loads/trigger")
	p50, _, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}
