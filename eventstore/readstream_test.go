package eventstore_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// ReadStream reads a stream of messages as large as the streams take
// (its pulls are bounded in bytes, and the bound must not stall on the
// largest), whole and in order; ReadStreamHeaders reads the same without
// their bodies.
func TestReadStreamOfLargeMessages(t *testing.T) {
	t.Parallel()
	st := eventstoretest.DeadLetterStore(t, eventstore.Config{})
	ctx := ctxT(t)
	subject := eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up")
	const n = 24
	for i := range n {
		m := nats.NewMsg(subject)
		m.Header.Set("Seq", fmt.Sprint(i))
		m.Data = bytes.Repeat([]byte{'a' + byte(i%26)}, 900<<10) // 21 MB in all, over the pull's bound
		if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, headersOnly := range []bool{false, true} {
		read := st.ReadStream
		if headersOnly {
			read = st.ReadStreamHeaders
		}
		var i int
		got, err := read(ctx, eventstore.StreamDeadLetter, func(m eventstore.StoredMsg) error {
			switch {
			case nats.Header(m.Header).Get("Seq") != fmt.Sprint(i) || m.Sequence != uint64(i+1) || m.Subject != subject || m.Time.IsZero():
				return fmt.Errorf("message %d: sequence %d, header %q, subject %s, time %v", i, m.Sequence, nats.Header(m.Header).Get("Seq"), m.Subject, m.Time)
			case headersOnly && len(m.Data) != 0:
				return fmt.Errorf("message %d: a body of %d bytes read with the headers only", i, len(m.Data))
			case !headersOnly && !bytes.Equal(m.Data, bytes.Repeat([]byte{'a' + byte(i%26)}, 900<<10)):
				return fmt.Errorf("message %d: a body of %d bytes, not as stored", i, len(m.Data))
			}
			i++
			return nil
		}, nil)
		if err != nil || got != n {
			t.Fatalf("headers only %v: read %d of %d: %v", headersOnly, got, n, err)
		}
	}
}

// A stream read whose caller falls behind (a slow disk under an export,
// say) holds what it has read ahead without losing any of it and without
// nats.go dropping anything as a slow consumer: a pull's messages and the
// status message that ends each pull share nats.go's channel, and with
// two pulls out a full channel had the second one's status dropped
// ("slow consumer, messages dropped", printed by every large export).
// The caller stops at several places, since which pulls are out when the
// read-ahead fills depends on where it stops: where the read-ahead fills
// as nats.go asks for more, at half of a pull (its default), two pulls
// were out before the change, and the drop came every time.
func TestReadStreamOfACallerThatFallsBehind(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	ctx := ctxT(t)
	control, err := jetstream.New(eventstoretest.Connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := control.CreateStream(ctx, jetstream.StreamConfig{Name: "READ_AHEAD", Subjects: []string{"read.ahead"}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * eventstore.ReadPull
	for i := range n {
		if _, err := control.PublishAsync("read.ahead", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 || i == n-1 { // fewer out at once than nats.go lets wait for their acknowledgements
			select {
			case <-control.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
	atHalf := eventstore.ReadPull/2 + 1 - eventstore.ReadAhead // the read-ahead fills as the reader takes the pull's message past half
	for _, stop := range []int{1, atHalf, atHalf + 1, eventstore.ReadPull + 5} {
		nc := eventstoretest.Connect(t, srv.ClientURL())
		st, err := eventstore.Open(ctx, nc, eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var i int
		got, err := st.ReadStream(ctx, "READ_AHEAD", func(m eventstore.StoredMsg) error {
			if string(m.Data) != fmt.Sprint(i) || m.Sequence != uint64(i+1) {
				return fmt.Errorf("message %d: sequence %d, %q", i, m.Sequence, m.Data)
			}
			i++
			if i == stop {
				fallBehind(t, ctx, stream, nc, uint64(stop+eventstore.ReadAhead))
			}
			return nil
		}, nil)
		if err != nil || got != n {
			t.Fatalf("stopped at %d: read %d of %d: %v", stop, got, n, err)
		}
		if err := nc.LastError(); err != nil {
			t.Fatalf("stopped at %d: the read's connection: %v", stop, err)
		}
		st.Close()
	}
}

// fallBehind waits, as a caller of ReadStream that has fallen behind,
// until the read has asked for all it reads ahead (its read-ahead holds
// at least ahead messages past the caller) and the server has sent it all
// (no pull waits), and nc has taken in everything the server sent.
func fallBehind(t *testing.T, ctx context.Context, stream jetstream.Stream, nc *nats.Conn, ahead uint64) {
	t.Helper()
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		for info := range stream.ListConsumers(ctx).Info() {
			if info.Delivered.Stream >= ahead && info.NumWaiting == 0 {
				return true
			}
		}
		return false
	}, "the read to ask for all it reads ahead")
	if err := nc.FlushWithContext(ctx); err != nil { // what the server sent before the flush's answer has been taken in
		t.Fatal(err)
	}
}
