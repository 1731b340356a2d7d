package handlers

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// copyCheck looks for skipped triggers where the lane sequence falls
// behind the trigger sequence, once per change, judging only the front (a
// redelivery or a late lane behind it says nothing new).
func TestCopyCheck(t *testing.T) {
	type obs struct{ lane, source uint64 }
	for _, tc := range []struct {
		name   string
		seen   []obs
		ranges [][2]uint64 // recover's candidates
		log    string
	}{
		{"whole copy", []obs{{1, 1}, {2, 2}, {3, 3}, {2, 2}}, nil, ""},
		{"a skip", []obs{{1, 1}, {2, 3}, {3, 4}, {1, 1}}, [][2]uint64{{2, 2}}, "candidates_from=2"},
		{"a skip among other lanes' triggers", []obs{{1, 1}, {4, 5}}, [][2]uint64{{2, 4}}, "candidates_from=2"},
		{"behind at a process's first front", []obs{{5, 7}, {6, 8}}, [][2]uint64{{1, 6}}, "candidates_from=1"},
		{"behind at a first front far on", []obs{{2000, 2010}}, [][2]uint64{{2000 - firstFrontLookback, 2009}}, "candidates_from=976"},
		{"copied twice", []obs{{1, 1}, {2, 1}, {3, 2}}, nil, "copied_twice=1"},
		{"unknown source", []obs{{1, 0}, {2, 2}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs eventstoretest.LogBuffer
			got := make(chan [2]uint64, 10)
			c := copyCheck{log: slog.New(slog.NewTextHandler(&logs, nil)), recover: func(from, to uint64) { got <- [2]uint64{from, to} }}
			for _, o := range tc.seen {
				c.observe(o.lane, o.source)
			}
			var ranges [][2]uint64
			for range tc.ranges {
				select {
				case r := <-got:
					ranges = append(ranges, r)
				case <-time.After(10 * time.Second):
				}
			}
			if !slices.Equal(ranges, tc.ranges) {
				t.Errorf("recover called with %v, want %v", ranges, tc.ranges)
			}
			if out := logs.String(); (tc.log == "") != (out == "") || !strings.Contains(out, tc.log) {
				t.Errorf("logged %q, want %q", out, tc.log)
			}
		})
	}
}
