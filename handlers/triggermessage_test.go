package handlers

import (
	"testing"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// The trigger id a lane message gives the processor is a copy of its
// Nats-Msg-Id. nats.go cuts every header value out of one string holding
// the message's whole header block, and the order cache keeps each trigger
// id for as long as it keeps the order: the header's own string would
// keep the block with it, about 300 bytes a trigger (under load, 52-69 MB
// for the cache's 25,000 completed orders; docs/benchmarks.md, "Worker
// apps offering more than the processor takes").
func TestTriggerIDKeepsNoHeaderBlock(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-copy")
	seq := f.trigger(t, "o-copy", WorkedExampleTriggers[0], "trigger-1")
	cons, err := f.js.OrderedConsumer(f.ctx, eventstore.StreamTriggers, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	header := m.Headers().Get(jetstream.MsgIDHeader)
	got := triggerMessage(m, seq, false).UUID
	if got != header || got != "trigger-1" {
		t.Fatalf("trigger id %q, header %q: want both trigger-1", got, header)
	}
	if unsafe.StringData(got) == unsafe.StringData(header) {
		t.Fatal("the trigger id is the header's own string, which keeps the message's whole header block")
	}
}

// An order the cache loads keeps a copy of its id: a trigger's order id
// is cut out of its NATS message's subject, which the order would
// otherwise keep whole for as long as the cache keeps it.
func TestCachedOrderKeepsItsOwnID(t *testing.T) {
	_, id, _, err := eventstore.ParseLaneSubject(laneSubject(WorkedExampleTriggers[0]))
	if err != nil {
		t.Fatal(err)
	}
	got := newCachedOrder(id, nil).(*domain.Order).View().ID
	if got != id {
		t.Fatalf("order id %q, want %q", got, id)
	}
	if unsafe.StringData(got) == unsafe.StringData(id) {
		t.Fatal("the order's id is the subject's own string, which it keeps whole")
	}
}
