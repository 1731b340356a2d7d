package projections

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// testPlaced is the OrderPlaced of the orders the tests store.
var testPlaced = domain.OrderPlaced{OrderTypeID: "ot", To: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: "a"}, Workflows: []string{"wf"}}

// testPlacedAt is when the tests' orders are placed.
var testPlacedAt = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

// testStore is a store on a server of the test's own, and a ctx for it.
func testStore(t *testing.T) (*eventstore.Store, context.Context) {
	t.Helper()
	srv := eventstoretest.StartServer(t)
	ctx, cancel := eventstoretest.Context(time.Minute)
	t.Cleanup(cancel)
	return eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{}), ctx
}

// storePlaced appends testPlaced for a new order id, as of at.
func storePlaced(t *testing.T, st *eventstore.Store, id string, at time.Time) eventstore.AppendResult {
	t.Helper()
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()
	data, _ := json.Marshal(testPlaced)
	env := eventstore.Envelope{ID: uuid.Must(uuid.NewV7()).String(), Type: testPlaced.EventType(), Version: 1, OccurredAt: at,
		Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}, Data: data}
	r, err := st.Append(ctx, eventstore.Aggregate{Tenant: "default", Type: "order", ID: id}, eventstore.ExpectNew, env)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Restore takes a checkpoint that fits the stream, and ignores, changing
// nothing, one it cannot read, one ahead of the stream (from another
// store), one of another stream of the name (deleted and made anew
// since, with as many events) or one of another format (another version
// of the model): the model is then built from the stream.
func TestRestoreChecksTheCheckpoint(t *testing.T) {
	t.Parallel()
	st, ctx := testStore(t)
	at := testPlacedAt
	for _, id := range []string{"r-1", "r-2"} {
		storePlaced(t, st, id, at)
	}
	model := NewOrders(nil)
	for i, id := range []string{"r-1", "r-2"} {
		if err := model.Apply(orderEvent(uint64(i+1), id, at, testPlaced)); err != nil {
			t.Fatal(err)
		}
	}
	good, err := model.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var ahead map[string]any
	_ = json.Unmarshal(good, &ahead)
	ahead["applied"] = 99
	aheadJSON, _ := json.Marshal(ahead)
	// The same, as Checkpoint writes it: naming the stream it is of.
	if err := model.Checkpoint(ctx, st); err != nil {
		t.Fatal(err)
	}
	named, ok, err := st.LoadCheckpoint(ctx, CheckpointName)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var other map[string]any
	_ = json.Unmarshal(named, &other)
	if other["stream_created"] == nil {
		t.Fatalf("a checkpoint without the stream it is of: %.200s", named)
	}
	other["stream_created"] = st.StreamCreated(eventstore.StreamOrders).Add(-time.Hour) // a stream of the name made before
	otherJSON, _ := json.Marshal(other)
	var later map[string]any
	_ = json.Unmarshal(named, &later)
	if later["format"] != float64(checkpointFormat) {
		t.Fatalf("a checkpoint without its format: %.200s", named)
	}
	later["format"] = checkpointFormat + 1 // written by a version whose model differs
	laterJSON, _ := json.Marshal(later)
	var unnamed map[string]any
	_ = json.Unmarshal(good, &unnamed)
	delete(unnamed, "format") // as versions before the field wrote them
	unnamedJSON, _ := json.Marshal(unnamed)

	for _, tc := range []struct {
		name       string
		checkpoint []byte
		want       uint64
	}{
		{"unreadable", []byte(`{"applied": 2, "tenants": {"default": {"rows": [{"id": 5}]}}}`), 0},
		{"ahead of the stream", aheadJSON, 0},
		{"of another stream of the name", otherJSON, 0},
		{"of another format", laterJSON, 0},
		{"naming no format", unnamedJSON, 2},
		{"fits", good, 2},
		{"fits, naming its stream", named, 2},
	} {
		if err := st.SaveCheckpoint(ctx, CheckpointName, tc.checkpoint); err != nil {
			t.Fatal(err)
		}
		o := NewOrders(slog.New(slog.DiscardHandler))
		got, err := o.Restore(ctx, st)
		if err != nil || got != tc.want {
			t.Fatalf("%s: Restore = %d, %v; want %d", tc.name, got, err, tc.want)
		}
		rows, _ := o.List("default", OrderFilter{}, "", 10)
		if want := map[uint64]int{0: 0, 2: 2}[tc.want]; len(rows) != want || o.Applied() != tc.want {
			t.Fatalf("%s: the model holds %d orders at %d, want %d at %d", tc.name, len(rows), o.Applied(), want, tc.want)
		}
	}
}
