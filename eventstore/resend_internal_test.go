package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An append is sent again only when JetStream's refusal is not borne out
// by the stored state: the cluster's refusal for another write in flight,
// or a wrong last sequence while the aggregate's history ends at the
// expected one. A later event stored, an expected sequence past the last
// or a scoped append is a conflict as it stands.
func TestRefusedWithoutCause(t *testing.T) {
	t.Parallel()
	st, ctx := openResendStore(t)
	agg := Aggregate{Tenant: "t", Type: OrderAggregateType, ID: "o-1"}
	first, err := st.Append(ctx, agg, ExpectNew, event(1))
	if err != nil {
		t.Fatal(err)
	}
	wrong := &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}
	inFlight := &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}
	refused := func(scope string, expected uint64) *PendingAppend {
		return &PendingAppend{s: st, agg: agg, scope: scope, expected: expected,
			err: &ConcurrencyError{Aggregate: agg, Expected: expected, Actual: expected}}
	}
	for _, tc := range []struct {
		name string
		p    *PendingAppend
		err  error
		want bool
	}{
		{"the history ends at the expected event", refused("", first.LastSeq), wrong, true},
		{"another write in flight", refused("", first.LastSeq), inFlight, true},
		{"new, but the aggregate has an event", refused("", ExpectNew), wrong, false},
		{"expected past the last event", refused("", first.LastSeq+7), wrong, false},
		{"scoped", refused("orderflow.t.order.>", first.LastSeq), wrong, false},
		{"scoped, another write in flight", refused("orderflow.t.order.>", first.LastSeq), inFlight, true},
	} {
		if got := tc.p.refusedWithoutCause(ctx, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := st.Append(ctx, agg, first.LastSeq, event(2)); err != nil {
		t.Fatal(err)
	}
	if refused("", first.LastSeq).refusedWithoutCause(ctx, wrong) {
		t.Error("a later event stored: taken for no cause")
	}

	// Sent again, a stored append is its own duplicate.
	p, err := st.AppendAsync(ctx, agg, ExpectNew, event(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err == nil {
		t.Fatal("a second first event was stored")
	}
	m := nats.NewMsg(agg.Subject("OrderAdvanced"))
	m.Data = []byte(`{}`)
	m.Header.Set(jetstream.MsgIDHeader, "resent-1")
	again := &PendingAppend{s: st, agg: agg, events: []Envelope{{Hash: "h"}}, msgs: []*nats.Msg{m}}
	one, err := again.sendAgain(ctx)
	if err != nil || one.Duplicate {
		t.Fatalf("sent: %+v %v", one, err)
	}
	two, err := again.sendAgain(ctx)
	if err != nil || !two.Duplicate || two.LastSeq != one.LastSeq {
		t.Fatalf("sent again: %+v %v, want a duplicate of %d", two, err, one.LastSeq)
	}
}

// An atomic append of several events sent again, when its first send
// was stored, resolves to a duplicate of the stored events; the same
// first event followed by another is a conflict, not a duplicate.
func TestBatchSentAgainIsItsOwnDuplicate(t *testing.T) {
	t.Parallel()
	st, ctx := openResendStore(t)
	agg := Aggregate{Tenant: "t", Type: OrderAggregateType, ID: "o-batch"}
	events := []Envelope{event(1), event(2)}
	msgs, err := st.prepare(ctx, agg, "", ExpectNew, events)
	if err != nil {
		t.Fatal(err)
	}
	p := &PendingAppend{s: st, agg: agg, expected: ExpectNew, events: events, msgs: msgs}
	first, err := p.sendAgain(ctx)
	if err != nil || first.Duplicate || first.LastSeq != first.FirstSeq+1 || first.LastHash != events[1].Hash {
		t.Fatalf("sent: %+v %v, want two events stored", first, err)
	}
	_, err = p.sendAgain(ctx)
	if err == nil {
		t.Fatal("a batch sent again was stored again")
	}
	again, err := st.resolve(ctx, agg, ExpectNew, events, err)
	if err != nil || !again.Duplicate || again.FirstSeq != first.FirstSeq || again.LastSeq != first.LastSeq || again.LastHash != first.LastHash {
		t.Fatalf("sent again: %+v %v, want a duplicate of %+v", again, err, first)
	}
	if stored, err := st.Load(ctx, agg, 0); err != nil || len(stored) != 2 {
		t.Fatalf("stored %d events (%v), want 2", len(stored), err)
	}
	// The same first event, then one that is not the stored second.
	other := []Envelope{events[0], event(2)}
	var conflict *ConcurrencyError
	if _, err := st.findStored(ctx, agg, ExpectNew, other, true); !errors.As(err, &conflict) || conflict.Actual != first.LastSeq ||
		conflict.Detail != "some of the events' ids are already stored" {
		t.Fatalf("findStored of a batch that differs after its first event: %v, want a conflict at %d naming the ids", err, first.LastSeq)
	}
	if _, err := st.findStored(ctx, agg, ExpectNew, events[:1], false); err != nil {
		t.Fatalf("findStored of the batch's first event alone: %v", err)
	}
}

// openResendStore opens a store on an embedded server of its own, with a
// context that ends with the test.
func openResendStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	srv, err := StartServer(ServerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL(), nats.SyncQueueLen(SyncQueueLen))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := Open(ctx, nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, ctx
}

// event is an order event at version, with an id of its own.
func event(version uint64) Envelope {
	return Envelope{ID: uuid.Must(uuid.NewV7()).String(), Type: "OrderAdvanced", Version: version, OccurredAt: time.Now().UTC(),
		Actor: Actor{ActorWorker, "w1"}, Data: json.RawMessage(`{}`)}
}
