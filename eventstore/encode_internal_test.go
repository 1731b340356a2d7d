package eventstore

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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

// An event body that encoding/json wrote out again, with its default
// escapes, reads the same but fails its hash; AsEncoded gives back the
// bytes the store wrote. A body really altered, or one that matches its
// hash, comes back as it is.
func TestAsEncodedMendsEscapes(t *testing.T) {
	e := Envelope{ID: "0190a3b2-0000-7000-8000-000000000001", Type: "OrderPlaced", Tenant: "default", AggregateType: "order",
		AggregateID: "o-1", Version: 1, OccurredAt: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		Actor: Actor{Kind: ActorUser, ID: "kim & co <desk>\u2028"}, CorrelationID: "<a&b>", Data: json.RawMessage(`{"note":"x \u0026 y"}`)}
	stored, err := e.seal()
	if err != nil {
		t.Fatal(err)
	}
	rewritten, err := json.Marshal(json.RawMessage(stored)) // as an encoder with HTML escaping writes it
	if err != nil {
		t.Fatal(err)
	}
	if string(rewritten) == string(stored) {
		t.Fatalf("the rewrite changed nothing: %s", stored)
	}
	if got := AsEncoded(rewritten); string(got) != string(stored) {
		t.Fatalf("mended:\n got %s\nwant %s", got, stored)
	}
	if got := AsEncoded(stored); string(got) != string(stored) {
		t.Fatalf("a body that matches its hash changed: %s", got)
	}
	altered := []byte(strings.Replace(string(rewritten), "desk", "dusk", 1))
	if got := AsEncoded(altered); string(got) != string(altered) {
		t.Fatalf("an altered body was passed off as mended: %s", got)
	}
}

// For any valid envelope whose data is as encoding/json writes it (as
// the domain's events are), AsEncoded mends what encoding/json's default
// escapes did to the stored body.
func FuzzAsEncoded(f *testing.F) {
	f.Add("kim & co <desk>\u2028", "<a&b>", "", `{"note":"x & y"}`)
	f.Add("api", "", "cause", `null`)
	f.Fuzz(func(t *testing.T, actor, corr, cause, data string) {
		raw, err := json.Marshal(json.RawMessage(data))
		if err != nil || !utf8.ValidString(actor) || !utf8.ValidString(corr) || !utf8.ValidString(cause) {
			t.Skip()
		}
		e := Envelope{ID: "0190a3b2-0000-7000-8000-000000000001", Type: "OrderHeld", Tenant: "default", AggregateType: "order",
			AggregateID: "o-1", Version: 2, OccurredAt: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
			Actor: Actor{Kind: ActorUser, ID: actor}, CorrelationID: corr, CausationID: cause, Data: raw, PrevHash: HashOf([]byte("x"))}
		stored, err := e.seal()
		if err != nil {
			t.Skip()
		}
		if _, err := DecodeEnvelope(stored); err != nil {
			t.Skip() // not an envelope the store would take
		}
		rewritten, err := json.Marshal(json.RawMessage(stored))
		if err != nil {
			t.Fatal(err)
		}
		if got := AsEncoded(rewritten); string(got) != string(stored) {
			t.Fatalf("not mended:\n got %s\nwant %s", got, stored)
		}
	})
}
