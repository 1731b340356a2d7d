package handlers

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// copyCheck looks for skipped triggers where the lane sequence falls
// behind the trigger sequence, once per change, judging only the front (a
// redelivery or a late lane behind it says nothing new), and records each
// change once dealt with. A process that starts from a recorded change
// judges its first front against it, not against a whole copy.
func TestCopyCheck(t *testing.T) {
	type obs struct{ lane, source uint64 }
	type mark struct {
		lane   uint64
		offset int64
	}
	for _, tc := range []struct {
		name     string
		restored *mark // the change recorded before the process started
		seen     []obs
		ranges   [][2]uint64 // recover's candidates
		recorded []mark
		log      string
	}{
		{"whole copy", nil, []obs{{1, 1}, {2, 2}, {3, 3}, {2, 2}}, nil, nil, ""},
		{"a skip", nil, []obs{{1, 1}, {2, 3}, {3, 4}, {1, 1}}, [][2]uint64{{2, 2}}, []mark{{2, 1}}, "candidates_from=2"},
		{"a skip among other lanes' triggers", nil, []obs{{1, 1}, {4, 5}}, [][2]uint64{{2, 4}}, []mark{{4, 1}}, "candidates_from=2"},
		{"behind at a process's first front", nil, []obs{{5, 7}, {6, 8}}, [][2]uint64{{1, 6}}, []mark{{5, 2}}, "candidates_from=1"},
		{"behind at a first front far on", nil, []obs{{2000, 2010}}, [][2]uint64{{2000 - firstFrontLookback, 2009}}, []mark{{2000, 10}}, "candidates_from=976"},
		{"copied twice", nil, []obs{{1, 1}, {2, 1}, {3, 2}}, nil, []mark{{2, -1}}, "copied_twice=1"},
		{"unknown source", nil, []obs{{1, 0}, {2, 2}}, nil, nil, ""},
		{"restored, no change since", &mark{5, 2}, []obs{{6, 8}, {9, 11}}, nil, nil, ""},
		{"restored, copied twice before", &mark{5, -3}, []obs{{6, 3}}, nil, nil, ""},
		{"restored, behind since", &mark{5, 2}, []obs{{9, 12}}, [][2]uint64{{8, 11}}, []mark{{9, 3}}, "candidates_from=8"},
		{"restored, far behind since", &mark{5, 2}, []obs{{3000, 3003}}, [][2]uint64{{3002 - firstFrontLookback, 3002}}, []mark{{3000, 3}}, "candidates_from=1978"},
		{"restored, copied twice since", &mark{5, 2}, []obs{{9, 10}}, nil, []mark{{9, 1}}, "copied_twice=1"},
		{"below the restored change", &mark{5, 2}, []obs{{3, 3}, {6, 8}}, nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs eventstoretest.LogBuffer
			got := make(chan [2]uint64, 10)
			records := make(chan mark, 10)
			c := copyCheck{log: slog.New(slog.NewTextHandler(&logs, nil)), recover: func(from, to uint64) bool { got <- [2]uint64{from, to}; return true },
				record: func(lane uint64, offset int64) { records <- mark{lane, offset} }}
			if tc.restored != nil {
				c.restore(tc.restored.lane, tc.restored.offset)
			}
			for _, o := range tc.seen {
				c.observe(o.lane, o.source)
			}
			var ranges [][2]uint64
			for range tc.ranges {
				select {
				case r := <-got:
					ranges = append(ranges, r)
				case <-time.After(eventstoretest.Patience(10 * time.Second)):
				}
			}
			if !slices.Equal(ranges, tc.ranges) {
				t.Errorf("recover called with %v, want %v", ranges, tc.ranges)
			}
			var recorded []mark
			for range tc.recorded {
				select {
				case m := <-records:
					recorded = append(recorded, m)
				case <-time.After(eventstoretest.Patience(10 * time.Second)):
				}
			}
			select {
			case m := <-records: // one more already there
				recorded = append(recorded, m)
			default:
			}
			if !slices.Equal(recorded, tc.recorded) {
				t.Errorf("recorded %v, want %v", recorded, tc.recorded)
			}
			if out := logs.String(); (tc.log == "") != (out == "") || !strings.Contains(out, tc.log) {
				t.Errorf("logged %q, want %q", out, tc.log)
			}
		})
	}
}

// copyStalled: when watchCopy has the copy set up again.
func TestCopyStalled(t *testing.T) {
	working := eventstore.LaneCopy{Idle: 500 * time.Millisecond}
	silent := eventstore.LaneCopy{Idle: copyStallAfter}
	unheard := eventstore.LaneCopy{Idle: -1}
	missing := eventstore.LaneCopy{Idle: -1, SourceMissing: true, Err: "stream not found"}
	for _, tc := range []struct {
		name       string
		lc         eventstore.LaneCopy
		cluster    bool
		unheardFor time.Duration
		want       bool
	}{
		{"a working copy", working, true, 0, false},
		{"silent on a cluster", silent, true, 0, true},
		{"silent on one server (no other leader to take over)", silent, false, 0, false},
		{"never heard from, just now", unheard, true, time.Second, false},
		{"never heard from for the stall time, on a cluster", unheard, true, copyStallAfter, true},
		{"never heard from for the stall time, on one server", unheard, false, copyStallAfter, true},
		{"no ORDERFLOW_TRIGGERS", missing, false, 0, true},
		{"no ORDERFLOW_TRIGGERS, on a cluster", missing, true, 0, true},
	} {
		if got := copyStalled(tc.lc, tc.cluster, tc.unheardFor); got != tc.want {
			t.Errorf("%s: copyStalled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// While recover looks for skipped triggers, no lane message past the
// previous front starts; an order whose skipped trigger was published
// again starts nothing but that copy until it arrives, its publication
// fails (forget) or the wait runs out. Each lifting wakes the lanes.
func TestCopyCheckHoldsBack(t *testing.T) {
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	var logs eventstoretest.LogBuffer
	release := make(chan struct{})
	c := copyCheck{log: slog.New(slog.NewTextHandler(&logs, nil)), wait: time.Hour,
		recover: func(from, to uint64) bool { <-release; return true }}

	if c.blocks("o1", 1, "m") || c.active.Load() {
		t.Fatal("a check with nothing to wait for holds back")
	}

	// A skip: lane 3 copies trigger 4, so trigger 3 was skipped.
	c.observe(1, 1)
	c.observe(2, 2)
	woken := c.changed()
	c.observe(3, 4)
	if c.blocks("o1", 2, "m") {
		t.Error("a lane message below the barrier is held back")
	}
	if !c.blocks("o1", 3, "m") || !c.blocks("o2", 9, "m") {
		t.Error("a lane message past the previous front starts while recover runs")
	}
	close(release)
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return closed(woken) }, "the lanes to be woken when recover is done")
	if c.blocks("o1", 3, "m") || c.active.Load() {
		t.Error("held back after recover was done")
	}

	// An order waits for the copy of its skipped trigger, and only it.
	c.awaitCopy("o1", "copy-1")
	if w, ok := c.awaited("o1"); !ok || w != "copy-1" {
		t.Errorf("awaited(o1) = %q, %v", w, ok)
	}
	if _, ok := c.awaited("o2"); ok {
		t.Error("an order that waits for nothing is awaited")
	}
	if !c.blocks("o1", 10, "later") || c.blocks("o1", 10, "copy-1") || c.blocks("o2", 10, "other") {
		t.Error("the order's later trigger starts, or its copy or another order's trigger is held back")
	}
	if c.copyArrived("o1", "later") || c.copyArrived("o2", "copy-1") {
		t.Error("a message that is not the awaited copy counts as arrived")
	}
	// The copy arrives in the order's own lane, which starts it first and
	// then the rest: no other lane needs waking.
	if !c.copyArrived("o1", "copy-1") {
		t.Error("the awaited copy does not count as arrived")
	}
	if c.blocks("o1", 11, "later") || c.copyArrived("o1", "copy-1") || c.active.Load() {
		t.Error("still waiting after the copy arrived")
	}

	// Its publication failed: the order goes on.
	c.awaitCopy("o1", "copy-2")
	woken = c.changed()
	c.forget("o1", "another")
	if !c.blocks("o1", 12, "later") {
		t.Error("forgetting another copy ended the wait")
	}
	c.forget("o1", "copy-2")
	if !closed(woken) || c.blocks("o1", 12, "later") || c.active.Load() {
		t.Error("forgetting the awaited copy did not end the wait and wake the lanes")
	}

	// The copy does not come in time: the order goes on without it, and
	// the log says so.
	c.wait = time.Millisecond
	woken = c.changed()
	c.awaitCopy("o3", "copy-3")
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return closed(woken) }, "the wait for copy-3 to run out")
	if c.blocks("o3", 13, "later") {
		t.Error("still waiting after the wait ran out")
	}
	if out := logs.String(); !strings.Contains(out, "did not come through the lanes in time") || !strings.Contains(out, "copy=copy-3") {
		t.Errorf("log lacks the copy that did not come:\n%s", out)
	}
}
