package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

var benchRestartEvents = flag.Int("bench.restart-events", 1_000_000, "order events stored before BenchmarkRestart measures")

// BenchmarkRestart stores -bench.restart-events order events (orders of 8
// events each) and measures, in one run: rebuilding the read models from
// them against a raw ordered-consumer read of the same events, the read
// models' memory per order, and restart-to-ready with and without the
// orders checkpoint.
//
//	go test -run '^$' -bench Restart -benchtime 1x ./cmd/orderflow/
func BenchmarkRestart(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NATSListen, cfg.HTTP = b.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	start := func(cfg Config) (*App, time.Duration) {
		app := NewApp(cfg, quiet)
		t := time.Now()
		if err := app.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		return app, time.Since(t)
	}
	// Memory first, before the embedded server shares this heap.
	orders := *benchRestartEvents / 8
	perOrder := modelBytesPerOrder(b, orders)
	app, _ := start(cfg)
	ctx := context.Background()
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	writeOrderEvents(b, app.Store(), orders)
	b.Logf("stored %d order events in %s", orders*8, time.Since(t0).Round(time.Millisecond))
	last, _ := app.Store().LastSequence(ctx, eventstore.StreamOrders)
	if err := app.orders.Load().WaitFor(ctx, last); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()

	// Raw read versus rebuilding the read models from the same events, with
	// the process's CPU time and allocations per event for each.
	c0, m0 := processCost()
	t0 = time.Now()
	n, err := app.Store().ReadStream(ctx, eventstore.StreamOrders, func(eventstore.StoredMsg) error { return nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	raw := float64(n) / time.Since(t0).Seconds()
	c1, m1 := processCost()
	b.Logf("raw read: %v CPU and %.1f allocations per event", (c1-c0)/time.Duration(n), float64(m1-m0)/float64(n))
	t0 = time.Now()
	defs, fresh := projections.NewDefinitions(quiet), projections.NewOrders(quiet)
	lastDefs, _ := app.Store().LastSequence(ctx, eventstore.StreamDefinitions)
	if err := errJoin(defs.Start(ctx, app.Store()), fresh.Start(ctx, app.Store())); err != nil {
		b.Fatal(err)
	}
	if err := errJoin(defs.WaitFor(ctx, lastDefs), fresh.WaitFor(ctx, last)); err != nil {
		b.Fatal(err)
	}
	rebuild := float64(last) / time.Since(t0).Seconds()
	c2, m2 := processCost()
	b.Logf("rebuild: %v CPU and %.1f allocations per event", (c2-c1)/time.Duration(last), float64(m2-m1)/float64(last))
	defs.Stop()
	fresh.Stop()
	if err := app.Close(); err != nil { // saves the checkpoint
		b.Fatal(err)
	}

	withCP, took := start(cfg)
	_ = withCP.Close()
	noCP := cfg
	noCP.Checkpoints = false
	without, tookWithout := start(noCP)
	_ = without.Close()
	b.StopTimer()

	b.ReportMetric(rebuild/raw, "rebuild-ratio")
	b.ReportMetric(perOrder, "bytes/order")
	b.ReportMetric(took.Seconds(), "ready-s-checkpoint")
	b.ReportMetric(tookWithout.Seconds(), "ready-s-replay")
	b.Logf("%d events, %d orders: raw read %.0f/s, rebuild %.0f/s (%.2f×); read models %.0f bytes per order; restart to ready %.2fs with the checkpoint, %.2fs replaying",
		last, orders, raw, rebuild, rebuild/raw, perOrder, took.Seconds(), tookWithout.Seconds())
}

// modelBytesPerOrder is the orders read model's heap per order, for n
// worked-example orders applied in-process. It runs before the embedded
// server starts: the server shares this process's heap and its block
// caches come and go. The median of three builds.
func modelBytesPerOrder(b *testing.B, n int) float64 {
	at := time.Now().UTC()
	var sizes []float64
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := projections.NewOrders(nil)
		seq := uint64(0)
		for i := range n {
			id := fmt.Sprintf("m-%d", i)
			for v, e := range workedOrderEvents(id) {
				seq++
				env := benchEnvelope(uint64(v+1), at, e)
				env.Tenant, env.AggregateType, env.AggregateID = eventstore.DefaultTenant, "order", id
				if err := m.Apply(eventstore.Event{Envelope: env, Stream: eventstore.StreamOrders, Sequence: seq}); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(m)
		sizes = append(sizes, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n))
	}
	slices.Sort(sizes)
	return sizes[1]
}

// writeOrderEvents stores n worked-example orders' histories (placed, six
// advances, completed), one event per append, pipelined across orders.
func writeOrderEvents(b *testing.B, st *eventstore.Store, n int) {
	ctx := context.Background()
	at := time.Now().UTC()
	run := uuid.NewString()[:6]
	histories := make([][]domain.Event, n)
	for i := range n {
		histories[i] = workedOrderEvents(fmt.Sprintf("r%s-%d", run, i))
	}
	pending := make([]*eventstore.PendingAppend, n)
	for v := 1; v <= 8; v++ {
		for i := range n {
			env := benchEnvelope(uint64(v), at, histories[i][v-1])
			var expected uint64
			if p := pending[i]; p != nil {
				r, err := p.Wait(ctx)
				if err != nil {
					b.Fatal(err)
				}
				expected, env.PrevHash = r.LastSeq, r.LastHash
			}
			p, err := st.AppendAsync(ctx, eventstore.Aggregate{Tenant: "default", Type: "order", ID: fmt.Sprintf("r%s-%d", run, i)}, expected, env)
			if err != nil {
				b.Fatal(err)
			}
			pending[i] = p
		}
	}
	for _, p := range pending {
		if _, err := p.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
