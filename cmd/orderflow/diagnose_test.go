package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// laneState describes the trigger streams and lane consumers, for the
// diagnosis of a fault test that failed: how many triggers were stored,
// what the lanes still hold and where their consumers stand.
func laneState(url string) string {
	nc, err := nats.Connect(url)
	if err != nil {
		return fmt.Sprintf("(no connection: %v)", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	for _, name := range []string{eventstore.StreamTriggers, eventstore.StreamTriggerLanes, eventstore.StreamDeadLetter} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
			continue
		}
		s := st.CachedInfo().State
		fmt.Fprintf(&b, "%s: %d messages, sequences %d..%d, %d deleted\n", name, s.Msgs, s.FirstSeq, s.LastSeq, s.NumDeleted)
		for _, src := range st.CachedInfo().Sources {
			fmt.Fprintf(&b, "  source %s: lag %d, active %v ago\n", src.Name, src.Lag, src.Active)
		}
	}
	lanes, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		return b.String()
	}
	for info := range lanes.ListConsumers(ctx).Info() {
		fmt.Fprintf(&b, "consumer %s: delivered %d (stream %d), ack floor %d (stream %d), ack pending %d, redelivered %d, pending %d\n",
			info.Name, info.Delivered.Consumer, info.Delivered.Stream, info.AckFloor.Consumer, info.AckFloor.Stream,
			info.NumAckPending, info.NumRedelivered, info.NumPending)
	}
	// What the lanes still hold: a trigger here at the end was never
	// acknowledged.
	if s := lanes.CachedInfo().State; s.Msgs > 0 {
		for seq := s.FirstSeq; seq <= s.LastSeq; seq++ {
			m, err := lanes.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			fmt.Fprintf(&b, "  lane message %d: %s id %s\n", seq, m.Subject, m.Header.Get(jetstream.MsgIDHeader))
		}
	}
	return b.String()
}
