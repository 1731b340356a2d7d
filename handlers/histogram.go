package handlers

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms /metrics serves: from a millisecond, where a trigger or a
// read normally lands, up to the ten seconds past which something is
// wrong.
var latencyBuckets = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram counts durations into latencyBuckets, as a Prometheus
// histogram. Observing takes no lock; a scrape that runs beside it may see
// a sum a moment behind its counts, never buckets out of step with each
// other.
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // per bucket, not cumulative; the last is above every bound
	nanos  atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0) // another machine's clock, slightly ahead
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.nanos.Add(int64(d))
}

// write writes the histogram's samples under name, with labels (`k="v",`
// pairs, each followed by a comma, or "") before le. The caller writes the
// family's HELP and TYPE lines.
func (h *histogram) write(w io.Writer, name, labels string) {
	var total uint64
	for i, bound := range latencyBuckets {
		total += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{%sle=%q} %d\n", name, labels, strconv.FormatFloat(bound, 'g', -1, 64), total)
	}
	total += h.counts[len(latencyBuckets)].Load()
	fmt.Fprintf(w, "%s_bucket{%sle=\"+Inf\"} %d\n", name, labels, total)
	if labels != "" {
		labels = "{" + labels[:len(labels)-1] + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %g\n%s_count%s %d\n", name, labels, time.Duration(h.nanos.Load()).Seconds(), name, labels, total)
}
