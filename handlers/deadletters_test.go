package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A query for one tenant's or one order's dead letters reads their own
// subjects and the one subject of all that earlier versions used, and
// gives them together in stored order, at most its limit, after its
// sequence; a listing leaves the bodies out, ReadDeadLetter reads one
// whole. A tenant or order that no subject token can spell gives none,
// and no error.
func TestReadDeadLettersPicksOutATenantOrAnOrder(t *testing.T) {
	t.Parallel()
	st := eventstoretest.DeadLetterStore(t, eventstore.Config{LoadBatch: 2})
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()
	put := func(tenant, order string, legacy bool) {
		t.Helper()
		subject := eventstore.DeadLetterSubjectFor(tenant, order, "picked_up")
		if legacy {
			subject = eventstore.DeadLetterSubject
		}
		m := nats.NewMsg(subject)
		m.Header.Set(mdSubject, "orderflow."+tenant+".trigger."+order+".picked_up")
		m.Header.Set("reason_poisoned", "poison trigger: unknown order")
		m.Data = []byte(`{"worker":"ana","trigger_id":"` + tenant + "-" + order + `"}`)
		if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	put("default", "o-1", false) // 1
	put("default", "o-1", true)  // 2
	put("default", "o-2", false) // 3
	put("acme", "o-1", false)    // 4
	put("default", "o-2", true)  // 5
	put("default", "o-1", false) // 6
	put("acme", "o-1", true)     // 7
	junk := nats.NewMsg(eventstore.DeadLetterSubject)
	junk.Header.Set(mdSubject, "not a trigger subject")
	if _, err := st.JetStream().PublishMsg(ctx, junk); err != nil { // 8
		t.Fatal(err)
	}

	for _, c := range []struct {
		q    DeadLetterQuery
		want string
	}{
		{DeadLetterQuery{}, "[1 2 3 4 5 6 7 8]"},
		{DeadLetterQuery{Limit: 3, After: 2}, "[3 4 5]"},
		{DeadLetterQuery{Tenant: "default", OrderID: "o-1"}, "[1 2 6]"},
		{DeadLetterQuery{Tenant: "default", OrderID: "o-1", Limit: 2}, "[1 2]"},
		{DeadLetterQuery{Tenant: "default", OrderID: "o-1", After: 1, Limit: 2}, "[2 6]"},
		{DeadLetterQuery{Tenant: "default"}, "[1 2 3 5 6]"},
		{DeadLetterQuery{Tenant: "default", Limit: 4}, "[1 2 3 5]"},
		{DeadLetterQuery{Tenant: "acme"}, "[4 7]"},
		{DeadLetterQuery{OrderID: "o-1"}, "[1 2 4 6 7]"},
		{DeadLetterQuery{OrderID: "o-3"}, "[]"},
		{DeadLetterQuery{OrderID: "o 1"}, "[]"},
		{DeadLetterQuery{Tenant: "a.b", OrderID: "o-1"}, "[]"},
		{DeadLetterQuery{Tenant: "*"}, "[]"},
		{DeadLetterQuery{OrderID: ">"}, "[]"},
	} {
		dls, err := ReadDeadLetters(ctx, st, c.q)
		if err != nil {
			t.Fatalf("%+v: %v", c.q, err)
		}
		seqs := make([]uint64, len(dls))
		for i, dl := range dls {
			seqs[i] = dl.Seq
			if dl.Body != nil {
				t.Fatalf("%+v: dead letter %d listed with its body", c.q, dl.Seq)
			}
			if dl.Seq != 8 && dl.TriggerID != dl.Tenant+"-"+dl.OrderID {
				t.Fatalf("%+v: dead letter %d: trigger id %q", c.q, dl.Seq, dl.TriggerID)
			}
		}
		if got := fmt.Sprint(seqs); got != c.want {
			t.Errorf("%+v: %s, want %s", c.q, got, c.want)
		}
	}
	dl, err := ReadDeadLetter(context.Background(), st, 6)
	if err != nil || string(dl.Body) != `{"worker":"ana","trigger_id":"default-o-1"}` {
		t.Fatalf("ReadDeadLetter(6) = %+v, %v", dl, err)
	}
}

// BenchmarkReadDeadLetters lists one order's dead letters, and every one,
// of a store holding 3,000 of 4 KB, each of another order but one:
//
//	go test -run '^$' -bench ReadDeadLetters -benchtime 20x ./handlers/
func BenchmarkReadDeadLetters(b *testing.B) {
	st := eventstoretest.DeadLetterStore(b, eventstore.Config{})
	ctx, cancel := eventstoretest.Context(5 * time.Minute)
	defer cancel()
	const n = 3000
	note := strings.Repeat("x", 4<<10)
	for i := range n {
		order := fmt.Sprintf("o-%d", i)
		m := nats.NewMsg(eventstore.DeadLetterSubjectFor("default", order, "picked_up"))
		m.Header.Set(mdSubject, "orderflow.default.trigger."+order+".picked_up")
		m.Data = []byte(`{"worker":"ana","note":"` + note + `"}`)
		if _, err := st.JetStream().PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-st.JetStream().PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	for _, c := range []struct {
		name string
		q    DeadLetterQuery
		want int
	}{
		{"one order", DeadLetterQuery{Tenant: "default", OrderID: "o-1500"}, 1},
		{"every one", DeadLetterQuery{}, n},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				dls, err := ReadDeadLetters(ctx, st, c.q)
				if err != nil || len(dls) != c.want {
					b.Fatalf("%d dead letters, %v; want %d", len(dls), err, c.want)
				}
			}
		})
	}
}
