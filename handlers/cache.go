package handlers

import (
	clist "container/list"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// aggregateCache keeps recently used aggregates' events and last stream
// sequence, so a command can decide without reading the store. It is
// optimistic: the append still carries the cached sequence as its expected
// version, so a stale entry (another process wrote since) costs one
// conflict, after which the entry is dropped and the aggregate reloaded.
type aggregateCache struct {
	mu    sync.Mutex
	max   int
	ll    *clist.List // front: most recently used
	items map[string]*clist.Element

	hits, loads atomic.Uint64 // commands decided from the cache; histories read from the store
	loadNanos   atomic.Int64  // time spent reading them
}

// CacheStats is how an aggregate cache has served commands.
type CacheStats struct {
	Cached   int           // aggregates held now
	Hits     uint64        // commands decided from the cache
	Loads    uint64        // histories read from the store instead
	LoadTime time.Duration // spent reading those
}

func (c *aggregateCache) stats() CacheStats {
	c.mu.Lock()
	n := c.ll.Len()
	c.mu.Unlock()
	return CacheStats{Cached: n, Hits: c.hits.Load(), Loads: c.loads.Load(), LoadTime: time.Duration(c.loadNanos.Load())}
}

// hit and loaded count how a command got its aggregate.
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

type cacheEntry struct {
	key      string
	events   []domain.Event
	lastSeq  uint64
	lastHash string
}

func newAggregateCache(max int) *aggregateCache {
	return &aggregateCache{max: max, ll: clist.New(), items: map[string]*clist.Element{}}
}

// get returns a copy of the cached events, the last sequence and hash.
func (c *aggregateCache) get(key string) ([]domain.Event, uint64, string, bool) {
	if c == nil {
		return nil, 0, "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, 0, "", false
	}
	c.ll.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	return append([]domain.Event(nil), e.events...), e.lastSeq, e.lastHash, true
}

// put records an aggregate's full event list as of lastSeq.
func (c *aggregateCache) put(key string, events []domain.Event, lastSeq uint64, lastHash string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		if lastSeq >= e.lastSeq {
			e.events, e.lastSeq, e.lastHash = events, lastSeq, lastHash
		}
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, events: events, lastSeq: lastSeq, lastHash: lastHash})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

func (c *aggregateCache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.ll.Remove(el)
		delete(c.items, key)
	}
}
