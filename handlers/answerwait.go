package handlers

import (
	"sync/atomic"
	"time"
)

// The bounds of answerWait: how long a lane waits at least, and at most,
// for the servers' answer to a question about its state.
const (
	minAnswerWait = time.Second
	maxAnswerWait = 8 * time.Second
)

// answerWait is how long a lane waits for the servers' answer to a
// question about its state: the lane consumer's count, a held trigger's
// look-up, a reset or an unpin (see laneSubscriber.ask). It is a second while the
// servers answer in time, as it always was; each time a question goes
// unanswered for as long as it waited, it doubles (up to maxAnswerWait),
// and answers in time bring it back down, gently, to four times the
// time they took (never under minAnswerWait), as a retransmission timer
// follows a connection's round trips. On a machine starved of CPU a
// gated lane's questions took over a second again and again; at a fixed
// second, each poll failed the same way, its gate stayed shut and its
// held triggers stood still (the lane tests under six busy loops a core).
// Shared by a process's lanes: the servers are slow for all of them.
// Its zero value waits minAnswerWait.
type answerWait struct {
	d atomic.Int64 // nanoseconds; 0: minAnswerWait
}

// get returns how long the next question waits for its answer.
func (a *answerWait) get() time.Duration {
	if d := time.Duration(a.d.Load()); d > 0 {
		return d
	}
	return minAnswerWait
}

// timedOut records that a question went unanswered for used, the wait
// it was given: the wait doubles, once for all the questions that waited
// as long (a gate poll asks many at once).
func (a *answerWait) timedOut(used time.Duration) {
	next := min(2*used, maxAnswerWait)
	for {
		cur := a.d.Load()
		if time.Duration(cur) >= next {
			return // doubled already by another question that waited as long
		}
		if a.d.CompareAndSwap(cur, int64(next)) {
			return
		}
	}
}

// answered records that a question was answered after took: the wait
// comes an eighth of the way down to four times took (all the way once
// that is under a millisecond), and never under minAnswerWait.
func (a *answerWait) answered(took time.Duration) {
	target := max(4*took, minAnswerWait)
	for {
		cur := a.d.Load()
		if time.Duration(cur) <= target {
			return
		}
		next := target
		if step := (time.Duration(cur) - target) / 8; step >= time.Millisecond {
			next = time.Duration(cur) - step
		}
		if a.d.CompareAndSwap(cur, int64(next)) {
			return
		}
	}
}
