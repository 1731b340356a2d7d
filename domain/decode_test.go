package domain

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/jsonfast"
)

var fastSamples = []Event{
	OrderPlaced{OrderTypeID: "laundry", To: Position{"pickup", 3, 0, "awaiting_pickup"}, Workflows: []string{"pickup", "production"}},
	OrderPlaced{OrderTypeID: "laundry", To: Position{"pickup", 1, 0, "a"}},
	OrderPlaced{OrderTypeID: "laundry", To: Position{"pickup", 1, 0, "a"}, Workflows: []string{}},
	OrderAdvanced{Trigger: "picked_up", TriggerID: "0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b", Worker: "w1",
		From: Position{"pickup", 1, 0, "awaiting_pickup"}, To: Position{"pickup", 1, 1, "in_transit"}},
	OrderCompleted{Trigger: "delivered", TriggerID: "t", From: Position{"delivery", 18446744073709551615, 9223372036854775807, "out"}},
	OrderAdvanced{Trigger: "picked_up", TriggerID: "t", Worker: "w1", From: Position{"pickup", 1, 0, "a"}, To: Position{"pickup", 1, 1, "b"},
		Note: "two bags", WorkerOccurredAt: time.Date(2026, 11, 30, 8, 12, 0, 123, time.UTC)},
	OrderAdvanced{Trigger: "picked_up", TriggerID: "t", Worker: "w1", From: Position{"pickup", 1, 0, "a"}, To: Position{"pickup", 1, 1, "b"},
		WorkerOccurredAt: time.Date(2026, 11, 30, 8, 12, 0, 0, time.UTC)},
	OrderCompleted{Trigger: "delivered", TriggerID: "t", From: Position{"delivery", 1, 0, "out"}, Note: "left at the door"},
}

// Order events as encoding/json writes them take the fast path (a field
// added or reordered in one of these structs must update its reader).
func TestOrderEventsTakeTheFastPath(t *testing.T) {
	t.Parallel()
	for _, e := range fastSamples {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := readFast(e.EventType(), data)
		if !ok {
			t.Fatalf("%s %s: not read by the fast path", e.EventType(), data)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("fast path read %+v, want %+v", got, e)
		}
	}
}

// readFast runs only the fast reader of typ.
func readFast(typ string, data []byte) (Event, bool) {
	r := jsonfast.NewReader(data)
	var ok bool
	var e Event
	switch typ {
	case TypeOrderPlaced:
		var v OrderPlaced
		ok, e = readPlaced(&r, &v), &v
	case TypeOrderAdvanced:
		var v OrderAdvanced
		ok, e = readAdvanced(&r, &v), &v
	case TypeOrderCompleted:
		var v OrderCompleted
		ok, e = readCompleted(&r, &v), &v
	}
	if !ok || !r.Done() {
		return nil, false
	}
	return reflect.ValueOf(e).Elem().Interface().(Event), true
}

// FuzzFastDecode: whatever a fast reader accepts, encoding/json reads the
// same way.
func FuzzFastDecode(f *testing.F) {
	for _, e := range fastSamples {
		data, _ := json.Marshal(e)
		f.Add(e.EventType(), data)
	}
	f.Add(TypeOrderAdvanced, []byte(`{"trigger":"a","trigger_id":"b","worker":"c","from":{"workflow_id":"w","workflow_version":01,"step":0,"status":"s"},"to":{"workflow_id":"w","workflow_version":1,"step":-1,"status":"s"}}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		fast, ok := readFast(typ, data)
		if !ok {
			return
		}
		slow, err := DecodeEvent(typ, data)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %s", err, data)
		}
		want := reflect.New(reflect.TypeOf(fast))
		if err := json.Unmarshal(data, want.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, want.Elem().Interface()) || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path read %+v, encoding/json %+v, from %s", fast, want.Elem().Interface(), data)
		}
	})
}
