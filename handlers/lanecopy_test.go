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
