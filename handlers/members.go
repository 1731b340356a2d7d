package handlers

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
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
//
// Each heartbeat also names the lanes its process is reading (the
// lanesHeader header; a process that does not send it names none), so
// that a lane's new owner can tell a pin held by a process it still hears
// from from one left behind by a process that is gone (see
// lane.releaseOrphanPin). So does a goodbye: the lanes a leaving process
// still drains count as read for as long as a drain may take, and their
// new owners wait for it to hand them over.
//
// A process taken for gone that is heard again soon after was alive all
// along: starved of CPU, say, its heartbeats came too late. Every such
// wrong call moves lanes twice for nothing, and on a machine that stays
// that slow the lanes would change hands without end. So such a process
// is given twice the heartbeats it had before it is taken for gone again
// (up to maxMissedHeartbeats). It is given half as many again (down to
// missedHeartbeats) after calmHeartbeats intervals in which it was heard
// all along, and only if each of its heartbeats came in time for the
// halved number, with one to spare: on a machine that stays slow it
// keeps what it needs, instead of being taken for gone again each time
// it is given fewer. A process started again has a new id and starts at
// missedHeartbeats.
type members struct {
	self     string
	nc       *nats.Conn
	interval time.Duration
	log      *slog.Logger // processes joining, leaving and going silent (nil: none)

	mu      sync.Mutex
	started time.Time
	seen    map[string]member
	leaving map[string]member // processes that said goodbye, while they may still drain their lanes
	lost    map[string]member // processes taken for gone, for regretHeartbeats intervals
	reads   map[int]bool      // the lanes this process is reading
	change  chan struct{}     // closed and replaced when the member set changes
	sub     *nats.Subscription
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// member is another process as last heard.
type member struct {
	at    time.Time
	lanes []int // the lanes it said it was reading
	// every is how often it says it sends heartbeats (heartbeatHeader),
	// or, when it does not say, this process's interval: its silence is
	// counted in its own heartbeats.
	every time.Duration
	// patience is how many heartbeats it may miss before it is taken for
	// gone. since is when its calm spell began (when patience was last
	// weighed), and longest the longest it went unheard since then.
	patience int
	since    time.Time
	longest  time.Duration
}

// calm weighs, as a heartbeat of the member's comes in at now, whether a
// member given more heartbeats has been heard in time for long enough to
// be given half as many again.
func (mb *member) calm(now time.Time, interval time.Duration) {
	mb.longest = max(mb.longest, now.Sub(mb.at))
	if mb.patience <= missedHeartbeats || now.Sub(mb.since) <= calmHeartbeats*interval {
		return
	}
	if fewer := max(mb.patience/2, missedHeartbeats); mb.longest <= time.Duration(fewer-1)*interval {
		mb.patience = fewer
	}
	mb.since, mb.longest = now, 0
}

const (
	heartbeatAlive = "alive "
	heartbeatGone  = "gone "
	// lanesHeader of a heartbeat lists the lanes its process is reading,
	// comma-separated.
	lanesHeader = "Orderflow-Lanes"
	// heartbeatHeader of a heartbeat is how often its process sends them
	// (a Go duration: "1s", "250ms").
	heartbeatHeader = "Orderflow-Heartbeat"
	// MinHeartbeat and MaxHeartbeat bound ProcessorConfig.Heartbeat, and
	// the interval another process's heartbeats may claim.
	MinHeartbeat = 100 * time.Millisecond
	MaxHeartbeat = 5 * time.Second
	// missedHeartbeats before a silent member is forgotten.
	missedHeartbeats = 3
	// maxMissedHeartbeats is the most a member wrongly taken for gone
	// again and again is given: a process that then dies loses its lanes
	// after this many heartbeats.
	maxMissedHeartbeats = 4 * missedHeartbeats
	// regretHeartbeats is how many heartbeat intervals after it was taken
	// for gone a process heard again counts as wrongly taken for gone.
	regretHeartbeats = 30
	// calmHeartbeats is how many heartbeat intervals a member given more
	// heartbeats must stay heard, in time, for its patience to halve.
	calmHeartbeats = 100
	// heardAllAfter is how many heartbeat intervals after its start a
	// process has heard every other live process at least once, with room
	// for one heartbeat that came late.
	heardAllAfter = 2
	// maxDrain is the longest a process leaving a lane waits for the
	// lane's running triggers (laneSubscriber.drain).
	maxDrain = 5 * time.Second
)

// ProcessorsHeard reports whether a trigger processor's heartbeat (each
// sends one every ProcessorConfig.Heartbeat, a second by default) is
// heard on nc within the given time.
func ProcessorsHeard(ctx context.Context, nc *nats.Conn, within time.Duration) (bool, error) {
	heard := make(chan struct{}, 1)
	sub, err := nc.Subscribe(eventstore.ProcessorsSubject, func(m *nats.Msg) {
		if strings.HasPrefix(string(m.Data), heartbeatAlive) {
			select {
			case heard <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return false, err
	}
	defer sub.Unsubscribe()
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-heard:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func newMembers(nc *nats.Conn, interval time.Duration) *members {
	return &members{
		self: uuid.NewString(), nc: nc, interval: interval,
		seen: map[string]member{}, leaving: map[string]member{}, lost: map[string]member{}, reads: map[int]bool{}, change: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// start listens for the other processes and announces this one every
// interval until close.
func (m *members) start() error {
	m.mu.Lock()
	m.started = time.Now()
	m.mu.Unlock()
	sub, err := m.nc.Subscribe(eventstore.ProcessorsSubject, func(msg *nats.Msg) {
		body := string(msg.Data)
		lanes, every := parseLanes(msg.Header.Get(lanesHeader)), parseHeartbeat(msg.Header.Get(heartbeatHeader))
		if id, ok := strings.CutPrefix(body, heartbeatAlive); ok && id != m.self {
			m.heard(id, true, lanes, every)
		} else if id, ok := strings.CutPrefix(body, heartbeatGone); ok && id != m.self {
			m.heard(id, false, lanes, every)
		}
	})
	if err != nil {
		return err
	}
	m.sub = sub
	m.announce()
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.interval)
		defer t.Stop()
		last, reconnects := time.Now(), m.nc.Stats().Reconnects
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.announce()
				r := m.nc.Stats().Reconnects
				m.tick(time.Since(last), r != reconnects || !m.nc.IsConnected())
				last, reconnects = time.Now(), r
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
			_ = m.nc.PublishMsg(m.heartbeat(heartbeatGone))
			_ = m.nc.FlushWithContext(ctx)
		}
	})
}

// announce says this process is alive, and which lanes it is reading.
func (m *members) announce() {
	_ = m.nc.PublishMsg(m.heartbeat(heartbeatAlive))
}

// heartbeat is the message that says this process is alive or gone
// (kind), naming the lanes it is reading.
func (m *members) heartbeat(kind string) *nats.Msg {
	lanes := m.lanesRead()
	msg := nats.NewMsg(eventstore.ProcessorsSubject)
	msg.Data = []byte(kind + m.self)
	msg.Header.Set(heartbeatHeader, m.interval.String())
	if len(lanes) > 0 {
		var b []byte
		for k, i := range lanes {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(i), 10)
		}
		msg.Header.Set(lanesHeader, string(b))
	}
	return msg
}

// parseLanes reads a lanesHeader value; what is not a lane number is
// left out.
func parseLanes(v string) []int {
	if v == "" {
		return nil
	}
	var lanes []int
	for f := range strings.SplitSeq(v, ",") {
		if i, err := strconv.Atoi(f); err == nil && i >= 0 {
			lanes = append(lanes, i)
		}
	}
	return lanes
}

// parseHeartbeat reads a heartbeatHeader value: 0 when there is none or
// it is not a duration, and otherwise within MinHeartbeat..MaxHeartbeat,
// so that no process can make the others wait for it without end.
func parseHeartbeat(v string) time.Duration {
	d, err := time.ParseDuration(v)
	if v == "" || err != nil || d <= 0 {
		return 0
	}
	return min(max(d, MinHeartbeat), MaxHeartbeat)
}

// heard takes in a heartbeat (alive) or a goodbye of process id, which
// names the lanes it reads and says it sends a heartbeat every every (0:
// it does not say, and this process's interval stands for it).
func (m *members) heard(id string, alive bool, lanes []int, every time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, left := m.leaving[id]; left && alive {
		return // a heartbeat sent before its goodbye, come late: it does not come back
	}
	if every <= 0 {
		every = m.interval
	}
	now := time.Now()
	mb, known := m.seen[id]
	if alive {
		if !known {
			mb = member{patience: missedHeartbeats, since: now}
			if every != m.interval && m.log != nil {
				m.log.Warn("a trigger processor sends heartbeats at another interval than this one (--heartbeat): it is taken for gone only after missing its own, but a process with a shorter one may take its lanes for a gone reader's at its start, and the lanes then change hands for nothing; give every process the same",
					"processor", id, "its_heartbeat", every, "heartbeat", m.interval)
			}
			if was, ok := m.lost[id]; ok {
				delete(m.lost, id)
				mb.patience = min(2*was.patience, maxMissedHeartbeats)
				if m.log != nil {
					m.log.Warn("a trigger processor taken for gone is heard again: it is given more heartbeats before it is taken for gone again",
						"processor", id, "taken_for_gone", now.Sub(was.at).Round(time.Millisecond), "heartbeats", mb.patience)
				}
			}
		} else {
			mb.calm(now, every)
		}
		mb.at, mb.lanes, mb.every = now, lanes, every
		m.seen[id] = mb
	} else {
		delete(m.seen, id)
		delete(m.lost, id)
		m.leaving[id] = member{at: now, lanes: lanes, every: every}
	}
	if known != alive {
		m.changedLocked()
		if m.log != nil {
			msg := "a trigger processor joined: the lanes are shared out again"
			if !alive {
				msg = "a trigger processor left: the lanes are shared out again"
			}
			m.log.Info(msg, "processor", id, "processors", len(m.seen)+1)
		}
	}
}

// tick runs after each heartbeat, since the previous one: it forgets the
// processes gone silent, unless this process could not have heard them.
//
// A tick that comes later than a silent process is given means this
// process itself was not running (frozen, or starved of CPU) for that
// long: what it last heard of the others is as old as its own silence,
// and their heartbeats of the meantime are still to be read. So it gives
// each of them that long again to be heard instead, rather than take
// every lane for its own and release live readers' pins. It does the
// same while its connection is down, or when it was made again since the
// previous tick (cutOff): it could hear nobody meanwhile, and could not
// read the lanes it would take.
func (m *members) tick(since time.Duration, cutOff bool) {
	paused := since > missedHeartbeats*m.interval
	if !paused && !cutOff {
		m.expire()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for id, mb := range m.seen {
		mb.at = now
		m.seen[id] = mb
	}
	if paused && m.log != nil {
		m.log.Warn("this trigger processor was paused (frozen, or starved of CPU): the others are given their heartbeats' time again before any is taken for gone",
			"paused_for", since.Round(time.Millisecond), "processors", len(m.seen)+1)
	}
}

func (m *members) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, mb := range m.leaving {
		if time.Since(mb.at) > mb.drainGrace() {
			delete(m.leaving, id)
		}
	}
	now := time.Now()
	for id, mb := range m.lost {
		if now.Sub(mb.at) > regretHeartbeats*mb.every {
			delete(m.lost, id)
		}
	}
	for id, mb := range m.seen {
		if now.Sub(mb.at) > time.Duration(mb.patience)*mb.every {
			delete(m.seen, id)
			m.lost[id] = member{at: now, patience: mb.patience, every: mb.every}
			m.changedLocked()
			if m.log != nil {
				m.log.Warn("a trigger processor went silent: taken for gone, the lanes are shared out again", "processor", id,
					"silent_for", now.Sub(mb.at).Round(time.Millisecond), "processors", len(m.seen)+1, "lanes_it_read", mb.lanes)
			}
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

// reading records whether this process is reading lane i, for its next
// heartbeats.
func (m *members) reading(i int, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.reads[i] = true
	} else {
		delete(m.reads, i)
	}
}

// lanesRead lists the lanes this process is reading, in order.
func (m *members) lanesRead() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.reads))
}

// heardAllAt is when this process will have heard every other live
// process at least once since it started (the zero time before start).
func (m *members) heardAllAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.IsZero() {
		return m.started
	}
	return m.started.Add(heardAllAfter * m.interval)
}

// readElsewhere reports whether another process this one hears from said
// it was reading lane i, or one that said goodbye may still be draining it.
func (m *members) readElsewhere(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mb := range m.seen {
		if slices.Contains(mb.lanes, i) {
			return true
		}
	}
	for _, mb := range m.leaving {
		if slices.Contains(mb.lanes, i) && time.Since(mb.at) <= mb.drainGrace() {
			return true
		}
	}
	return false
}

// drainGrace is how long after its goodbye a process may still be
// draining the lanes it named.
func (mb member) drainGrace() time.Duration { return maxDrain + missedHeartbeats*mb.every }

// count is how many processes share the lanes as this one knows them,
// itself included.
func (m *members) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen) + 1
}
