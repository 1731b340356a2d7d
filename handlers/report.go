package handlers

import (
	"log/slog"
	"sync"
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

// deadLetterLines is how many dead letters are logged one by one in each
// deadLetterLinesEvery; the rest are counted, and one line says how many.
// A worker app sending poison triggers by the thousand (30,000 in a
// minute, each put aside) wrote a line for each; the dead-letter stream
// keeps every one, and orderflow deadletters lists them.
const (
	deadLetterLines      = 10
	deadLetterLinesEvery = 10 * time.Second
)

// lineBudget logs at most n lines in each window, which starts at the
// first line logged after the last window ended; the lines left out are
// counted, and their count logged once the window ends (or at close).
type lineBudget struct {
	log     *slog.Logger
	msg     string // the line that stands for those left out
	n       int
	window  time.Duration
	mu      sync.Mutex
	start   time.Time
	used    int
	skipped int
	timer   *time.Timer // logs the count of those left out when the window ends
}

func newLineBudget(log *slog.Logger, msg string, n int, window time.Duration) *lineBudget {
	return &lineBudget{log: log, msg: msg, n: n, window: window}
}

// warn logs msg at WARN if the window has room for it, and otherwise
// counts it.
func (b *lineBudget) warn(msg string, args ...any) {
	b.mu.Lock()
	now := time.Now()
	if now.Sub(b.start) >= b.window { // the zero start too: the difference saturates
		b.start, b.used = now, 0
	}
	if b.used < b.n {
		b.used++
		b.mu.Unlock()
		b.log.Warn(msg, args...)
		return
	}
	b.skipped++
	if b.timer == nil {
		b.timer = time.AfterFunc(b.start.Add(b.window).Sub(now), b.flush)
	}
	b.mu.Unlock()
}

// flush logs how many lines were left out since it last did, if any.
func (b *lineBudget) flush() {
	b.mu.Lock()
	skipped := b.skipped
	b.skipped, b.timer = 0, nil
	b.mu.Unlock()
	if skipped > 0 {
		b.log.Warn(b.msg, "count", skipped, "logged_at_most", b.n, "every", b.window)
	}
}

// close logs the count of the lines left out at once, without waiting
// for the window to end.
func (b *lineBudget) close() {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	b.flush()
}
