package eventstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// MessagesOn reads every message of one subject, oldest first, across
// pages of batched direct gets, leaving out other subjects and messages
// stored before the time given.
func TestMessagesOn(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{LoadBatch: 2})
	ctx := ctxT(t)
	if err := st.EnsureDeadLetters(ctx); err != nil {
		t.Fatal(err)
	}
	one := eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up")
	other := eventstore.DeadLetterSubjectFor("default", "o-2", "picked_up")
	publish := func(subject, data string) {
		t.Helper()
		if _, err := st.JetStream().PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	publish(one, "early")
	stored, err := st.MessagesOn(ctx, eventstore.StreamDeadLetter, one, time.Time{})
	if err != nil || len(stored) != 1 {
		t.Fatalf("MessagesOn = %d messages, %v; want the one", len(stored), err)
	}
	since := stored[0].Time.Add(time.Nanosecond)
	for i := range 5 {
		publish(one, fmt.Sprintf("m%d", i))
		publish(other, "other")
	}
	got, err := st.MessagesOn(ctx, eventstore.StreamDeadLetter, one, since)
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for _, m := range got {
		data = append(data, string(m.Data))
	}
	if fmt.Sprint(data) != "[m0 m1 m2 m3 m4]" {
		t.Fatalf("MessagesOn = %v, want m0 to m4", data)
	}
	if none, err := st.MessagesOn(ctx, eventstore.StreamDeadLetter, eventstore.DeadLetterSubjectFor("default", "o-3", "picked_up"), time.Time{}); err != nil || len(none) != 0 {
		t.Fatalf("a subject with no messages: %d, %v", len(none), err)
	}
}
