package projections

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

var benchCheckpointOrders = flag.Int("bench.checkpoint-orders", 200_000, "orders in BenchmarkCheckpoint's read model")

// BenchmarkCheckpoint measures a checkpoint of a large orders read model
// (what orderflow serve saves every 30 s while orders change) and how
// long the projector's Apply waits behind it: queries and the read
// models' catching up with new events both wait while the model is
// locked.
func BenchmarkCheckpoint(b *testing.B) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	var seq uint64
	pos := func(step int, status string) domain.Position {
		return domain.Position{WorkflowID: "standard_laundry_production", WorkflowVersion: 1, Step: step, Status: status}
	}
	for i := range *benchCheckpointOrders {
		seq++
		ev := orderEvent(seq, fmt.Sprintf("01a22594-%08d-7510-b9f7-6f1c049d8a23", i), t0, domain.OrderPlaced{OrderTypeID: "wash_fold_delivery",
			To: pos(0, "washing"), Workflows: []string{"laundry_intake", "standard_laundry_production", "home_delivery"}})
		if err := o.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	// The projector keeps applying events while checkpoints run; its
	// longest wait for the lock is what a checkpoint costs the others.
	stop := make(chan struct{})
	done := make(chan struct{})
	var worst atomic.Int64
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			seq++
			ev := orderEvent(seq, fmt.Sprintf("01a22594-%08d-7510-b9f7-6f1c049d8a23", i%*benchCheckpointOrders), t0,
				domain.OrderAdvanced{Trigger: "wash_done", TriggerID: fmt.Sprint(seq), From: pos(0, "washing"), To: pos(1, "drying")})
			start := time.Now()
			if err := o.Apply(ev); err != nil {
				panic(err)
			}
			if d := int64(time.Since(start)); d > worst.Load() {
				worst.Store(d)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var size int
	b.ResetTimer()
	for range b.N {
		buf, err := o.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		size = len(buf)
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(size)/float64(*benchCheckpointOrders), "bytes/order")
	b.ReportMetric(float64(worst.Load())/1e6, "worst-apply-wait-ms")
}

// BenchmarkCheckpointSave saves a checkpoint of a large orders read model
// into a real store: written to the object store as it is encoded
// (Orders.Checkpoint), and, for comparison in the same run, encoded whole
// first and then saved (as before). peak-heap-MB is the most the Go heap
// grew during a save, sampled every millisecond.
func BenchmarkCheckpointSave(b *testing.B) {
	o := NewOrders(nil)
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for i := range *benchCheckpointOrders {
		ev := orderEvent(uint64(i+1), fmt.Sprintf("01a22594-%08d-7510-b9f7-6f1c049d8a23", i), t0, domain.OrderPlaced{OrderTypeID: "wash_fold_delivery",
			To:        domain.Position{WorkflowID: "laundry_intake", WorkflowVersion: 1, Status: "pending_pickup"},
			Workflows: []string{"laundry_intake", "standard_laundry_production", "home_delivery"}})
		if err := o.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	srv := eventstoretest.StartServer(b)
	st := eventstoretest.OpenStore(b, srv.ClientURL(), eventstore.Config{Timeout: time.Minute})
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		save func() error
	}{
		{"written", func() error { return o.Checkpoint(ctx, st) }},
		{"whole", func() error {
			buf, err := o.MarshalJSON()
			if err != nil {
				return err
			}
			return st.SaveCheckpoint(ctx, CheckpointName, buf)
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var peak uint64
			for range b.N {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc
				stop, done := make(chan struct{}), make(chan uint64)
				go func() {
					var most uint64
					t := time.NewTicker(time.Millisecond)
					defer t.Stop()
					for {
						var ms runtime.MemStats
						runtime.ReadMemStats(&ms)
						if ms.HeapAlloc > base && ms.HeapAlloc-base > most {
							most = ms.HeapAlloc - base
						}
						select {
						case <-stop:
							done <- most
							return
						case <-t.C:
						}
					}
				}()
				if err := mode.save(); err != nil {
					b.Fatal(err)
				}
				close(stop)
				peak = max(peak, <-done)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}
