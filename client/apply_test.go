package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// ApplyTrigger answers with what the trigger processor made of a trigger:
// advanced or completed with the stage change, duplicate, rejected with
// the expected trigger, or dead-lettered with the reason.
func TestApplyTrigger(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	c, stop := startWithClient(ctx)
	defer stop()
	apply := func(order, trigger, id string) (client.Applied, error) {
		return c.ApplyTrigger(ctx, client.Trigger{OrderID: order, Trigger: trigger, TriggerID: id, Worker: "ana"})
	}

	// A ctx without a deadline is waited on as it is (it used to be
	// refused by the flush of the subscriptions).
	first, err := c.ApplyTrigger(context.WithoutCancel(ctx), client.Trigger{OrderID: "order-42", Trigger: handlers.WorkedExampleTriggers[0], Worker: "ana"})
	if err != nil || first.Outcome != domain.OutcomeAdvanced || first.Change == nil || first.Change.Version != 2 ||
		first.Change.To == nil || first.Change.To.Status != "received" {
		t.Fatalf("first trigger: %+v, %v", first, err)
	}
	var rejected *domain.RejectedError
	if _, err := apply("order-42", "delivered", "t-wrong"); !errors.As(err, &rejected) ||
		rejected.Reason != domain.RejectUnexpectedTrigger || rejected.Expected != handlers.WorkedExampleTriggers[1] {
		t.Fatalf("an out-of-order trigger: %v", err)
	}
	if again, err := apply("order-42", handlers.WorkedExampleTriggers[0], first.TriggerID); err != nil ||
		again.Outcome != domain.OutcomeDuplicate || again.Change != nil {
		t.Fatalf("the same trigger id again: %+v, %v", again, err)
	}
	// The id sent for another trigger of the order: it never takes effect.
	if other, err := apply("order-42", handlers.WorkedExampleTriggers[1], first.TriggerID); !errors.Is(err, domain.ErrDuplicate) ||
		!strings.Contains(err.Error(), "is already the id of trigger "+strconv.Quote(handlers.WorkedExampleTriggers[0])) || other.Outcome != "" {
		t.Fatalf("the trigger id for another trigger: %+v, %v", other, err)
	}
	// The id reused for another order: JetStream has it already, so this
	// trigger is not stored, and the answer says so once ctx ends.
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	reused, err := c.ApplyTrigger(short, client.Trigger{OrderID: "order-43", Trigger: handlers.WorkedExampleTriggers[0], TriggerID: first.TriggerID})
	cancelShort()
	if err == nil || !strings.Contains(err.Error(), "if that id was another order's trigger, this one was not stored") ||
		!reused.Duplicate || reused.Sequence != first.Sequence {
		t.Fatalf("a trigger id reused for another order: %+v, %v", reused, err)
	}
	// A note as long as the client lets through, in two-byte characters,
	// takes effect (it is no dead letter for its bytes).
	note := strings.Repeat("é", domain.MaxDescriptionLen)
	if got, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: handlers.WorkedExampleTriggers[1], Worker: "ana", Note: note}); err != nil ||
		got.Outcome != domain.OutcomeAdvanced || !strings.Contains(string(got.Change.Data), note) {
		t.Fatalf("a trigger with a note of %d characters: %+v, %v", domain.MaxDescriptionLen, got.Outcome, err)
	}
	var last client.Applied
	for _, tr := range handlers.WorkedExampleTriggers[2:] {
		if last, err = apply("order-42", tr, ""); err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
	}
	if last.Outcome != domain.OutcomeCompleted || last.Change.Version != 9 { // 8 steps and the rejection
		t.Fatalf("last trigger: %+v", last)
	}
	// The rejected trigger's id again: the same rejection, as recorded.
	if again, err := apply("order-42", "delivered", "t-wrong"); !errors.As(err, &rejected) ||
		rejected.Expected != handlers.WorkedExampleTriggers[1] || !again.Duplicate {
		t.Fatalf("the rejected trigger again: %+v, %v", again, err)
	}
	var dead *client.DeadLetterError
	if _, err := apply("ghost", "picked_up", ""); !errors.As(err, &dead) || !strings.Contains(dead.Reason, "unknown order") ||
		err.Error() != "trigger put aside as a dead letter: "+dead.Reason {
		t.Fatalf("a trigger for an unknown order: %v", err)
	}
	if _, err := apply("order.42", "picked_up", ""); err == nil {
		t.Fatal("an unsafe order id was accepted")
	}
}

// A trigger id spelled like the key of the request that placed the order
// is a trigger id like any other: the order's history has that key as the
// cause of OrderPlaced, which is not the trigger's outcome.
func TestTriggerIDSpelledLikeARequestKey(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	c, stop := startWithClient(ctx)
	defer stop()
	tr := client.Trigger{OrderID: "order-42", Trigger: handlers.WorkedExampleTriggers[0], TriggerID: placeKey, Worker: "ana"}
	if got, err := c.ApplyTrigger(ctx, tr); err != nil || got.Outcome != domain.OutcomeAdvanced {
		t.Fatalf("trigger %s: %+v, %v; want advanced", placeKey, got, err)
	}
	if got, err := c.ApplyTrigger(ctx, tr); err != nil || got.Outcome != domain.OutcomeDuplicate {
		t.Fatalf("trigger %s again: %+v, %v; want duplicate", placeKey, got, err)
	}
}

// clientWithoutStreams is a client of a server that has none of
// orderflow's streams, and a context for the test.
func clientWithoutStreams(t *testing.T) (*client.Client, context.Context) {
	c, _, ctx := connWithoutStreams(t)
	return c, ctx
}

// connWithoutStreams is clientWithoutStreams with its connection.
func connWithoutStreams(t *testing.T) (*client.Client, *nats.Conn, context.Context) {
	srv := eventstoretest.StartServer(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Not scaled by eventstoretest.Slack: a publish to a server without
	// the streams waits for this deadline before it is not acknowledged.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c, nc, ctx
}

// A trigger JetStream does not acknowledge (here: a server without
// orderflow's streams) is ErrNotAcknowledged, and the Ack names the trigger
// id that was made for it, to send it again with. With a ctx without a
// deadline it is sent three times first, and the error says why.
func TestPublishNotAcknowledged(t *testing.T) {
	c, _ := clientWithoutStreams(t)
	ctx := context.Background()
	ack, err := c.PublishTrigger(ctx, client.Trigger{OrderID: "order-1", Trigger: "picked_up"})
	if !errors.Is(err, client.ErrNotAcknowledged) || ack.TriggerID == "" || !strings.Contains(err.Error(), ack.TriggerID) ||
		!strings.Contains(err.Error(), "no response from stream") || !strings.Contains(err.Error(), "sent 3 times") {
		t.Fatalf("publish without the streams: %+v, %v", ack, err)
	}
	applied, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-1", Trigger: "picked_up"})
	if !errors.Is(err, client.ErrNotAcknowledged) || applied.TriggerID == "" || applied.TriggerID == ack.TriggerID {
		t.Fatalf("apply without the streams: %+v, %v", applied, err)
	}
}

// A trigger the trigger processor would put aside for what it holds is
// refused before anything is sent (here a server without orderflow's
// streams would answer any publish with ErrNotAcknowledged).
func TestTriggersRefusedBeforeSending(t *testing.T) {
	c, nc, ctx := connWithoutStreams(t)
	ok := client.Trigger{OrderID: "order-1", Trigger: "picked_up", TriggerID: "t-1", Worker: "Ana Lopez", Note: "two bags,\n\tone heavy"}
	for name, change := range map[string]func(*client.Trigger){
		"worker with a control character": func(t *client.Trigger) { t.Worker = "a\x00b" },
		"worker not UTF-8":                func(t *client.Trigger) { t.Worker = "caf\xe9" },
		"worker too long":                 func(t *client.Trigger) { t.Worker = strings.Repeat("w", domain.MaxActorIDLen+1) },
		"note with a control character":   func(t *client.Trigger) { t.Note = "bell\x07" },
		"time past year 9999 in UTC": func(t *client.Trigger) {
			t.OccurredAt = time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600))
		},
		"trigger id with a space":     func(t *client.Trigger) { t.TriggerID = "t 1" },
		"trigger id too long":         func(t *client.Trigger) { t.TriggerID = strings.Repeat("t", domain.MaxTriggerIDLen+1) },
		"no order id":                 func(t *client.Trigger) { t.OrderID = "" },
		"order id with a subject dot": func(t *client.Trigger) { t.OrderID = "order.1" },
		"order id with a wildcard":    func(t *client.Trigger) { t.OrderID = "order-*" },
		"order id that is a wildcard": func(t *client.Trigger) { t.OrderID = ">" },
		"no trigger":                  func(t *client.Trigger) { t.Trigger = "" },
		"trigger with a subject dot":  func(t *client.Trigger) { t.Trigger = "picked.up" },
		"trigger with a space":        func(t *client.Trigger) { t.Trigger = "picked up" },
	} {
		bad := ok
		change(&bad)
		if _, err := c.PublishTrigger(ctx, bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("PublishTrigger, %s: %v; want domain.ErrInvalid", name, err)
		}
		if _, err := c.ApplyTrigger(ctx, bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("ApplyTrigger, %s: %v; want domain.ErrInvalid", name, err)
		}
	}
	if _, err := c.PublishTrigger(ctx, ok); !errors.Is(err, client.ErrNotAcknowledged) {
		t.Fatalf("a good trigger: %v; want it sent (and not acknowledged, with no streams)", err)
	}
	// Following one order, and the client's tenant, need subject-safe
	// names as well.
	for _, id := range []string{"order.1", "order-*", ">", "a b"} {
		if _, err := c.SubscribeStageChanges(id, func(client.StageChange) {}); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("SubscribeStageChanges(%q): %v; want domain.ErrInvalid", id, err)
		}
		if err := c.FollowStageChanges(ctx, id, 0, func(client.StageChange) error { return nil }); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("FollowStageChanges(%q): %v; want domain.ErrInvalid", id, err)
		}
	}
	for _, tenant := range []string{"", "acme.eu", "acme*", "a b"} {
		if _, err := client.New(nc, client.WithTenant(tenant)); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("New with tenant %q: %v; want domain.ErrInvalid", tenant, err)
		}
	}
}

// A trigger id of the caller's is looked up in the order's history before
// it is published: found past the first page of the read (256 events),
// and found when it holds characters that JSON escapes.
func TestApplyTriggerFindsCallerIDsInLongHistories(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	c, stop := startWithClient(ctx)
	defer stop()
	wrong := func(id string) (client.Applied, error) {
		return c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: "delivered", TriggerID: id})
	}
	ids := []string{`odd<id>&"quoted"\é`}
	for i := range 300 {
		ids = append(ids, fmt.Sprintf("wrong-%d", i))
	}
	for _, id := range ids {
		if _, err := wrong(id); !isRejection(err) {
			t.Fatalf("%s: %v", id, err)
		}
	}
	for _, id := range []string{ids[0], ids[1], ids[len(ids)-1]} {
		again, err := wrong(id)
		if !isRejection(err) || !again.Duplicate || again.Sequence != 0 {
			t.Fatalf("%s again: %+v, %v (want the recorded rejection, found before publishing)", id, again, err)
		}
	}
	// An id the order has not seen is published and answered.
	if _, err := wrong("wrong-new"); !isRejection(err) {
		t.Fatalf("a new id: %v", err)
	}
}

func isRejection(err error) bool {
	_, ok := errors.AsType[*domain.RejectedError](err)
	return ok
}

// An outcome heard on the order's subjects is not the answer until the
// order's history has it: a plain subscriber also hears an event that the
// stream refuses (an append that lost a race with another writer of the
// order), and the trigger is then decided again. Here a rejection of the
// trigger is published and refused while no processor runs; the answer is
// what the processor, started after, stores: advanced.
func TestPhantomOutcomeIsNotTheAnswer(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	srv := eventstoretest.StartServer(t)
	quiet := slog.New(slog.DiscardHandler)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{Logger: quiet})
	defs := projections.NewDefinitions(quiet)
	if err := defs.Start(ctx, st); err != nil {
		t.Fatal(err)
	}
	defer defs.Stop()
	cmds := &handlers.Commands{Store: st, Defs: defs, Tenant: "default"}
	if err := handlers.SeedWorkedExample(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	desk := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "desk"}}
	if _, err := cmds.PlaceOrder(ctx, desk, "order-9", handlers.WorkedExampleOrderType, ""); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, _ := client.New(nc)
	done := applyInBackground(ctx, c, client.Trigger{OrderID: "order-9", Trigger: handlers.WorkedExampleTriggers[0], TriggerID: "t-phantom"})
	// Once the trigger is stored, ApplyTrigger listens (it does first).
	js := st.JetStream()
	eventstoretest.WaitMessages(t, js, eventstore.StreamTriggers, 1, 10*time.Second)
	phantom := nats.NewMsg(eventstore.Aggregate{Tenant: "default", Type: eventstore.OrderAggregateType, ID: "order-9"}.Subject(domain.TypeTriggerRejected))
	phantom.Data = fmt.Appendf(nil, `{"type":%q,"aggregate_id":"order-9","version":2,"causation_id":"t-phantom","data":{"trigger":%q,"trigger_id":"t-phantom","reason":%q,"expected":%q}}`,
		domain.TypeTriggerRejected, handlers.WorkedExampleTriggers[0], domain.RejectOnHold, handlers.WorkedExampleTriggers[0])
	phantom.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "999") // the order has no such event: refused
	if _, err := js.PublishMsg(ctx, phantom); err == nil {
		t.Fatal("the stream stored the phantom rejection")
	}
	proc, err := handlers.NewProcessor(ctx, cmds, srv.ClientURL(), handlers.ProcessorConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	go func() { _ = proc.Run(context.Background()) }()
	r := <-done
	if r.err != nil || r.applied.Outcome != domain.OutcomeAdvanced || r.applied.Change == nil || r.applied.Change.Version != 2 {
		t.Fatalf("the answer: %+v, %v (want advanced, as stored)", r.applied, r.err)
	}
}

// A trigger ApplyTrigger made the id of, whose acknowledgement is lost
// (held back, then the connection cut), is sent again: the answer is the
// trigger's own outcome, read from the order's history, not a duplicate.
func TestApplyTriggerSentAgainAnswersItsOwnOutcome(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	url, stop := startOrderflow(ctx)
	defer stop()
	fz := eventstoretest.StartFreezer(t, url)
	c, err := client.New(eventstoretest.Connect(t, fz.URL()))
	if err != nil {
		t.Fatal(err)
	}
	client.SetAttempt(c, 300*time.Millisecond)
	client.SetSending(c, func(n int) {
		if n == 1 { // its answer is lost; the subscriptions to the outcome are in place
			fz.Hold(true)
		}
	})
	js, err := jetstream.New(eventstoretest.Connect(t, url))
	if err != nil {
		t.Fatal(err)
	}

	answered := applyInBackground(ctx, c, client.Trigger{OrderID: "order-42", Trigger: handlers.WorkedExampleTriggers[0], Worker: "ana"})
	eventstoretest.WaitMessages(t, js, eventstore.StreamTriggers, 1, 10*time.Second)
	fz.Hold(false)
	fz.Cut()

	a := <-answered
	if a.err != nil || !a.applied.Resent || a.applied.Duplicate || a.applied.Outcome != domain.OutcomeAdvanced ||
		a.applied.Change == nil || a.applied.Change.Version != 2 {
		t.Fatalf("ApplyTrigger = %+v, %v; want advanced to version 2, resent", a.applied, a.err)
	}
}

// result is what ApplyTrigger returned.
type result struct {
	applied client.Applied
	err     error
}

// applyInBackground applies tr with c and delivers ApplyTrigger's answer
// when it comes.
func applyInBackground(ctx context.Context, c *client.Client, tr client.Trigger) <-chan result {
	done := make(chan result, 1)
	go func() {
		a, err := c.ApplyTrigger(ctx, tr)
		done <- result{a, err}
	}()
	return done
}
