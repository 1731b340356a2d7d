package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// Replay leaves out an event whose data is not JSON (verify reports it)
// and folds the rest, though it no longer checks the data before the read
// models decode it.
func TestReplaySkipsUndecodableData(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	placed := domain.OrderPlaced{OrderTypeID: "ot", To: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: "a"}, Workflows: []string{"wf"}}
	data, _ := json.Marshal(placed)
	place := func(id string) eventstore.AppendResult {
		agg := eventstore.Aggregate{Tenant: "default", Type: "order", ID: id}
		env := eventstore.Envelope{ID: uuid.Must(uuid.NewV7()).String(), Type: placed.EventType(), Version: 1, OccurredAt: at,
			Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}, Data: data}
		r, err := st.Append(ctx, agg, eventstore.ExpectNew, env)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := place("ok-1")
	// ok-1's envelope again under another order, its data no longer JSON,
	// written around the store.
	stream, err := st.JetStream().Stream(ctx, eventstore.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := stream.GetMsg(ctx, r.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(stored.Data, []byte(`,"data":{`))
	bad := slices.Concat(stored.Data[:i], []byte(`,"data":{"x":`), stored.Data[i+len(`,"data":{`):])
	m := nats.NewMsg("orderflow.default.order.bad-1.OrderPlaced")
	m.Data = bytes.Replace(bad, []byte(`"aggregate_id":"ok-1"`), []byte(`"aggregate_id":"bad-1"`), 1)
	if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	place("ok-2")

	_, orders, stats, err := Replay(ctx, st, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := orders.List("default", OrderFilter{}, "", 10)
	if len(rows) != 2 || rows[0].ID != "ok-1" || rows[1].ID != "ok-2" || stats.Events != 3 || stats.Applied != 2 {
		t.Fatalf("replay: %+v, rows %+v", stats, rows)
	}
}
