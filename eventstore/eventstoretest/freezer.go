package eventstoretest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Freezer is a TCP proxy in front of a NATS server that can hold back
// what the server sends, and cut every connection: an acknowledgement the
// server sent but the client never received. It can also pause every
// connection, as a silent network partition would (Pause), and tells a
// test when a client has sent something (Sent).
type Freezer struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	conns   []net.Conn
	held    bool
	paused  bool
	resumed *sync.Cond // on mu, signalled when a pause ends
	watches []watch
}

// watch is a Sent waiting for its text.
type watch struct {
	text string
	seen chan struct{}
}

// StartFreezer starts a Freezer in front of the server at url (a
// nats:// URL or host:port) and stops it when the test ends.
func StartFreezer(tb testing.TB, url string) *Freezer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &Freezer{ln: ln, target: strings.TrimPrefix(url, "nats://")}
	f.resumed = sync.NewCond(&f.mu)
	go f.accept()
	tb.Cleanup(func() {
		ln.Close()
		f.Pause(false)
		f.Cut()
	})
	return f
}

// URL is where clients connect to reach the server through the Freezer.
func (f *Freezer) URL() string { return "nats://" + f.ln.Addr().String() }

func (f *Freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		go f.up(c, s)
		go f.down(c, s)
	}
}

// sentTail is how much of what a client sent is kept to find a Sent's
// text split across two reads: Sent's texts are shorter.
const sentTail = 256

// up passes on what a client sends, and closes the watches whose text
// went by.
func (f *Freezer) up(c, s net.Conn) {
	defer s.Close()
	buf := make([]byte, 32<<10)
	var last []byte // the end of what went by, then this read
	for {
		n, err := c.Read(buf)
		if n > 0 {
			last = append(last, buf[:n]...)
			f.saw(last, n)
			last = last[max(0, len(last)-sentTail):]
			f.unpaused()
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// saw closes the watches whose text is in last and takes in at least one
// of its fresh bytes, the rest having gone by before (perhaps before the
// watch began).
func (f *Freezer) saw(last []byte, fresh int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.watches[:0]
	for _, w := range f.watches {
		from := max(0, len(last)-fresh-len(w.text)+1)
		if bytes.Contains(last[from:], []byte(w.text)) {
			close(w.seen)
		} else {
			kept = append(kept, w)
		}
	}
	f.watches = kept
}

// Sent returns a channel that is closed once a client sends, from now on,
// something that contains text (a request's subject, say), whether or not
// the Freezer holds what the server sends. text must be shorter than
// sentTail bytes.
func (f *Freezer) Sent(text string) <-chan struct{} {
	w := watch{text: text, seen: make(chan struct{})}
	f.mu.Lock()
	f.watches = append(f.watches, w)
	f.mu.Unlock()
	return w.seen
}

// HoldUntilSent holds what the server sends (Hold) and returns once a
// client sends something that contains text: a client's answer to the
// server's silence, such as a request to recreate a consumer whose
// heartbeats stopped. It fails tb if ctx ends first.
func (f *Freezer) HoldUntilSent(ctx context.Context, tb testing.TB, text string) {
	tb.Helper()
	sent := f.Sent(text)
	f.Hold(true)
	select {
	case <-sent:
	case <-ctx.Done():
		tb.Fatalf("no client sent %q while the server's answers were held", text)
	}
}

// ReturnsOnCancel ends a call's context (stop) and fails tb unless the
// call, whose error done carries, returns context.Canceled within 10 s:
// sooner than an attempt of nats.go's to recreate a consumer on a server
// that does not answer can end (a request that times out after 10 s).
// what names the call in a failure.
func ReturnsOnCancel(ctx context.Context, tb testing.TB, what string, stop context.CancelFunc, done <-chan error) {
	tb.Helper()
	tried := time.Now()
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			tb.Fatalf("%s after its ctx ended: %v", what, err)
		}
		if d := time.Since(tried); d >= 10*time.Second {
			tb.Fatalf("%s returned %v after nats.go began recreating its consumer: it waited for the attempt to end", what, d)
		}
	case <-ctx.Done():
		tb.Fatalf("%s did not return after its ctx ended", what)
	}
}

// down passes on what the server sends, and drops it while held.
func (f *Freezer) down(c, s net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			f.unpaused()
		}
		f.mu.Lock()
		held := f.held
		f.mu.Unlock()
		if n > 0 && !held {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Hold drops what the server sends (on) or passes it on again (off). What
// was dropped is lost: cut the connections after a hold, so that clients
// reconnect instead of reading on from the middle of a message.
func (f *Freezer) Hold(on bool) {
	f.mu.Lock()
	f.held = on
	f.mu.Unlock()
}

// Pause stops passing anything on either way (on), keeping every
// connection open and what was sent, as a silent network partition
// would; off passes on what was kept, and the rest as before.
func (f *Freezer) Pause(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = on
	if !on {
		f.resumed.Broadcast()
	}
}

// unpaused returns once no pause is on.
func (f *Freezer) unpaused() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.paused {
		f.resumed.Wait()
	}
}

// Cut closes every connection through the proxy; clients reconnect.
func (f *Freezer) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}
