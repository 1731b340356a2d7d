package handlers

import (
	"sync/atomic"
	"time"
)

// reportEvery is how often a condition that many triggers or requests
// meet at once (no storage left, no stream leader, a store that does not
// answer in time) is logged.
const reportEvery = 30 * time.Second

// reporter lets a condition be logged at most once per reportEvery, and
// counts the times it was met in between. The zero value is ready.
type reporter struct {
	at     atomic.Int64 // when it was last logged (Unix nanoseconds)
	unseen atomic.Int64 // times met since then, not logged
}

// due reports whether the condition, met at now, is to be logged, and if
// so how many times it was met since it was last logged.
func (r *reporter) due(now time.Time) (unlogged int64, ok bool) {
	last := r.at.Load()
	if now.UnixNano()-last < int64(reportEvery) || !r.at.CompareAndSwap(last, now.UnixNano()) {
		r.unseen.Add(1)
		return 0, false
	}
	return r.unseen.Swap(0), true
}
