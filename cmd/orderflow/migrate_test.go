package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// migrateEach moves up to --parallel orders at once and prints each
// order's line in the order the orders were listed, whatever order the
// moves finish in; once the command is stopped it tries no more orders.
func TestMigrateEachRunsSeveralAtOnceInOrder(t *testing.T) {
	t.Parallel()
	orders := make([]orderRow, 12)
	for i := range orders {
		orders[i].ID = fmt.Sprintf("o-%d", i)
	}
	// The first four moves wait until all four are in flight, and finish
	// last first; a fifth in flight at once is an error.
	var mu sync.Mutex
	inFlight, most := 0, 0
	started := make(chan struct{})
	release := make([]chan struct{}, 4)
	for i := range release {
		release[i] = make(chan struct{})
	}
	go func() {
		for range 4 {
			<-started
		}
		for i := 3; i >= 0; i-- {
			close(release[i])
		}
	}()
	move := func(o orderRow) migrateOutcome {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		var i int
		fmt.Sscanf(o.ID, "o-%d", &i)
		if i < 4 {
			started <- struct{}{}
			<-release[i]
		}
		switch i % 3 {
		case 0:
			return migrateOutcome{moved: true}
		case 1:
			return migrateOutcome{line: o.ID + ": left alone"}
		default:
			return migrateOutcome{failed: true, line: o.ID + ": not migrated"}
		}
	}
	var out strings.Builder
	failed, moved := migrateEach(context.Background(), orders, 4, move, &out)
	want := "o-1: left alone\no-2: not migrated\no-4: left alone\no-5: not migrated\no-7: left alone\no-8: not migrated\no-10: left alone\no-11: not migrated\n"
	if out.String() != want || failed != 4 || moved != 4 || most != 4 {
		t.Fatalf("failed %d, moved %d, at most %d at once; printed:\n%s", failed, moved, most, out.String())
	}

	// Stopped: the orders not yet tried are left alone.
	ctx, cancel := context.WithCancel(context.Background())
	tried := 0
	failed, moved = migrateEach(ctx, orders, 1, func(o orderRow) migrateOutcome {
		if tried++; tried == 3 {
			cancel()
		}
		return migrateOutcome{moved: true}
	}, &out)
	if tried != 3 || moved != 3 || failed != 0 {
		t.Fatalf("stopped after the third: tried %d, moved %d, failed %d", tried, moved, failed)
	}
}
