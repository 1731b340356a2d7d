package eventstore_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

const validEnvelope = `{"id":"0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b","type":"OrderAdvanced","tenant":"default",
"aggregate_type":"order","aggregate_id":"o-1","version":2,"occurred_at":"2026-11-28T09:00:00Z",
"actor":{"kind":"worker","id":"w1"},"correlation_id":"c","causation_id":"t-1","data":{"trigger":"picked_up"}}`

func TestDecodeEnvelope(t *testing.T) {
	t.Parallel()
	e, err := eventstore.DecodeEnvelope([]byte(validEnvelope))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "OrderAdvanced" || e.Version != 2 || e.Actor.Kind != eventstore.ActorWorker || e.CausationID != "t-1" ||
		string(e.Data) != `{"trigger":"picked_up"}` {
		t.Fatalf("decoded %+v", e)
	}
	// A field added by a later version is tolerated.
	if _, err := eventstore.DecodeEnvelope([]byte(strings.Replace(validEnvelope, `"id"`, `"future":1,"id"`, 1))); err != nil {
		t.Fatalf("unknown field: %v", err)
	}

	bad := map[string]string{
		"not json":        `{"id":`,
		"array":           `[]`,
		"trailing":        validEnvelope + `{}`,
		"no id":           strings.Replace(validEnvelope, `"id":"0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b",`, ``, 1),
		"dotted type":     strings.Replace(validEnvelope, `"OrderAdvanced"`, `"Order.Advanced"`, 1),
		"wildcard tenant": strings.Replace(validEnvelope, `"default"`, `"*"`, 1),
		"version zero":    strings.Replace(validEnvelope, `"version":2`, `"version":0`, 1),
		"version string":  strings.Replace(validEnvelope, `"version":2`, `"version":"2"`, 1),
		"negative":        strings.Replace(validEnvelope, `"version":2`, `"version":-1`, 1),
		"bad time":        strings.Replace(validEnvelope, `2026-11-28T09:00:00Z`, `yesterday`, 1),
		"no time":         strings.Replace(validEnvelope, `"occurred_at":"2026-11-28T09:00:00Z",`, ``, 1),
		"bad actor":       strings.Replace(validEnvelope, `"worker"`, `"robot"`, 1),
		"huge":            `{"id":"` + strings.Repeat("x", eventstore.MaxEnvelopeSize) + `"}`,
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := eventstore.DecodeEnvelope([]byte(in)); !errors.Is(err, eventstore.ErrInvalidEnvelope) {
				t.Fatalf("got %v, want ErrInvalidEnvelope", err)
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(validEnvelope))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"x","type":"A","tenant":"t","aggregate_type":"order","aggregate_id":"o","version":1,"occurred_at":"2026-01-01T00:00:00Z","actor":{"kind":"system"},"data":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"data":{"a":[1,2,{"b":"c"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := eventstore.DecodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, eventstore.ErrInvalidEnvelope) {
				t.Fatalf("error %v does not match ErrInvalidEnvelope", err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded envelope does not validate: %v", err)
		}
		// What decodes re-encodes and decodes to the same envelope.
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := eventstore.DecodeEnvelope(out)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if e2.ID != e.ID || e2.Version != e.Version || !e2.OccurredAt.Equal(e.OccurredAt) {
			t.Fatalf("round trip changed %+v to %+v", e, e2)
		}
	})
}
