package eventstore_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

func TestHashChain(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	agg := order("chain-1")
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if err != nil {
		t.Fatal(err)
	}
	// Without PrevHash the store looks the previous hash up itself.
	r2, err := st.Append(ctx, agg, r.LastSeq, ev("OrderAdvanced", 3))
	if err != nil {
		t.Fatal(err)
	}
	evs := mustLoad(t, st, agg)
	if evs[0].PrevHash != "" || evs[0].Hash == "" || evs[1].PrevHash != evs[0].Hash || evs[2].PrevHash != evs[1].Hash ||
		r.LastHash != evs[1].Hash || r2.LastHash != evs[2].Hash {
		t.Fatalf("chain: %+v %+v", r, evs)
	}
	stream, _ := st.JetStream().Stream(ctx, eventstore.StreamOrders)
	for _, e := range evs {
		m, err := stream.GetMsg(ctx, e.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		canonical, claimed, ok := eventstore.CanonicalBytes(m.Data)
		if !ok || claimed != e.Hash || eventstore.HashOf(canonical) != e.Hash {
			t.Fatalf("sequence %d: canonical bytes do not give the stored hash", e.Sequence)
		}
	}
}

// verify passes on a clean store and reports a forged event, a gap, a
// reordering, a message that is no event and an event with no hash in a
// copy of the stream, each with its location.
func TestVerifyFindsBreaks(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	for _, id := range []string{"forged", "gappy", "shuffled"} {
		var last uint64
		for v := uint64(1); v <= 4; v++ {
			r, err := st.Append(ctx, order(id), last, ev("OrderAdvanced", v))
			if err != nil {
				t.Fatal(err)
			}
			last = r.LastSeq
		}
	}
	rep, err := st.Verify(ctx, nil, nil)
	if err != nil || len(rep.Breaks) != 0 || rep.Events != 12 || rep.Aggregates != 3 {
		t.Fatalf("clean store: %+v %v", rep, err)
	}
	// A stream named twice would have every event reported as repeated,
	// and a stream of triggers every message as undecodable: refused.
	for _, streams := range [][]string{{eventstore.StreamOrders, eventstore.StreamOrders}, {eventstore.StreamTriggers}, {eventstore.StreamDeadLetter}} {
		if rep, err := st.Verify(ctx, streams, nil); err == nil {
			t.Errorf("Verify(%v) = %d breaks, want an error", streams, len(rep.Breaks))
		}
	}

	// A copy of the orders stream, tampered with.
	js := st.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUDIT_COPY", Subjects: []string{"auditcopy.>"}}); err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	stream, _ := js.Stream(ctx, eventstore.StreamOrders)
	for seq := uint64(1); seq <= 12; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	copyMsg := func(m *jetstream.RawStreamMsg, data []byte) uint64 {
		out := nats.NewMsg("auditcopy." + m.Subject)
		out.Data = data
		ack, err := js.PublishMsg(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	var forgedAt, gapAt, shuffledAt uint64
	for i := 0; i < len(msgs); i++ {
		m := msgs[i]
		switch {
		case i == 2: // forged: version 3 of "forged" says something else, same hash
			forgedAt = copyMsg(m, bytes.Replace(m.Data, []byte(`"n":3`), []byte(`"n":30`), 1))
		case i == 5: // gap: version 2 of "gappy" is missing
		case i == 9: // reordering: versions 2 and 3 of "shuffled" swapped
			shuffledAt = copyMsg(msgs[10], msgs[10].Data)
			copyMsg(m, m.Data)
			i++
		default:
			seq := copyMsg(m, m.Data)
			if i == 6 {
				gapAt = seq
			}
		}
	}
	// A message that is no event, and an event stripped of its hash.
	undecodableAt := copyMsg(msgs[0], []byte("not an event"))
	cut := bytes.LastIndex(msgs[0].Data, []byte(`,"hash":"`))
	if cut < 0 {
		t.Fatalf("no hash member in %s", msgs[0].Data)
	}
	unsealedAt := copyMsg(msgs[0], append(bytes.Clone(msgs[0].Data[:cut]), '}'))
	rep, err = st.Verify(ctx, []string{"AUDIT_COPY"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]uint64{}
	for _, b := range rep.Breaks {
		t.Log(b)
		if _, seen := found[b.Kind]; !seen {
			found[b.Kind] = b.Sequence
		}
	}
	if found["altered"] != forgedAt || found["gap"] != gapAt || found["reordered"] == 0 || found["reordered"] <= shuffledAt ||
		found["undecodable"] != undecodableAt || found["unsealed"] != unsealedAt {
		t.Fatalf("breaks %v; want altered at %d, gap at %d, reordered after %d, undecodable at %d, unsealed at %d",
			found, forgedAt, gapAt, shuffledAt, undecodableAt, unsealedAt)
	}
}
