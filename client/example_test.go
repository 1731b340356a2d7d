package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// A worker app publishes triggers and a dashboard follows the order's
// stage changes. The first part starts an embedded orderflow with the
// worked example, as `orderflow serve` would.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, stop := startOrderflow(ctx)
	defer stop()

	nc, err := nats.Connect(url)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	c, err := client.New(nc)
	if err != nil {
		panic(err)
	}

	// The dashboard: follow one order's stage changes.
	changes := make(chan client.StageChange, 16)
	sub, err := c.SubscribeStageChanges("order-42", func(sc client.StageChange) { changes <- sc })
	if err != nil {
		panic(err)
	}
	defer sub.Unsubscribe()

	// The worker app: one trigger per action, each acknowledged by JetStream.
	for _, tr := range handlers.WorkedExampleTriggers {
		if _, err := c.PublishTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: tr, Worker: "ana"}); err != nil {
			panic(err)
		}
	}
	for range handlers.WorkedExampleTriggers {
		sc := <-changes
		if sc.To != nil {
			fmt.Printf("v%d %s → %s\n", sc.Version, sc.Type, sc.To.Status)
		} else {
			fmt.Printf("v%d %s\n", sc.Version, sc.Type)
		}
	}
	// Output:
	// v2 OrderAdvanced → received
	// v3 OrderAdvanced → washing
	// v4 OrderAdvanced → drying
	// v5 OrderAdvanced → folding
	// v6 OrderAdvanced → ready_for_delivery
	// v7 OrderAdvanced → out_for_delivery
	// v8 OrderCompleted
}

// A worker app applies triggers and shows the worker what each did.
// (Connecting is as in the package example.)
func ExampleClient_ApplyTrigger() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, stop := startWithClient(ctx)
	defer stop()

	res, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: "picked_up", Worker: "ana"})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Outcome, "to", res.Change.To.Status)

	_, err = c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: "delivered", Worker: "ana"})
	var rejected *domain.RejectedError
	if errors.As(err, &rejected) {
		fmt.Println(rejected.Reason, "- the order waits for", rejected.Expected)
	}
	// Output:
	// advanced to received
	// unexpected_trigger - the order waits for items_tagged
}

// A dashboard that keeps the last stage change it handled follows on
// after it when it starts again: it misses none, and sees none twice.
// (Connecting is as in the package example.)
func ExampleClient_FollowStageChanges() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, stop := startWithClient(ctx)
	defer stop()
	apply := func(trigger string) {
		if _, err := c.ApplyTrigger(ctx, client.Trigger{OrderID: "order-42", Trigger: trigger, Worker: "ana"}); err != nil {
			panic(err)
		}
	}
	// follow shows the order's changes stored after `after`, until it has
	// seen n of them, and returns the last one's sequence.
	follow := func(after uint64, n int) (last uint64) {
		errEnough := errors.New("enough for now")
		err := c.FollowStageChanges(ctx, "order-42", after, func(sc client.StageChange) error {
			fmt.Println(sc.Type, "v", sc.Version)
			last, n = sc.Sequence, n-1
			if n == 0 {
				return errEnough // the dashboard stops here
			}
			return nil
		})
		if !errors.Is(err, errEnough) {
			panic(err)
		}
		return last
	}

	apply("picked_up")
	last := follow(0, 2)  // placed, advanced
	apply("items_tagged") // while the dashboard is away
	follow(last, 1)
	// Output:
	// OrderPlaced v 1
	// OrderAdvanced v 2
	// OrderAdvanced v 3
}

// startWithClient runs orderflow (startOrderflow) and connects a client
// to it; stop ends both.
func startWithClient(ctx context.Context) (*client.Client, func()) {
	url, stop := startOrderflow(ctx)
	nc, err := nats.Connect(url)
	if err != nil {
		panic(err)
	}
	c, err := client.New(nc)
	if err != nil {
		panic(err)
	}
	return c, func() {
		nc.Close()
		stop()
	}
}

// placeKey is the key of the request that placed order-42.
const placeKey = "desk-order-42"

// startOrderflow runs the event store, the definitions read model and the
// trigger processor on an embedded server, seeds the worked example and
// places order-42 (request key placeKey).
func startOrderflow(ctx context.Context) (url string, stop func()) {
	dir, err := os.MkdirTemp("", "orderflow-example-")
	if err != nil {
		panic(err)
	}
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	st, err := eventstore.Open(ctx, nc, eventstore.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defs := projections.NewDefinitions(quiet)
	if err := defs.Start(ctx, st); err != nil {
		panic(err)
	}
	cmds := &handlers.Commands{Store: st, Defs: defs, Tenant: "default"}
	if err := handlers.SeedWorkedExample(ctx, cmds); err != nil {
		panic(err)
	}
	if _, err := cmds.PlaceOrder(ctx, handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "desk"}, RequestKey: placeKey},
		"order-42", handlers.WorkedExampleOrderType, ""); err != nil {
		panic(err)
	}
	proc, err := handlers.NewProcessor(ctx, cmds, srv.ClientURL(), handlers.ProcessorConfig{Logger: quiet})
	if err != nil {
		panic(err)
	}
	go func() { _ = proc.Run(context.Background()) }()
	<-proc.Running()
	return srv.ClientURL(), func() {
		_ = proc.Close()
		defs.Stop()
		st.Close()
		nc.Close()
		srv.Shutdown()
		os.RemoveAll(dir)
	}
}
