package projections

import (
	"testing"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// Replay leaves out an event whose data is not JSON (verify reports it)
// and folds the rest, though it no longer checks the data before the read
// models decode it.
func TestReplaySkipsUndecodableData(t *testing.T) {
	t.Parallel()
	st, ctx := testStore(t)
	at := testPlacedAt
	r := storePlaced(t, st, "ok-1", at)
	// ok-1's envelope again under another order, its data no longer JSON.
	eventstoretest.PublishUndecodable(t, st, r.LastSeq, "orderflow.default.order.bad-1.OrderPlaced")
	storePlaced(t, st, "ok-2", at)

	_, orders, stats, err := Replay(ctx, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := orders.List("default", OrderFilter{}, "", 10)
	if len(rows) != 2 || rows[0].ID != "ok-1" || rows[1].ID != "ok-2" || stats.Events != 3 || stats.Applied != 2 {
		t.Fatalf("replay: %+v, rows %+v", stats, rows)
	}
}
