package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The set of triggers put aside leaves out dead letters stored before
// ORDERFLOW_TRIGGERS was made: they name triggers of a stream since
// deleted, whose sequences are other triggers' now.
func TestPutAsideLeavesOutAnEarlierTriggerStream(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	if err := before.EnsureDeadLetters(ctx); err != nil {
		t.Fatal(err)
	}
	js := before.JetStream()
	putAsideNow := func(seq uint64) {
		t.Helper()
		m := nats.NewMsg(eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up"))
		m.Header.Set(jetstream.MsgIDHeader, deadLetterID(seq))
		m.Header.Set(wmnats.WatermillUUIDHdr, fmt.Sprintf("t-%d", seq))                   // the trigger's id
		m.Header.Set(mdSubject, eventstore.TriggerSubject("default", "o-1", "picked_up")) // as putAsideOnce names it
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	putAsideNow(1)
	if err := js.DeleteStream(ctx, eventstore.StreamTriggers); err != nil {
		t.Fatal(err)
	}
	after := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{}) // makes ORDERFLOW_TRIGGERS anew
	putAsideNow(2)
	set, err := readPutAside(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	if set.has(deadLetterID(1)) || !set.has(deadLetterID(2)) {
		t.Fatalf("put aside: 1 %v, 2 %v; want only 2 (1 is of the deleted trigger stream)", set.has(deadLetterID(1)), set.has(deadLetterID(2)))
	}
	// The trigger account (and the lanes' recovery) leaves it out too.
	keys, err := deadLetterKeys(ctx, after)
	if err != nil || len(keys) != 1 || !keys[deadLetterKey("default", "o-1", "picked_up", "t-2")] {
		t.Fatalf("dead letter keys %v, %v; want the second's only", keys, err)
	}
}
