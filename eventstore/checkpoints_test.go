package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A checkpoint bucket that could not be opened once (a cluster still
// electing its leaders as the process starts) opens at the next
// checkpoint: the failure is not kept for the life of the process.
func TestCheckpointsAfterAFailedOpen(t *testing.T) {
	st, ctx := serverStore(t)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := st.LoadCheckpoint(gone, "orders"); err == nil {
		t.Fatal("a checkpoint loaded with a cancelled context")
	}
	if err := st.SaveCheckpoint(ctx, "orders", []byte("one")); err != nil {
		t.Fatalf("save after a failed open: %v", err)
	}
	b, ok, err := st.LoadCheckpoint(ctx, "orders")
	if err != nil || !ok || string(b) != "one" {
		t.Fatalf("load = %q, %v, %v; want \"one\"", b, ok, err)
	}
	if err := st.DropCheckpoint(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.LoadCheckpoint(ctx, "orders"); err != nil || ok {
		t.Fatalf("after drop: found %v, %v", ok, err)
	}
}

// Two processes that start together on a new cluster both open the store,
// set the lanes up and save checkpoints. nats-server (v2.15.2 and
// v2.15.3) may answer neither of two identical creates made at once,
// though it makes what they ask for: each create is sent again after a
// short wait of its own, instead of failing after the store's whole
// Timeout.
func TestTwoStoresStartTogetherOnACluster(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			nc := eventstoretest.Connect(t, c.URLs())
			ctx, cancel := eventstoretest.Context(60 * time.Second)
			defer cancel()
			st, err := eventstore.Open(ctx, nc, eventstore.Config{Replicas: 3})
			if err != nil {
				t.Errorf("store %d: open: %v", i, err)
				return
			}
			defer st.Close()
			if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 4}); err != nil {
				t.Errorf("store %d: lanes: %v", i, err)
			}
			// No deadline: the store's Timeout bounds the save.
			if err := st.SaveCheckpoint(context.Background(), fmt.Sprintf("together-%d", i), []byte("x")); err != nil {
				t.Errorf("store %d: checkpoint: %v", i, err)
			}
		})
	}
	wg.Wait()
}
