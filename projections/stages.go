package projections

import (
	"container/heap"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// stageIndex keeps, as events are applied, which orders are in flight
// (active or on hold) in each stage and since when, so that the board and
// a stage's listing by entry time read the stage alone instead of every
// order of the tenant. It is derived from the rows: a checkpoint does not
// hold it, and installing one builds it again.
type stageIndex map[StageKey]*stageMembers

// stageMembers are the orders in flight in one stage: each one's entry
// time, and a min-heap of (entry time, id) whose top is always a member
// (entries of orders that left are dropped once they reach the top, and
// all of them when they outnumber the members).
type stageMembers struct {
	at    map[string]time.Time
	queue entryHeap
}

// inFlight reports whether r counts on the board, and in which stage.
func inFlight(r *OrderRow) (StageKey, bool) {
	if r.State != domain.StateActive && r.State != domain.StateOnHold {
		return StageKey{}, false
	}
	return StageKey{r.Position.WorkflowID, r.Position.Status}, true
}

// update moves an order's membership from what was (before its event) to
// what r is now.
func (x stageIndex) update(was OrderRow, wasKnown bool, r *OrderRow) {
	oldKey, oldIn := inFlight(&was)
	newKey, newIn := inFlight(r)
	if wasKnown && oldIn && newIn && oldKey == newKey && was.EnteredAt.Equal(r.EnteredAt) {
		return
	}
	if wasKnown && oldIn {
		x.remove(oldKey, r.ID)
	}
	if newIn {
		x.add(newKey, r.ID, r.EnteredAt)
	}
}

func (x stageIndex) add(k StageKey, id string, at time.Time) {
	m := x[k]
	if m == nil {
		m = &stageMembers{at: map[string]time.Time{}}
		x[k] = m
	}
	m.at[id] = at
	heap.Push(&m.queue, entry{at, id})
	m.settle() // the id may have been a member with another entry time
}

func (x stageIndex) remove(k StageKey, id string) {
	m := x[k]
	if m == nil {
		return
	}
	delete(m.at, id)
	if len(m.at) == 0 {
		delete(x, k)
		return
	}
	m.settle()
}

// settle drops the heap's top while it is no longer a member, and builds
// the heap again from the members when stale entries outnumber them.
func (m *stageMembers) settle() {
	if len(m.queue) > 2*len(m.at)+64 {
		m.queue = m.queue[:0]
		for id, at := range m.at {
			m.queue = append(m.queue, entry{at, id})
		}
		heap.Init(&m.queue)
		return
	}
	for len(m.queue) > 0 {
		top := m.queue[0]
		if at, ok := m.at[top.id]; ok && at.Equal(top.at) {
			return
		}
		heap.Pop(&m.queue)
	}
}

// oldest is when the stage's longest-waiting order entered it.
func (m *stageMembers) oldest() time.Time {
	return m.queue[0].at // settle keeps the top a member
}

// entry is an order in a stage's heap.
type entry struct {
	at time.Time
	id string
}

// entryHeap orders entries by entry time, then id (container/heap).
type entryHeap []entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(v any)   { *h = append(*h, v.(entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
