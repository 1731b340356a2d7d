package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
)

// FollowStageChanges replays an order's stage changes from a stream
// sequence, then follows new ones live; following again after the last
// one handled misses none and repeats none; the consumer it reads with is
// removed once it returns.
func TestFollowStageChanges(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	url, stop := startOrderflow(ctx)
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range append([]string{"delivered"}, handlers.WorkedExampleTriggers[:3]...) { // a rejection, then three steps
		if _, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: tr, Worker: "ana"}); err != nil && !isRejection(err) {
			t.Fatal(err)
		}
	}

	// follow collects n changes after `after`, then stops it.
	errEnough := errors.New("enough")
	follow := func(orderID string, after uint64, n int) []client.StageChange {
		t.Helper()
		var got []client.StageChange
		err := c.FollowStageChanges(ctx, orderID, after, func(sc client.StageChange) error {
			got = append(got, sc)
			if len(got) == n {
				return errEnough
			}
			return nil
		})
		if !errors.Is(err, errEnough) {
			t.Fatalf("FollowStageChanges(%q, %d) = %v after %d changes, want the handler's error", orderID, after, err, len(got))
		}
		return got
	}
	all := follow("order-42", 0, 4)
	for i, sc := range all {
		if sc.OrderID != "order-42" || sc.Type == domain.TypeTriggerRejected || (i > 0 && sc.Sequence <= all[i-1].Sequence) {
			t.Fatalf("change %d: %+v", i, sc)
		}
	}
	if all[0].Type != domain.TypeOrderPlaced || all[0].Version != 1 || all[3].Version != 5 || all[3].To == nil || all[3].To.Status != "drying" {
		t.Fatalf("changes: %+v", all)
	}
	if again := follow("order-42", all[1].Sequence, 2); again[0].Sequence != all[2].Sequence || again[1].Sequence != all[3].Sequence {
		t.Fatalf("after %d: %+v", all[1].Sequence, again)
	}
	if every := follow("", 0, 1); every[0].Sequence != all[0].Sequence {
		t.Fatalf("every order's first change: %+v", every[0])
	}

	// Live: a change stored while following is delivered; ctx's end ends it.
	live, stopLive := context.WithCancel(ctx)
	seen := make(chan client.StageChange, 8)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowStageChanges(live, "order-42", all[3].Sequence, func(sc client.StageChange) error { seen <- sc; return nil })
	}()
	if _, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: handlers.WorkedExampleTriggers[3], Worker: "ana"}); err != nil {
		t.Fatal(err)
	}
	select {
	case sc := <-seen:
		if sc.Version != 6 || sc.Type != domain.TypeOrderAdvanced || sc.Sequence <= all[3].Sequence {
			t.Fatalf("live change: %+v", sc)
		}
	case <-ctx.Done():
		t.Fatal("the live change never came")
	}
	// The earlier followers asked for their consumers' removal as they
	// returned, without waiting for the answer: under load the server may
	// take a moment to remove them.
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return followers(ctx, t, nc) == 1 },
		"one consumer following while one follower runs")
	stopLive()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowStageChanges after its ctx ended: %v", err)
	}

	if err := c.FollowStageChanges(ctx, "order.42", 0, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("an unsafe order id: %v", err)
	}
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return followers(ctx, t, nc) == 0 }, "the followers' consumers removed")
}

// followers counts the consumers on ORDERFLOW_ORDERS that follow order-42
// or every order.
func followers(ctx context.Context, t *testing.T, nc *nats.Conn) int {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "ORDERFLOW_ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for info := range stream.ListConsumers(ctx).Info() {
		switch info.Config.FilterSubject {
		case "orderflow.default.order.order-42.>", "orderflow.default.order.>":
			if info.Config.InactiveThreshold == 30*time.Second { // ApplyTrigger's history reads have 5 s
				n++
			}
		}
	}
	return n
}

// SubscribeStageChanges, of one order or of every order, leaves out
// rejected triggers: a dashboard hears the placement's next step, not
// the rejection stored before it.
func TestSubscribeStageChangesLeavesOutRejections(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	c, stop := startWithClient(ctx)
	defer stop()
	one, every := make(chan client.StageChange, 8), make(chan client.StageChange, 8)
	for id, ch := range map[string]chan client.StageChange{"order-42": one, "": every} {
		sub, err := c.SubscribeStageChanges(id, func(sc client.StageChange) { ch <- sc })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if _, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: "delivered", Worker: "ana"}); !isRejection(err) {
		t.Fatalf("a trigger out of turn: %v", err)
	}
	if _, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: handlers.WorkedExampleTriggers[0], Worker: "ana"}); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan client.StageChange{"one order": one, "every order": every} {
		select {
		case sc := <-ch:
			if sc.OrderID != "order-42" || sc.Type != domain.TypeOrderAdvanced || sc.Version != 3 {
				t.Fatalf("%s: the first change heard is %s %s at version %d, want order-42's advance at version 3", name, sc.OrderID, sc.Type, sc.Version)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no change heard", name)
		}
	}
}
