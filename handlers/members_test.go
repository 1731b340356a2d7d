package handlers

import (
	"reflect"
	"testing"
	"time"
)

func TestParseLanes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"3", []int{3}},
		{"0,2,10", []int{0, 2, 10}},
		{"1,,x,-2,4 ,5", []int{1, 5}},
	} {
		if got := parseLanes(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseLanes(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"x", 0},
		{"1", 0}, // not a duration: no unit
		{"-1s", 0},
		{"0s", 0},
		{"250ms", 250 * time.Millisecond},
		{"1s", time.Second},
		{"1ns", MinHeartbeat},
		{"1h", MaxHeartbeat},
	} {
		if got := parseHeartbeat(tc.in); got != tc.want {
			t.Errorf("parseHeartbeat(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// Each heartbeat says how often its process sends them, and the others
// count its silence in its own heartbeats: a process beating every 2 s is
// not taken for gone by one beating every 250 ms after three of the
// latter's, only after three of its own. A heartbeat that does not say
// (a process of an earlier version) is timed by the listener's interval.
func TestMembersAreTimedByTheirOwnHeartbeat(t *testing.T) {
	fast := newMembers(nil, 250*time.Millisecond)
	slow := newMembers(nil, 2*time.Second)
	beat := slow.heartbeat(heartbeatAlive)
	every := parseHeartbeat(beat.Header.Get(heartbeatHeader))
	if every != slow.interval {
		t.Fatalf("a heartbeat says it comes every %s (header %q), want %s", every, beat.Header.Get(heartbeatHeader), slow.interval)
	}
	fast.heard("slow", true, nil, every)
	fast.heard("old", true, nil, 0)
	fast.silentFor("slow", 3*time.Second) // twelve of the listener's heartbeats, one and a half of its own
	fast.silentFor("old", time.Second)    // four of the listener's
	fast.expire()
	if fast.patience("slow") == 0 {
		t.Fatal("the slow process was taken for gone after 1.5 of its own heartbeats")
	}
	if fast.patience("old") != 0 {
		t.Fatal("a process that does not say its interval was not timed by the listener's")
	}
	fast.silentFor("slow", 3*slow.interval+time.Second)
	fast.expire()
	if n := fast.count(); n != 1 {
		t.Fatalf("count = %d after the slow process missed three of its own heartbeats, want 1", n)
	}
	// Taken for gone, it is remembered by its own interval too: heard
	// again within regretHeartbeats of its heartbeats, it was wrongly
	// taken for gone, and gets more.
	fast.mu.Lock()
	lost := fast.lost["slow"]
	lost.at = time.Now().Add(-regretHeartbeats*fast.interval - time.Second)
	fast.lost["slow"] = lost
	fast.mu.Unlock()
	fast.expire()
	fast.heard("slow", true, nil, every)
	if got := fast.patience("slow"); got != 2*missedHeartbeats {
		t.Fatalf("heard again within %d of its own heartbeats: patience = %d, want %d", regretHeartbeats, got, 2*missedHeartbeats)
	}
}

// Which lanes count as read by another process: those a live process names
// in its heartbeats, and those a process that said goodbye named, while it
// may still be draining them; not those of a process gone silent.
func TestReadElsewhere(t *testing.T) {
	m := newMembers(nil, time.Second)
	m.heard("live", true, []int{1}, 0)
	m.heard("leaving", true, []int{2, 3}, 0)
	m.heard("leaving", false, []int{2}, 0)
	m.heard("leaving", true, []int{2, 3}, 0) // sent before the goodbye, come late: ignored
	m.heard("silent", true, []int{4}, 0)
	m.silentFor("silent", time.Minute)
	m.expire()
	for lane, want := range map[int]bool{0: false, 1: true, 2: true, 3: false, 4: false} {
		if got := m.readElsewhere(lane); got != want {
			t.Errorf("readElsewhere(%d) = %v, want %v", lane, got, want)
		}
	}
	if n := m.count(); n != 2 {
		t.Errorf("count = %d, want 2 (itself and the live one)", n)
	}
	// Once a drain is surely over, a leaving process's lanes are free.
	m.mu.Lock()
	m.leaving["leaving"] = member{at: time.Now().Add(-member{every: m.interval}.drainGrace() - time.Second), lanes: []int{2}, every: m.interval}
	m.mu.Unlock()
	if m.readElsewhere(2) {
		t.Error("readElsewhere(2) after the drain grace, want false")
	}
}

// A process that was paused for longer than others are given to be heard
// (frozen, say), or whose connection was down, has heard nothing of them
// meanwhile: its first tick after that gives them their heartbeats' time
// again instead of taking them for gone. A tick on time, connected,
// forgets a process that stays silent.
func TestPausedProcessDoesNotTakeOthersForGone(t *testing.T) {
	m := newMembers(nil, time.Second)
	m.heard("live", true, []int{1}, 0)
	silent := func() { m.silentFor("live", time.Minute) }
	for _, tc := range []struct {
		name   string
		since  time.Duration
		cutOff bool
	}{{"paused", time.Minute, false}, {"cut off", m.interval, true}} {
		silent()
		m.tick(tc.since, tc.cutOff)
		if n := m.count(); n != 2 || !m.readElsewhere(1) {
			t.Fatalf("after a tick %s: count = %d, lane 1 read elsewhere %v; want 2 and true", tc.name, n, m.readElsewhere(1))
		}
	}
	silent()
	m.tick(m.interval, false)
	if n := m.count(); n != 1 {
		t.Fatalf("after a tick on time: count = %d, want 1 (the silent one forgotten)", n)
	}
}

// A process taken for gone and heard again soon after was alive all
// along: each such wrong call gives it twice the heartbeats before it is
// taken for gone again, up to maxMissedHeartbeats, and each
// calmHeartbeats intervals it stays heard in time halve them again. One
// heard again only after regretHeartbeats intervals starts afresh.
func TestWronglyTakenForGoneIsGivenMoreHeartbeats(t *testing.T) {
	m := newMembers(nil, time.Second)
	m.heard("slow", true, []int{1}, 0)
	for _, want := range []int{missedHeartbeats, 2 * missedHeartbeats, maxMissedHeartbeats, maxMissedHeartbeats} {
		if got := m.patience("slow"); got != want {
			t.Fatalf("patience = %d heartbeats, want %d", got, want)
		}
		// Silent for as many heartbeats as it is given: still there.
		m.silentFor("slow", time.Duration(want)*m.interval-100*time.Millisecond)
		m.expire()
		if n := m.count(); n != 2 {
			t.Fatalf("silent for %d heartbeats, given %d: count = %d, want 2", want, want, n)
		}
		// One more: taken for gone, then heard again.
		m.silentFor("slow", time.Duration(want+1)*m.interval)
		m.expire()
		if n := m.count(); n != 1 {
			t.Fatalf("silent for %d heartbeats, given %d: count = %d, want 1", want+1, want, n)
		}
		m.heard("slow", true, []int{1}, 0)
	}
	// A calm spell (calmHeartbeats intervals heard) halves it only if
	// each heartbeat came in time for the halved number, with one to
	// spare: not with one gap of as many heartbeats as the halved number.
	calmSpell := func(gap int, want int) {
		t.Helper()
		m.mu.Lock()
		mb := m.seen["slow"]
		mb.since = time.Now().Add(-calmHeartbeats*m.interval - time.Second)
		mb.at = time.Now().Add(-time.Duration(gap) * m.interval)
		m.seen["slow"] = mb
		m.mu.Unlock()
		m.heard("slow", true, []int{1}, 0)
		if got := m.patience("slow"); got != want {
			t.Fatalf("after a calm spell with a gap of %d heartbeats: patience = %d heartbeats, want %d", gap, got, want)
		}
	}
	calmSpell(maxMissedHeartbeats/2, maxMissedHeartbeats)
	calmSpell(maxMissedHeartbeats/2-2, maxMissedHeartbeats/2)
	calmSpell(missedHeartbeats, maxMissedHeartbeats/2)
	calmSpell(1, missedHeartbeats)
	calmSpell(1, missedHeartbeats)
	// Taken for gone, and heard again only after the regret window.
	m.heard("late", true, nil, 0)
	m.silentFor("late", time.Minute)
	m.expire()
	m.mu.Lock()
	lost := m.lost["late"]
	lost.at = time.Now().Add(-regretHeartbeats*m.interval - time.Second)
	m.lost["late"] = lost
	m.mu.Unlock()
	m.expire()
	m.heard("late", true, nil, 0)
	if got := m.patience("late"); got != missedHeartbeats {
		t.Fatalf("heard again after the regret window: patience = %d heartbeats, want %d", got, missedHeartbeats)
	}
}

// silentFor makes member id last heard d ago.
func (m *members) silentFor(id string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mb := m.seen[id]
	mb.at = time.Now().Add(-d)
	m.seen[id] = mb
}

// patience is how many heartbeats member id may miss (0: not a member).
func (m *members) patience(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[id].patience
}
