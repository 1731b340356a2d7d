package handlers

import (
	"sync"
	"testing"
	"time"
)

func TestAnswerWaitGrowsOnTimeoutsAndComesBackOnAnswers(t *testing.T) {
	var a answerWait
	if got := a.get(); got != minAnswerWait {
		t.Fatalf("a new wait is %v, want %v", got, minAnswerWait)
	}
	a.answered(time.Millisecond)
	if got := a.get(); got != minAnswerWait {
		t.Fatalf("after a quick answer: %v, want %v", got, minAnswerWait)
	}

	// A gate poll's many questions that all waited a second and timed
	// out double the wait once, not once each.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() { a.timedOut(minAnswerWait) })
	}
	wg.Wait()
	if got := a.get(); got != 2*minAnswerWait {
		t.Fatalf("after 32 questions timed out at %v: %v, want %v", minAnswerWait, got, 2*minAnswerWait)
	}
	// A late time-out of a question asked under the shorter wait changes
	// nothing.
	a.timedOut(minAnswerWait)
	if got := a.get(); got != 2*minAnswerWait {
		t.Fatalf("after a late time-out: %v, want %v", got, 2*minAnswerWait)
	}
	for want := 4 * minAnswerWait; want <= maxAnswerWait; want *= 2 {
		a.timedOut(a.get())
		if got := a.get(); got != want {
			t.Fatalf("after another time-out: %v, want %v", got, want)
		}
	}
	a.timedOut(a.get())
	if got := a.get(); got != maxAnswerWait {
		t.Fatalf("past the cap: %v, want %v", got, maxAnswerWait)
	}

	// Slow answers keep it at four times what they took.
	for range 100 {
		a.answered(1500 * time.Millisecond)
	}
	if got := a.get(); got != 6*time.Second {
		t.Fatalf("after answers in 1.5 s: %v, want 6s", got)
	}
	// One quick answer brings it down an eighth of the way, not at once.
	a.answered(time.Millisecond)
	if got, want := a.get(), 6*time.Second-(6*time.Second-minAnswerWait)/8; got != want {
		t.Fatalf("after one quick answer: %v, want %v", got, want)
	}
	// Quick answers bring it back to the minimum.
	for range 200 {
		a.answered(time.Millisecond)
	}
	if got := a.get(); got != minAnswerWait {
		t.Fatalf("after quick answers: %v, want %v", got, minAnswerWait)
	}
}
