package handlers

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A process cut off from NATS by a silent partition (nothing goes either
// way, every connection stays open) while its lanes' triggers run, then
// heard again, three times: the other process takes its lanes meanwhile
// and hands them back after. Every order completes and no trigger is
// rejected: no order's trigger takes effect ahead of an earlier one,
// though the cut-off process still held triggers the other one applied.
func TestLanesOfAProcessCutOffAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("partitions")
	}
	t.Parallel()
	const rounds, perRound = 3, 100
	orders := orderIDs("o-cut", rounds*perRound)
	c := startCutPair(t, orders)
	f, proxy, b := c.f, c.proxy, c.b
	for round := range rounds {
		batch := orders[round*perRound : (round+1)*perRound]
		f.publishAll(t, batch, "cut")
		c.waitDelivered(t, batch)
		resets := b.LaneResets()
		proxy.cut(true, true)
		// Until the other process has taken the cut-off one for gone, and
		// a lane of its with the triggers it had in hand (reset, so that
		// they come again at once).
		eventstoretest.Eventually(t, 10*time.Second, func() bool { return b.members.count() == 1 && b.LaneResets() > resets },
			"the other process to take the cut-off one's lanes")
		proxy.cut(false, false)
		eventstoretest.Eventually(t, 10*time.Second, c.settled, "the lanes to have one owner each again")
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-f.ctx.Done():
		t.Fatal("triggers not acknowledged")
	}
	f.expectCompletedInOrder(t, orders, c.log, nil)
}

// cutPair is two trigger processors sharing four lanes, logging to log:
// a reaches the server through proxy, b directly.
type cutPair struct {
	f     *laneFixture
	log   *laneLog
	proxy *cutProxy
	a, b  *Processor
}

// startCutPair starts the pair on a fixture with orders, and waits until
// the lanes have one owner each.
func startCutPair(t *testing.T, orders []string) *cutPair {
	t.Helper()
	c := &cutPair{f: newLaneFixture(t, orders...), log: newLaneLog()}
	cfg := ProcessorConfig{Lanes: 4, AckWait: time.Second, Heartbeat: 100 * time.Millisecond}
	c.proxy = startCutProxy(t, c.f.srv.ClientURL())
	cfgA, cfgB := cfg, cfg
	cfgA.Logger, cfgB.Logger = c.log.logger.With("proc", "a"), c.log.logger.With("proc", "b")
	c.a = startProcessorWith(t, openCommandsAt(t, c.proxy.url), c.proxy.url, cfgA, nil)
	t.Cleanup(func() { _ = c.a.Close() })
	c.b = startProcessorWith(t, c.f.c, c.f.srv.ClientURL(), cfgB, nil)
	t.Cleanup(func() { _ = c.b.Close() })
	eventstoretest.Eventually(t, 10*time.Second, c.settled, "the lanes to have one owner each")
	return c
}

// settled reports whether each lane has one owner.
func (c *cutPair) settled() bool { return ownedOnce(c.a.cfg.Lanes, c.a, c.b) }

// waitDelivered waits until a has triggers of orders coming, so that a
// cut leaves it some in hand.
func (c *cutPair) waitDelivered(t *testing.T, orders []string) {
	t.Helper()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return c.log.hasFor(orders, "proc=a", `msg="lane delivery"`) },
		"the process to cut off to have triggers delivered")
}

// A process that hears nothing while what it sends still goes out (cut
// off from NATS one way, its connection up) does not take the other for
// gone: it does not hear itself either. Neither process takes a lane from
// the other, whose heartbeats keep coming; the cut-off one's lanes wait
// until it hears again, and every order completes, none rejected.
func TestProcessThatHearsNothingTakesNoLanes(t *testing.T) {
	if testing.Short() {
		t.Skip("partitions")
	}
	t.Parallel()
	orders := orderIDs("o-deaf", 100)
	c := startCutPair(t, orders)
	f, log, proxy, a, b := c.f, c.log, c.proxy, c.a, c.b
	f.publishAll(t, orders, "deaf")
	c.waitDelivered(t, orders)
	resetsA, resetsB := a.LaneResets(), b.LaneResets()
	proxy.cut(false, true)
	// Until a has noted its deafness, and b has been silent to it for
	// longer than a process that hears itself would have let pass.
	silentToA := func() time.Duration {
		a.members.mu.Lock()
		defer a.members.mu.Unlock()
		return time.Since(a.members.seen[b.members.self].at)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		return log.has("proc=a", "does not hear its own heartbeats") && silentToA() > (missedHeartbeats+1)*a.cfg.Heartbeat
	}, "the cut-off process to note that it hears nothing")
	if n := a.members.count(); n != 2 {
		t.Fatalf("the cut-off process counts %d processes, want 2: it took the other for gone", n)
	}
	proxy.cut(false, false)
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return log.has("proc=a", "hears its own heartbeats again") }, "the process to hear itself again")
	select {
	case <-f.js.PublishAsyncComplete():
	case <-f.ctx.Done():
		t.Fatal("triggers not acknowledged")
	}
	f.expectCompletedInOrder(t, orders, log, nil)
	if ra, rb := a.LaneResets()-resetsA, b.LaneResets()-resetsB; ra != 0 || rb != 0 {
		t.Errorf("lanes taken over while one process heard nothing: %d by it, %d by the other; want none", ra, rb)
	}
}

// The processor hears its own heartbeats, which its members need, even
// when the caller's connection options ask for no echo.
func TestProcessorHearsItselfDespiteNoEcho(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t)
	p := startProcessorWith(t, f.c, f.srv.ClientURL(),
		ProcessorConfig{Lanes: 2, AckWait: time.Second, Heartbeat: 50 * time.Millisecond, Logger: quiet, ConnectOptions: []nats.Option{nats.NoEcho()}}, nil)
	defer p.Close()
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		p.members.mu.Lock()
		defer p.members.mu.Unlock()
		return p.members.selfAt.After(p.members.started)
	}, "the processor to hear its own heartbeat")
}

// cutProxy forwards TCP connections to a NATS server; while cut, it
// forwards nothing one way or both and keeps every connection open, as a
// silent network partition would.
type cutProxy struct {
	url     string
	mu      sync.Mutex
	offUp   bool       // from the client to the server
	offDown bool       // from the server to the client
	on      *sync.Cond // signalled when a cut ends
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{url: "nats://" + ln.Addr().String()}
	p.on = sync.NewCond(&p.mu)
	addr := strings.TrimPrefix(target, "nats://")
	var conns sync.WaitGroup
	t.Cleanup(func() {
		p.cut(false, false)
		_ = ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); p.pipe(u, c, &p.offUp) }()
			go func() { defer conns.Done(); p.pipe(c, u, &p.offDown) }()
		}
	}()
	return p
}

// cut starts or ends a partition of each way.
func (p *cutProxy) cut(up, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offUp, p.offDown = up, down
	p.on.Broadcast()
}

// pipe copies src to dst while *off (guarded by p.mu) is false.
func (p *cutProxy) pipe(dst, src net.Conn, off *bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for *off {
				p.on.Wait()
			}
			p.mu.Unlock()
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
