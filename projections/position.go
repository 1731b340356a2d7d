package projections

import (
	"context"
	"fmt"
	"sync"

	"github.com/orderflow/orderflow/eventstore"
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

// feed is what every read model has: the lock that guards it, how far it
// has applied its stream, and the subscription that feeds it.
type feed struct {
	name   string // for errors: "orders", "definitions"
	stream string
	mu     sync.RWMutex
	pos    position
	sub    *eventstore.Subscription
}

// start subscribes apply to the stream, after what the model has applied.
func (f *feed) start(ctx context.Context, st *eventstore.Store, apply eventstore.Handler) error {
	// Every read model decodes each event's data with domain.DecodeEvent,
	// which checks it.
	// A message that is not an event (sent onto the stream by hand) is
	// passed over: the model stands past it, or every wait for a later
	// sequence, such as a definition write's, would last forever.
	skip := eventstore.OnUnreadable(func(seq uint64, _ error) {
		f.mu.Lock()
		f.pos.advance(seq)
		f.mu.Unlock()
	})
	sub, err := st.Subscribe(ctx, f.stream, nil, f.Applied(), apply, eventstore.DataCheckedByHandler(), skip)
	if err != nil {
		return err
	}
	f.sub = sub
	return nil
}

// Stop ends the feed.
func (f *feed) Stop() {
	if f.sub != nil {
		f.sub.Stop()
	}
}

// Applied is the last stream sequence the read model reflects.
func (f *feed) Applied() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.pos.applied
}

// WaitFor blocks until the read model reflects stream sequence seq or ctx
// ends.
func (f *feed) WaitFor(ctx context.Context, seq uint64) error {
	for {
		f.mu.Lock()
		applied := f.pos.applied
		if applied >= seq {
			f.mu.Unlock()
			return nil
		}
		if f.pos.changed == nil {
			f.pos.changed = make(chan struct{})
		}
		ch := f.pos.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s read model at sequence %d, waiting for %d: %w", f.name, applied, seq, ctx.Err())
		}
	}
}
