package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

func orderEvent(seq uint64, id string, at time.Time, e domain.Event) eventstore.Event {
	data, _ := json.Marshal(e)
	return eventstore.Event{Sequence: seq, Envelope: eventstore.Envelope{Tenant: "default", AggregateType: "order",
		AggregateID: id, Type: e.EventType(), OccurredAt: at, Data: data}}
}

// wfPos is a position in version 1 of workflow "wf".
func wfPos(step int, status string) domain.Position {
	return domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Step: step, Status: status}
}

func TestOrdersModel(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	seq := uint64(0)
	apply := func(id string, at time.Time, e domain.Event) {
		seq++
		if err := o.Apply(orderEvent(seq, id, at, e)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		apply(fmt.Sprintf("o-%02d", i), t0, domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}})
	}
	apply("o-03", t0.Add(time.Hour), domain.OrderAdvanced{Trigger: "x", TriggerID: "1", From: wfPos(0, "a"), To: wfPos(1, "b")})
	apply("o-04", t0.Add(2*time.Hour), domain.OrderAdvanced{Trigger: "x", TriggerID: "2", From: wfPos(0, "a"), To: wfPos(1, "b")})
	apply("o-04", t0.Add(3*time.Hour), domain.OrderCompleted{Trigger: "y", TriggerID: "3", From: wfPos(1, "b")})
	apply("o-05", t0.Add(time.Hour), domain.OrderHeld{})
	// Applying an event again changes nothing.
	if err := o.Apply(orderEvent(seq, "o-03", t0, domain.OrderHeld{})); err != nil {
		t.Fatal(err)
	}

	rows, more := o.List("default", OrderFilter{}, "", 4)
	if len(rows) != 4 || !more || rows[0].ID != "o-00" {
		t.Fatalf("first page %v %v", rows, more)
	}
	rows, more = o.List("default", OrderFilter{}, rows[3].ID, 100)
	if len(rows) != 6 || more || rows[0].ID != "o-04" {
		t.Fatalf("second page %v %v", rows, more)
	}
	if rows, _ := o.List("default", OrderFilter{Status: "b", State: domain.StateActive}, "", 10); len(rows) != 1 || rows[0].ID != "o-03" {
		t.Fatalf("filter %v", rows)
	}
	board := map[string]BoardCell{}
	for _, c := range o.Board("default", "") {
		board[c.Status] = c
	}
	if board["a"].Count != 8 || board["b"].Count != 1 || board["a"].Left != 2 || board["a"].AverageStay != 90*time.Minute ||
		board["b"].Left != 1 || board["b"].AverageStay != time.Hour || !board["b"].OldestEnteredAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("board %+v", board)
	}

	// A checkpoint restores the same model.
	b, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	r := NewOrders(nil)
	if err := r.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := r.MarshalJSON()
	if string(b) != string(b2) || r.Applied() != seq {
		t.Fatalf("checkpoint round trip differs")
	}
	// An event out of place is an error, not a silent row.
	if err := o.Apply(orderEvent(seq+1, "ghost", t0, domain.OrderHeld{})); err == nil {
		t.Fatal("an event before OrderPlaced was accepted")
	}

	// An order that leaves a stage at a time before it entered it (the
	// deciding processes' clocks apart) stayed no time there, not a
	// negative one that lowers the stage's average.
	seq++ // past the ghost's
	apply("o-06", t0.Add(-time.Minute), domain.OrderAdvanced{Trigger: "x", TriggerID: "4", From: wfPos(0, "a"), To: wfPos(1, "b")})
	for _, c := range o.Board("default", "") {
		if c.Status == "a" && (c.Left != 3 || c.AverageStay != time.Hour) {
			t.Fatalf("stage a after a stay of -1 min: %+v, want 3 left, an average of (60+120+0)/3 min", c)
		}
	}
}

// Orders placed in any order, between listings or not, list in id order,
// each once, and the checkpoint holds them in the same order.
func TestOrdersPagingOrder(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	placed := domain.OrderPlaced{OrderTypeID: "ot", To: domain.Position{WorkflowID: "wf", WorkflowVersion: 1, Status: "a"}, Workflows: []string{"wf"}}
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(500)
	var want []string
	for i, n := range perm {
		id := fmt.Sprintf("o-%03d", n)
		if err := o.Apply(orderEvent(uint64(i+1), id, t0, placed)); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if rng.IntN(40) == 0 { // a listing now and then settles the ids placed so far
			o.List("default", OrderFilter{}, "", 1)
		}
	}
	slices.Sort(want)
	var got []string
	after := ""
	for {
		rows, more := o.List("default", OrderFilter{}, after, 37)
		for _, r := range rows {
			got = append(got, r.ID)
		}
		if !more {
			break
		}
		after = rows[len(rows)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d ids, want %d in order", len(got), len(want))
	}
	// A checkpoint taken with unsettled ids equals one taken after settling.
	o2 := NewOrders(nil)
	for i, n := range perm {
		if err := o2.Apply(orderEvent(uint64(i+1), fmt.Sprintf("o-%03d", n), t0, placed)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := o.MarshalJSON()
	b, _ := o2.MarshalJSON()
	if string(a) != string(b) {
		t.Fatal("checkpoints differ with and without settled ids")
	}
}

// A checkpoint written an order at a time is byte for byte what
// encoding/json makes of the whole snapshot, with several tenants, stage
// times and orders placed since the last listing.
func TestCheckpointEncodingIsEncodingJSON(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	var seq uint64
	for _, tenant := range []string{"default", "acme", "b-shop"} {
		for i := range 5 {
			seq++
			ev := orderEvent(seq, fmt.Sprintf("o-%d", 9-i), t0, domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}})
			ev.Tenant = tenant
			if err := o.Apply(ev); err != nil {
				t.Fatal(err)
			}
		}
		o.List(tenant, OrderFilter{}, "", 2) // settles the paging order; the next are placed after
		seq++
		ev := orderEvent(seq, "o-0", t0.Add(time.Hour), domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}})
		ev.Tenant = tenant
		_ = o.Apply(ev)
		seq++
		ev = orderEvent(seq, "o-9", t0.Add(2*time.Hour), domain.OrderAdvanced{Trigger: "x", TriggerID: "1", From: wfPos(0, "a"), To: wfPos(1, "b")})
		ev.Tenant = tenant
		_ = o.Apply(ev)
	}
	got, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	f := o.freeze()
	s := snapshot{Format: checkpointFormat, Applied: f.applied, Tenants: map[string]tenantSnapshot{}}
	for name, ft := range f.tenants {
		ts := tenantSnapshot{Stages: ft.stages}
		for _, r := range ft.rows {
			ts.Rows = append(ts.Rows, *r)
		}
		slices.SortFunc(ts.Rows, func(a, b OrderRow) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(ts.Stages, func(a, b stageSnapshot) int {
			return strings.Compare(a.WorkflowID+"\x00"+a.Status, b.WorkflowID+"\x00"+b.Status)
		})
		s.Tenants[name] = ts
	}
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("checkpoint\n%s\nencoding/json\n%s", got, want)
	}
	back := NewOrders(nil)
	if err := back.UnmarshalJSON(got); err != nil || back.Applied() != seq {
		t.Fatalf("read back: %v at %d", err, back.Applied())
	}
}

// A checkpoint is the model as it was when the checkpoint began, even when
// the orders it holds change while it is written: the projector changes
// copies of the rows (copy on write), never the rows being written.
func TestCheckpointIsTheModelWhenItBegan(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	placed := func(seq uint64, id string) eventstore.Event {
		return orderEvent(seq, id, t0, domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}})
	}
	advanced := func(seq uint64, id string) eventstore.Event {
		return orderEvent(seq, id, t0.Add(time.Duration(seq)*time.Minute), domain.OrderAdvanced{Trigger: "x", TriggerID: fmt.Sprint(seq),
			From: wfPos(0, "a"), To: wfPos(1, "b")})
	}
	before := []eventstore.Event{placed(1, "o-1"), placed(2, "o-2"), advanced(3, "o-2")}
	live, then := NewOrders(nil), NewOrders(nil)
	for _, ev := range before {
		if err := live.Apply(ev); err != nil {
			t.Fatal(err)
		}
		_ = then.Apply(ev)
	}
	f := live.freeze()
	// Meanwhile: both orders change, a new one is placed, and a second
	// checkpoint begins and the projector goes on.
	for _, ev := range []eventstore.Event{advanced(4, "o-1"), placed(5, "o-3"), orderEvent(6, "o-2", t0, domain.OrderHeld{Reason: "r"})} {
		if err := live.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	second := live.freeze()
	if err := live.Apply(orderEvent(7, "o-2", t0, domain.OrderResumed{})); err != nil {
		t.Fatal(err)
	}
	var got, want, gotSecond bytes.Buffer
	if err := f.write(&got, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := then.writeCheckpoint(&want); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("checkpoint begun at 3\n%s\nthe model at 3\n%s", got.String(), want.String())
	}
	if err := second.write(&gotSecond, time.Time{}); err != nil {
		t.Fatal(err)
	}
	back := NewOrders(nil)
	if err := back.UnmarshalJSON(gotSecond.Bytes()); err != nil {
		t.Fatal(err)
	}
	if r, _ := back.Order("default", "o-2"); back.Applied() != 6 || r.State != domain.StateOnHold || r.Version != 3 {
		t.Fatalf("second checkpoint: applied %d, o-2 %+v", back.Applied(), r)
	}
	if r, _ := live.Order("default", "o-2"); r.State != domain.StateActive || r.Version != 4 {
		t.Fatalf("the live model's o-2: %+v", r)
	}
}

// ListByEntry pages through the orders that waited longest first, ties
// by id, and matches a filter, against a sort of the whole model.
func TestOrdersListByEntry(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	rng := rand.New(rand.NewPCG(3, 4))
	seq := uint64(0)
	for i := range 300 {
		seq++
		id := fmt.Sprintf("o-%03d", i)
		at := t0.Add(time.Duration(rng.IntN(50)) * time.Minute) // many ties
		if err := o.Apply(orderEvent(seq, id, at, domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}})); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // a third moved on to b, later
			seq++
			if err := o.Apply(orderEvent(seq, id, at.Add(time.Hour), domain.OrderAdvanced{Trigger: "x", TriggerID: id, From: wfPos(0, "a"), To: wfPos(1, "b")})); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []OrderFilter{{}, {Status: "a"}, {Status: "b"}, {Status: "c"}} {
		want, _ := o.List("default", f, "", 1000)
		slices.SortFunc(want, func(a, b OrderRow) int {
			if c := a.EnteredAt.Compare(b.EnteredAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		for _, limit := range []int{1, 7, 100, 1000} {
			var got []OrderRow
			var after EntryCursor
			for pages := 0; ; pages++ {
				rows, more := o.ListByEntry("default", f, after, limit)
				if len(rows) > limit || more && len(rows) != limit || pages > 400 {
					t.Fatalf("filter %+v, limit %d: page of %d, more %v", f, limit, len(rows), more)
				}
				got = append(got, rows...)
				if !more {
					break
				}
				last := rows[len(rows)-1]
				after = EntryCursor{last.EnteredAt, last.ID}
			}
			if len(got) != len(want) {
				t.Fatalf("filter %+v, limit %d: %d orders, want %d", f, limit, len(got), len(want))
			}
			for i := range want {
				if got[i].ID != want[i].ID {
					t.Fatalf("filter %+v, limit %d: order %d is %s, want %s", f, limit, i, got[i].ID, want[i].ID)
				}
			}
		}
	}
	if rows, more := o.ListByEntry("nobody", OrderFilter{}, EntryCursor{}, 10); len(rows) != 0 || more {
		t.Fatalf("an unknown tenant: %v %v", rows, more)
	}
}

// The board and a stage's listing by entry time, read from the stage
// index kept as events are applied, are what a scan of every row gives,
// through random events and checkpoints restored on the way.
func TestStageIndexMatchesTheRows(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 6))
	statuses := []string{"a", "b", "c", "d"}
	pos := func(wf string, step int) domain.Position {
		return domain.Position{WorkflowID: wf, WorkflowVersion: 1, Step: step, Status: statuses[step]}
	}
	o := NewOrders(nil)
	seq := uint64(0)
	type state struct {
		pos  domain.Position
		done bool
	}
	orders := map[string]*state{}
	var ids []string
	type cell struct {
		count, held          int
		oldest, oldestActive time.Time
	}
	scanBoard := func(o *Orders, workflowID string) map[StageKey]cell {
		cells := map[StageKey]cell{}
		o.mu.RLock()
		defer o.mu.RUnlock()
		for _, r := range o.tenants["default"].rows {
			k, in := inFlight(&r.OrderRow)
			if !in || workflowID != "" && k.WorkflowID != workflowID {
				continue
			}
			c := cells[k]
			c.count++
			if c.oldest.IsZero() || r.EnteredAt.Before(c.oldest) {
				c.oldest = r.EnteredAt
			}
			if r.State == domain.StateOnHold {
				c.held++
			} else if c.oldestActive.IsZero() || r.EnteredAt.Before(c.oldestActive) {
				c.oldestActive = r.EnteredAt
			}
			cells[k] = c
		}
		return cells
	}
	check := func(step int) {
		t.Helper()
		for _, wf := range []string{"", "w1", "w2"} {
			want := scanBoard(o, wf)
			got := map[StageKey]cell{}
			for _, c := range o.Board("default", wf) {
				if c.Count > 0 {
					got[c.StageKey] = cell{c.Count, c.Held, c.OldestEnteredAt, c.OldestActiveAt}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d, workflow %q: board %v, scan %v", step, wf, got, want)
			}
		}
		for _, f := range []OrderFilter{{Status: "b", State: domain.StateActive}, {Status: "a", State: domain.StateOnHold}, {Status: "c", State: domain.StateActive, WorkflowID: "w2"},
			{State: domain.StateActive}, {State: domain.StateOnHold, WorkflowID: "w1"}} {
			var all []OrderRow // every row that matches, by id
			o.mu.RLock()
			for _, r := range o.tenants["default"].rows {
				if f.match(&r.OrderRow) {
					all = append(all, r.OrderRow)
				}
			}
			o.mu.RUnlock()
			slices.SortFunc(all, func(a, b OrderRow) int { return strings.Compare(a.ID, b.ID) })
			var byID []OrderRow // List's pages of 4
			for after := ""; ; {
				page, more := o.List("default", f, after, 4)
				byID = append(byID, page...)
				if !more {
					break
				}
				after = page[len(page)-1].ID
			}
			if len(byID) != len(all) || len(all) > 0 && (byID[0].ID != all[0].ID || byID[len(byID)-1].ID != all[len(all)-1].ID) {
				t.Fatalf("step %d, %+v: List gave %d orders, the rows %d", step, f, len(byID), len(all))
			}
			for i := range all {
				if byID[i].ID != all[i].ID || byID[i].Version != all[i].Version {
					t.Fatalf("step %d, %+v: List's order %d is %s v%d, want %s v%d", step, f, i, byID[i].ID, byID[i].Version, all[i].ID, all[i].Version)
				}
			}
			slices.SortFunc(all, func(a, b OrderRow) int {
				if c := a.EnteredAt.Compare(b.EnteredAt); c != 0 {
					return c
				}
				return strings.Compare(a.ID, b.ID)
			})
			got, _ := o.ListByEntry("default", f, EntryCursor{}, 5)
			if len(got) != min(5, len(all)) {
				t.Fatalf("step %d, %+v: %d rows, want %d", step, f, len(got), min(5, len(all)))
			}
			for i := range got {
				if got[i].ID != all[i].ID {
					t.Fatalf("step %d, %+v: row %d is %s, want %s", step, f, i, got[i].ID, all[i].ID)
				}
			}
		}
	}
	for step := range 3000 {
		seq++
		at := t0.Add(time.Duration(rng.IntN(100000)) * time.Second) // clocks apart: not in order
		var id string
		var e domain.Event
		if len(ids) == 0 || rng.IntN(5) == 0 {
			id = fmt.Sprintf("o-%04d", len(ids))
			wf := []string{"w1", "w2"}[rng.IntN(2)]
			orders[id] = &state{pos: pos(wf, 0)}
			ids = append(ids, id)
			e = domain.OrderPlaced{OrderTypeID: "ot", To: orders[id].pos, Workflows: []string{wf}}
		} else {
			id = ids[rng.IntN(len(ids))]
			s := orders[id]
			switch n := rng.IntN(10); {
			case s.done:
				e = domain.TriggerRejected{Trigger: "x", TriggerID: fmt.Sprint(seq), Reason: domain.RejectCompleted}
			case n < 4 && s.pos.Step < 3:
				to := pos(s.pos.WorkflowID, s.pos.Step+1)
				e, s.pos = domain.OrderAdvanced{Trigger: "x", TriggerID: fmt.Sprint(seq), From: s.pos, To: to}, to
			case n < 5:
				to := pos(s.pos.WorkflowID, rng.IntN(4))
				e, s.pos = domain.OrderMoved{From: s.pos, To: to, Reason: "r"}, to
			case n < 6:
				e = domain.OrderHeld{}
			case n < 7:
				e = domain.OrderResumed{}
			case n < 8:
				to := s.pos
				to.WorkflowVersion++
				e, s.pos = domain.OrderMigrated{From: s.pos, To: to, Reason: "r"}, to
			case n < 9:
				e, s.done = domain.OrderCompleted{Trigger: "x", TriggerID: fmt.Sprint(seq), From: s.pos}, true
			default:
				e, s.done = domain.OrderCancelled{}, true
			}
		}
		if err := o.Apply(orderEvent(seq, id, at, e)); err != nil {
			t.Fatal(err)
		}
		if step%5 == 4 {
			check(step)
		}
		if step%250 == 124 { // a checkpoint written: rows are copied on write from then on
			if _, err := o.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
		if step%700 == 699 { // go on from a checkpoint
			b, err := o.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			o = NewOrders(nil)
			if err := o.UnmarshalJSON(b); err != nil {
				t.Fatal(err)
			}
			check(step)
		}
	}
}

// An order that enters its stage again (moved to the step it is at)
// leaves the stage and comes back with a new entry time; its earlier one
// must not count as the stage's oldest once the orders before it have
// left.
func TestStageIndexOrderEntersItsStageAgain(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	seq := uint64(0)
	apply := func(id string, at time.Duration, e domain.Event) {
		t.Helper()
		seq++
		if err := o.Apply(orderEvent(seq, id, t0.Add(at), e)); err != nil {
			t.Fatal(err)
		}
	}
	placed := domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}}
	apply("o-a", 1*time.Minute, placed)
	apply("o-x", 5*time.Minute, placed)
	apply("o-b", 10*time.Minute, placed)
	apply("o-x", 20*time.Minute, domain.OrderMoved{From: wfPos(0, "a"), To: wfPos(0, "a"), Reason: "again"})
	apply("o-a", 30*time.Minute, domain.OrderCancelled{})
	cells := o.Board("default", "")
	if len(cells) != 1 || cells[0].Count != 2 || !cells[0].OldestEnteredAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("board %+v, want 2 orders in a, the oldest since 09:10 (o-b)", cells)
	}
}

// Boards read together, while events are applied, find a stage's oldest
// entry again without racing (go test -race).
func TestBoardsReadTogether(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	o := NewOrders(nil)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					o.Board("default", "")
					o.ListByEntry("default", OrderFilter{Status: "a", State: domain.StateActive}, EntryCursor{}, 3)
				}
			}
		})
	}
	for i := range 2000 {
		id := fmt.Sprintf("o-%04d", i)
		if err := o.Apply(orderEvent(uint64(2*i+1), id, t0.Add(time.Duration(i)*time.Second), domain.OrderPlaced{OrderTypeID: "ot", To: wfPos(0, "a"), Workflows: []string{"wf"}})); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 { // the oldest leaves: the board must find the next
			old := fmt.Sprintf("o-%04d", i/2)
			if err := o.Apply(orderEvent(uint64(2*i+2), old, t0.Add(time.Duration(i)*time.Second), domain.OrderCancelled{})); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	readers.Wait()
	if cells := o.Board("default", ""); len(cells) != 1 || cells[0].Count != 1000 || !cells[0].OldestEnteredAt.Equal(t0.Add(1000*time.Second)) {
		t.Fatalf("board %+v", cells)
	}
}
