package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/handlers"
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
	ctx, cancel := eventstoretest.Context(10 * time.Second)
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
	b.WriteString(storedTriggers(ctx, js))
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

// storedTriggers counts the triggers stored per order and lists the
// orders that do not have all of the worked example's, with the ids they
// have: a trigger acknowledged to the feeder but missing here was lost
// before the lanes.
func storedTriggers(ctx context.Context, js jetstream.JetStream) string {
	cons, err := js.OrderedConsumer(ctx, eventstore.StreamTriggers, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return fmt.Sprintf("(triggers: %v)\n", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Sprintf("(triggers: %v)\n", err)
	}
	ids := map[string][]string{}
	for n := info.NumPending; n > 0; n-- {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return fmt.Sprintf("(triggers: %v)\n", err)
		}
		meta, _ := m.Metadata()
		_, id, _, err := eventstore.ParseTriggerSubject(m.Subject())
		if err != nil {
			id = m.Subject()
		}
		ids[id] = append(ids[id], fmt.Sprintf("%d:%s", meta.Sequence.Stream, m.Headers().Get(jetstream.MsgIDHeader)))
	}
	var b strings.Builder
	for id, got := range ids {
		if len(got) != len(handlers.WorkedExampleTriggers) {
			fmt.Fprintf(&b, "  order %s has %d triggers stored: %v\n", id, len(got), got)
		}
	}
	if b.Len() == 0 {
		return fmt.Sprintf("  every one of %d orders has its %d triggers stored\n", len(ids), len(handlers.WorkedExampleTriggers))
	}
	return b.String()
}
