package handlers

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// orderEvents are the order events, which the feed and an order's
// history carry (the OpenAPI document describes their data by type).
var orderEvents = []domain.Event{domain.OrderPlaced{}, domain.OrderAdvanced{}, domain.OrderCompleted{},
	domain.TriggerRejected{}, domain.OrderHeld{}, domain.OrderResumed{}, domain.OrderCancelled{},
	domain.OrderMoved{}, domain.OrderMigrated{}}

// orderEventTypes are the types ?types= accepts.
var orderEventTypes = func() []string {
	out := make([]string, len(orderEvents))
	for i, ev := range orderEvents {
		out[i] = ev.EventType()
	}
	return out
}()

// events serves GET /v1/events: Server-Sent Events of order events, each
// with `id:` = its stream sequence. A client that reconnects with
// Last-Event-ID (or ?last_event_id=) gets every later event once, in
// order, however long it was away; a new client gets events from now on
// (or from ?after=N).
func (api *API) events(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(http.Flusher); !ok {
		api.fail(w, r, fmt.Errorf("streaming is not supported on this connection"))
		return
	}
	q := r.URL.Query()
	tenant := api.cmds(r).Tenant
	var types []string
	if v := q.Get("types"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(orderEventTypes, t) {
				api.fail(w, r, &domain.FieldError{Field: "types", Reason: fmt.Sprintf("%q is not an order event type (%s)", t, strings.Join(orderEventTypes, ", "))})
				return
			}
			if !slices.Contains(types, t) { // JetStream refuses overlapping filters
				types = append(types, t)
			}
		}
	}
	orderID := q.Get("order_id")
	if orderID != "" {
		if err := eventstore.ValidateToken("order_id", orderID); err != nil {
			api.fail(w, r, err)
			return
		}
	}
	after, note, err := api.feedStart(r)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	if key, keyed := callerKey(r); keyed {
		most := cmp.Or(api.MaxFeedsPerKey, DefaultMaxFeedsPerKey)
		if !api.keyFeeds.open(key.Name, most) {
			w.Header().Set("Retry-After", "1")
			api.fail(w, r, fmt.Errorf("%w: key %q holds %d event feeds open, the most one key may (--max-feeds-per-key); close one first",
				errRateLimited, key.Name, most))
			return
		}
		defer api.keyFeeds.close(key.Name)
	}
	if open, most := api.openFeeds.Add(1), int64(cmp.Or(api.MaxFeeds, DefaultMaxFeeds)); open > most {
		api.openFeeds.Add(-1)
		api.fail(w, r, fmt.Errorf("%w: %d event feeds are open, the most this process serves (--max-feeds); dashboards can also follow order events on NATS",
			errUnavailable, most))
		return
	}
	defer api.openFeeds.Add(-1)
	f := &hubFeed{orderID: orderID, types: types, signal: make(chan struct{}, 1)}
	hub, err := api.feedHubs.join(api.Commands.Store, tenant, f, after)
	if errors.Is(err, jetstream.ErrMaximumConsumersLimit) {
		err = fmt.Errorf("%w: %w (ORDERFLOW_ORDERS has as many consumers as JetStream allows a stream: event feeds of all processes, say)", errUnavailable, err)
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	defer api.feedHubs.leave(hub, f)
	ctx := r.Context()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	timeout := cmp.Or(api.FeedWriteTimeout, 30*time.Second)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }() // the connection may serve another request
	// write writes one message, and flush sends what was written; each is
	// false when the client is gone or has not taken it within the
	// timeout.
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(timeout)) // not every connection has deadlines
		_, err := w.Write(b)
		return err == nil
	}
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		return rc.Flush() == nil
	}
	send := func(format string, args ...any) bool { return write(fmt.Appendf(nil, format, args...)) && flush() }
	// put and drain write events a few writes of many events each (the
	// server's own buffers would otherwise write a few events at a time):
	// put adds one, writing what it holds first when it is full, and
	// drain writes what it holds.
	var batch []byte
	put := func(line []byte) bool {
		if len(batch) > 0 && len(batch)+len(line) > feedWriteBytes {
			if !write(batch) {
				return false
			}
			batch = batch[:0]
		}
		if len(line) >= feedWriteBytes { // as it is: the batch stays small
			return write(line)
		}
		batch = append(batch, line...)
		return true
	}
	drain := func() bool {
		ok := len(batch) == 0 || write(batch)
		batch = batch[:0]
		return ok
	}
	if !send(": orderflow order events after sequence %d%s\n\n", after, note) {
		return
	}
	beat := time.NewTicker(cmp.Or(api.FeedHeartbeat, 15*time.Second))
	defer beat.Stop()
	ending := api.streamsEnding()
	// A feed lasts as long as its dashboard stays, but not longer than its
	// API key: one whose key is taken out of the keys file, or given
	// another tenant or a lower role, ends when the file is read again, and
	// one whose key expires ends then. The dashboard's reconnection is
	// then refused.
	keysSet := api.keysChanged()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	revoked := func() bool {
		key, ok := api.stillLetIn(r)
		if !ok {
			send(": the API key this feed was opened with no longer lets it in\n\n")
			return true
		}
		expiry.Stop()
		if !key.Expires.IsZero() {
			expiry.Reset(time.Until(key.Expires))
		}
		return false
	}
	if revoked() { // the keys changed since the request was let in
		return
	}
	var lines [][]byte
	var fill *feedFill // set while the feed reads from the stream
	defer func() { fill.close() }()
	f.wake() // whatever the hub holds past after
	// After it sends events a feed waits feedCoalesce before it takes
	// more: a busy store's events then go out a few at a time, not a write
	// and a flush each (see feedCoalesce).
	held := false
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
	for {
		signal := f.signal
		if held {
			signal = nil
		}
		select {
		case <-hold.C:
			held = false
		case <-ctx.Done():
			return
		case <-ending: // shutting down: a client resumes with Last-Event-ID
			return
		case <-keysSet:
			keysSet = api.keysChanged()
			if revoked() {
				return
			}
		case <-expiry.C:
			if revoked() {
				return
			}
		case <-beat.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case <-signal:
			if fill == nil {
				var behind bool
				var from, to uint64
				lines, behind, from, to = hub.take(f, lines[:0])
				if behind {
					api.feedHubs.reads.Add(1)
					fill = &feedFill{from: from, to: to}
					f.wake()
					break
				}
				for _, line := range lines {
					if !put(line) {
						return
					}
				}
				clear(lines) // the hub drops them when every feed has them
				if !drain() {
					return
				}
				if len(lines) > 0 {
					if !flush() {
						return
					}
					held = true
					hold.Reset(feedCoalesce)
				}
				break
			}
			// Events the hub no longer holds: from the stream, a while
			// at a time, so that the feed still ends, or sees its key
			// change, as it would otherwise.
			until := time.Now().Add(fillTurn)
			stop := func() bool {
				return time.Now().After(until) || ctx.Err() != nil || isClosed(ending) || isClosed(keysSet)
			}
			failed := false
			done, err := fill.read(ctx, api.Commands.Store, tenant, f, stop, func(line []byte) error {
				if !put(line) {
					failed = true
					return errFeedClient
				}
				return nil
			})
			if failed || !drain() || !flush() {
				return
			}
			if err != nil && ctx.Err() == nil {
				api.log().Warn("event feed: reading the stream failed", "tenant", tenant, "after", fill.from, "err", err)
				send(": reading the stream failed; reconnect with Last-Event-ID\n\n")
			}
			if err != nil {
				return
			}
			if done {
				fill = nil
			}
			f.wake() // go on: the rest of the fill, or the hub's events
		}
	}
}

// feedCoalesce is how long a feed that has just sent events waits before
// it takes the next ones. On a busy store each feed otherwise wrote and
// flushed nearly every event by itself: with 100 feeds at 2,000 events/s,
// 200,000 writes a second took most of the process's CPU. A feed's
// dashboard sees an event at most this much later; an event after a
// quiet moment goes out at once.
const feedCoalesce = 10 * time.Millisecond

// feedWriteBytes bounds one write of a feed's events (each write has the
// feed's write timeout).
const feedWriteBytes = 64 << 10

// fillTurn is how long a feed reads from the stream before it looks
// whether it should end.
const fillTurn = 100 * time.Millisecond

// errFeedClient ends a read for a feed whose client is gone.
var errFeedClient = errors.New("the feed's client is gone")

// isClosed says whether c is closed (c is never sent on).
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// feedStart is the stream sequence the feed starts after, and a note for
// the feed's first line. An event id past the stream's last event is not
// one of this store's (a dashboard that followed a store since replaced,
// say): waiting for the stream to reach it would show nothing for a long
// time, so the feed follows from the stream's last event and says so.
func (api *API) feedStart(r *http.Request) (uint64, string, error) {
	last, err := api.Commands.Store.LastSequence(r.Context(), eventstore.StreamOrders)
	if err != nil {
		return 0, "", err
	}
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("last_event_id"), r.URL.Query().Get("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("%w: event id %q is not a sequence number", errBadRequest, v)
		}
		if n > last {
			return last, fmt.Sprintf(" (event id %d is past the stream's last event: not from this store)", n), nil
		}
		return n, "", nil
	}
	return last, "", nil
}

// keyFeeds counts the event feeds each API key holds open.
type keyFeeds struct {
	mu    sync.Mutex
	byKey map[string]int
}

// open counts one more feed of key, unless it holds most already.
func (k *keyFeeds) open(key string, most int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.byKey[key] >= most {
		return false
	}
	if k.byKey == nil {
		k.byKey = map[string]int{}
	}
	k.byKey[key]++
	return true
}

// close counts one feed of key fewer.
func (k *keyFeeds) close(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.byKey[key]--; k.byKey[key] <= 0 {
		delete(k.byKey, key)
	}
}
