package handlers

import (
	"log/slog"
	"sync"
)

// copyCheck watches JetStream's copy of ORDERFLOW_TRIGGERS into the lane
// stream. The lane stream copies every stored trigger, in order, from the
// trigger stream's first message, so a lane message's own sequence equals
// the trigger stream's sequence of the trigger it copies (the
// Nats-Stream-Source header says which). When the two part, the copy
// skipped triggers (the lane sequence falls behind: those triggers are in
// ORDERFLOW_TRIGGERS but will never be processed, and their orders' later
// triggers take effect without them) or copied some twice (harmless: the
// second copy is a duplicate).
//
// The check looks at the front: each lane message past the highest lane
// sequence this process has seen. It reports the difference from the
// start (a process that starts on lanes that were already short says so)
// and each change after that.
type copyCheck struct {
	log *slog.Logger

	mu      sync.Mutex
	front   uint64 // highest lane sequence seen
	source  uint64 // the trigger stream's sequence at front
	offset  int64  // trigger sequence − lane sequence at front; 0 when the copy is whole
	skipped uint64 // triggers the copy is short, as last seen
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
	prevFront, prevSource, prevOffset := c.front, c.source, c.offset
	c.front, c.source, c.offset = lane, source, int64(source)-int64(lane)
	if c.offset == prevOffset {
		return
	}
	if c.offset > 0 {
		c.skipped = uint64(c.offset)
	} else {
		c.skipped = 0
	}
	log := c.log
	if log == nil {
		log = slog.Default()
	}
	where := []any{"trigger_sequence", source, "lane_sequence", lane}
	if prevFront != 0 {
		where = append(where, "after_trigger_sequence", prevSource)
	}
	switch {
	case c.offset > prevOffset:
		log.Error("the trigger lanes skipped triggers stored in ORDERFLOW_TRIGGERS: they will not take effect unless published again (orderflow verify --triggers lists them)",
			append(where, "skipped", c.offset-prevOffset)...)
	default:
		log.Warn("the trigger lanes copied triggers of ORDERFLOW_TRIGGERS twice (each takes effect once)",
			append(where, "copied_twice", prevOffset-c.offset)...)
	}
}

// short is how many triggers the lanes are short of ORDERFLOW_TRIGGERS, as
// last seen.
func (c *copyCheck) short() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skipped
}
