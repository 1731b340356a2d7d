package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

func TestConnectionShare(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		files uint64
		known bool
		want  int
	}{
		{0, false, defaultMaxConnections},
		{1 << 20, true, defaultMaxConnections},
		{20000, true, 4096},
		{1024, true, 256},
		{256, true, 64},
		{2, true, 1},
	} {
		if got := connectionShare(c.files, c.known); got != c.want {
			t.Errorf("connectionShare(%d, %t) = %d, want %d", c.files, c.known, got, c.want)
		}
	}
}

// The limits are the flags' when given, a share of the open files when
// not; limits that could take most of the files are warned of, and with
// --nats-url there is no embedded server to limit.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	files, known := openFileLimit()
	share := connectionShare(files, known)
	var logs bytes.Buffer
	a := &App{Config: DefaultConfig(), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	a.Config.MaxFeeds = 1 // the feeds' warning is checked below
	if h, n := a.connectionLimits(); h != share || n != share || logs.Len() != 0 {
		t.Errorf("defaults: %d and %d, want %d each (open files %d, %t); logged %q", h, n, share, files, known, logs.String())
	}
	a.Config.MaxConnections, a.Config.NATSMaxConnections = 7, 9
	if h, n := a.connectionLimits(); h != 7 || n != 9 {
		t.Errorf("given 7 and 9: %d and %d", h, n)
	}
	a.Config.NATSURL = "nats://n1:4222"
	if h, n := a.connectionLimits(); h != 7 || n != 0 {
		t.Errorf("with --nats-url: %d and %d, want 7 and 0", h, n)
	}
	// Feeds that could hold half the HTTP connections are warned of.
	a.Config.MaxConnections, a.Config.MaxFeeds = 300, 150
	logs.Reset()
	a.connectionLimits()
	if !strings.Contains(logs.String(), "event feeds may hold half the HTTP connections or more") {
		t.Errorf("--max-feeds 150 of --max-connections 300: logged %q", logs.String())
	}
	a.Config.MaxFeeds = 149
	logs.Reset()
	a.connectionLimits()
	if logs.Len() != 0 {
		t.Errorf("--max-feeds 149 of --max-connections 300: logged %q", logs.String())
	}
	a.Config.MaxFeeds = DefaultConfig().MaxFeeds
	if !known {
		t.Skip("no open-file limit here to warn against")
	}
	a.Config.NATSURL = ""
	a.Config.MaxConnections = int(files)
	logs.Reset()
	a.connectionLimits()
	if !strings.Contains(logs.String(), "connections may take most of the files the process may open") {
		t.Errorf("--max-connections %d of %d open files: logged %q", files, files, logs.String())
	}
}

// A limitListener holds at most its limit of connections: the next is
// accepted once one of them is closed (closing it twice frees one slot),
// and closing the listener ends an Accept that waits for a slot.
func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	defer l.Close()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var held []net.Conn
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if l.open() != 2 || l.limit() != 2 {
		t.Fatalf("open %d of %d, want 2 of 2", l.open(), l.limit())
	}
	// Every slot is taken, so this Accept waits for one.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	held[0].Close()
	held[0].Close()
	var third net.Conn
	select {
	case third = <-accepted:
	case <-time.After(eventstoretest.Patience(10 * time.Second)):
		t.Fatal("no connection accepted after one was closed")
	}
	if l.open() != 2 {
		t.Fatalf("open %d after a close and an accept, want 2", l.open())
	}
	third.Close()
	held[1].Close()
	// An Accept waiting for a connection holds a slot, but no connection
	// is open.
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	<-waiting
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return len(l.slots) == 1 }, "the waiting Accept to take a slot")
	if l.open() != 0 {
		t.Fatalf("open %d with none open and an Accept waiting, want 0", l.open())
	}

	// With the slots taken again, Close ends the Accept waiting for one.
	l2 := newLimitListener(inner, 1)
	l2.slots <- struct{}{}
	ended := make(chan error, 1)
	go func() { _, err := l2.Accept(); ended <- err }()
	l2.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(eventstoretest.Patience(10 * time.Second)):
		t.Fatal("Accept still waiting after Close")
	}
}

// A client that opens connections faster than they close (each an open
// file) no longer takes the files the embedded server needs. With the
// process allowed 512 open files, the HTTP API holds at most 128
// connections (a quarter of them), and 700 held open by one client wait
// to be accepted. Meanwhile triggers published over NATS take effect,
// nothing fails for want of a file, and once the client lets go the API
// answers. Before, the 700 took every file: accepts failed with "too many
// open files", and so did the embedded server's opening of a stream's
// next block file, after which that stream refused every write until a
// restart.
func TestConnectionFloodLeavesTheStoreWriting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	t.Parallel()
	child := newChildServer(t)
	cmd := child.start(t, "ulimit -n 512; ", "--lanes", "2")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &httpClient{t: t, base: "http://" + child.httpAddr}
	seedWorkedExample(t, c)
	ids := placeOrders(t, c, "flood", 20)
	if got := metricValues(t, c)["orderflow_http_connections_limit"]; got != 128 {
		t.Fatalf("orderflow_http_connections_limit %g, want 128 (a quarter of 512 open files)", got)
	}

	nc := eventstoretest.Connect(t, "nats://"+child.natsAddr)
	completed := make(chan struct{}, len(ids))
	if _, err := nc.Subscribe("orderflow.default.order.*.OrderCompleted", func(*nats.Msg) { completed <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var flood []net.Conn
	defer func() {
		for _, conn := range flood {
			conn.Close()
		}
	}()
	for range 700 {
		conn, err := net.Dial("tcp", child.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, conn)
	}
	wc, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	for _, tr := range workedTriggers {
		for _, id := range ids {
			if _, err := wc.PublishTrigger(ctx, client.Trigger{OrderID: id, Trigger: tr}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range ids {
		select {
		case <-completed:
		case <-ctx.Done():
			t.Fatalf("%d of %d orders completed while the connections were held", i, len(ids))
		}
	}
	for _, conn := range flood {
		conn.Close()
	}
	waitServing(t, child.httpAddr)
	for _, id := range ids {
		if o := c.must(200, "GET", "/v1/orders/"+id, nil); o["state"] != "completed" {
			t.Fatalf("order %s: %v", id, o)
		}
	}
	if logs := child.logs.String(); strings.Contains(logs, "too many open files") {
		t.Fatalf("the process ran out of files:\n%s", logs)
	}
}

// A request's line and headers are held in memory while they arrive, so
// they are bounded: up to MaxHeaderBytes is served, much more is 431.
func TestRequestHeadersAreBounded(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	for _, tc := range []struct {
		size int
		want int
	}{
		{MaxHeaderBytes - 1024, http.StatusOK},
		// net/http allows 4 KiB over, and on a kept-alive connection
		// another 4 KiB its reader may already hold.
		{MaxHeaderBytes + 16384, http.StatusRequestHeaderFieldsTooLarge},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+app.HTTPAddr()+"/v1/statuses", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < tc.size/1000; i++ {
			req.Header.Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("h", 1000-len("X-Pad-000: \r\n")))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes of headers: %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}

// A client that asks and never reads its answers is disconnected once an
// answer has waited answerTimeout (handlers.AnswerTimeout), so it holds
// none of the connections --max-connections allows.
func TestClientThatNeverReadsIsDisconnected(t *testing.T) {
	t.Parallel()
	app := startAppWith(t, newTestConfig(t), func(a *App) { a.answerTimeout = time.Second })
	conn, err := net.Dial("tcp", app.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	// The OpenAPI document is about 300 KB: fifty of them fill any
	// socket buffer.
	if _, err := conn.Write([]byte(strings.Repeat("GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n", 50))); err != nil {
		t.Fatal(err)
	}
	// Dial returns before the server accepts: first the connection is
	// open (for at least the second the first answer may wait), then not.
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return app.httpLn.open() == 1 }, "the connection accepted")
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return app.httpLn.open() == 0 },
		"the server to close the connection of a client that reads nothing")
}

// At --max-connections, a client that connects while others keep their
// connections idle between requests (as browsers and Go's own client do)
// is taken at once: the connection idle longest is closed to make room.
// A connection at work, an event feed here, is never closed for it.
// Before, the newcomer waited in the kernel's accept queue for an idle
// connection's timeout, two minutes.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	t.Parallel()
	cfg := newTestConfig(t)
	cfg.MaxConnections = 4
	app := startApp(t, cfg)
	c := newClient(t, app)
	seedWorkedExample(t, c)
	feeds := []*sseStream{openSSE(t, app, "", ""), openSSE(t, app, "", "")}
	// Six clients one after another, each leaving its connection open.
	for i := range 6 {
		if _, err := getLeavingIdle(t, &http.Transport{}, "http://"+app.HTTPAddr()+"/healthz"); err != nil {
			t.Fatalf("client %d of 6, with %d connections allowed: %v", i+1, cfg.MaxConnections, err)
		}
	}
	c.must(201, "POST", "/v1/orders", map[string]any{"id": "room-1", "order_type_id": "wash_fold_delivery"})
	for i, f := range feeds {
		if ev := f.next(t); ev.Type != "OrderPlaced" || ev.Data["aggregate_id"] != "room-1" {
			t.Fatalf("feed %d: %s %v, want room-1's OrderPlaced", i, ev.Type, ev.Data)
		}
	}
	if got := metricValues(t, c)["orderflow_http_idle_connections_closed_total"]; got < 4 {
		t.Fatalf("orderflow_http_idle_connections_closed_total %g, want at least 4", got)
	}
}

// closeIdlest closes the connection idle longest, and only once it has
// been idle minIdle: one between two requests sent back to back is left
// alone. One at work is never closed.
func TestLimitListenerClosesTheIdlest(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 3)
	defer l.Close()
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, a)
	}
	now := time.Now()
	if closed, after := l.closeIdlest(now); closed || after != 0 {
		t.Fatalf("none idle: closed %v, after %v", closed, after)
	}
	l.connState(held[0], http.StateActive)
	l.connState(held[1], http.StateIdle)
	l.connState(held[2], http.StateIdle)
	l.mu.Lock()
	since := l.idle[held[1]]
	l.mu.Unlock()
	if closed, after := l.closeIdlest(since.Add(minIdle / 2)); closed || after != minIdle/2 {
		t.Fatalf("idle half of minIdle: closed %v, after %v, want %v", closed, after, minIdle/2)
	}
	if closed, _ := l.closeIdlest(since.Add(minIdle)); !closed || l.open() != 2 {
		t.Fatalf("idle minIdle: closed %v, %d open", closed, l.open())
	}
	if _, err := held[1].Write([]byte("x")); err == nil {
		t.Fatal("the idlest connection is still open")
	}
	// The other idle one goes to work: none is left to close.
	l.connState(held[2], http.StateActive)
	if closed, after := l.closeIdlest(now.Add(time.Hour)); closed || after != 0 || l.open() != 2 || l.idleClosed.Load() != 1 {
		t.Fatalf("none idle again: closed %v, after %v, %d open, %d closed", closed, after, l.open(), l.idleClosed.Load())
	}
}

// getLeavingIdle GETs url with a client of its own over tr, reads the
// answer and leaves the connection open and idle (closed when the test
// ends). It gives up well before the server's idle timeout, 2 minutes,
// would have closed an idle connection anyway.
func getLeavingIdle(t *testing.T, tr *http.Transport, url string) (*http.Response, error) {
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: eventstoretest.Patience(15 * time.Second)}
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}
