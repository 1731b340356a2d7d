package main

import (
	"context"
	"encoding/json"
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

	// Raw read versus rebuilding the read models from the same events.
	t0 = time.Now()
	n, err := app.Store().ReadStream(ctx, eventstore.StreamOrders, func(eventstore.StoredMsg) error { return nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	raw := float64(n) / time.Since(t0).Seconds()
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
	route := []string{"laundry_intake", "standard_laundry_production", "home_delivery"}
	pos := func(wf string, step int, status string) domain.Position {
		return domain.Position{WorkflowID: wf, WorkflowVersion: 1, Step: step, Status: status}
	}
	path := []domain.Position{pos(route[0], 0, "pending_pickup"), pos(route[0], 1, "received"), pos(route[1], 0, "washing"),
		pos(route[1], 1, "drying"), pos(route[1], 2, "folding"), pos(route[2], 0, "ready_for_delivery"), pos(route[2], 1, "out_for_delivery")}
	triggers := handlers.WorkedExampleTriggers
	run := uuid.NewString()[:6]
	pending := make([]*eventstore.PendingAppend, n)
	for v := 1; v <= 8; v++ {
		for i := range n {
			id := fmt.Sprintf("r%s-%d", run, i)
			var e domain.Event
			switch {
			case v == 1:
				e = domain.OrderPlaced{OrderTypeID: handlers.WorkedExampleOrderType, To: path[0], Workflows: route}
			case v < 8:
				e = domain.OrderAdvanced{Trigger: triggers[v-2], TriggerID: fmt.Sprint(id, v), Worker: "w", From: path[v-2], To: path[v-1]}
			default:
				e = domain.OrderCompleted{Trigger: triggers[6], TriggerID: fmt.Sprint(id, v), Worker: "w", From: path[6]}
			}
			data, _ := json.Marshal(e)
			env := eventstore.Envelope{ID: uuid.Must(uuid.NewV7()).String(), Type: e.EventType(), Version: uint64(v),
				OccurredAt: at, Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}, Data: data}
			var expected uint64
			if p := pending[i]; p != nil {
				r, err := p.Wait(ctx)
				if err != nil {
					b.Fatal(err)
				}
				expected, env.PrevHash = r.LastSeq, r.LastHash
			}
			p, err := st.AppendAsync(ctx, eventstore.Aggregate{Tenant: "default", Type: "order", ID: id}, expected, env)
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
