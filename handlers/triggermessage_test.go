package handlers

import (
	"testing"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// The trigger id a lane message gives the processor is a copy of its
// Nats-Msg-Id. nats.go cuts every header value out of one string holding
// the message's whole header block, and the order cache keeps each trigger
// id for as long as it keeps the order: the header's own string would
// keep the block with it, about 300 bytes a trigger (under load, 50-65 MB
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
