package handlers

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A lane's pull leaves room in the iterator's channel for what JetStream
// sends besides triggers. nats.go makes that channel as large as the
// pull's count, and drops what arrives while it is full. With the window's
// count, the server fulfilled the pull with a window of triggers and then
// sent a status ("409 Batch Completed"), one more than the room: under
// load a lane lost a status or a trigger, and waited AckWait for it. With
// twice the count, a whole window out (all MaxAckPending lets out) leaves
// the pull open, so no such status follows it, and the channel has a
// window's room to spare.
func TestLanePullLeavesRoomForStatuses(t *testing.T) {
	t.Parallel()
	js, ctx := gateServer(t)
	const window = 4
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PULL", Subjects: []string{"PULL.>"}, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "lane", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: window})
	if err != nil {
		t.Fatal(err)
	}
	for i := range window + 1 {
		if _, err := js.Publish(ctx, fmt.Sprintf("PULL.%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	it, err := cons.Messages(lanePull(window), jetstream.PullExpiry(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	// nats.go sends the first pull as the first Next asks for a message.
	first, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	if !eventstoretest.Within(10*time.Second, func() bool {
		info, err = cons.Info(ctx)
		return err == nil && info.NumAckPending == window && info.NumWaiting == 1
	}) {
		if info == nil {
			t.Fatalf("consumer info: %v", err)
		}
		t.Fatalf("%d triggers out, %d pulls open (err %v): want the window out and its pull still open", info.NumAckPending, info.NumWaiting, err)
	}
	for i := range window + 1 {
		m := first
		if i > 0 {
			if m, err = it.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if want := fmt.Sprintf("PULL.%d", i); m.Subject() != want {
			t.Fatalf("delivery %d is %s, want %s", i+1, m.Subject(), want)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}
