package projections

import (
	"context"
	"fmt"
	"sync"
)

// position is how far a read model has applied its stream, and lets
// callers wait for a sequence. It is guarded by the model's own mutex. The
// wake-up channel is made only while someone waits, so applying an event
// allocates nothing.
type position struct {
	applied uint64
	changed chan struct{}
}

// advance moves to seq if it is ahead; the caller holds the write lock.
// It reports false for an event already applied.
func (p *position) advance(seq uint64) bool {
	if seq <= p.applied {
		return false
	}
	p.set(seq)
	return true
}

// set moves to seq (a restore may move back) and wakes waiters; the caller
// holds the write lock.
func (p *position) set(seq uint64) {
	p.applied = seq
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// waitFor blocks until p has applied seq or ctx ends.
func waitFor(ctx context.Context, mu *sync.RWMutex, p *position, seq uint64, model string) error {
	for {
		mu.Lock()
		applied := p.applied
		if applied >= seq {
			mu.Unlock()
			return nil
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s read model at sequence %d, waiting for %d: %w", model, applied, seq, ctx.Err())
		}
	}
}
