// Package eventstoretest starts real embedded NATS servers for tests: one
// JetStream server, or a three-node JetStream cluster on 127.0.0.1. It
// never mocks JetStream.
package eventstoretest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// StartServer starts one embedded JetStream server in a temp dir on a
// random port and shuts it down when the test ends.
func StartServer(tb testing.TB) *eventstore.Server {
	tb.Helper()
	return StartServerIn(tb, tb.TempDir())
}

// StartServerIn starts one embedded JetStream server on dataDir (for
// restart tests) and shuts it down when the test ends. Shutting it down
// earlier is safe.
func StartServerIn(tb testing.TB, dataDir string) *eventstore.Server {
	tb.Helper()
	return StartServerAt(tb, dataDir, "127.0.0.1:0")
}

// StartServerAt starts one embedded JetStream server on dataDir listening
// at listen (a fixed port lets clients reconnect across a restart).
func StartServerAt(tb testing.TB, dataDir, listen string) *eventstore.Server {
	tb.Helper()
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dataDir, Listen: listen})
	if err != nil {
		tb.Fatalf("start embedded nats: %v", err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv
}

// Cluster is a set of embedded JetStream servers routed to each other.
type Cluster struct {
	Servers []*eventstore.Server
	configs []eventstore.ServerConfig
	tb      testing.TB
}

// Stop shuts node i down (its files stay).
func (c *Cluster) Stop(i int) { c.Servers[i].Shutdown() }

// Restart starts node i again on its files and ports.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	srv, err := eventstore.StartServer(c.configs[i])
	if err != nil {
		c.tb.Fatalf("restart node %d: %v", i+1, err)
	}
	c.tb.Cleanup(srv.Shutdown)
	c.Servers[i] = srv
}

// URLs is a comma-separated list of every node's client URL, as
// nats.Connect takes it.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// StartCluster starts size embedded JetStream servers on 127.0.0.1 routed
// into one cluster and waits until JetStream has a leader.
func StartCluster(tb testing.TB, size int) *Cluster {
	tb.Helper()
	return StartClusterWith(tb, size, nil)
}

// StartClusterWith is StartCluster with each node's configuration
// adjusted by adjust (when not nil) before it starts.
//
// freePorts can hold its ports only until it returns, so another test's
// server or process may take one before its node starts; the cluster is
// then started again on other ports, up to clusterAttempts times in all.
func StartClusterWith(tb testing.TB, size int, adjust func(*eventstore.ServerConfig)) *Cluster {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		c, err := startCluster(tb, size, adjust)
		if err == nil {
			c.WaitReady(tb)
			return c
		}
		if attempt == clusterAttempts || !strings.Contains(err.Error(), "address already in use") {
			tb.Fatal(err)
		}
		tb.Logf("starting the cluster again on other ports: %v", err)
	}
}

// clusterName names a new cluster uniquely on the machine. A node of
// another cluster that still dials a route to a port this cluster's node
// now has (its own node there stopped for a while) is then refused, where
// two clusters of one name would be joined into one.
func clusterName() string {
	return fmt.Sprintf("orderflow-test-%d-%d", os.Getpid(), clusters.Add(1))
}

// clusters counts the clusters this process started.
var clusters atomic.Int64

// clusterAttempts bounds StartClusterWith's starts.
const clusterAttempts = 3

// startCluster starts size nodes on ports of freePorts; when one cannot
// start, it stops those it started and says why.
func startCluster(tb testing.TB, size int, adjust func(*eventstore.ServerConfig)) (*Cluster, error) {
	ports := freePorts(tb, 2*size)
	routes := make([]string, size)
	for i := range size {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	c := &Cluster{tb: tb}
	name := clusterName()
	for i := range size {
		cfg := eventstore.ServerConfig{
			Name:          fmt.Sprintf("n%d", i+1),
			DataDir:       tb.TempDir(),
			Listen:        fmt.Sprintf("127.0.0.1:%d", ports[size+i]),
			ClusterName:   name,
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Routes:        routes,
		}
		if adjust != nil {
			adjust(&cfg)
		}
		srv, err := eventstore.StartServer(cfg)
		if err != nil {
			for _, s := range c.Servers {
				s.Shutdown()
			}
			return nil, fmt.Errorf("start cluster node %d: %w", i+1, err)
		}
		tb.Cleanup(srv.Shutdown)
		c.Servers = append(c.Servers, srv)
		c.configs = append(c.configs, cfg)
	}
	return c, nil
}

// WaitReady waits until the cluster has a JetStream leader that sees every
// running node with JetStream (placement of a replicas=N stream needs all
// N), and every running node is current.
func (c *Cluster) WaitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(Patience(30 * time.Second))
	for {
		running, current, peers := 0, 0, 0
		for _, s := range c.Servers {
			if !s.NATS().Running() {
				continue
			}
			running++
			if s.NATS().JetStreamIsCurrent() {
				current++
			}
			if s.NATS().JetStreamIsLeader() {
				peers = len(s.NATS().JetStreamClusterPeers())
			}
		}
		if running > 0 && current == running && peers >= running {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster not ready in %s: %d running, %d current, leader sees %d peers", Patience(30*time.Second), running, current, peers)
		}
		time.Sleep(20 * time.Millisecond) // polling for a condition, with a deadline
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(tb testing.TB) int { return freePorts(tb, 1)[0] }

// freePorts reserves n distinct free TCP ports on 127.0.0.1.
//
// Where the system says which ports it hands out as the local end of
// outgoing connections (Linux), they come from below that range. A
// restarted node binds its old ports again, and a port of that range may
// meanwhile be taken by an outgoing connection: a client that keeps
// reconnecting to the stopped node can even be handed the node's own port
// and connect to itself. The restart then fails with the port in use.
//
// A port is free only until its server binds it, and free again while a
// test has its server stopped to start it again. So that the tests of
// one process do not take each other's, freePorts never hands out a port
// twice in a process; so that two test processes (go test runs packages
// side by side) do not either, each picks from a slice of the range that
// it claims for itself (portSlice).
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	handed.mu.Lock()
	defer handed.mu.Unlock()
	lo, hi := portSlice()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n && hi > lo+n && tries < 100*n; tries++ {
		p := lo + rand.IntN(hi-lo)
		if handed.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // taken
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("reserve port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, p := range ports {
		handed.ports[p] = true
	}
	return ports
}

// handed is every port freePorts has handed out in this process.
var handed = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// portSlices is how many slices freePorts's range is cut into, one of
// them for each test process.
const portSlices = 8

// portSlice is this process's slice of the ports from minTestPort up to
// the system's range for outgoing connections (lo to hi, hi excluded;
// empty when the system does not say).
//
// Two test processes on one slice could hand out the same port: one's
// node, stopped for a while, has its port taken by the other's, and the
// first's clients and routes, still reconnecting, reach the other's
// server (a client there publishes into the other test's streams). So
// each process claims a slice no other holds (claimSlice); only when all
// are held, or the claim cannot be made, it takes one by its process id.
func portSlice() (lo, hi int) {
	width := (ephemeralLow() - minTestPort) / portSlices
	if width <= 0 {
		return 0, 0
	}
	lo = minTestPort + slice()*width
	return lo, lo + width
}

// slice is the slice of the port range this process took.
var slice = sync.OnceValue(func() int {
	if n, ok := claimSlice(portSlices); ok {
		return n
	}
	return os.Getpid() % portSlices
})

// minTestPort is the lowest port freePorts picks: above the well-known
// and most registered ports.
const minTestPort = 20000

// ephemeralLow is the first port of the system's range for outgoing
// connections, or 0 when it cannot tell.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		return 0
	}
	return low
}

// Connect opens a NATS connection that is closed when the test ends.
func Connect(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.SyncQueueLen(eventstore.SyncQueueLen))
	if err != nil {
		tb.Fatalf("connect %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// OpenStore connects to url and opens a store with cfg.
func OpenStore(tb testing.TB, url string, cfg eventstore.Config) *eventstore.Store {
	tb.Helper()
	nc := Connect(tb, url)
	ctx, cancel := context.WithTimeout(context.Background(), Patience(60*time.Second))
	defer cancel()
	st, err := eventstore.Open(ctx, nc, cfg)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(st.Close)
	return st
}

// DeadLetterStore starts a server, opens a store on it with cfg, and makes
// its dead-letter stream, for tests that read and write dead letters.
func DeadLetterStore(tb testing.TB, cfg eventstore.Config) *eventstore.Store {
	tb.Helper()
	st := OpenStore(tb, StartServer(tb).ClientURL(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), Patience(30*time.Second))
	defer cancel()
	if err := st.EnsureDeadLetters(ctx); err != nil {
		tb.Fatalf("make the dead-letter stream: %v", err)
	}
	return st
}

// PublishUndecodable stores at subject, around the store's appends (as a
// writer that bypasses orderflow might), a copy of the envelope stored at
// seq in ORDERFLOW_ORDERS whose data is no longer JSON.
func PublishUndecodable(tb testing.TB, st *eventstore.Store, seq uint64, subject string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience(30*time.Second))
	defer cancel()
	stream, err := st.JetStream().Stream(ctx, eventstore.StreamOrders)
	if err != nil {
		tb.Fatal(err)
	}
	stored, err := stream.GetMsg(ctx, seq)
	if err != nil {
		tb.Fatal(err)
	}
	const data = `,"data":{`
	i := bytes.Index(stored.Data, []byte(data))
	if i < 0 {
		tb.Fatalf("no data member in %s", stored.Data)
	}
	m := nats.NewMsg(subject)
	m.Data = bytes.Join([][]byte{stored.Data[:i], []byte(`,"data":{"x":`), stored.Data[i+len(data):]}, nil)
	if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
		tb.Fatal(err)
	}
}

// Slack is how many times its stated deadline a test waits before it
// reports a failure: Eventually, Within, WaitMessages and Patience apply
// it. A test's deadlines bound how long a failure takes to show; they make
// no claim about speed (benchmarks do that). A quiet two-core machine meets
// every stated deadline with room to spare, but one CI run of this suite
// took five to six times as long as usual for every package, and twenty
// times for single tests, and the stated deadlines alone turned that slow
// run into a red one.
const Slack = 6

// Patience is d times Slack: the deadline, for a test's context or
// timer, of work that takes d or less on a quiet machine.
func Patience(d time.Duration) time.Duration { return d * Slack }

// Context is a context that ends after d times Slack: for a test whose
// work takes d or less on a quiet machine.
func Context(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), Patience(d))
}

// Eventually polls cond until it is true or within (times Slack) passes.
func Eventually(tb testing.TB, within time.Duration, cond func() bool, what string) {
	tb.Helper()
	if !Within(within, cond) {
		tb.Fatalf("timed out after %s (%s times the slack of %d) waiting for %s", Patience(within), within, Slack, what)
	}
}

// Within reports whether cond held within d (times Slack), asking every
// 5 ms: for a test that says more than Eventually before it fails.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(Patience(d))
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// WaitMessages waits, up to within (times Slack), until stream holds n
// messages.
func WaitMessages(tb testing.TB, js jetstream.JetStream, stream string, n uint64, within time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Patience(within))
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		tb.Fatal(err)
	}
	Eventually(tb, within, func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == n
	}, fmt.Sprintf("%d message(s) in %s", n, stream))
}
