package eventstore

import (
	"encoding/json"
	"testing"
	"time"
)

// The hand-written encoder must produce what encoding/json would decode
// back to the same envelope, for any string content.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("0190a3b2", "OrderPlaced", "w1", "corr", "cause", `{"a":1}`, int64(0))
	f.Add("id\"\\\n\t\x01é\xff", "T", "ü\u2028", "", "", `null`, int64(1764320400123456789))
	f.Fuzz(func(t *testing.T, id, typ, actor, corr, cause, data string, nanos int64) {
		if !json.Valid([]byte(data)) {
			data = "{}"
		}
		e := Envelope{ID: id, Type: typ, Tenant: "default", AggregateType: "order", AggregateID: "o-1",
			Version: 3, OccurredAt: time.Unix(0, nanos).In(time.FixedZone("x", 3600)),
			Actor: Actor{Kind: ActorUser, ID: actor}, CorrelationID: corr, CausationID: cause, Data: json.RawMessage(data)}
		b, err := e.encode()
		if err != nil {
			t.Fatal(err)
		}
		var got Envelope
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("encoded envelope is not JSON: %v\n%s", err, b)
		}
		want := e
		var wantBytes []byte
		wantBytes, _ = json.Marshal(want)
		var wantDecoded Envelope
		_ = json.Unmarshal(wantBytes, &wantDecoded)
		if got.ID != wantDecoded.ID || got.Type != wantDecoded.Type || got.Actor != wantDecoded.Actor ||
			got.CorrelationID != wantDecoded.CorrelationID || got.CausationID != wantDecoded.CausationID ||
			!got.OccurredAt.Equal(e.OccurredAt) || got.OccurredAt.Location() != time.UTC || got.Version != 3 {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, wantDecoded)
		}
	})
}
