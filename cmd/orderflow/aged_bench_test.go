package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
)

var (
	benchAgedOrders = flag.Int("bench.aged-orders", 2000, "orders in progress in BenchmarkTriggersAfterRestart")
	benchAgedFiller = flag.Int("bench.aged-filler", 1_200_000, "other orders' events stored between theirs")
)

// BenchmarkTriggersAfterRestart measures triggers for orders whose
// histories lie in old parts of a large stream, as in a store that has
// run for a while: orders in progress, each with three events stored in
// three places far apart (other orders' events in between), then a
// restart. It then publishes one trigger for every such order, round
// robin (the first after the restart: each order's history is read from
// the store, and the server holds none of the stream's blocks yet), and
// then one more for every order (decided from memory), and reports both
// rates and their ratio, in one run.
//
//	go test -run '^$' -bench TriggersAfterRestart -benchtime 1x ./cmd/orderflow/
func BenchmarkTriggersAfterRestart(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NATSListen, cfg.HTTP = b.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	ctx := context.Background()
	app := NewApp(cfg, quiet)
	if err := app.Run(ctx); err != nil {
		b.Fatal(err)
	}
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		b.Fatal(err)
	}
	const groups, phases = 50, 3 // placed, then two triggers
	n := *benchAgedOrders
	chunk := *benchAgedFiller / (8 * groups * phases) // orders of 8 events
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "bench"}}
	t0 := time.Now()
	for phase := range phases {
		for g := range groups {
			for i := g; i < n; i += groups {
				id := fmt.Sprintf("aged-%d", i)
				var err error
				if phase == 0 {
					_, err = app.cmds.PlaceOrder(ctx, meta, id, handlers.WorkedExampleOrderType, "")
				} else {
					_, _, err = app.cmds.ApplyTrigger(ctx, meta, id, handlers.WorkedExampleTriggers[phase-1], fmt.Sprintf("%s-t%d", id, phase), domain.TriggerReport{Worker: "bench"})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			writeOrderEvents(b, app.Store(), chunk)
		}
	}
	last, _ := app.Store().LastSequence(ctx, eventstore.StreamOrders)
	b.Logf("%d orders in progress among %d stored order events, written in %s", n, last, time.Since(t0).Round(time.Second))
	if err := app.Close(); err != nil {
		b.Fatal(err)
	}

	var log eventstoretest.LogBuffer
	app = NewApp(cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if err := app.Run(ctx); err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	outcomes := make(chan string, n)
	sub, err := app.nc.Subscribe("orderflow.default.order.*.*", func(m *nats.Msg) {
		if id := causationOf(m.Data); id != "" {
			outcomes <- id
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	js := app.Store().JetStream()
	round := func(k int) (float64, handlers.CacheStats) {
		before := app.cmds.OrderCacheStats()
		start := time.Now()
		for i := range n {
			m := nats.NewMsg(eventstore.TriggerSubject("default", fmt.Sprintf("aged-%d", i), handlers.WorkedExampleTriggers[k]))
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("aged-%d-t%d", i, k+1))
			if _, err := eventstore.PublishAsync(ctx, js, m); err != nil {
				b.Fatal(err)
			}
		}
		for got := range n {
			select {
			case <-outcomes:
			case <-time.After(time.Minute):
				b.Fatalf("outcomes stopped arriving after %d of %d (processor applied %d; cache %+v; index at %d)\n%s", got, n, app.proc.Handled(), app.cmds.OrderCacheStats(),
					app.Store().Indexed(eventstore.StreamOrders), lastLines(log.String(), 20))
			}
		}
		rate := float64(n) / time.Since(start).Seconds()
		after := app.cmds.OrderCacheStats()
		return rate, handlers.CacheStats{Loads: after.Loads - before.Loads, Hits: after.Hits - before.Hits, LoadTime: after.LoadTime - before.LoadTime}
	}
	b.ResetTimer()
	cold, cs := round(phases - 1)
	warm, ws := round(phases)
	b.StopTimer()
	mean := func(s handlers.CacheStats) time.Duration {
		if s.Loads == 0 {
			return 0
		}
		return s.LoadTime / time.Duration(s.Loads)
	}
	retried, deadLettered := strings.Count(log.String(), "retrying"), strings.Count(log.String(), "dead letter")
	if deadLettered > 0 {
		b.Errorf("%d triggers of orders that exist were put aside as dead letters", deadLettered)
	}
	b.ReportMetric(float64(retried), "retries")
	b.ReportMetric(cold, "first-triggers/s")
	b.ReportMetric(warm, "next-triggers/s")
	b.ReportMetric(cold/warm, "first/next")
	b.Logf("%s; first trigger after the restart: %.0f/s, %d loads, mean load %s; next: %.0f/s, %d loads (%d from memory); ratio %.3f; %d retries",
		strings.TrimSpace(indexLine(log.String())), cold, cs.Loads, mean(cs).Round(time.Microsecond), warm, ws.Loads, ws.Hits, cold/warm, retried)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// indexLine is the log line that says how long the load index took to
// catch up at the start.
func indexLine(log string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, "load index caught up") {
			if i := strings.Index(line, "took="); i >= 0 {
				return "load index caught up in " + line[i+len("took="):]
			}
		}
	}
	return "no load index line"
}
