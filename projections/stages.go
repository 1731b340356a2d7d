package projections

import (
	"sync"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// stageIndex keeps, as events are applied, which orders are in flight
// (active or on hold) in each stage, so that the board and a stage's
// listing by entry time read the stage alone instead of every order of
// the tenant. It is derived from the rows: a checkpoint does not hold it,
// and installing one builds it again. Each row in flight knows its stage
// and its slot there (row.in, row.slot), so that an order entering or
// leaving a stage costs a few pointer writes, no hashing.
type stageIndex map[StageKey]*stageMembers

// stageMembers are the orders in flight in one stage, how many of them
// are on hold, and the earliest time one of them entered it (and one that
// is active), once known. Applying an event (under the model's write
// lock) keeps the earliest while it can: an order that enters earlier
// replaces it, and its order leaving, or being held or resumed, makes it
// unknown. The board (under the read lock, beside other readers) finds it
// again then, from the members, and keeps it under mu.
type stageMembers struct {
	key     StageKey
	members []*row
	held    int

	mu           sync.Mutex
	oldest       time.Time
	oldestActive time.Time // zero: no member is active
	oldestOK     bool
}

// inFlight reports whether r counts on the board, and in which stage.
func inFlight(r *OrderRow) (StageKey, bool) {
	if r.State != domain.StateActive && r.State != domain.StateOnHold {
		return StageKey{}, false
	}
	return StageKey{r.Position.WorkflowID, r.Position.Status}, true
}

// update moves r's membership to where its row now stands; wasAt and
// wasState are when it entered the stage it stood in before its event,
// and its state then.
func (x stageIndex) update(wasAt time.Time, wasState domain.OrderState, r *row) {
	newKey, newIn := inFlight(&r.OrderRow)
	if r.in != nil && newIn && r.in.key == newKey && wasAt.Equal(r.EnteredAt) {
		if wasState != r.State { // held or resumed where it is
			if r.State == domain.StateOnHold {
				r.in.held++
			} else {
				r.in.held--
			}
			r.in.oldestOK = false // the earliest active one may have changed
		}
		return
	}
	if r.in != nil {
		x.remove(r, wasAt, wasState)
	}
	if newIn {
		x.add(newKey, r)
	}
}

func (x stageIndex) add(k StageKey, r *row) {
	m := x[k]
	if m == nil {
		m = &stageMembers{key: k}
		x[k] = m
	}
	r.in, r.slot = m, len(m.members)
	m.members = append(m.members, r)
	active := r.State == domain.StateActive
	if !active {
		m.held++
	}
	switch {
	case len(m.members) == 1:
		m.oldest, m.oldestActive, m.oldestOK = r.EnteredAt, time.Time{}, true
		if active {
			m.oldestActive = r.EnteredAt
		}
	case m.oldestOK:
		if r.EnteredAt.Before(m.oldest) {
			m.oldest = r.EnteredAt
		}
		if active && (m.oldestActive.IsZero() || r.EnteredAt.Before(m.oldestActive)) {
			m.oldestActive = r.EnteredAt
		}
	}
}

// remove takes r out of its stage, which it entered at `at`, in state
// was.
func (x stageIndex) remove(r *row, at time.Time, was domain.OrderState) {
	m := r.in
	last := m.members[len(m.members)-1]
	m.members[r.slot], last.slot = last, r.slot
	m.members[len(m.members)-1] = nil
	m.members = m.members[:len(m.members)-1]
	r.in = nil
	if was == domain.StateOnHold {
		m.held--
	}
	if len(m.members) == 0 {
		delete(x, m.key)
		return
	}
	if m.oldestOK && (!at.After(m.oldest) || was == domain.StateActive && !at.After(m.oldestActive)) {
		m.oldestOK = false
	}
}

// replace puts r in the place of the row it copies (copy on write, see
// row), when that one is in flight.
func (x stageIndex) replace(r *row) {
	if r.in != nil {
		r.in.members[r.slot] = r
	}
}

// earliest is when the stage's longest-waiting order entered it, and its
// longest-waiting active one (zero: none is active). Readers call it
// under the model's read lock, together: mu keeps what one finds.
func (m *stageMembers) earliest() (oldest, oldestActive time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.oldestOK {
		m.oldest, m.oldestActive = m.members[0].EnteredAt, time.Time{}
		for _, r := range m.members {
			if r.EnteredAt.Before(m.oldest) {
				m.oldest = r.EnteredAt
			}
			if r.State == domain.StateActive && (m.oldestActive.IsZero() || r.EnteredAt.Before(m.oldestActive)) {
				m.oldestActive = r.EnteredAt
			}
		}
		m.oldestOK = true
	}
	return m.oldest, m.oldestActive
}
