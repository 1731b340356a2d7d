package eventstore_test

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A RangeReader reads the events of a filter within (after, upTo],
// oldest first, skips a message that is not an event, and ends at upTo,
// however many events follow.
func TestReadRange(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx := ctxT(t)
	var seqs []uint64 // of o-1's events
	last := map[string]uint64{}
	for i := 1; i <= 10; i++ {
		for _, id := range []string{"o-1", "o-2"} {
			res, err := st.Append(ctx, order(id), last[id], ev("OrderAdvanced", uint64(i)))
			if err != nil {
				t.Fatal(err)
			}
			last[id] = res.LastSeq
			if id == "o-1" {
				seqs = append(seqs, res.LastSeq)
			}
		}
	}
	junk, err := st.JetStream().PublishMsg(ctx, &nats.Msg{Subject: "orderflow.default.order.o-1.Junk", Data: []byte("not an event")}) // written around the store: skipped
	if err != nil {
		t.Fatal(err)
	}
	read := func(after, upTo uint64, most int) []uint64 {
		t.Helper()
		rr, err := st.OpenRange(ctx, eventstore.StreamOrders, order("o-1").Filter(), after, upTo)
		if err != nil {
			t.Fatal(err)
		}
		defer rr.Close()
		var got []uint64
		for len(got) < most {
			e, ok, err := rr.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if e.AggregateID != "o-1" {
				t.Fatalf("read %s's event %d", e.AggregateID, e.Sequence)
			}
			got = append(got, e.Sequence)
		}
		return got
	}
	if got := read(0, junk.Sequence, 100); !slices.Equal(got, seqs) {
		t.Fatalf("the range of all = %v, want %v", got, seqs)
	}
	if got := read(seqs[2], seqs[6], 100); !slices.Equal(got, seqs[3:7]) {
		t.Fatalf("the range (%d, %d] = %v, want %v", seqs[2], seqs[6], got, seqs[3:7])
	}
	if got := read(seqs[2], seqs[6]+1, 100); !slices.Equal(got, seqs[3:7]) { // o-2's event comes next
		t.Fatalf("a range up to another aggregate's event = %v, want %v", got, seqs[3:7])
	}
	if got := read(0, seqs[9], 4); !slices.Equal(got, seqs[:4]) {
		t.Fatalf("the first four of a range = %v", got)
	}
	if got := read(seqs[9], seqs[9], 100); len(got) != 0 {
		t.Fatalf("an empty range = %v", got)
	}
}
