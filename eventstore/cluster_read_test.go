package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A load right after an acknowledged append sees it, from every node of a
// cluster: a replica a moment behind the write must not answer for it.
func TestLoadSeesAcknowledgedAppendsOnACluster(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	writer := eventstoretest.OpenStore(t, c.Servers[0].ClientURL(), eventstore.Config{Replicas: 3})
	readers := []*eventstore.Store{
		eventstoretest.OpenStore(t, c.Servers[1].ClientURL(), eventstore.Config{Replicas: 3}),
		eventstoretest.OpenStore(t, c.Servers[2].ClientURL(), eventstore.Config{Replicas: 3}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	agg := eventstore.Aggregate{Tenant: "t", Type: "order", ID: "ryw"}
	var last uint64
	stale := 0
	for i := 1; i <= 100; i++ {
		res, err := writer.Append(ctx, agg, last, ev("OrderAdvanced", uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastSeq
		for _, r := range readers {
			evs, err := r.Load(ctx, agg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != i {
				stale++
			}
		}
	}
	if stale > 0 {
		t.Fatalf("%d of 200 loads missed an acknowledged append", stale)
	}
}
