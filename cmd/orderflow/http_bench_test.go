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

	"github.com/orderflow/orderflow/domain"
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
	app, ctx := seededBenchApp(b)
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
		lat = append(lat, timedRequest(b, "POST", fmt.Sprintf("%s/v1/orders/h-%d/triggers", base, i%orders), body, nil, http.StatusOK))
	}
	b.StopTimer()
	after := app.cmds.OrderCacheStats()
	b.ReportMetric(float64(after.Loads-before.Loads)/float64(b.N), "loads/trigger")
	reportLatency(b, lat)
}

// timedRequest sends a request (body JSON, when not empty) with the
// headers hdr, and returns how long the answer took; an answer other
// than want fails b.
func timedRequest(b *testing.B, method, url, body string, hdr http.Header, want int) time.Duration {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if hdr != nil {
		req.Header = hdr.Clone()
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	t := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t)
	if resp.StatusCode != want {
		b.Fatalf("%s %s %s: %d %s, want %d", method, url, body, resp.StatusCode, out, want)
	}
	return took
}

// reportLatency reports the p50 and p99 of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	p50, _, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}

// BenchmarkLongHistory: what an order's own history costs each command
// and read on it. A worker app stuck on the wrong trigger leaves a
// TriggerRejected per attempt, so an order can gather thousands of events.
// Each sub-benchmark grows orders to the given number of events (with
// rejected triggers), then times, one at a time: a rejected trigger applied
// by the command handlers (the processor's path), GET /v1/orders/{id}, a
// hold and a resume over HTTP; then, as many times, the history's first
// page of 50. Each iteration adds three events; the short histories use an order per
// iteration so they stay short, the long one a single order (200
// iterations add 6% to it). Compare the sub-benchmarks of one run:
//
//	go test -run '^$' -bench LongHistory -benchtime 200x ./cmd/orderflow/
func BenchmarkLongHistory(b *testing.B) {
	for _, events := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			app, ctx := seededBenchApp(b)
			meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "bench"}}
			orders := 1
			if events < 100 {
				orders = b.N
			}
			n := 0
			reject := func(id string) {
				n++
				res, _, err := app.cmds.ApplyTrigger(ctx, meta, id, handlers.WorkedExampleTriggers[3], fmt.Sprintf("wrong-%d", n), domain.TriggerReport{Worker: "bench"})
				if err != nil || res.Outcome != "rejected" {
					b.Fatalf("wrong trigger %d: %v %v", n, res, err)
				}
			}
			for i := range orders {
				id := fmt.Sprintf("long-%d", i)
				if _, err := app.cmds.PlaceOrder(ctx, meta, id, handlers.WorkedExampleOrderType, ""); err != nil {
					b.Fatal(err)
				}
				for range events - 1 {
					reject(id)
				}
			}
			call := func(method, url, body string) time.Duration {
				return timedRequest(b, method, url, body, nil, http.StatusOK)
			}
			var trig, get, sup, page []time.Duration
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("long-%d", i%orders)
				url := "http://" + app.HTTPAddr() + "/v1/orders/" + id
				t := time.Now()
				reject(id)
				trig = append(trig, time.Since(t))
				get = append(get, call(http.MethodGet, url, ""))
				sup = append(sup, call(http.MethodPost, url+"/hold", `{"reason":"bench"}`)+call(http.MethodPost, url+"/resume", `{"reason":"bench"}`))
			}
			// The history's pages apart: their 50 direct gets each slow
			// the requests that follow them.
			for i := range b.N {
				page = append(page, call(http.MethodGet, fmt.Sprintf("http://%s/v1/orders/long-%d/history?limit=50", app.HTTPAddr(), i%orders), ""))
			}
			b.StopTimer()
			for _, m := range []struct {
				name string
				d    []time.Duration
			}{{"trigger", trig}, {"get", get}, {"hold+resume", sup}, {"history-page", page}} {
				p50, _, _ := percentiles(m.d)
				b.ReportMetric(float64(p50.Microseconds()), m.name+"-p50-µs")
			}
		})
	}
}

// seededBenchApp runs an App of the benchmark's own (embedded server,
// random ports, quiet) with the worked example's definitions, until the
// benchmark ends.
func seededBenchApp(b *testing.B) (*App, context.Context) {
	b.Helper()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NATSListen, cfg.HTTP, cfg.ReloadInterval = b.TempDir(), "127.0.0.1:0", "127.0.0.1:0", 0
	app := NewApp(cfg, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	if err := app.Run(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Close() })
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		b.Fatal(err)
	}
	return app, ctx
}

// BenchmarkHTTPPlaceOrder: POST /v1/orders, one request at a time, each
// for an order of its own: without an Idempotency-Key, and with one,
// which the request first claims in ORDERFLOW_CLAIMS. Compare the two
// sub-benchmarks of one run:
//
//	go test -run '^$' -bench HTTPPlaceOrder -benchtime 2000x ./cmd/orderflow/
func BenchmarkHTTPPlaceOrder(b *testing.B) {
	app, _ := seededBenchApp(b)
	base := "http://" + app.HTTPAddr()
	n := 0 // every order and key new, over every round of each sub-benchmark
	for _, keyed := range []bool{false, true} {
		name := map[bool]string{false: "NoKey", true: "Key"}[keyed]
		b.Run(name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				n++
				body := fmt.Sprintf(`{"id":"p-%d","order_type_id":%q}`, n, handlers.WorkedExampleOrderType)
				var hdr http.Header
				if keyed {
					hdr = http.Header{"Idempotency-Key": {fmt.Sprintf("bench-key-%d", n)}}
				}
				lat = append(lat, timedRequest(b, "POST", base+"/v1/orders", body, hdr, http.StatusCreated))
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}
