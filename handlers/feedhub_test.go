package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// feedEvent is one event as a feed sent it.
type feedEvent struct {
	seq   uint64
	typ   string
	order string
}

// openFeed follows GET /v1/events+query (from lastEventID when not "")
// until the test ends; the feed has started when it returns.
func openFeed(t *testing.T, hs *httptest.Server, query, lastEventID string) <-chan feedEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events%s: %s", query, resp.Status)
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), ": orderflow order events") {
		t.Fatalf("GET /v1/events%s began with %q", query, lines.Text())
	}
	out := make(chan feedEvent, 4096)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		var ev feedEvent
		for lines.Scan() {
			switch line := lines.Text(); {
			case strings.HasPrefix(line, "id: "):
				ev.seq, _ = strconv.ParseUint(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				var env struct {
					AggregateID string `json:"aggregate_id"`
				}
				_ = json.Unmarshal([]byte(line[6:]), &env)
				ev.order = env.AggregateID
			case line == "" && ev.seq != 0:
				out <- ev
				ev = feedEvent{}
			}
		}
	}()
	return out
}

// feedAppender appends order events of the given types, round robin over
// orders, and remembers them.
type feedAppender struct {
	t    *testing.T
	c    *Commands
	last map[string]uint64
	all  []feedEvent
}

func (a *feedAppender) append(n int, orders []string, types ...string) {
	a.t.Helper()
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	for i := range n {
		id, typ := orders[i%len(orders)], types[i%len(types)]
		env := eventstore.Envelope{ID: uuid.NewString(), Type: typ, Version: 1, OccurredAt: time.Now(),
			Actor: eventstore.Actor{Kind: eventstore.ActorSystem, ID: "test"}, Data: json.RawMessage(`{}`)}
		res, err := a.c.Store.Append(ctx, a.c.orderAddr(id), a.last[id], env)
		if err != nil {
			a.t.Fatal(err)
		}
		a.last[id] = res.LastSeq
		a.all = append(a.all, feedEvent{seq: res.LastSeq, typ: typ, order: id})
	}
}

// want is what a feed of order (all when "") and types (all when none)
// from after should send.
func (a *feedAppender) want(after uint64, order string, types ...string) []feedEvent {
	var out []feedEvent
	for _, ev := range a.all {
		if ev.seq > after && (order == "" || ev.order == order) && (len(types) == 0 || slices.Contains(types, ev.typ)) {
			out = append(out, ev)
		}
	}
	return out
}

// expectFeed checks that feed sends want, in order, and nothing else.
func expectFeed(t *testing.T, name string, feed <-chan feedEvent, want []feedEvent) {
	t.Helper()
	var got []feedEvent
	timeout := time.After(eventstoretest.Patience(30 * time.Second))
	for len(got) < len(want) {
		select {
		case ev, ok := <-feed:
			if !ok {
				t.Fatalf("%s ended after %d of %d events", name, len(got), len(want))
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("%s sent %d of %d events", name, len(got), len(want))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s sent\n%v\nwant\n%v", name, got, want)
	}
}

// feedAPI serves an API on an embedded server of its own, whose feeds'
// shared readers keep at most maxEvents events (0: the default).
func feedAPI(t *testing.T, maxEvents int) (*Commands, *API, *httptest.Server) {
	t.Helper()
	c := newCommands(t, eventstoretest.StartServer(t))
	api := &API{Commands: c, Log: quiet}
	api.feedHubs.maxEvents = maxEvents
	return c, api, serveAPI(t, api)
}

// The feeds of a tenant share one reader of the orders stream, one
// consumer however many feeds are open and whatever they filter; each
// gets what it asked for. The reader stops with the last feed.
func TestFeedsShareOneReader(t *testing.T) {
	t.Parallel()
	c, api, hs := feedAPI(t, 0)
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	stream, err := c.Store.JetStream().Stream(ctx, eventstore.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	before := consumers()

	all := openFeed(t, hs, "", "")
	placed := openFeed(t, hs, "?types=OrderPlaced", "")
	one := openFeed(t, hs, "?order_id=o-2", "")
	if n := consumers() - before; n != 1 {
		t.Fatalf("three feeds hold %d consumers on the orders stream, want one between them", n)
	}
	a := &feedAppender{t: t, c: c, last: map[string]uint64{}}
	a.append(30, []string{"o-1", "o-2", "o-3"}, "OrderPlaced", "OrderHeld")
	expectFeed(t, "the feed of every event", all, a.want(0, ""))
	expectFeed(t, "the feed of OrderPlaced", placed, a.want(0, "", "OrderPlaced"))
	expectFeed(t, "the feed of o-2", one, a.want(0, "o-2"))

	hs.CloseClientConnections()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return api.OpenFeeds() == 0 }, "the feeds to end")
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return consumers() == before }, "the feeds' reader to stop")
	if n := api.feedHubs.running(); n != 0 {
		t.Fatalf("%d readers run with no feed open", n)
	}
}

// A feed that starts before what the shared reader holds (one that
// resumes with Last-Event-ID), or that falls further behind than the
// reader keeps events (here 3), reads what it lacks from the stream and
// goes on with the reader: every event it asked for, in order, once.
func TestFeedsThatFallBehindReadTheStream(t *testing.T) {
	t.Parallel()
	c, api, hs := feedAPI(t, 3)
	orders := []string{"o-0", "o-1", "o-2", "o-3", "o-4"}
	a := &feedAppender{t: t, c: c, last: map[string]uint64{}}
	a.append(40, orders, "OrderPlaced", "OrderHeld", "OrderResumed")
	mid := a.all[9].seq

	live := openFeed(t, hs, "", "")
	fromStart := openFeed(t, hs, "", "0")
	heldFromStart := openFeed(t, hs, "?types=OrderHeld,OrderResumed", "0")
	oneFromMid := openFeed(t, hs, "?order_id=o-3", strconv.FormatUint(mid, 10))
	a.append(300, orders, "OrderPlaced", "OrderHeld", "OrderResumed")
	now := a.all[39].seq

	expectFeed(t, "the live feed", live, a.want(now, ""))
	expectFeed(t, "the feed from the start", fromStart, a.want(0, ""))
	expectFeed(t, "the feed of two types from the start", heldFromStart, a.want(0, "", "OrderHeld", "OrderResumed"))
	expectFeed(t, fmt.Sprintf("the feed of o-3 after %d", mid), oneFromMid, a.want(mid, "o-3"))
	if api.FeedStreamReads() == 0 {
		t.Fatal("no feed read from the stream: the test did not test it")
	}
}

// Feeds that resume a little way back (dashboards reconnecting together
// with Last-Event-ID after a restart) find what they missed in the
// shared reader, which the first of them starts from where it stood:
// none reads the stream, not even one that comes after the others have
// taken every event. Before, each read its gap from the stream with a
// consumer of its own.
func TestResumingFeedsShareTheReader(t *testing.T) {
	t.Parallel()
	c, api, hs := feedAPI(t, 0)
	orders := []string{"o-0", "o-1", "o-2"}
	a := &feedAppender{t: t, c: c, last: map[string]uint64{}}
	a.append(40, orders, "OrderPlaced", "OrderHeld", "OrderResumed")
	first, second := a.all[29].seq, a.all[34].seq
	feeds := []<-chan feedEvent{
		openFeed(t, hs, "", strconv.FormatUint(first, 10)),
		openFeed(t, hs, "", strconv.FormatUint(second, 10)),
		openFeed(t, hs, "?order_id=o-1", strconv.FormatUint(first, 10)),
	}
	a.append(10, orders, "OrderPlaced", "OrderHeld", "OrderResumed")
	expectFeed(t, fmt.Sprintf("the feed after %d", first), feeds[0], a.want(first, ""))
	expectFeed(t, fmt.Sprintf("the feed after %d", second), feeds[1], a.want(second, ""))
	expectFeed(t, fmt.Sprintf("the feed of o-1 after %d", first), feeds[2], a.want(first, "o-1"))
	if n := api.FeedStreamReads(); n != 0 {
		t.Fatalf("%d feeds read the stream, want none", n)
	}
	// One more that resumes at the same place, now that the others have
	// taken every event: the reader still holds them.
	late := openFeed(t, hs, "", strconv.FormatUint(first, 10))
	expectFeed(t, fmt.Sprintf("the late feed after %d", first), late, a.want(first, ""))
	if n := api.FeedStreamReads(); n != 0 {
		t.Fatalf("%d feeds read the stream, want none: the late one read it", n)
	}
	// One that resumes further back than the reader keeps reads the stream.
	far := openFeed(t, hs, "", "0")
	a.append(3, orders, "OrderPlaced", "OrderHeld", "OrderResumed")
	expectFeed(t, "the feed from the start", far, a.want(0, ""))
	if n := api.FeedStreamReads(); n != 1 {
		t.Fatalf("%d feeds read the stream, want the one from the start", n)
	}
}

// The shared reader keeps the latest events up to its bounds, taken or
// not (a feed that wants none of the events after where it stands is
// moved past them), so a feed that joins a little way back takes them
// from it; a feed whose events it dropped is told to read them from the
// stream, up to the reader's last event, and goes on from there.
func TestFeedHubKeepsTheLatestEvents(t *testing.T) {
	t.Parallel()
	h := &feedHub{feeds: map[*hubFeed]struct{}{}, maxEvents: 4, maxBytes: 1 << 20}
	feed := func(order string, types ...string) *hubFeed {
		f := &hubFeed{orderID: order, types: types, signal: make(chan struct{}, 1)}
		h.feeds[f] = struct{}{}
		return f
	}
	all, held, o2 := feed(""), feed("", "OrderHeld"), feed("o-2")
	add := func(seq uint64, order, typ string) {
		t.Helper()
		ev := eventstore.Event{Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: typ, AggregateID: order, Version: 1,
			Actor: eventstore.Actor{Kind: eventstore.ActorSystem, ID: "test"}, Data: json.RawMessage(`{}`)},
			Sequence: seq, Subject: "orderflow.t.order." + order + "." + typ}
		if err := h.add(ev); err != nil {
			t.Fatal(err)
		}
	}
	take := func(f *hubFeed, want ...uint64) {
		t.Helper()
		lines, behind, _, _ := h.take(f, nil)
		var got []uint64
		for _, l := range lines {
			var seq uint64
			if _, err := fmt.Sscanf(string(l), "id: %d\n", &seq); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			got = append(got, seq)
		}
		if behind || !slices.Equal(got, want) {
			t.Fatalf("took %v (behind %v), want %v", got, behind, want)
		}
	}
	held1 := func(want int) {
		t.Helper()
		if len(h.items) != want {
			t.Fatalf("the reader holds %d events, want %d", len(h.items), want)
		}
	}

	add(1, "o-1", "OrderPlaced")
	held1(1)
	take(all, 1)
	add(2, "o-1", "OrderPlaced")
	held1(2) // all took the first; held and o2 do not want either
	take(all, 2)
	take(held)
	take(o2)

	// Six events held wants and o2 does not, and all takes none of them:
	// over the bound of four, the first two are dropped.
	for seq := uint64(3); seq <= 8; seq++ {
		add(seq, "o-1", "OrderHeld")
	}
	held1(4)
	for _, f := range []*hubFeed{all, held} {
		lines, behind, from, to := h.take(f, nil)
		if !behind || len(lines) != 0 || from != 2 || to != 8 {
			t.Fatalf("a feed at 2 after the reader dropped 3 and 4: %d lines, behind %v, read (%d, %d]; want behind, read (2, 8]", len(lines), behind, from, to)
		}
	}
	take(o2) // it wanted none of them
	add(9, "o-2", "OrderPlaced")
	held1(4) // 6 to 9; each feed stands at 8: what they read from the stream
	take(all, 9)
	take(o2, 9)
	take(held)
	add(10, "o-3", "OrderPlaced")
	take(all, 10)
	add(11, "o-3", "OrderPlaced")
	held1(4)
	// A feed that joins at 7 (a dashboard resuming there) takes 8 to 11
	// from the reader; one at 6 would lack 7, which the reader dropped.
	late := feed("")
	late.cursor = 7
	take(late, 8, 9, 10, 11)
	early := feed("")
	early.cursor = 6
	if _, behind, from, to := h.take(early, nil); !behind || from != 6 || to != 11 {
		t.Fatalf("a feed at 6 after the reader dropped 7: behind %v, read (%d, %d]; want behind, read (6, 11]", behind, from, to)
	}
}
