package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// copyCheck watches JetStream's copy of ORDERFLOW_TRIGGERS into the lane
// stream. The lane stream copies every stored trigger, in order, from the
// trigger stream's first message, so a lane message's own sequence equals
// the trigger stream's sequence of the trigger it copies (the
// Nats-Stream-Source header says which). When the two part, the copy
// skipped triggers (the lane sequence falls behind: those triggers are in
// ORDERFLOW_TRIGGERS but would never be processed, and their orders'
// later triggers would take effect without them) or copied some twice
// (harmless: the second copy is a duplicate).
//
// Why the two part (nats-server 2.15): the lane stream records how far it
// copied in an index written every two minutes or so and at a clean stop.
// After a kill that left it empty (every copied trigger applied), the
// server resumes the copy from that index: a stale one makes it copy
// again what came since (copies made twice; the embedded server removes
// the index after a run that did not stop cleanly, see
// eventstore.RunningFile, so this is for a server of --nats-url). With
// none (a store younger than the first write, or the index removed) it
// resumes from the resume point that EnsureLanes and watchCopy keep close
// behind the copy (copies made twice again; a new lane stream starts with
// the point at the first trigger). Without one it would resume by time,
// from the time of the lane stream's last message, and so skip the
// triggers stored before that time but not yet copied. With messages
// left in it, the server finds its place in them and the copy stays
// whole. The check stays for causes not known.
//
// The check looks at the front: each lane message past the highest lane
// sequence this process has seen. When the lane sequence falls behind
// there, the triggers stored between the previous front and this one are
// the candidates (at a process's first front, those from a little below
// this lane sequence on: a copy that lost its place in a crash skips about
// where the new process starts reading); recover looks each up.
//
// A process starts from the copy's last recorded change (copyMark), not
// from a whole copy: each change (a skip recovered, a second copy) is
// recorded once dealt with, so a later process neither looks again for
// triggers that were recovered long ago nor warns again of copies made
// twice before it started.
//
// Until recover is done, no trigger past the previous front starts
// (nothing there has started yet: the front would have moved on it),
// and an order whose skipped trigger is published again starts nothing
// more until that copy comes through its lane, where it goes first: so
// the order's later triggers wait for it, as they would have. An order
// whose copy does not come within wait goes on without it.
type copyCheck struct {
	log     *slog.Logger
	recover func(from, to uint64) bool      // candidates: ORDERFLOW_TRIGGERS sequences from..to; false: not all looked at
	record  func(lane uint64, offset int64) // a change dealt with: from lane sequence lane on, offset holds
	wait    time.Duration                   // how long an order waits for its skipped trigger's copy

	mu      sync.Mutex
	judged  bool              // a front of this process's has been judged
	front   uint64            // highest lane sequence seen (or restored)
	source  uint64            // the trigger stream's sequence at front
	offset  int64             // trigger sequence − lane sequence at front; 0 when the copy is whole
	barrier uint64            // while recover runs: lane sequences from here on do not start (0: none)
	waiting map[string]string // order → Nats-Msg-Id of its skipped trigger's copy
	kick    chan struct{}     // closed (and replaced) when barrier or waiting lift
	active  atomic.Bool       // barrier or waiting is set: the lanes' hot path asks only then

	recopied atomic.Uint64 // skipped triggers published again
}

// changed is closed when triggers held back by the check may start.
func (c *copyCheck) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kick == nil {
		c.kick = make(chan struct{})
	}
	return c.kick
}

// lifted wakes the lanes; c.mu is held.
func (c *copyCheck) lifted() {
	c.active.Store(c.barrier != 0 || len(c.waiting) > 0)
	if c.kick != nil {
		close(c.kick)
		c.kick = nil
	}
}

// blocks reports whether the trigger at lane sequence seq, of order, with
// Nats-Msg-Id msgID, must not start yet.
func (c *copyCheck) blocks(order string, seq uint64, msgID string) bool {
	if !c.active.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.barrier != 0 && seq >= c.barrier {
		return true
	}
	w, ok := c.waiting[order]
	return ok && w != msgID
}

// copyArrived reports whether msgID is the awaited copy of order's skipped
// trigger, and stops the order waiting.
func (c *copyCheck) copyArrived(order, msgID string) bool {
	if !c.active.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.waiting[order]; !ok || w != msgID {
		return false
	}
	delete(c.waiting, order)
	c.active.Store(c.barrier != 0 || len(c.waiting) > 0)
	return true
}

// awaited is the Nats-Msg-Id of the copy order waits for, if it waits.
func (c *copyCheck) awaited(order string) (string, bool) {
	if !c.active.Load() {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.waiting[order]
	return w, ok
}

// awaitCopy makes order wait for the copy of its skipped trigger,
// published under msgID, for at most c.wait.
func (c *copyCheck) awaitCopy(order, msgID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting == nil {
		c.waiting = map[string]string{}
	}
	c.waiting[order] = msgID
	c.active.Store(true)
	wait := c.wait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	time.AfterFunc(wait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.waiting[order] == msgID {
			delete(c.waiting, order)
			c.logger().Error("the copy of a skipped trigger did not come through the lanes in time: its order goes on without it",
				"order", order, "copy", msgID)
			c.lifted()
		}
	})
}

// forget stops order waiting for msgID (its publication failed).
func (c *copyCheck) forget(order, msgID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting[order] == msgID {
		delete(c.waiting, order)
		c.lifted()
	}
}

func (c *copyCheck) logger() *slog.Logger {
	if c.log == nil {
		return slog.Default()
	}
	return c.log
}

// restore starts the check from the copy's last recorded change: from
// lane sequence lane on, a lane message copies the trigger stored at its
// lane sequence + offset. Lane messages up to lane were judged when it was
// recorded. It is called before the first observe.
func (c *copyCheck) restore(lane uint64, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(lane)+offset < 0 {
		return // not a mark this lane stream could have made
	}
	c.front, c.source, c.offset = lane, uint64(int64(lane)+offset), offset
}

// observe takes a lane message at lane sequence lane copying the trigger
// stored at sequence source (0: not known).
func (c *copyCheck) observe(lane, source uint64) {
	if lane == 0 || source == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if lane <= c.front {
		return
	}
	prevFront, prevSource, prevOffset, first := c.front, c.source, c.offset, !c.judged
	c.judged = true
	c.front, c.source, c.offset = lane, source, int64(source)-int64(lane)
	switch {
	case c.offset > prevOffset:
		from := prevSource + 1
		if first {
			// What lies between the previous front and here was never
			// seen by this process: look only near here.
			from = max(from, uint64(max(1, int64(lane)+prevOffset-firstFrontLookback)))
		}
		c.logger().Warn("the trigger lanes are behind ORDERFLOW_TRIGGERS: looking for stored triggers they skipped",
			"lane_sequence", lane, "trigger_sequence", source, "candidates_from", from)
		if c.recover != nil {
			// Past the previous front, whatever comes now may be behind a
			// skipped trigger (below it, all came before the lanes fell
			// behind, or the front would have moved on them).
			if b := prevFront + 1; c.barrier == 0 || b < c.barrier {
				c.barrier = b
			}
			c.active.Store(true)
			offset := c.offset
			go func() {
				done := c.recover(from, source-1)
				c.mu.Lock()
				c.barrier = 0
				c.lifted()
				c.mu.Unlock()
				// Recorded only once every candidate was looked at: a
				// process that dies or fails while it recovers leaves the
				// change for the next one to find.
				if done && c.record != nil {
					c.record(lane, offset)
				}
			}()
		}
	case c.offset < prevOffset:
		c.logger().Warn("the trigger lanes copied triggers of ORDERFLOW_TRIGGERS twice (each takes effect once)",
			"lane_sequence", lane, "trigger_sequence", source, "copied_twice", prevOffset-c.offset)
		if c.record != nil {
			go c.record(lane, c.offset)
		}
	}
}

// copyMark is the lane copy's last recorded change, kept in the
// checkpoint bucket (eventstore.CheckpointBucket) for the processes that
// start later. Like a read model's checkpoint it only saves work: without
// one a process judges its first front against a whole copy, which at
// worst looks again for skipped triggers that were recovered long ago.
type copyMark struct {
	// LanesCreated is when the lane stream was created: a mark of an
	// earlier lane stream says nothing of this one.
	LanesCreated time.Time `json:"lanes_created"`
	Lane         uint64    `json:"lane_sequence"` // from this lane sequence on…
	Offset       int64     `json:"offset"`        // …a lane message copies the trigger at its sequence + Offset
}

// copyMarkCheckpoint names the copy's mark in the checkpoint bucket.
const copyMarkCheckpoint = "trigger-lanes-copy"

// loadCopyMark reads the copy's mark, if there is one for this lane stream.
func (p *Processor) loadCopyMark(ctx context.Context) (copyMark, bool, error) {
	b, ok, err := p.cmds.Store.LoadCheckpoint(ctx, copyMarkCheckpoint)
	if err != nil || !ok {
		return copyMark{}, false, err
	}
	var m copyMark
	if err := json.Unmarshal(b, &m); err != nil {
		return copyMark{}, false, fmt.Errorf("checkpoint %s: %w", copyMarkCheckpoint, err)
	}
	return m, m.LanesCreated.Equal(p.lanesCreated), nil
}

// restoreCopyMark starts check from the copy's mark of the lane stream
// created at lanesCreated, and has it record the changes it deals with.
func (p *Processor) restoreCopyMark(ctx context.Context, lanesCreated time.Time, check *copyCheck) {
	p.lanesCreated = lanesCreated
	check.record = p.recordCopyMark
	m, ok, err := p.loadCopyMark(ctx)
	switch {
	case err != nil:
		p.cfg.Logger.Warn("reading where the trigger lanes' copy stands (this process looks for skipped triggers as if it never changed)", "err", err)
	case ok:
		check.restore(m.Lane, m.Offset)
	}
}

// recordCopyMark records a change in the copy this process dealt with,
// unless a later one is recorded already.
func (p *Processor) recordCopyMark(lane uint64, offset int64) {
	p.markMu.Lock()
	defer p.markMu.Unlock()
	if p.closing.Err() != nil {
		return // closed: the next process to start looks again
	}
	ctx, cancel := context.WithTimeout(p.closing, time.Minute)
	defer cancel()
	cur, ok, err := p.loadCopyMark(ctx)
	if err == nil && ok && cur.Lane >= lane {
		return
	}
	b, err := json.Marshal(copyMark{LanesCreated: p.lanesCreated, Lane: lane, Offset: offset})
	if err == nil {
		err = p.cmds.Store.SaveCheckpoint(ctx, copyMarkCheckpoint, b)
	}
	if err != nil {
		p.cfg.Logger.Warn("recording where the trigger lanes' copy stands (the next process to start will look again)", "err", err)
	}
}

// copyStallAfter is how long the lanes' copy of ORDERFLOW_TRIGGERS may be
// silent before watchCopy has it set up again. A working copy hears the
// server's heartbeat every second.
const copyStallAfter = 3 * time.Second

// copyResumeEvery is how often watchCopy moves the copy's resume point
// up to where the copy stands (eventstore.Store.SetLaneCopyResume): after
// a kill that loses the copy's place, at most about this much of the
// stored triggers is copied again.
const copyResumeEvery = 10 * time.Second

// watchCopy looks after the lanes' copy of ORDERFLOW_TRIGGERS, in the
// process that owns lane 0 (one process does it):
//
//   - It keeps the copy's resume point close behind the copy, every
//     copyResumeEvery while triggers are copied. Should the server lose
//     the copy's place (a kill in a young store, see copyCheck), the copy
//     starts again from there, instead of by time, which can skip stored
//     triggers.
//   - It checks the copy as the processor starts and then every second,
//     and has it set up again (eventstore.Store.RestartLaneCopy) where
//     nats-server would do so itself only seconds later, stored triggers
//     waiting meanwhile. On a cluster, a copy silent for copyStallAfter:
//     when the node leading ORDERFLOW_TRIGGERS stops, the copy's source
//     consumer is gone with it, the copy reports no error, and nats-server
//     sets it up again only at its next check, 10 to 20 s later. And a
//     copy that found no ORDERFLOW_TRIGGERS (LaneCopy.SourceMissing):
//     after a restart the server may load the lane stream before the
//     larger trigger stream, and tries again about 12 s later (the check
//     made as the processor starts finds that, so that the triggers sent
//     just after such a restart do not wait a second for it). And a copy
//     never heard from for copyStallAfter: after a whole cluster was
//     restarted, a lane stream leader was seen leaving its copy unset,
//     without an error, for 22 to 40 s. On one server the copy is set up
//     again only while the lanes hold nothing (see RestartLaneCopy), as
//     after a clean stop; otherwise the server's own retry does it.
func (p *Processor) watchCopy() {
	defer p.watching.Done()
	cluster := p.cmds.Store.Replicas() > 1
	tick := time.NewTicker(cmp.Or(p.cfg.copyCheckEvery, time.Second))
	defer tick.Stop()
	var restarted, looked, unheard, swept time.Time // unheard: since when the copy has never been heard from
	told := false                                   // the lanes holding triggers put off setting a stalled copy up again, and it was logged
	for first := true; ; first = false {
		if !first {
			select {
			case <-p.closing.Done():
				return
			case <-tick.C:
			}
		}
		if !p.members.owns(0) {
			unheard = time.Time{} // timed afresh by the next owner of lane 0
			continue
		}
		due := time.Since(looked) >= copyResumeEvery
		lc, err := p.cmds.Store.LaneCopyState(p.closing)
		if err != nil {
			continue
		}
		if due {
			looked = time.Now()
			if next := lc.NextResume(); next > lc.ResumeAt { // the copy has moved past it
				if err := p.cmds.Store.SetLaneCopyResume(p.closing, next); err != nil && p.closing.Err() == nil {
					p.cfg.Logger.Warn("setting where the trigger lanes' copy resumes", "err", err)
				}
			}
			if lc.Waiting > 0 {
				p.sweepLanes(p.closing)
				swept = time.Now()
			}
		}
		var unheardFor time.Duration
		switch {
		case lc.Idle >= 0:
			unheard = time.Time{}
		case unheard.IsZero():
			unheard = time.Now()
		default:
			unheardFor = time.Since(unheard)
		}
		if !copyStalled(lc, cluster, unheardFor) {
			told = false
			continue
		}
		if time.Since(restarted) < 2*copyStallAfter {
			continue
		}
		err = p.cmds.Store.RestartLaneCopy(p.closing)
		if errors.Is(err, eventstore.ErrLanesHold) {
			// Tried again every second: the lanes empty within seconds
			// (what a dead process had in hand is delivered again at once,
			// see redeliverOrphans), sooner than the server's own retry.
			// A trigger a kill left below its lane's floor would hold them
			// until the next sweep: sweep every second meanwhile.
			if time.Since(swept) >= time.Second {
				p.sweepLanes(p.closing)
				swept = time.Now()
			}
			if !told {
				told = true
				p.cfg.Logger.Info("the trigger lanes' copy is not working; it is set up again once the lanes have applied the triggers they hold, or by the server itself",
					"copy_error", lc.Err, "waiting", lc.Waiting)
			}
			continue
		}
		restarted, told = time.Now(), false
		switch {
		case err != nil:
			p.cfg.Logger.Warn("restarting the trigger lanes' copy", "err", err)
			continue
		case lc.SourceMissing:
			p.cfg.Logger.Info("the trigger lanes' copy found no ORDERFLOW_TRIGGERS (loaded after the lane stream): set up again", "copy_error", lc.Err)
		case lc.Idle < 0:
			p.cfg.Logger.Warn("the trigger lanes' copy of ORDERFLOW_TRIGGERS was never heard from: set up again", "unheard_for", unheardFor.Round(time.Millisecond))
		default:
			p.cfg.Logger.Warn("the trigger lanes' copy of ORDERFLOW_TRIGGERS was silent: the lane stream's leader stepped down, so that the copy is set up again",
				"silent_for", lc.Idle.Round(time.Millisecond))
		}
		p.copyRestarts.Add(1)
	}
}

// copyStalled reports whether the lanes' copy of ORDERFLOW_TRIGGERS is
// stalled in one of the ways watchCopy mends: it found no
// ORDERFLOW_TRIGGERS; on a cluster, it has been silent for copyStallAfter;
// or it has never been heard from for copyStallAfter.
func copyStalled(lc eventstore.LaneCopy, cluster bool, unheardFor time.Duration) bool {
	return lc.SourceMissing || (cluster && lc.Idle >= copyStallAfter) || unheardFor >= copyStallAfter
}

// sweepLanes removes the triggers the lane stream holds below their
// lane's acknowledgement floor (eventstore.LaneLeftovers: after a server
// stopped hard, acknowledged triggers whose removal it lost), which no
// lane would ever deliver again, and looks each one's trigger up as
// recoverSkipped does: one that took effect, or was answered or put
// aside, as is the rule for them, is left at that; one that was not (a
// consumer reset past it, say) is published again. The owner of lane 0
// sweeps while the lane stream holds anything, every copyResumeEvery. A
// message is removed only when the sweep before found it too: the server
// removes an acknowledged trigger a moment after the floor passes it, and
// a sweep in that moment must not take it for a leftover. One case it can
// still take for one: after a reset to the lane's sequence 1, nats-server
// 2.15.2 may report the floor from before the reset (see
// holdsEveryPending), so a trigger delivered again and still unapplied at
// two sweeps is removed and published again; its order then gets a
// duplicate, answered as one, and nothing is lost.
func (p *Processor) sweepLanes(ctx context.Context) {
	left, err := p.cmds.Store.LaneLeftovers(ctx, p.laneNames)
	if err != nil && ctx.Err() == nil {
		p.cfg.Logger.Warn("looking for triggers the lanes hold below their acknowledgement floor", "err", err)
	}
	suspects := make(map[uint64]bool, len(left))
	var again []*jetstream.RawStreamMsg // found by the sweep before too
	for _, m := range left {
		if p.suspects[m.Sequence] {
			again = append(again, m)
		} else {
			suspects[m.Sequence] = true
		}
	}
	p.suspects = suspects
	if len(again) == 0 {
		return
	}
	laneSeqs := make([]uint64, len(again))
	for i, m := range again {
		laneSeqs[i] = m.Sequence
	}
	n, err := p.cmds.Store.DropLaneMessages(ctx, laneSeqs)
	if err != nil && ctx.Err() == nil {
		p.cfg.Logger.Warn("removing a trigger the lanes hold below their acknowledgement floor", "err", err)
	}
	for _, m := range again[n:] { // not removed: looked at again next time
		suspects[m.Sequence] = true
	}
	var seqs []uint64
	for _, m := range again[:n] {
		p.leftovers.Add(1)
		if trig, ok := sourceSequence(m.Header.Get(streamSourceHeader)); ok {
			seqs = append(seqs, trig)
		}
	}
	if len(seqs) == 0 {
		return
	}
	p.cfg.Logger.Warn("removed triggers that the trigger lanes held though their lane had acknowledged them (a server stopped hard can lose such removals); "+
		"each is published again unless it has taken effect", "removed", len(seqs), "trigger_sequences", seqs)
	p.recoverTriggers(seqs)
}

// firstFrontLookback is how far below its first lane sequence a process
// that finds the lanes behind looks for skipped triggers. The copy skips
// where a crash left it, so the skipped triggers lie about where the new
// process starts reading; but the process before it may have read on
// past them and died while it looked them up, having published only some
// again (and held their orders only in memory).
const firstFrontLookback = 1024

// recopyPrefix starts the Nats-Msg-Id of a skipped trigger published
// again: the same for every process that finds it, so it is stored once.
const recopyPrefix = "recopy-"

// recoverSkipped looks up the triggers stored at ORDERFLOW_TRIGGERS
// sequences from..to and publishes again, with their trigger id, each one
// that the lanes do not hold and whose order has no outcome of its id for
// its trigger key: those the copy skipped. A candidate that is in the
// lanes after all, or that took effect, is left alone; publishing one
// again would only make a duplicate. It reports whether it looked at
// every candidate.
func (p *Processor) recoverSkipped(from, to uint64) bool {
	if to < from {
		return true
	}
	if to-from > 10000 {
		p.cfg.Logger.Error("the trigger lanes are behind ORDERFLOW_TRIGGERS by too many to look for; orderflow verify --triggers lists what is missing",
			"from", from, "to", to)
		return false
	}
	seqs := make([]uint64, 0, to-from+1)
	for seq := from; seq <= to; seq++ {
		seqs = append(seqs, seq)
	}
	return p.recoverTriggers(seqs)
}

// recoverTriggers looks up the triggers stored at the ORDERFLOW_TRIGGERS
// sequences seqs and publishes again each one the lanes do not hold and
// whose order has not answered (see recoverSkipped). It reports
// whether it looked at every one.
func (p *Processor) recoverTriggers(seqs []uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(p.nc)
	if err != nil {
		return false
	}
	triggers, err := js.Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		p.cfg.Logger.Error("looking for skipped triggers", "err", err)
		return false
	}
	lanes, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		p.cfg.Logger.Error("looking for skipped triggers", "err", err)
		return false
	}
	var dead map[[16]byte]bool // the name of every dead letter's trigger, read when first needed
	deadLetter := func(tenant, orderID, trigger, id string) (bool, error) {
		if dead == nil {
			var err error
			if dead, err = deadLetterKeys(ctx, p.cmds.Store); err != nil {
				return false, err
			}
		}
		return dead[triggerDigest(tenant, orderID, trigger, id)], nil
	}
	all := true
	for _, seq := range seqs {
		if err := p.recoverOne(ctx, js, triggers, lanes, seq, deadLetter); err != nil {
			p.cfg.Logger.Error("looking for a skipped trigger; orderflow verify --triggers lists what is missing", "trigger_sequence", seq, "err", err)
			all = false
		}
	}
	return all
}

func (p *Processor) recoverOne(ctx context.Context, js jetstream.JetStream, triggers, lanes jetstream.Stream, seq uint64,
	deadLetter func(tenant, orderID, trigger, id string) (bool, error)) error {
	m, err := triggers.GetMsg(ctx, seq)
	if err != nil {
		return err
	}
	tenant, orderID, trigger, err := eventstore.ParseTriggerSubject(m.Subject)
	if err != nil {
		return err
	}
	id := triggerIDOf(eventstore.StoredMsg{Sequence: seq, Header: m.Header, Data: m.Data})
	// One no order could take, or whose order does not exist, is put
	// aside as the processor puts it aside (unless it was when it came):
	// one with a body that cannot be read could not be published again
	// with its id.
	var never error
	if _, never = readTrigger(tenant, orderID, trigger, m.Data); never != nil {
		return p.putAsideOnce(ctx, js, m, tenant, orderID, trigger, id, never, deadLetter)
	}
	// Most candidates were processed long ago: the history answers first.
	history, err := p.cmds.Store.Load(ctx, eventstore.Aggregate{Tenant: tenant, Type: domain.AggregateOrder, ID: orderID}, 0)
	switch {
	case err != nil:
		return err
	case len(history) == 0:
		return p.putAsideOnce(ctx, js, m, tenant, orderID, trigger, id, unknownOrder(tenant, orderID), deadLetter)
	}
	if ev, ok := causedBy(history, id); ok {
		if answers, _ := domain.OutcomeTrigger(ev.Type, ev.Data); answers == trigger {
			return nil // taken effect or answered
		}
	}
	if inLanes(ctx, lanes, seq, tenant, orderID, trigger) {
		return nil
	}
	if dead, err := deadLetter(tenant, orderID, trigger, id); err != nil || dead {
		return err // put aside when it came (an unreadable body, say): sent again it would only be put aside again
	}
	msgID := recopyPrefix + strconv.FormatUint(seq, 10)
	order := tenant + "." + orderID // as orderOf keys it
	p.lanes.copies.awaitCopy(order, msgID)
	ack, err := publishAgain(ctx, js, tenant, orderID, trigger, id, m.Data, msgID)
	if err != nil {
		p.lanes.copies.forget(order, msgID)
		return err
	}
	p.lanes.copies.recopied.Add(1)
	p.cfg.Logger.Error("the trigger lanes skipped a stored trigger; published it again, with its id",
		"trigger_sequence", seq, "tenant", tenant, "order", orderID, "trigger", trigger, "trigger_id", id,
		"new_sequence", ack.Sequence, "duplicate", ack.Duplicate)
	return nil
}

// putAsideOnce puts the stored trigger m (tenant, order id and trigger
// key from its subject; id, the processor's id for it) aside as a dead
// letter with the reason why, unless one is there already: what the
// processor would have done with it. Its dead letter is as the
// processor's, but for the subject it names, the trigger's own (it never
// was in a lane).
func (p *Processor) putAsideOnce(ctx context.Context, js jetstream.JetStream, m *jetstream.RawStreamMsg, tenant, orderID, trigger, id string, why error,
	deadLetter func(tenant, orderID, trigger, id string) (bool, error)) error {
	if dead, err := deadLetter(tenant, orderID, trigger, id); err != nil || dead {
		return err
	}
	dl := nats.NewMsg(eventstore.DeadLetterSubjectFor(tenant, orderID, trigger))
	dl.Data = m.Data
	dl.Header.Set(jetstream.MsgIDHeader, deadLetterID(m.Sequence))
	dl.Header.Set(wmnats.WatermillUUIDHdr, pickTriggerID("", m.Header.Get(jetstream.MsgIDHeader), m.Sequence))
	dl.Header.Set(mdSubject, m.Subject)
	dl.Header.Set(middleware.ReasonForPoisonedKey, why.Error())
	_, err := js.PublishMsg(ctx, dl)
	if errors.Is(err, jetstream.ErrNoStreamResponse) { // the dead-letter stream of an earlier version
		dl.Subject = eventstore.DeadLetterSubject
		_, err = js.PublishMsg(ctx, dl)
	}
	if err != nil {
		return err
	}
	p.putAside.add(dl.Header.Get(jetstream.MsgIDHeader))
	p.cfg.Logger.Error("the trigger lanes skipped a stored trigger that cannot be processed; put it aside",
		"trigger_sequence", m.Sequence, "tenant", tenant, "order", orderID, "trigger", trigger, "trigger_id", id, "reason", why)
	return nil
}

// inLanes reports whether the lane stream still holds a copy of the
// trigger stored at seq (tenant, order and trigger key from its subject).
// It reads the lane messages of that order and trigger key, which a work
// queue keeps only until they are acknowledged: a few at most.
func inLanes(ctx context.Context, lanes jetstream.Stream, seq uint64, tenant, orderID, trigger string) bool {
	filter := eventstore.LaneFilter(tenant, orderID, trigger)
	for next, i := uint64(1), 0; i < 64; i++ {
		m, err := lanes.GetMsg(ctx, next, jetstream.WithGetMsgSubject(filter))
		if err != nil {
			return false
		}
		if n, ok := sourceSequence(m.Header.Get(streamSourceHeader)); ok && n == seq {
			return true
		}
		next = m.Sequence + 1
	}
	return false
}
