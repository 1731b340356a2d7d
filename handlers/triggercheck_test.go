package handlers

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// An import's account finds the first trigger neither answered in its
// order's history nor put aside.
func TestImportedTriggersFirstToRead(t *testing.T) {
	t.Parallel()
	at, worker := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w-1"}
	outcome := func(order, typ, trigger, triggerID string) eventstore.StoredMsg {
		data, _ := json.Marshal(map[string]string{"trigger": trigger, "trigger_id": triggerID})
		body, _ := json.Marshal(eventstore.Envelope{ID: "e-" + triggerID, Type: typ, Tenant: "default", AggregateType: "order",
			AggregateID: order, Version: 2, OccurredAt: at, Actor: worker, CausationID: triggerID, Data: data})
		return eventstore.StoredMsg{Stream: eventstore.StreamOrders, Subject: "orderflow.default.order." + order + "." + typ, Data: body}
	}
	placed := func(order string) eventstore.StoredMsg {
		body, _ := json.Marshal(eventstore.Envelope{ID: "p-" + order, Type: domain.TypeOrderPlaced, Tenant: "default",
			AggregateType: "order", AggregateID: order, Version: 1, OccurredAt: at, Actor: worker, Data: json.RawMessage(`{}`)})
		return eventstore.StoredMsg{Stream: eventstore.StreamOrders, Subject: "orderflow.default.order." + order + ".OrderPlaced", Data: body}
	}
	trigger := func(order, key, msgID, body string) eventstore.StoredMsg {
		m := eventstore.StoredMsg{Stream: eventstore.StreamTriggers, Subject: eventstore.TriggerSubject("default", order, key),
			Header: map[string][]string{jetstream.MsgIDHeader: {msgID}}}
		if body != "" {
			m.Data = []byte(body)
		}
		return m
	}
	deadLetter := func(msgID string) eventstore.StoredMsg {
		return eventstore.StoredMsg{Stream: eventstore.StreamDeadLetter, Subject: eventstore.DeadLetterSubject,
			Header: map[string][]string{jetstream.MsgIDHeader: {msgID}}}
	}
	for _, tc := range []struct {
		name     string
		orders   []eventstore.StoredMsg // outcomes first, as export writes them
		triggers []eventstore.StoredMsg // stored at 1, 2, …
		dead     []eventstore.StoredMsg
		want     uint64
	}{
		{name: "no triggers", want: 1},
		{name: "every trigger answered",
			orders: []eventstore.StoredMsg{placed("o-1"), outcome("o-1", domain.TypeOrderAdvanced, "picked_up", "t1"),
				outcome("o-1", domain.TypeTriggerRejected, "delivered", "t2")},
			triggers: []eventstore.StoredMsg{trigger("o-1", "picked_up", "t1", ""), trigger("o-1", "delivered", "t2", "")},
			want:     3},
		{name: "answered by the id in its body, sent again after the window",
			orders:   []eventstore.StoredMsg{outcome("o-1", domain.TypeOrderAdvanced, "picked_up", "t1")},
			triggers: []eventstore.StoredMsg{trigger("o-1", "picked_up", "t1", ""), trigger("o-1", "picked_up", "t1-again", `{"trigger_id":"t1"}`)},
			want:     3},
		{name: "one not answered in the middle",
			orders: []eventstore.StoredMsg{outcome("o-1", domain.TypeOrderAdvanced, "picked_up", "t1"),
				outcome("o-1", domain.TypeOrderAdvanced, "items_tagged", "t3")},
			triggers: []eventstore.StoredMsg{trigger("o-1", "picked_up", "t1", ""), trigger("o-2", "picked_up", "t2", ""),
				trigger("o-1", "items_tagged", "t3", "")},
			want: 2},
		{name: "put aside in front",
			orders:   []eventstore.StoredMsg{outcome("o-1", domain.TypeOrderAdvanced, "picked_up", "t1")},
			triggers: []eventstore.StoredMsg{trigger("ghost", "picked_up", "t0", ""), trigger("o-1", "picked_up", "t1", ""), trigger("o-1", "items_tagged", "t2", "")},
			dead:     []eventstore.StoredMsg{deadLetter(deadLetterID(1))},
			want:     3},
		{name: "a dead letter without the trigger's sequence in its id",
			triggers: []eventstore.StoredMsg{trigger("ghost", "picked_up", "t0", "")},
			dead:     []eventstore.StoredMsg{deadLetter("t0")},
			want:     1},
		{name: "an id its order has as another trigger's",
			orders:   []eventstore.StoredMsg{outcome("o-1", domain.TypeOrderAdvanced, "picked_up", "t1")},
			triggers: []eventstore.StoredMsg{trigger("o-1", "picked_up", "t1", ""), trigger("o-1", "items_tagged", "t1-other", `{"trigger_id":"t1"}`)},
			want:     2},
		{name: "the same id on another order",
			orders:   []eventstore.StoredMsg{outcome("o-1", domain.TypeOrderAdvanced, "picked_up", "t1")},
			triggers: []eventstore.StoredMsg{trigger("o-2", "picked_up", "t1", "")},
			want:     1},
		{name: "a subject that names no trigger",
			triggers: []eventstore.StoredMsg{{Stream: eventstore.StreamTriggers, Subject: "orderflow.default.trigger.o-1"}},
			want:     1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := NewImportedTriggers()
			for _, m := range tc.orders {
				it.Add(m)
			}
			for i, m := range tc.triggers {
				m.Sequence = uint64(i + 1)
				it.Add(m)
			}
			for i, m := range tc.dead {
				m.Sequence = uint64(i + 1)
				it.Add(m)
			}
			if got := it.FirstToRead(); got != tc.want {
				t.Fatalf("FirstToRead = %d, want %d", got, tc.want)
			}
		})
	}
}

// Two names that differ only in where one ends and the next begins do not
// share a digest.
func TestTriggerDigestKeepsNamesApart(t *testing.T) {
	t.Parallel()
	a := triggerDigest("default", "o-1", "picked_up", "t1")
	for _, names := range [][4]string{{"default", "o-1p", "icked_up", "t1"}, {"default", "o-1", "picked_upt", "1"}, {"defaulto-1", "", "picked_up", "t1"}} {
		if triggerDigest(names[0], names[1], names[2], names[3]) == a {
			t.Fatalf("%v shares the digest of default/o-1/picked_up/t1", names)
		}
	}
	if triggerDigest("default", "o-1", "picked_up", "t1") != a {
		t.Fatal("the digest changed between two calls")
	}
}
