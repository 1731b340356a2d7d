package eventstore_test

import (
	"context"
	"testing"
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
