package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
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
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	app, _ := start(cfg)
	ctx := context.Background()
	if err := handlers.SeedWorkedExample(ctx, app.cmds); err != nil {
		b.Fatal(err)
	}
	orders := *benchRestartEvents / 8
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
	// Memory: the live heap with an orders model, then without it (built
	// here by direct Apply calls, so nothing else holds it).
	mem := projections.NewOrders(quiet)
	if _, err := app.Store().ReadStream(ctx, eventstore.StreamOrders, func(m eventstore.StoredMsg) error {
		ev, err := m.Event()
		if err != nil {
			return err
		}
		return mem.Apply(ev)
	}, nil); err != nil {
		b.Fatal(err)
	}
	var msWith, msWithout runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&msWith)
	runtime.KeepAlive(mem)
	mem = nil
	runtime.GC()
	runtime.ReadMemStats(&msWithout)
	perOrder := float64(int64(msWith.HeapAlloc)-int64(msWithout.HeapAlloc)) / float64(orders)
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
