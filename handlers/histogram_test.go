package handlers

import (
	"strings"
	"testing"
	"time"
)

// A histogram's buckets count what is at or under their bound, add up,
// and end at +Inf with the count; the sum is in seconds.
func TestHistogram(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{-time.Millisecond, time.Millisecond, 1500 * time.Microsecond, 10 * time.Second, time.Minute} {
		h.observe(d)
	}
	var b strings.Builder
	h.write(&b, "x_seconds", `route="GET /v1/board",`)
	want := `x_seconds_bucket{route="GET /v1/board",le="0.001"} 2
x_seconds_bucket{route="GET /v1/board",le="0.0025"} 3
x_seconds_bucket{route="GET /v1/board",le="0.005"} 3
x_seconds_bucket{route="GET /v1/board",le="0.01"} 3
x_seconds_bucket{route="GET /v1/board",le="0.025"} 3
x_seconds_bucket{route="GET /v1/board",le="0.05"} 3
x_seconds_bucket{route="GET /v1/board",le="0.1"} 3
x_seconds_bucket{route="GET /v1/board",le="0.25"} 3
x_seconds_bucket{route="GET /v1/board",le="0.5"} 3
x_seconds_bucket{route="GET /v1/board",le="1"} 3
x_seconds_bucket{route="GET /v1/board",le="2.5"} 3
x_seconds_bucket{route="GET /v1/board",le="5"} 3
x_seconds_bucket{route="GET /v1/board",le="10"} 4
x_seconds_bucket{route="GET /v1/board",le="+Inf"} 5
x_seconds_sum{route="GET /v1/board"} 70.0025
x_seconds_count{route="GET /v1/board"} 5
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	var empty histogram
	empty.write(&b, "y_seconds", "")
	if !strings.HasPrefix(b.String(), "y_seconds_bucket{le=\"0.001\"} 0\n") || !strings.HasSuffix(b.String(), "y_seconds_bucket{le=\"+Inf\"} 0\ny_seconds_sum 0\ny_seconds_count 0\n") {
		t.Errorf("an empty histogram:\n%s", b.String())
	}
}
