package handlers

import (
	"log/slog"
	"strings"
	"testing"
)

// copyCheck reports where the lane sequence parts from the trigger
// sequence, once per change, judging only the front (a redelivery or a
// late lane behind it says nothing new).
func TestCopyCheck(t *testing.T) {
	type obs struct{ lane, source uint64 }
	for _, tc := range []struct {
		name  string
		seen  []obs
		short uint64
		logs  []string // in order
	}{
		{"whole copy", []obs{{1, 1}, {2, 2}, {3, 3}, {2, 2}}, 0, nil},
		{"a skip", []obs{{1, 1}, {2, 3}, {3, 4}, {1, 1}}, 1, []string{"level=ERROR", "skipped=1\n"}},
		{"short from the start", []obs{{5, 7}, {6, 8}}, 2, []string{"level=ERROR", "skipped=2\n"}},
		{"copied twice", []obs{{1, 1}, {2, 1}, {3, 2}}, 0, []string{"level=WARN", "copied_twice=1"}},
		{"a skip, then a second copy", []obs{{1, 1}, {2, 3}, {4, 3}}, 0, []string{"skipped=1\n", "copied_twice=2"}},
		{"unknown source", []obs{{1, 0}, {2, 2}}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			c := copyCheck{log: slog.New(slog.NewTextHandler(&logs, nil))}
			for _, o := range tc.seen {
				c.observe(o.lane, o.source)
			}
			if c.short() != tc.short {
				t.Errorf("short = %d, want %d", c.short(), tc.short)
			}
			out := logs.String()
			if len(tc.logs) == 0 && out != "" {
				t.Errorf("logged %q, want nothing", out)
			}
			for _, want := range tc.logs {
				i := strings.Index(out, want)
				if i < 0 {
					t.Fatalf("log %q lacks %q", logs.String(), want)
				}
				out = out[i+len(want):]
			}
		})
	}
}
