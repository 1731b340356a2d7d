package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// clientThroughFreezer is a client whose requests wait attempt for an
// answer, connected through a Freezer to a server with orderflow's
// streams, and a store on that server, connected directly.
func clientThroughFreezer(t *testing.T, attempt time.Duration) (*Client, *eventstore.Store, *eventstoretest.Freezer) {
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	fz := eventstoretest.StartFreezer(t, srv.ClientURL())
	c, err := New(eventstoretest.Connect(t, fz.URL()))
	if err != nil {
		t.Fatal(err)
	}
	c.attempt = attempt
	return c, st, fz
}

// answer is what PublishTrigger returned.
type answer struct {
	ack Ack
	err error
}

// publishInBackground publishes order-1's picked_up trigger, id
// trigger-1, and delivers PublishTrigger's answer when it comes.
func publishInBackground(ctx context.Context, c *Client) <-chan answer {
	answered := make(chan answer, 1)
	go func() {
		ack, err := c.PublishTrigger(ctx, Trigger{OrderID: "order-1", Trigger: "picked_up", TriggerID: "trigger-1"})
		answered <- answer{ack, err}
	}()
	return answered
}

// A trigger whose acknowledgement is lost (the server stored it, and its
// answer went down with the connection) is sent again with the same id:
// PublishTrigger answers with the trigger's one stored position, and the
// stream holds it once.
func TestPublishTriggerResendsAnUnansweredTrigger(t *testing.T) {
	c, st, fz := clientThroughFreezer(t, 200*time.Millisecond)
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()

	fz.Hold(true)
	answered := publishInBackground(ctx, c)
	eventstoretest.WaitMessages(t, st.JetStream(), eventstore.StreamTriggers, 1, 10*time.Second)
	stored, err := st.JetStream().Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stored.GetLastMsgForSubject(ctx, "orderflow.default.trigger.order-1.picked_up")
	if err != nil {
		t.Fatal(err)
	}
	fz.Hold(false)
	fz.Cut() // the client reconnects; the next send is answered

	a := <-answered
	if a.err != nil || a.ack.Sequence != first.Sequence || !a.ack.Duplicate || !a.ack.Resent || a.ack.TriggerID != "trigger-1" {
		t.Fatalf("PublishTrigger = %+v, %v; want the first send's position %d, as a resent duplicate", a.ack, a.err, first.Sequence)
	}
	if info, err := stored.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("the trigger stream: %v, %v; want the trigger once", info, err)
	}
}

// With a ctx that has no deadline, a trigger that goes unanswered is sent
// publishAttempts times, then reported not acknowledged; with one, it is
// sent until ctx ends. Either way it is stored once.
func TestPublishTriggerGivesUpUnanswered(t *testing.T) {
	c, st, fz := clientThroughFreezer(t, 50*time.Millisecond)
	fz.Hold(true)

	ack, err := c.PublishTrigger(context.Background(), Trigger{OrderID: "order-1", Trigger: "picked_up"})
	if !errors.Is(err, ErrNotAcknowledged) || !errors.Is(err, context.DeadlineExceeded) || ack.TriggerID == "" ||
		!strings.Contains(err.Error(), "sent 3 times") {
		t.Fatalf("unanswered, no deadline: %+v, %v", ack, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	ack2, err := c.PublishTrigger(ctx, Trigger{OrderID: "order-1", Trigger: "washed", TriggerID: ack.TriggerID + "-2"})
	if !errors.Is(err, ErrNotAcknowledged) || ctx.Err() == nil || ack2.TriggerID == "" {
		t.Fatalf("unanswered until ctx ended: %+v, %v (ctx %v)", ack2, err, ctx.Err())
	}
	if !strings.Contains(err.Error(), " times)") {
		t.Fatalf("not sent again before ctx ended: %v", err)
	}

	// Each stored once, however many times it was sent.
	eventstoretest.WaitMessages(t, st.JetStream(), eventstore.StreamTriggers, 2, 10*time.Second)
}

// A trigger sent while the server has no stream for it (a cluster whose
// servers are starting again) is sent again until one is there.
func TestPublishTriggerWaitsForTheStream(t *testing.T) {
	srv := eventstoretest.StartServer(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	c, err := New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c.attempt = time.Minute // so that only a send that finds no stream is sent again
	again := make(chan struct{})
	c.sending = func(n int) {
		if n == 2 {
			close(again)
		}
	}
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()

	answered := publishInBackground(ctx, c)
	<-again
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})

	a := <-answered
	if a.err != nil || a.ack.Sequence == 0 || !a.ack.Resent || a.ack.Duplicate {
		t.Fatalf("PublishTrigger = %+v, %v; want it stored, resent", a.ack, a.err)
	}
	eventstoretest.WaitMessages(t, st.JetStream(), eventstore.StreamTriggers, 1, 10*time.Second)
}
