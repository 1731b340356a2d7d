package handlers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The demo's workers send each order the trigger its step waits for: with
// a step added to a workflow (as the README's "Change a workflow" does)
// its orders still complete, and none of its triggers is rejected.
func TestDemoFollowsTheWorkflows(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	c := newCommands(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	if _, _, err := c.AddStatus(ctx, meta, "", "Ironing", domain.CategoryInProgress); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.AddTrigger(ctx, meta, "ironed", "Ironed", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangeWorkflow(ctx, meta, "standard_laundry_production", AddWorkflowStep(3, domain.Step{Status: "ironing", Trigger: "ironed"})); err != nil {
		t.Fatal(err)
	}
	startProcessor(t, c, srv.ClientURL(), nil)

	nc := eventstoretest.Connect(t, srv.ClientURL())
	var completed, rejected atomic.Int64
	for subject, n := range map[string]*atomic.Int64{"orderflow.default.order.*.OrderCompleted": &completed, "orderflow.default.order.*.TriggerRejected": &rejected} {
		sub, err := nc.Subscribe(subject, func(*nats.Msg) { n.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d := &Demo{Commands: c, Log: quiet, Interval: time.Millisecond, MaxInFlight: 4,
		Publish: func(ctx context.Context, orderID, trigger, worker string) error {
			m := nats.NewMsg(eventstore.TriggerSubject("default", orderID, trigger))
			m.Data = []byte(`{"worker":"` + worker + `"}`)
			return nc.PublishMsg(m)
		}}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	defer func() { stop(); <-done }()
	eventstoretest.Eventually(t, time.Minute, func() bool { return completed.Load() >= 6 }, "six demo orders completed")
	if n := rejected.Load(); n != 0 {
		t.Fatalf("%d of the demo's triggers were rejected", n)
	}
}
