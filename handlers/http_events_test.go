package handlers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A feed client that stops reading is disconnected once a write has
// waited FeedWriteTimeout, and its feed stops (and with it, when it was
// the tenant's last, the feeds' reader of the orders stream); it would
// otherwise hold both for as long as the connection lives.
func TestStalledFeedIsDisconnected(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	c := newCommands(t, srv)
	api := &API{Commands: c, Log: quiet, FeedWriteTimeout: 200 * time.Millisecond}
	hs := serveAPI(t, api)

	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprint(conn, "GET /v1/events HTTP/1.1\r\nHost: orderflow\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return api.OpenFeeds() == 1 }, "the feed to open")

	// Far more than the connection's buffers hold, and never read.
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	padding := json.RawMessage(`"` + strings.Repeat("x", 64<<10) + `"`)
	for i := range 400 {
		env := eventstore.Envelope{ID: uuid.NewString(), Type: "FeedPadding", Version: 1, OccurredAt: time.Now(),
			Actor: eventstore.Actor{Kind: eventstore.ActorSystem, ID: "test"}, Data: padding}
		if _, err := c.Store.Append(ctx, c.orderAddr(fmt.Sprintf("stalled-%d", i)), eventstore.ExpectNew, env); err != nil {
			t.Fatal(err)
		}
	}
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return api.OpenFeeds() == 0 }, "the stalled feed to be dropped")
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return api.feedHubs.running() == 0 }, "the feeds' reader to stop")
}

// An idle feed sends a comment line every FeedHeartbeat, so proxies and
// dashboards see the connection alive while no order event comes.
func TestIdleFeedSendsKeepAlives(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	hs := serveAPI(t, &API{Commands: newCommands(t, srv), Log: quiet, FeedHeartbeat: 20 * time.Millisecond})

	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	var got []string
	for beats := 0; beats < 2; {
		if !lines.Scan() {
			t.Fatalf("the feed ended after %q: %v", got, lines.Err())
		}
		switch line := lines.Text(); {
		case line == ": keep-alive":
			beats++
		case line != "" && !strings.HasPrefix(line, ": orderflow order events after sequence 0"):
			t.Fatalf("an idle feed sent %q", line)
		}
		got = append(got, lines.Text())
	}
}

// serveAPI serves api's routes over HTTP until the test ends.
func serveAPI(t *testing.T, api *API) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	api.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}
