package handlers

import (
	"sync/atomic"
	"time"
)

// The bounds of answerWait: how long a lane waits at least, and at most,
// for the servers' answer to a question about its state; and how long
// its questions must all be answered in time before it waits half as
// long again.
const (
	minAnswerWait  = time.Second
	maxAnswerWait  = 8 * time.Second
	calmAnswerWait = 30 * time.Second
)

// answerWait is how long a lane waits for the servers' answer to a
// question about its state: the lane consumer's count, a held trigger's
// look-up, a reset or an unpin (see laneSubscriber.ask). It is a second
// while the servers answer in time, as it always was. Each time a
// question goes unanswered for as long as it waited, the wait doubles
// (up to maxAnswerWait); after a calm spell (calmAnswerWait) with no
// question unanswered, an answer in under a quarter of the wait halves
// it, and the next halving needs another calm spell, as the heartbeats
// of a process wrongly taken for gone come back (see members). On a
// machine starved of CPU, a gated lane's questions took over a second
// again and again; at a fixed second each gate poll failed the same way,
// its gate stayed shut and its held triggers stood still (the lane tests
// under six busy loops a core). A spell of quick answers between slow
// ones (the server gets a core for a moment) does not bring the wait
// down: a gate poll asks hundreds of questions at once. Shared by a
// process's lanes: the servers are slow for all of them. Its zero value
// waits minAnswerWait.
type answerWait struct {
	d     atomic.Int64 // nanoseconds; 0: minAnswerWait
	since atomic.Int64 // Unix nanoseconds of the last change: a time-out, or a halving
}

// get returns how long the next question waits for its answer.
func (a *answerWait) get() time.Duration {
	if d := time.Duration(a.d.Load()); d > 0 {
		return d
	}
	return minAnswerWait
}

// timedOut records that a question went unanswered for used, the wait
// it was given, at now: the wait doubles, once for all the questions
// that waited as long (a gate poll asks many at once). It returns the
// wait that call made it (0: it did not make it longer).
func (a *answerWait) timedOut(used time.Duration, now time.Time) time.Duration {
	a.since.Store(now.UnixNano())
	next := min(2*used, maxAnswerWait)
	for {
		cur := a.d.Load()
		if time.Duration(cur) >= next {
			return 0 // doubled already by another question that waited as long
		}
		if a.d.CompareAndSwap(cur, int64(next)) {
			return next
		}
	}
}

// answered records that a question was answered after took, at now: the
// wait halves when it is above minAnswerWait, took is under a quarter of
// it, and no question has gone unanswered for calmAnswerWait (nor has
// the wait halved). It reports whether the wait halved.
func (a *answerWait) answered(took time.Duration, now time.Time) bool {
	cur := a.d.Load()
	if time.Duration(cur) <= minAnswerWait || took >= time.Duration(cur)/4 {
		return false
	}
	since := a.since.Load()
	if now.Sub(time.Unix(0, since)) < calmAnswerWait || !a.since.CompareAndSwap(since, now.UnixNano()) {
		return false
	}
	return a.d.CompareAndSwap(cur, int64(max(time.Duration(cur)/2, minAnswerWait)))
}
