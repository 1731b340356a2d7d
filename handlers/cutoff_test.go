package handlers

import (
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A process cut off from NATS by a silent partition (nothing goes either
// way, every connection stays open) while its lanes' triggers run, then
// heard again, three times: the other process takes its lanes meanwhile
// and hands them back after. Every order completes and no trigger is
// rejected: no order's trigger takes effect ahead of an earlier one,
// though the cut-off process still held triggers the other one applied.
func TestLanesOfAProcessCutOffAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("partitions")
	}
	t.Parallel()
	const rounds, perRound = 3, 100
	orders := orderIDs("o-cut", rounds*perRound)
	f := newLaneFixture(t, orders...)
	log := newLaneLog()
	cfg := ProcessorConfig{Lanes: 4, AckWait: time.Second, Heartbeat: 100 * time.Millisecond}
	proxy := eventstoretest.StartFreezer(t, f.srv.ClientURL())
	a := startProcessorWith(t, openCommandsAt(t, proxy.URL()), proxy.URL(), log.config(cfg, "a"), nil)
	defer a.Close()
	b := startProcessorWith(t, f.c, f.srv.ClientURL(), log.config(cfg, "b"), nil)
	defer b.Close()
	// Settled once each lane is read by its one owner alone.
	settled := func() bool { return readByOwners(cfg.Lanes, a, b) }
	eventstoretest.Eventually(t, 10*time.Second, settled, "the lanes to be read by one owner each")
	for round := range rounds {
		f.publishAll(t, orders[round*perRound:(round+1)*perRound], "cut")
		// Until the process to be cut off has triggers in hand: one of
		// its lanes is pinned (the other process does not read it, so the
		// pin is its) with triggers delivered and not acknowledged.
		// Reading a lane is not enough: one just handed back is pinned to
		// it only when its next pull comes, and a cut before that left it
		// nothing in hand and the other process nothing to deliver again.
		eventstoretest.Eventually(t, 10*time.Second, func() bool { return inHand(f, cfg.Lanes, a, b) },
			"the process to be cut off to have triggers in hand")
		resets := b.LaneResets()
		proxy.Pause(true)
		// Until the other process has taken the cut-off one for gone, and
		// a lane of its with the triggers it had in hand (reset, so that
		// they come again at once).
		took := func() bool { return b.members.count() == 1 && b.LaneResets() > resets }
		if !eventstoretest.Within(10*time.Second, took) {
			log.print(t, "the lanes only")
			t.Fatalf("round %d: timed out waiting for the other process to take the cut-off one's lanes: it hears %d processes, reset %d lanes (%d before), reads %v",
				round, b.members.count(), b.LaneResets(), resets, b.members.lanesRead())
		}
		proxy.Pause(false)
		eventstoretest.Eventually(t, 10*time.Second, settled, "the lanes to be read by one owner each again")
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-f.ctx.Done():
		t.Fatal("triggers not acknowledged")
	}
	f.expectCompletedInOrder(t, orders, log, nil)
}

// readByOwners reports whether each lane is owned and read by one of
// procs alone.
func readByOwners(lanes int, procs ...*Processor) bool {
	if !ownedOnce(lanes, procs...) {
		return false
	}
	for lane := range lanes {
		for _, p := range procs {
			if slices.Contains(p.members.lanesRead(), lane) != p.members.owns(lane) {
				return false
			}
		}
	}
	return true
}

// inHand reports whether a lane that p reads and other does not is pinned
// with triggers delivered and not acknowledged.
func inHand(f *laneFixture, lanes int, p, other *Processor) bool {
	for lane := range lanes {
		if !slices.Contains(p.members.lanesRead(), lane) || slices.Contains(other.members.lanesRead(), lane) {
			continue
		}
		info, err := laneInfo(f.ctx, f.js, lane)
		if err != nil {
			return false
		}
		if eventstore.LanePin(info) != "" && info.NumAckPending > 0 {
			return true
		}
	}
	return false
}
