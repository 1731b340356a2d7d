package handlers

import (
	"sync"
	"testing"
	"time"
)

func TestAnswerWaitGrowsOnTimeoutsAndComesBackAfterACalmSpell(t *testing.T) {
	var a answerWait
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	if got := a.get(); got != minAnswerWait {
		t.Fatalf("a new wait is %v, want %v", got, minAnswerWait)
	}
	if a.answered(time.Millisecond, now) || a.get() != minAnswerWait {
		t.Fatalf("after a quick answer: %v, want %v", a.get(), minAnswerWait)
	}

	// A gate poll's many questions that all waited a second and timed
	// out double the wait once, not once each.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() { a.timedOut(minAnswerWait, now) })
	}
	wg.Wait()
	if got := a.get(); got != 2*minAnswerWait {
		t.Fatalf("after 32 questions timed out at %v: %v, want %v", minAnswerWait, got, 2*minAnswerWait)
	}
	// A late time-out of a question asked under the shorter wait changes
	// nothing.
	a.timedOut(minAnswerWait, now)
	if got := a.get(); got != 2*minAnswerWait {
		t.Fatalf("after a late time-out: %v, want %v", got, 2*minAnswerWait)
	}
	for want := 4 * minAnswerWait; want <= maxAnswerWait; want *= 2 {
		a.timedOut(a.get(), now)
		if got := a.get(); got != want {
			t.Fatalf("after another time-out: %v, want %v", got, want)
		}
	}
	a.timedOut(a.get(), now)
	if got := a.get(); got != maxAnswerWait {
		t.Fatalf("past the cap: %v, want %v", got, maxAnswerWait)
	}

	// Quick answers within the calm spell leave it as it is.
	for i := range 1000 {
		if a.answered(time.Millisecond, now.Add(time.Duration(i)*calmAnswerWait/1000)) {
			t.Fatalf("halved %v after the last time-out", time.Duration(i)*calmAnswerWait/1000)
		}
	}
	// After it, a slow answer (a quarter of the wait or more) leaves it
	// too; a quick one halves it, once a calm spell.
	now = now.Add(calmAnswerWait)
	if a.answered(maxAnswerWait/4, now) {
		t.Fatal("halved on a slow answer")
	}
	if !a.answered(time.Millisecond, now) || a.get() != maxAnswerWait/2 {
		t.Fatalf("after a calm spell: %v, want %v", a.get(), maxAnswerWait/2)
	}
	if a.answered(time.Millisecond, now.Add(calmAnswerWait-1)) || a.get() != maxAnswerWait/2 {
		t.Fatalf("halved again within a calm spell: %v", a.get())
	}
	// A time-out starts the calm spell over.
	a.timedOut(time.Second, now.Add(calmAnswerWait-1))
	if a.answered(time.Millisecond, now.Add(calmAnswerWait)) {
		t.Fatal("halved within a calm spell of a time-out")
	}
	for i := 2; i < 10; i++ {
		a.answered(time.Millisecond, now.Add(time.Duration(i)*calmAnswerWait))
	}
	if got := a.get(); got != minAnswerWait {
		t.Fatalf("after calm spells: %v, want %v", got, minAnswerWait)
	}
	if a.answered(time.Millisecond, now.Add(100*calmAnswerWait)) {
		t.Fatal("halved under the minimum")
	}
}
