package eventstoretest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Freezer is a TCP proxy in front of a NATS server that can hold back
// what the server sends, and cut every connection: an acknowledgement the
// server sent but the client never received.
type Freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	held   bool
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
	go f.accept()
	tb.Cleanup(func() {
		ln.Close()
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
		go func() {
			_, _ = io.Copy(s, c)
			s.Close()
		}()
		go f.down(c, s)
	}
}

// down passes on what the server sends, and drops it while held.
func (f *Freezer) down(c, s net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
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

// Cut closes every connection through the proxy; clients reconnect.
func (f *Freezer) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}
