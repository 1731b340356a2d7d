package main

import (
	"cmp"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// defaultMaxConnections is the most connections each of the HTTP API and
// the embedded NATS server holds open at once when --max-connections and
// --nats-max-connections are 0, however many files the process may open.
const defaultMaxConnections = 4096

// MaxHeaderBytes bounds a request's line and headers (net/http adds 4 KiB
// to it; more is answered 431). They are held in memory while they
// arrive, for up to ten seconds: at net/http's default of 1 MiB, 1,400
// connections sending nearly that much held 1.2 GB and starved the
// process of CPU while they were parsed. An API key, an Idempotency-Key
// and a dashboard's cookies are far smaller (nginx takes 32 KiB of
// headers by default, Node.js 16 KiB).
const MaxHeaderBytes = 32 << 10

// MaxStreams is how many requests an HTTP/2 connection (with --tls-cert)
// may carry at once: the protocol's suggested least, where net/http's
// default is 250. Each is a handler at work, so it bounds what one
// connection can make the server hold (20 connections carried 5,000
// requests, each with an unfinished body, at 250).
const MaxStreams = 100

// connectionShare is each listener's default limit: a quarter of the
// process's open-file limit (so the two together leave half of it to the
// embedded server's stream and consumer files), at most
// defaultMaxConnections. Without a known limit it is that at most.
//
// Without a limit, a client that opened connections faster than they were
// closed (each an open file) took every file the process may open; the
// embedded server then failed to open a stream's next block file, and
// that stream refused every write until a restart.
func connectionShare(openFiles uint64, known bool) int {
	if !known {
		return defaultMaxConnections
	}
	return int(max(1, min(openFiles/4, defaultMaxConnections)))
}

// connectionLimits are the most connections the HTTP API and the embedded
// server (0 with --nats-url) hold open at once: the flags', or each
// connectionShare. Limits set so high that connections could take most of
// the files the process may open are warned of, and so are event feeds
// that could hold half the HTTP connections or more (each feed keeps one
// open while a dashboard watches).
func (a *App) connectionLimits() (httpMax, natsMax int) {
	files, known := openFileLimit()
	share := connectionShare(files, known)
	httpMax = cmp.Or(a.Config.MaxConnections, share)
	if a.Config.NATSURL == "" {
		natsMax = cmp.Or(a.Config.NATSMaxConnections, share)
		if known && uint64(httpMax+natsMax) > files/4*3 {
			a.Logger.Warn("connections may take most of the files the process may open: the embedded server then cannot open a stream's next file, and that stream refuses writes until a restart; lower --max-connections or --nats-max-connections, or raise the limit (ulimit -n)",
				"max_connections", httpMax, "nats_max_connections", natsMax, "open_file_limit", files)
		}
	}
	if a.Config.MaxFeeds >= httpMax/2 {
		a.Logger.Warn("event feeds may hold half the HTTP connections or more, and requests then wait for the rest; lower --max-feeds or raise --max-connections",
			"max_feeds", a.Config.MaxFeeds, "max_connections", httpMax)
	}
	return httpMax, natsMax
}

// limitListener accepts at most cap(slots) connections at once: Accept
// waits until one of them is closed before it takes the next, which waits
// in the kernel's accept queue meanwhile (as x/net/netutil's
// LimitListener does). While it waits it closes the connection that has
// been idle longest, once it has been idle a second (a keep-alive
// connection between two requests, or an HTTP/2 one with no request
// open, as the HTTP server reports them to connState), one at a time, as
// nginx does when its connections run out; a connection at work (an
// event feed, a request) is never closed for it.
// Before, clients that kept their connections open between requests
// (browsers, Go's and most HTTP clients do) could fill the limit, and a
// new client waited for an idle one's timeout, two minutes.
type limitListener struct {
	net.Listener
	slots      chan struct{} // taken before each Accept, so one more than those open while it waits
	conns      atomic.Int64  // accepted and not yet closed
	done       chan struct{}
	closeOnce  sync.Once
	wentIdle   chan struct{} // a connection went idle (buffered: one signal is enough)
	idleClosed atomic.Int64  // idle connections closed to make room

	mu   sync.Mutex
	idle map[net.Conn]time.Time // idle connections, and since when
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{}),
		wentIdle: make(chan struct{}, 1), idle: map[net.Conn]time.Time{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for taken := false; !taken; {
		select {
		case l.slots <- struct{}{}:
			taken = true
			continue
		default:
		}
		closed, after := l.closeIdlest(time.Now())
		if closed {
			continue // its slot is free
		}
		// None idle long enough: wait for a slot, for the idlest to have
		// been idle minIdle, or, with none idle, for one to go idle.
		wentIdle, ripe := l.wentIdle, (*time.Timer)(nil)
		var ripeC <-chan time.Time
		if after > 0 {
			ripe = time.NewTimer(after)
			wentIdle, ripeC = nil, ripe.C
		}
		select {
		case l.slots <- struct{}{}:
			taken = true
		case <-wentIdle:
		case <-ripeC:
		case <-l.done:
			return nil, net.ErrClosed
		}
		if ripe != nil {
			ripe.Stop()
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.conns.Add(1)
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { l.conns.Add(-1); <-l.slots })}, nil
}

// connState is the HTTP server's ConnState hook: it keeps which
// connections are idle.
func (l *limitListener) connState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	if state == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
	l.mu.Unlock()
	if state == http.StateIdle {
		select {
		case l.wentIdle <- struct{}{}:
		default:
		}
	}
}

// minIdle is how long a connection must have been idle to be closed to
// make room: one that carries requests one after another (a worker app
// sending triggers) is idle for moments between them, and closing it
// then could cut off the request it is sending.
const minIdle = time.Second

// closeIdlest closes the connection idle longest if it has been idle
// minIdle by now, and reports whether it did (its slot is then free at
// once); if not, after is how long until it will have been (0: none is
// idle).
func (l *limitListener) closeIdlest(now time.Time) (closed bool, after time.Duration) {
	l.mu.Lock()
	var idlest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if idlest == nil || t.Before(since) {
			idlest, since = c, t
		}
	}
	if idlest == nil {
		l.mu.Unlock()
		return false, 0
	}
	if wait := since.Add(minIdle).Sub(now); wait > 0 {
		l.mu.Unlock()
		return false, wait
	}
	delete(l.idle, idlest)
	l.mu.Unlock()
	idlest.Close()
	l.idleClosed.Add(1)
	return true, 0
}

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open is how many accepted connections are open. (Not len(slots): an
// Accept waiting for a connection holds a slot too.)
func (l *limitListener) open() int { return int(l.conns.Load()) }

// limit is how many may be open at once.
func (l *limitListener) limit() int { return cap(l.slots) }

// limitConn gives its slot back when it is closed (once, however often).
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite passes on to the connection, which net/http uses to close a
// connection gracefully after an answer it sent before reading the whole
// request.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
