package eventstore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func canonicalSeeds(f *testing.F) {
	at := time.Date(2026, 11, 28, 9, 0, 0, 123456789, time.UTC)
	for _, e := range []Envelope{
		{ID: "0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b", Type: "OrderAdvanced", Tenant: "default", AggregateType: "order",
			AggregateID: "o-1", Version: 2, OccurredAt: at, Actor: Actor{ActorWorker, "w1"}, CorrelationID: "c",
			CausationID: "t-1", Data: json.RawMessage(`{"trigger":"picked_up","to":{"step":1}}`), PrevHash: strings.Repeat("ab", 32)},
		{ID: "x", Type: "A", Tenant: "t", AggregateType: "order", AggregateID: "o", Version: 1, OccurredAt: at,
			Actor: Actor{ActorSystem, ""}, Data: json.RawMessage(`null`)},
		{ID: "x", Type: "A", Tenant: "t", AggregateType: "order", AggregateID: "o", Version: 18446744073709551615, OccurredAt: at,
			Actor: Actor{ActorUser, "ünïcode \"quoted\""}, Data: json.RawMessage(`[1,"}",{"prev_hash":"x"}]`)},
	} {
		b, err := e.seal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		c, _, _ := CanonicalBytes(b)
		f.Add(c)
	}
}

// FuzzDecodeCanonical: whatever the fast path accepts, the general JSON
// path reads the same way.
func FuzzDecodeCanonical(f *testing.F) {
	canonicalSeeds(f)
	f.Add([]byte(`{"id":"x","type":"A","tenant":"t","aggregate_type":"order","aggregate_id":"o","version":1,"occurred_at":"2026-01-01T00:00:00Z","actor":{"kind":"system","id":""},"data":{} }`))
	f.Add([]byte(`{"id":"x","type":"A","tenant":"t","aggregate_type":"order","aggregate_id":"o","version":01,"occurred_at":"2026-01-01T00:00:00Z","actor":{"kind":"system","id":""},"data":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeCanonical(b, false, true)
		if !ok {
			return
		}
		slow, err := decodeJSON(b)
		if err != nil {
			t.Fatalf("fast path accepted what JSON refuses (%v): %q", err, b)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path read\n%+v\nJSON read\n%+v\nfrom %q", fast, slow, b)
		}
	})
}

// Every envelope the store writes takes the fast path.
func TestStoredEnvelopesTakeTheFastPath(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	for _, e := range []Envelope{
		{ID: "i", Type: "OrderPlaced", Tenant: "default", AggregateType: "order", AggregateID: "o-1", Version: 1,
			OccurredAt: at, Actor: Actor{ActorUser, "ana"}, Data: json.RawMessage(`{"a":1}`)},
		{ID: "i", Type: "OrderAdvanced", Tenant: "default", AggregateType: "order", AggregateID: "o-1", Version: 2,
			OccurredAt: at.Add(time.Nanosecond), Actor: Actor{ActorWorker, "w"}, CorrelationID: "c", CausationID: "d",
			Data: json.RawMessage(`{"a":[1,2]}`), PrevHash: strings.Repeat("0f", 32)},
	} {
		b, err := e.seal()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeCanonical(b, false, true)
		if !ok || !reflect.DeepEqual(got, e) {
			t.Fatalf("fast path: ok=%v\n%+v\nwant\n%+v", ok, got, e)
		}
	}
}
