package handlers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
	var grew atomic.Int32
	for range 32 {
		wg.Go(func() {
			if a.timedOut(minAnswerWait, now) > 0 {
				grew.Add(1)
			}
		})
	}
	wg.Wait()
	if got := a.get(); got != 2*minAnswerWait || grew.Load() != 1 {
		t.Fatalf("after 32 questions timed out at %v: %v, made longer by %d of them; want %v, by one", minAnswerWait, got, grew.Load(), 2*minAnswerWait)
	}
	// A late time-out of a question asked under the shorter wait changes
	// nothing.
	if a.timedOut(minAnswerWait, now) != 0 || a.get() != 2*minAnswerWait {
		t.Fatalf("after a late time-out: %v, want %v", a.get(), 2*minAnswerWait)
	}
	for want := 4 * minAnswerWait; want <= maxAnswerWait; want *= 2 {
		if a.timedOut(a.get(), now) != want || a.get() != want {
			t.Fatalf("after another time-out: %v, want %v", a.get(), want)
		}
	}
	if a.timedOut(a.get(), now) != 0 || a.get() != maxAnswerWait {
		t.Fatalf("past the cap: %v, want %v", a.get(), maxAnswerWait)
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

func TestLookUpEachStopsAtTheFirstError(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	if err := lookUpEach(context.Background(), 100, func(_ context.Context, i int) error {
		mu.Lock()
		seen[i]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if seen[i] != 1 {
			t.Fatalf("look-up %d ran %d times", i, seen[i])
		}
	}

	// The first gateLookups start; the fourth fails while the others
	// wait for an answer: they are cancelled, no more start, and the
	// error is the fourth's.
	failed := errors.New("no answer")
	var started atomic.Int32
	err := lookUpEach(context.Background(), 100, func(ctx context.Context, i int) error {
		started.Add(1)
		if i == 3 {
			return failed
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, failed) {
		t.Fatalf("lookUpEach returned %v, want %v", err, failed)
	}
	if n := started.Load(); n > gateLookups {
		t.Fatalf("%d look-ups started, want at most %d", n, gateLookups)
	}

	// A ctx that ends ends them too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lookUpEach(ctx, 100, func(ctx context.Context, i int) error { return ctx.Err() }); !errors.Is(err, context.Canceled) {
		t.Fatalf("under an ended ctx: %v", err)
	}
}
