package handlers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/orderflow/orderflow/eventstore"
)

// The event feeds (GET /v1/events) of one tenant share one reader of
// ORDERFLOW_ORDERS, a feedHub: one consumer, each event decoded and
// encoded for the feed once, however many dashboards follow. Each feed
// used to hold a consumer of its own; a hundred feeds made the server
// deliver, and orderflow decode and encode, every event a hundred times,
// and the trigger pipeline's latency at 2,000 triggers/s went from about
// a millisecond to over half a second (docs/benchmarks.md, "Many event
// feeds").
//
// The hub keeps the latest events, up to feedBufferEvents events and
// feedBufferBytes bytes, whether or not its feeds have taken them: a
// dashboard that reconnects with Last-Event-ID a little after the others
// finds what it missed there too. A feed that falls further behind than
// that (its dashboard reads slowly), or that starts before what the hub
// holds, reads what it lacks from the stream itself (a range read,
// eventstore.OpenRange), and then takes the hub's events again from where
// it stands: in order, none missed, none twice.

// Bounds on what a hub keeps.
const (
	feedBufferEvents = 1024
	feedBufferBytes  = 8 << 20
)

// feedItem is one event as a feed sends it.
type feedItem struct {
	seq     uint64
	orderID string // from the subject, as a subject filter would see it
	typ     string // the subject's last token
	line    []byte // "id: …\nevent: …\ndata: …\n\n"
}

// hubFeed is one feed's place in its hub. cursor is under the hub's lock:
// every event the feed wants up to it has been taken (or, while the feed
// fills a gap from the stream, will be by that fill).
type hubFeed struct {
	orderID string   // "" for every order
	types   []string // nil for every type
	signal  chan struct{}
	cursor  uint64
}

func (f *hubFeed) wants(orderID, typ string) bool {
	return (f.orderID == "" || f.orderID == orderID) && (f.types == nil || slices.Contains(f.types, typ))
}

func (f *hubFeed) wake() {
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// feedHub reads one tenant's order events for its feeds.
type feedHub struct {
	tenant string
	ready  chan struct{} // closed once started (or failed: err)
	err    error
	sub    *eventstore.Subscription
	refs   int // under feedHubs.mu

	// The hub holds every readable event of the tenant's orders with a
	// sequence in (from, last]: items.
	mu        sync.Mutex
	items     []feedItem
	itemBytes int
	from      uint64
	last      uint64
	feeds     map[*hubFeed]struct{}
	maxEvents int
	maxBytes  int
}

// feedHubs are the running hubs, by tenant.
type feedHubs struct {
	mu   sync.Mutex
	hubs map[string]*feedHub
	// reads counts the feeds' reads from the stream (see feedFill).
	reads atomic.Int64
	// Bounds of each hub's buffer; 0: feedBufferEvents, feedBufferBytes.
	maxEvents, maxBytes int
}

// tenantFilter is the subject filter of every order event of tenant.
func tenantFilter(tenant string) string {
	return eventstore.SubjectRoot + "." + tenant + "." + eventstore.OrderAggregateType + ".>"
}

// join adds a feed of tenant's events after sequence after to the
// tenant's hub, starting the hub when none runs. leave takes it out.
func (hs *feedHubs) join(store *eventstore.Store, tenant string, f *hubFeed, after uint64) (*feedHub, error) {
	hs.mu.Lock()
	h := hs.hubs[tenant]
	starting := h == nil
	if starting {
		h = &feedHub{tenant: tenant, ready: make(chan struct{}), feeds: map[*hubFeed]struct{}{},
			maxEvents: hs.maxEvents, maxBytes: hs.maxBytes}
		if h.maxEvents <= 0 {
			h.maxEvents = feedBufferEvents
		}
		if h.maxBytes <= 0 {
			h.maxBytes = feedBufferBytes
		}
		if hs.hubs == nil {
			hs.hubs = map[string]*feedHub{}
		}
		hs.hubs[tenant] = h
	}
	h.refs++
	hs.mu.Unlock()

	if starting {
		if h.err = h.start(store, after); h.err != nil { // the next feed tries again
			hs.mu.Lock()
			if hs.hubs[tenant] == h {
				delete(hs.hubs, tenant)
			}
			hs.mu.Unlock()
		}
		close(h.ready)
	}
	<-h.ready
	if h.err != nil {
		hs.leave(h, nil)
		return nil, h.err
	}
	h.mu.Lock()
	f.cursor = after
	h.feeds[f] = struct{}{}
	h.mu.Unlock()
	return h, nil
}

// leave takes f out of h, and stops h when no feed is left.
func (hs *feedHubs) leave(h *feedHub, f *hubFeed) {
	if f != nil {
		h.mu.Lock()
		delete(h.feeds, f)
		h.mu.Unlock()
	}
	hs.mu.Lock()
	h.refs--
	last := h.refs == 0
	if last && hs.hubs[h.tenant] == h {
		delete(hs.hubs, h.tenant)
	}
	hs.mu.Unlock()
	if last && h.sub != nil {
		h.sub.Stop()
	}
}

// running is how many hubs run: one consumer on ORDERFLOW_ORDERS each.
func (hs *feedHubs) running() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return len(hs.hubs)
}

// start subscribes to the tenant's order events stored after sequence
// after, the first feed's, when that is at most maxEvents back, else to
// those stored from now on. So dashboards that reconnect together with
// Last-Event-ID (after orderflow restarted, say) find what they missed
// in the hub, where each would otherwise read it from the stream.
func (h *feedHub) start(store *eventstore.Store, after uint64) error {
	ctx := context.Background() // the hub outlives the feed that started it
	last, err := store.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		return err
	}
	from := last
	if after < last && last-after <= uint64(h.maxEvents) {
		from = after
	}
	h.from, h.last = from, from
	h.sub, err = store.Subscribe(ctx, eventstore.StreamOrders, []string{tenantFilter(h.tenant)}, from, h.add)
	return err
}

// add keeps one event for the feeds that want it and wakes them.
func (h *feedHub) add(ev eventstore.Event) error {
	line, err := feedLine(ev)
	if err != nil {
		return err // logged by the subscription; no feed sends it
	}
	it := feedItem{seq: ev.Sequence, line: line}
	it.orderID, it.typ = orderSubjectTokens(ev.Subject)

	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.last
	h.last = ev.Sequence
	for f := range h.feeds {
		switch {
		case f.cursor >= ev.Sequence:
		case f.wants(it.orderID, it.typ):
			f.wake()
		case f.cursor >= prev: // nothing else to take: it passes this one by
			f.cursor = ev.Sequence
		}
	}
	h.items = append(h.items, it)
	h.itemBytes += len(it.line)
	// Drop the oldest over the bounds.
	n := 0
	for len(h.items)-n > h.maxEvents || h.itemBytes > h.maxBytes && n < len(h.items) {
		h.itemBytes -= len(h.items[n].line)
		n++
	}
	if n > 0 {
		h.from = h.items[n-1].seq
		clear(h.items[:n])
		h.items = h.items[n:]
		for f := range h.feeds { // whoever the hub no longer holds events for reads them from the stream
			if f.cursor < h.from {
				f.wake()
			}
		}
	}
	return nil
}

// take appends to lines what f wants of the hub's events after its
// cursor and moves the cursor past them. behind: the hub no longer holds
// every event f wants (it fell too far behind); f reads them from the
// stream up to fillTo, which the hub holds events from (for now).
func (h *feedHub) take(f *hubFeed, lines [][]byte) (_ [][]byte, behind bool, fillFrom, fillTo uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.cursor < h.from {
		from := f.cursor
		f.cursor = h.last // held for f from here on; the fill reads up to it
		return lines, true, from, h.last
	}
	i := sort.Search(len(h.items), func(i int) bool { return h.items[i].seq > f.cursor })
	for _, it := range h.items[i:] {
		if f.wants(it.orderID, it.typ) {
			lines = append(lines, it.line)
		}
	}
	f.cursor = max(f.cursor, h.last)
	return lines, false, 0, 0
}

// orderSubjectTokens are the order id and the event type of an order
// event's subject (orderflow.<tenant>.order.<id>.<Type>), without
// allocating: the hub reads every event's.
func orderSubjectTokens(subject string) (orderID, typ string) {
	rest := subject
	for range 3 {
		_, rest, _ = strings.Cut(rest, ".")
	}
	orderID, typ, _ = strings.Cut(rest, ".")
	return orderID, typ
}

// feedFill is a feed's read from the stream of the events it wants with
// a sequence in (from, to], which the hub no longer holds.
type feedFill struct {
	from, to uint64
	rr       *eventstore.RangeReader
}

// read hands send each event after fill.from, up to fill.to, that f
// wants. It returns when it has read them all (done), when stop says so
// between two events, or when send fails; fill.from is then where it
// stands, and a later read goes on from there. close ends it.
func (fill *feedFill) read(ctx context.Context, store *eventstore.Store, tenant string, f *hubFeed, stop func() bool, send func([]byte) error) (done bool, err error) {
	if fill.rr == nil {
		filter := tenantFilter(tenant)
		if f.orderID != "" {
			filter = eventstore.Aggregate{Tenant: tenant, Type: eventstore.OrderAggregateType, ID: f.orderID}.Filter()
		}
		if fill.rr, err = store.OpenRange(ctx, eventstore.StreamOrders, filter, fill.from, fill.to); err != nil {
			return false, err
		}
	}
	for !stop() {
		ev, ok, err := fill.rr.Next(ctx)
		if err != nil {
			return false, err
		}
		if !ok {
			fill.from = fill.to
			fill.close()
			return true, nil
		}
		fill.from = ev.Sequence
		if orderID, typ := orderSubjectTokens(ev.Subject); !f.wants(orderID, typ) {
			continue
		}
		line, err := feedLine(ev)
		if err != nil {
			continue // as the hub, which skips it
		}
		if err := send(line); err != nil {
			return false, err
		}
	}
	return false, nil
}

// close ends the fill's read of the stream.
func (fill *feedFill) close() {
	if fill != nil && fill.rr != nil {
		fill.rr.Close()
		fill.rr = nil
	}
}

// feedLine is an event as a feed sends it.
func feedLine(ev eventstore.Event) ([]byte, error) {
	body, err := ev.Envelope.MarshalJSONForFeed()
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", ev.Sequence, ev.Type, body), nil
}
