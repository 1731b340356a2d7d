package handlers

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
)

// members is what one trigger processor knows of the processors sharing
// the lanes: itself, and every process it has heard on
// eventstore.ProcessorsSubject within the last few heartbeats.
//
// Members may briefly disagree (a heartbeat in flight); the lanes' pinned
// consumers still give each lane to one process at a time.
type members struct {
	self     string
	nc       *nats.Conn
	interval time.Duration

	mu     sync.Mutex
	seen   map[string]time.Time
	change chan struct{} // closed and replaced when the member set changes
	sub    *nats.Subscription
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

const (
	heartbeatAlive = "alive "
	heartbeatGone  = "gone "
	// missedHeartbeats before a silent member is forgotten.
	missedHeartbeats = 3
)

func newMembers(nc *nats.Conn, interval time.Duration) *members {
	return &members{
		self: uuid.NewString(), nc: nc, interval: interval,
		seen: map[string]time.Time{}, change: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// start listens for the other processes and announces this one every
// interval until close.
func (m *members) start() error {
	sub, err := m.nc.Subscribe(eventstore.ProcessorsSubject, func(msg *nats.Msg) {
		body := string(msg.Data)
		if id, ok := strings.CutPrefix(body, heartbeatAlive); ok && id != m.self {
			m.heard(id, true)
		} else if id, ok := strings.CutPrefix(body, heartbeatGone); ok && id != m.self {
			m.heard(id, false)
		}
	})
	if err != nil {
		return err
	}
	m.sub = sub
	_ = m.nc.Publish(eventstore.ProcessorsSubject, []byte(heartbeatAlive+m.self))
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				_ = m.nc.Publish(eventstore.ProcessorsSubject, []byte(heartbeatAlive+m.self))
				m.expire()
			}
		}
	}()
	return nil
}

// close says goodbye, so the others take this process's lanes at once.
func (m *members) close(ctx context.Context) {
	if m.sub == nil {
		return
	}
	m.closed.Do(func() {
		close(m.stop)
		<-m.done
		_ = m.sub.Unsubscribe()
		if m.nc.IsConnected() {
			_ = m.nc.Publish(eventstore.ProcessorsSubject, []byte(heartbeatGone+m.self))
			_ = m.nc.FlushWithContext(ctx)
		}
	})
}

func (m *members) heard(id string, alive bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, known := m.seen[id]
	if alive {
		m.seen[id] = time.Now()
	} else {
		delete(m.seen, id)
	}
	if known != alive {
		m.changedLocked()
	}
}

func (m *members) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	cutoff := time.Now().Add(-missedHeartbeats * m.interval)
	for id, at := range m.seen {
		if at.Before(cutoff) {
			delete(m.seen, id)
			m.changedLocked()
		}
	}
}

func (m *members) changedLocked() {
	close(m.change)
	m.change = make(chan struct{})
}

// changed fires when the member set next changes.
func (m *members) changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.change
}

// owns reports whether this process owns lane i: the members, sorted by
// id, take the lanes in turn (lane i goes to member i mod n), so the
// lanes are spread evenly.
func (m *members) owns(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.seen)+1)
	ids = append(ids, m.self)
	for id := range m.seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids[i%len(ids)] == m.self
}
