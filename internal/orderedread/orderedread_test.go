package orderedread_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/internal/orderedread"
)

// orderedOn starts an embedded server with a stream of n messages and
// returns an ordered consumer's Messages on it, pulling pull at a time.
func orderedOn(t *testing.T, n, pull int) jetstream.MessagesContext {
	t.Helper()
	srv := eventstoretest.StartServer(t)
	js, err := jetstream.New(eventstoretest.Connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "READ", Subjects: []string{"read.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("read.%d", i%7), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(eventstoretest.Patience(30 * time.Second)):
		t.Fatalf("the stream's messages were not acknowledged within %s", eventstoretest.Patience(30*time.Second))
	}
	cons, err := js.OrderedConsumer(ctx, "READ", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pull))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func TestReaderHandsOverEveryMessageInOrder(t *testing.T) {
	t.Parallel()
	const n = 3000
	r := orderedread.New(orderedOn(t, n, 64), 16) // a buffer smaller than a pull: the reading waits for Next
	defer r.Close(nil)
	ctx, cancel := context.WithTimeout(t.Context(), eventstoretest.Patience(30*time.Second))
	defer cancel()
	for want := uint64(1); want <= n; want++ {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", want, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if meta.Sequence.Stream != want || m.Subject() != fmt.Sprintf("read.%d", (want-1)%7) {
			t.Fatalf("got %s at %d, want stream sequence %d", m.Subject(), meta.Sequence.Stream, want)
		}
	}
}

func TestNextReturnsAsItsCtxEnds(t *testing.T) {
	t.Parallel()
	r := orderedread.New(orderedOn(t, 1, 64), 16)
	defer r.Close(nil)
	if _, err := r.Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Nothing more is stored: Next waits until its ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if m, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a read-out stream: %v, %v; want the ctx's error", m, err)
	}
	ended, end := context.WithCancel(t.Context())
	end()
	if _, err := r.Next(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with an ended ctx: %v; want context.Canceled", err)
	}
}

func TestCloseStopsTheReadingThenCallsAfter(t *testing.T) {
	t.Parallel()
	it := orderedOn(t, 100, 8)
	r := orderedread.New(it, 1) // the reading waits to hand over its second message
	called := make(chan struct{})
	r.Close(func() { close(called) })
	select {
	case <-called:
	case <-time.After(eventstoretest.Patience(30 * time.Second)):
		t.Fatalf("Close did not call after within %s", eventstoretest.Patience(30*time.Second))
	}
	if _, err := it.Next(); !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		t.Fatalf("Next on the consumer after Close: %v; want it stopped", err)
	}
}
