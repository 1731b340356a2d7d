package handlers

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// BenchmarkOrderCacheMemory: the heap the orders' cache takes per order,
// each order placed and moved four steps on (five events), measured as
// the heap with the cache full against the heap with it emptied.
//
//	go test -run '^$' -bench OrderCacheMemory -benchtime 5000x ./handlers/
func BenchmarkOrderCacheMemory(b *testing.B) {
	c := newCommands(b, eventstoretest.StartServer(b))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := range b.N {
		id := fmt.Sprintf("m-%d", i)
		if _, err := c.PlaceOrder(ctx, meta, id, WorkedExampleOrderType, ""); err != nil {
			b.Fatal(err)
		}
		for k, tr := range WorkedExampleTriggers[:4] {
			if _, _, err := c.ApplyTrigger(ctx, meta, id, tr, fmt.Sprintf("%s-%d", id, k), domain.TriggerReport{Worker: "w"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if s := c.OrderCacheStats(); s.Cached != b.N {
		b.Fatalf("%d orders cached, want %d", s.Cached, b.N)
	}
	full := heap()
	c.orders = newAggregateCache(DefaultOrderCacheSize)
	empty := heap()
	b.ReportMetric(float64(int64(full)-int64(empty))/float64(b.N), "bytes/order")
}
