package handlers

import (
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
// waited FeedWriteTimeout, and its feed (a consumer on the orders stream)
// stops; it would otherwise hold both for as long as the connection lives.
func TestStalledFeedIsDisconnected(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	c := newCommands(t, srv)
	api := &API{Commands: c, Log: quiet, FeedWriteTimeout: 200 * time.Millisecond}
	mux := http.NewServeMux()
	api.Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()

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
}
