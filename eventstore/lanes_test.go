package eventstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A lane consumer from before lanes were pinned (one unacknowledged
// trigger, no priority group) is replaced by a pinned one, and the
// trigger waiting in its lane is still delivered.
func TestEnsureLanesReplacesUnpinnedConsumers(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx := ctxT(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	js := st.JetStream()
	lanes, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	// Put the old consumer back, as an earlier orderflow made it.
	if err := lanes.DeleteConsumer(ctx, eventstore.LaneConsumer(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := lanes.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: eventstore.LaneConsumer(0), FilterSubject: "orderflow._lanes.0.>",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1,
	}); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(eventstore.TriggerSubject("default", "o-upgrade", "picked_up"))
	m.Header.Set(jetstream.MsgIDHeader, "upgrade-1")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		info, err := lanes.Info(ctx)
		return err == nil && info.State.Msgs == 1
	}, "the trigger to reach its lane")

	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1, Window: 32}); err != nil {
		t.Fatal(err)
	}
	cons, err := lanes.Consumer(ctx, eventstore.LaneConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	if cfg.PriorityPolicy != jetstream.PriorityPolicyPinned || cfg.MaxAckPending != 32 || len(cfg.PriorityGroups) != 1 || cfg.PriorityGroups[0] != eventstore.LaneGroup {
		t.Fatalf("lane consumer not replaced: %+v", cfg)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchPriorityGroup(eventstore.LaneGroup))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range msgs.Messages() {
		got = append(got, m.Headers().Get(jetstream.MsgIDHeader))
	}
	if len(got) != 1 || got[0] != "upgrade-1" {
		t.Fatalf("waiting trigger after the upgrade: %v (%v)", got, msgs.Error())
	}
}

// The lanes' copy of ORDERFLOW_TRIGGERS reports the server's error while
// the copy fails (here: the trigger stream does not exist), and the lane
// stream's waiting triggers.
func TestLaneCopyStateReportsACopyError(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	ctx := ctxT(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, eventstore.LaneStreamConfig(2, 1)); err != nil {
		t.Fatal(err)
	}
	st, err := eventstore.Attach(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var lc eventstore.LaneCopy
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		lc, err = st.LaneCopyState(ctx)
		return err == nil && lc.Err != ""
	}, "the copy's error to show")
	if lc.Waiting != 0 || !strings.Contains(lc.Err, "stream not found") || lc.Idle != -1 {
		t.Fatalf("LaneCopyState = %+v", lc)
	}
}

// A working copy: the copied trigger waits in the lanes, there is no
// error, and the lane stream has heard from the copy.
func TestLaneCopyStateOfAWorkingCopy(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx := ctxT(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 2}); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(eventstore.TriggerSubject("default", "o-state", "picked_up"))
	m.Header.Set(jetstream.MsgIDHeader, "state-1")
	if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	var lc eventstore.LaneCopy
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		var err error
		lc, err = st.LaneCopyState(ctx)
		return err == nil && lc.Waiting == 1
	}, "the trigger copied into the lanes")
	if lc.Err != "" || lc.Idle < 0 {
		t.Fatalf("LaneCopyState = %+v", lc)
	}
}
