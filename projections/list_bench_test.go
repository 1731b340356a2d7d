package projections

import (
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// BenchmarkListOrders compares a page of 50 of the orders in one stage
// (a fifth of 200,000) by id (List) with one by entry time (ListByEntry):
// of any order at the status, which looks at every order of the tenant,
// and of those in flight, which reads the stage index; and the board.
func BenchmarkListOrders(b *testing.B) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	statuses := []string{"pending_pickup", "received", "washing", "drying", "folding"}
	for i := range 200_000 {
		st := statuses[i%len(statuses)]
		ev := orderEvent(uint64(i+1), fmt.Sprintf("order-%07d", i), t0.Add(time.Duration(i*7919%200_000)*time.Second),
			domain.OrderPlaced{OrderTypeID: "ot", To: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: st}, Workflows: []string{"wf"}})
		if err := o.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 10 { // a stage few orders are in
		ev := orderEvent(uint64(200_001+i), fmt.Sprintf("order-%07d", 300_000+i*5_000), t0,
			domain.OrderPlaced{OrderTypeID: "ot", To: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: "rare"}, Workflows: []string{"wf"}})
		if err := o.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	f := OrderFilter{Status: "washing"}
	o.List("default", f, "", 1) // settles the paging order
	b.Run("by-id", func(b *testing.B) {
		for b.Loop() {
			if rows, _ := o.List("default", f, "", 50); len(rows) != 50 {
				b.Fatal(len(rows))
			}
		}
	})
	b.Run("by-id-in-flight", func(b *testing.B) {
		active := OrderFilter{Status: "washing", State: domain.StateActive}
		for b.Loop() {
			if rows, _ := o.List("default", active, "", 50); len(rows) != 50 {
				b.Fatal(len(rows))
			}
		}
	})
	b.Run("by-id-rare-status", func(b *testing.B) {
		rare := OrderFilter{Status: "rare", State: domain.StateActive}
		for b.Loop() {
			if rows, _ := o.List("default", rare, "", 50); len(rows) != 10 {
				b.Fatal(len(rows))
			}
		}
	})
	b.Run("board", func(b *testing.B) {
		for b.Loop() {
			if cells := o.Board("default", ""); len(cells) != len(statuses)+1 {
				b.Fatal(len(cells))
			}
		}
	})
	b.Run("by-entry", func(b *testing.B) {
		for b.Loop() {
			if rows, _ := o.ListByEntry("default", f, EntryCursor{}, 50); len(rows) != 50 {
				b.Fatal(len(rows))
			}
		}
	})
	b.Run("by-entry-in-flight", func(b *testing.B) {
		active := OrderFilter{Status: "washing", State: domain.StateActive}
		for b.Loop() {
			if rows, _ := o.ListByEntry("default", active, EntryCursor{}, 50); len(rows) != 50 {
				b.Fatal(len(rows))
			}
		}
	})
}

// BenchmarkListInFlight lists the orders in flight among 200,000 of which
// 190,000 are completed (a store some months old): by entry time ("the
// orders waiting longest, anywhere") and by id, against the same listing
// of every order, which looks at each row.
func BenchmarkListInFlight(b *testing.B) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	statuses := []string{"pending_pickup", "received", "washing", "drying", "folding"}
	seq := uint64(0)
	for i := range 200_000 {
		id := fmt.Sprintf("order-%07d", i)
		at := t0.Add(time.Duration(i*7919%200_000) * time.Second)
		seq++
		if err := o.Apply(orderEvent(seq, id, at, domain.OrderPlaced{OrderTypeID: "ot",
			To: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: statuses[i%len(statuses)]}, Workflows: []string{"wf"}})); err != nil {
			b.Fatal(err)
		}
		if i%20 == 0 {
			continue // one in twenty stays in flight
		}
		seq++
		if err := o.Apply(orderEvent(seq, id, at.Add(time.Hour), domain.OrderCompleted{Trigger: "done", TriggerID: id,
			From: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: statuses[i%len(statuses)]}})); err != nil {
			b.Fatal(err)
		}
	}
	o.List("default", OrderFilter{}, "", 1) // settles the paging order
	for _, c := range []struct {
		name string
		list func() int
	}{
		{"by-entry-every-order", func() int { rows, _ := o.ListByEntry("default", OrderFilter{}, EntryCursor{}, 50); return len(rows) }},
		{"by-entry-active", func() int {
			rows, _ := o.ListByEntry("default", OrderFilter{State: domain.StateActive}, EntryCursor{}, 50)
			return len(rows)
		}},
		{"by-id-active", func() int {
			rows, _ := o.List("default", OrderFilter{State: domain.StateActive}, "", 50)
			return len(rows)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if n := c.list(); n != 50 {
					b.Fatal(n)
				}
			}
		})
	}
}
