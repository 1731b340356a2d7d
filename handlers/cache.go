package handlers

import (
	clist "container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// aggregateCache keeps recently used orders as they stand: the decided
// aggregate (not its events), the stream sequence and hash of its last
// event, and the times its JSON shows. A command then decides, and a read
// answers, without reading the order's history from the store, so neither
// costs more for an order with a long history (a worker app stuck on the
// wrong trigger leaves a TriggerRejected per attempt).
//
// It is optimistic: the append still carries the cached sequence as its
// expected version, so a stale entry (another process wrote since) costs
// one conflict, after which the entry is dropped and the aggregate
// reloaded. A read checks the store for events after the cached sequence.
//
// An entry is held by one command or read at a time (acquire, release):
// the holder changes the aggregate in place, and others wait for it. In
// this process that is one change at a time per order; the lanes already
// run one order's triggers one after another.
//
// An aggregate that will hardly change again (a completed order: see
// runOpts.settled) is kept only in room no other needs: among the spare
// entries, at most a quarter of the cache (a completed order of the
// worked example takes about 1.3 KB), which go first when the cache is
// full. Before, such an order was not kept at all, and each trigger sent
// for it (a late one, or each of a restored store's triggers, all read
// again by its new lanes) read its history from the store again.
type aggregateCache struct {
	mu    sync.Mutex
	max   int
	ll    *clist.List // front: most recently used
	spare *clist.List // entries kept only while there is room; front: most recently used
	items map[string]*clist.Element

	hits, loads atomic.Uint64 // served from the cache; histories read from the store
	loadNanos   atomic.Int64  // time spent reading them
}

// CacheStats is how an aggregate cache has served commands and reads.
type CacheStats struct {
	Cached   int           // aggregates held now
	Hits     uint64        // commands and reads served from the cache
	Loads    uint64        // histories read from the store instead
	LoadTime time.Duration // spent reading those
}

func (c *aggregateCache) stats() CacheStats {
	c.mu.Lock()
	n := c.ll.Len() + c.spare.Len()
	c.mu.Unlock()
	return CacheStats{Cached: n, Hits: c.hits.Load(), Loads: c.loads.Load(), LoadTime: time.Duration(c.loadNanos.Load())}
}

// hit and loaded count how a command or read got its aggregate.
func (c *aggregateCache) hit() {
	if c != nil {
		c.hits.Add(1)
	}
}

func (c *aggregateCache) loaded(took time.Duration) {
	if c != nil {
		c.loads.Add(1)
		c.loadNanos.Add(int64(took))
	}
}

// cacheEntry is an aggregate as of the stream sequence of its last event.
// Its fields change only while it is held, or before it is added.
type cacheEntry struct {
	key      string
	agg      domain.Aggregate
	lastSeq  uint64 // eventstore.ExpectNew when the aggregate has no events
	lastHash string
	times    stamps
	keys     map[string]domain.Event // Idempotency-Key → the event it caused (nil: none)
	busy     chan struct{}           // non-nil while held; closed when let go
	spare    bool                    // in the cache's spare list (set under its lock)
}

// requestKeyed reports whether an event of the type carries, as its
// causation id, the Idempotency-Key of the HTTP request that caused it
// (when that carried one): an order's placement and its supervisors'
// actions. A trigger's outcome carries the trigger id instead.
func requestKeyed(eventType string) bool {
	switch eventType {
	case domain.TypeOrderPlaced, domain.TypeOrderHeld, domain.TypeOrderResumed, domain.TypeOrderCancelled,
		domain.TypeOrderMoved, domain.TypeOrderMigrated:
		return true
	}
	return false
}

// noteKey remembers the event a request key caused (its causation id).
func (e *cacheEntry) noteKey(ev domain.Event, causation string) {
	if causation == "" || !requestKeyed(ev.EventType()) {
		return
	}
	if e.keys == nil {
		e.keys = map[string]domain.Event{}
	}
	e.keys[causation] = ev
}

// stamps are the times an order's JSON shows, from its events'
// occurred_at: the first (placed_at), the last (updated_at), and the last
// that put it in a step (entered_at).
type stamps struct{ first, last, entered time.Time }

func (s *stamps) add(eventType string, at time.Time) {
	if s.first.IsZero() {
		s.first = at
	}
	s.last = at
	switch eventType {
	case domain.TypeOrderPlaced, domain.TypeOrderAdvanced, domain.TypeOrderMoved, domain.TypeOrderMigrated:
		s.entered = at
	}
}

func newAggregateCache(max int) *aggregateCache {
	return &aggregateCache{max: max, ll: clist.New(), spare: clist.New(), items: map[string]*clist.Element{}}
}

// acquire holds key's entry for the caller alone, waiting while another
// holds it. It returns nil when the cache has no entry for key: the caller
// reads the store, and may add what it read.
func (c *aggregateCache) acquire(ctx context.Context, key string) (*cacheEntry, error) {
	if c == nil {
		return nil, nil
	}
	for {
		c.mu.Lock()
		el, ok := c.items[key]
		if !ok {
			c.mu.Unlock()
			return nil, nil
		}
		e := el.Value.(*cacheEntry)
		if e.busy == nil {
			e.busy = make(chan struct{})
			c.listOf(e).MoveToFront(el)
			c.mu.Unlock()
			return e, nil
		}
		wait := e.busy
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// listOf is the list e is in; c.mu is held.
func (c *aggregateCache) listOf(e *cacheEntry) *clist.List {
	if e.spare {
		return c.spare
	}
	return c.ll
}

// release lets go of an entry held with acquire. keep false removes it:
// its aggregate no longer stands for what the store holds. spare keeps it
// among the spare entries (see aggregateCache).
func (c *aggregateCache) release(e *cacheEntry, keep, spare bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(e.busy)
	e.busy = nil
	if el, ok := c.items[e.key]; ok && el.Value == e {
		switch {
		case !keep:
			c.listOf(e).Remove(el)
			delete(c.items, e.key)
		case spare != e.spare:
			c.listOf(e).Remove(el)
			c.put(e, spare)
		}
	}
	c.evict()
}

// add puts an entry read from the store in the cache (among the spare
// entries when spare), unless the cache holds the aggregate at the same or
// a later sequence already, or someone holds it.
func (c *aggregateCache) add(e *cacheEntry, spare bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		old := el.Value.(*cacheEntry)
		if old.busy != nil || old.lastSeq >= e.lastSeq {
			c.listOf(old).MoveToFront(el)
			return
		}
		c.listOf(old).Remove(el)
	}
	c.put(e, spare)
	c.evict()
}

// put puts e at the front of the main list, or of the spare one when
// spare; c.mu is held.
func (c *aggregateCache) put(e *cacheEntry, spare bool) {
	e.spare = spare
	c.items[e.key] = c.listOf(e).PushFront(e)
}

// evict removes spare entries over a quarter of max, then entries over
// max, the spare ones first, each list's least recently used first; held
// ones stay until let go.
func (c *aggregateCache) evict() {
	c.trim(c.spare, func() bool { return c.spare.Len() > c.max/4 })
	for _, l := range []*clist.List{c.spare, c.ll} {
		c.trim(l, func() bool { return c.ll.Len()+c.spare.Len() > c.max })
	}
}

// trim removes l's entries, least recently used first, while over says
// so; held ones stay.
func (c *aggregateCache) trim(l *clist.List, over func() bool) {
	for el := l.Back(); el != nil && over(); {
		prev := el.Prev()
		if e := el.Value.(*cacheEntry); e.busy == nil {
			l.Remove(el)
			delete(c.items, e.key)
		}
		el = prev
	}
}

// peek calls f with key's entry if the cache has one that nobody holds,
// and reports whether it did. f must not change the entry.
func (c *aggregateCache) peek(key string, f func(*cacheEntry)) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if e.busy != nil {
		return false
	}
	c.listOf(e).MoveToFront(el)
	f(e)
	return true
}

// behind reports whether the cache holds key at a sequence before last
// (false while a command holds it).
func (c *aggregateCache) behind(key string, last uint64) bool {
	stale := false
	c.peek(key, func(e *cacheEntry) { stale = e.lastSeq < last })
	return stale
}

// has reports whether the cache holds key (for tests).
func (c *aggregateCache) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[key]
	return ok
}
