package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// ScanMessagesOn reads the messages of one subject, oldest first, across
// pages of batched direct gets (of a few messages, and of a few large
// ones), leaving out other subjects and messages stored before the time
// given, and stops when told to.
func TestScanMessagesOn(t *testing.T) {
	t.Parallel()
	st := eventstoretest.DeadLetterStore(t, eventstore.Config{LoadBatch: 3})
	ctx := ctxT(t)
	one := eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up")
	other := eventstore.DeadLetterSubjectFor("default", "o-2", "picked_up")
	publish := func(subject, data string) {
		t.Helper()
		if _, err := st.JetStream().PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	scan := func(subject string, since time.Time, upTo int) ([]string, []time.Time) {
		t.Helper()
		var data []string
		var times []time.Time
		err := st.ScanMessagesOn(ctx, eventstore.StreamDeadLetter, subject, since, func(m *jetstream.RawStreamMsg) (bool, error) {
			data = append(data, string(m.Data[:min(len(m.Data), 8)]))
			times = append(times, m.Time)
			return len(data) < upTo, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return data, times
	}
	publish(one, "early")
	_, times := scan(one, time.Time{}, 10)
	if len(times) != 1 {
		t.Fatalf("ScanMessagesOn read %d messages, want the one", len(times))
	}
	since := times[0].Add(time.Nanosecond)
	large := strings.Repeat("L", 200<<10) // two of them are over a page's bytes
	for i := range 7 {
		data := fmt.Sprintf("m%d", i)
		if i == 3 || i == 4 {
			data += large
		}
		publish(one, data)
		publish(other, "other")
	}
	if got, _ := scan(one, since, 100); fmt.Sprint(got) != "[m0 m1 m2 m3LLLLLL m4LLLLLL m5 m6]" {
		t.Fatalf("ScanMessagesOn from the second message = %v, want m0 to m6", got)
	}
	if got, _ := scan(one, time.Time{}, 100); len(got) != 8 || got[0] != "early" {
		t.Fatalf("ScanMessagesOn from the start = %v, want early and m0 to m6", got)
	}
	if got, _ := scan(one, since, 5); fmt.Sprint(got) != "[m0 m1 m2 m3LLLLLL m4LLLLLL]" {
		t.Fatalf("ScanMessagesOn told to stop after five = %v", got)
	}
	if got, _ := scan(eventstore.DeadLetterSubjectFor("default", "o-3", "picked_up"), time.Time{}, 100); len(got) != 0 {
		t.Fatalf("a subject with no messages: %v", got)
	}
	if got, _ := scan(one, time.Now().Add(time.Hour), 100); len(got) != 0 {
		t.Fatalf("from a time after the last message: %v", got)
	}
}

// A read of many pages whose reader takes longer than the store's Timeout
// between them reads on: the Timeout bounds each page's answer, not the
// read. Before, a read of every dead letter of a store holding 2 GB of
// them (orderflow deadletters --order) failed after 5 s.
func TestScanOutlastsTheStoreTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	st := eventstoretest.DeadLetterStore(t, eventstore.Config{LoadBatch: 2, Timeout: timeout})
	ctx := ctxT(t)
	for i := range 6 {
		if _, err := st.JetStream().Publish(ctx, eventstore.DeadLetterSubject, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The reader dwells on the first message past the Timeout: it stands
	// for a slow reader (orderflow deadletters looking up each order).
	dwell, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	var got []string
	err := st.ScanMessages(context.Background(), eventstore.StreamDeadLetter, "", 0, func(m *jetstream.RawStreamMsg) (bool, error) {
		if len(got) == 0 {
			<-dwell.Done()
		}
		got = append(got, string(m.Data))
		return true, nil
	})
	if err != nil || fmt.Sprint(got) != "[m0 m1 m2 m3 m4 m5]" {
		t.Fatalf("ScanMessages = %v, %v; want m0 to m5", got, err)
	}
}
