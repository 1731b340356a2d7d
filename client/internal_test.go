package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The client names the dead-letter subject without importing the server.
func TestDeadLetterSubject(t *testing.T) {
	if got, want := deadLetterSubject("t", "o-1", "picked_up"), eventstore.DeadLetterSubjectFor("t", "o-1", "picked_up"); got != want {
		t.Fatalf("client %q, server %q", got, want)
	}
}

// A consumer request that goes unanswered is asked again while the
// caller's ctx lasts; any other error, or the end of ctx, ends it.
func TestUntilAnsweredAsksAgain(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	calls := 0
	_, err := untilAnswered(ctx, 10*time.Millisecond, func(actx context.Context) (jetstream.Consumer, error) {
		if calls++; calls < 3 {
			<-actx.Done() // no answer comes
			return nil, actx.Err()
		}
		return nil, nil
	})
	if err != nil || calls != 3 || ctx.Err() != nil {
		t.Fatalf("unanswered twice, then answered: %v after %d requests", err, calls)
	}

	refused := errors.New("consumer refused")
	calls = 0
	if _, err := untilAnswered(ctx, 10*time.Millisecond, func(context.Context) (jetstream.Consumer, error) {
		calls++
		return nil, refused
	}); !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("an answer that refuses: %v after %d requests", err, calls)
	}

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := untilAnswered(short, 10*time.Millisecond, func(actx context.Context) (jetstream.Consumer, error) {
		<-actx.Done()
		return nil, actx.Err()
	}); !errors.Is(err, context.DeadlineExceeded) || short.Err() == nil {
		t.Fatalf("never answered: %v, returned before the caller's ctx ended: %v", err, short.Err() == nil)
	}
}

// On a cluster the consumer that reads an order's history may be placed
// on another server than the client's, and a pull sent right after it
// is made can reach the client's server before word of the consumer has:
// "no responders" for a moment. The read asks again rather than fail
// ApplyTrigger.
func TestHistoryReadOnAClusterWaitsForItsConsumer(t *testing.T) {
	f := newClusterFixture(t, false)
	ctx, c := f.ctx, f.c
	f.outcome(t)
	// Reads at once, each with its own consumer: before the read asked
	// again, 8 to 24 of these 1,200 met "no responders" (five runs).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for found := 0; found < 150; {
				env, err := c.caused(ctx, "orderflow.default.order.o-1.>", "t-1")
				switch {
				case err != nil:
					t.Errorf("read the history: %v", err)
					return
				case env == nil: // read from a replica that has not stored the event yet: not seen yet, as ApplyTrigger takes it
				case env.CausationID != "t-1":
					t.Errorf("read the history: %+v", env)
					return
				default:
					found++
				}
			}
		})
	}
	wg.Wait()
}

// A history read's consumer (R1) lives on one server of the cluster. When
// that server stops before the read is done, the read makes a new
// consumer, which the cluster places on a server that is up, and reads the
// history again, rather than fail ApplyTrigger with "server shutdown" or
// "no responders".
func TestHistoryReadOutlivesItsConsumersServer(t *testing.T) {
	f := newClusterFixture(t, false)
	ctx, cl, c := f.ctx, f.cl, f.c
	f.outcome(t)
	// The first consumer placed on another server than the client's: its
	// server is stopped as soon as the consumer is made.
	stopped := -1
	c.readMade = func(cons jetstream.Consumer) {
		info := cons.CachedInfo()
		if stopped >= 0 || info.Cluster == nil {
			return
		}
		if i, ok := f.servers[info.Cluster.Leader]; ok && i != 0 {
			cl.Stop(i)
			stopped = i
		}
	}
	for reads := 1; stopped < 0; reads++ {
		if reads > 50 {
			t.Fatal("no read's consumer was placed on another server than the client's in 50 reads")
		}
		if _, err := c.caused(ctx, "orderflow.default.order.o-1.>", "t-1"); err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
	}
	// Read again until the event is found, from the servers that are up.
	c.readMade = nil
	for {
		env, err := c.caused(ctx, "orderflow.default.order.o-1.>", "t-1")
		if err != nil {
			t.Fatalf("after the stop: %v", err)
		}
		if env != nil {
			break
		}
	}
}

// A dashboard following every stage change on a cluster keeps following
// when the server its consumer lives on stops: nats.go makes the ordered
// consumer again where it stood, and every change comes once, in stream
// order, those stored while the server was stopped included.
func TestFollowStageChangesOutlivesItsConsumersServer(t *testing.T) {
	f := newClusterFixture(t, true)
	ctx, cl, nc, js, c := f.ctx, f.cl, f.nc, f.js, f.c
	const events = 300
	var mu sync.Mutex
	var seqs []uint64
	follow, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowStageChanges(follow, "", 0, func(sc StageChange) error {
			mu.Lock()
			defer mu.Unlock()
			seqs = append(seqs, sc.Sequence)
			return nil
		})
	}()
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs)
	}
	publish := func(i int) {
		t.Helper()
		subject := fmt.Sprintf("orderflow.default.order.o-%d.OrderAdvanced", i)
		data := fmt.Appendf(nil, `{"type":"OrderAdvanced","aggregate_id":"o-%d","version":2,"data":{}}`, i)
		for {
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(actx, subject, data, jetstream.WithMsgID(fmt.Sprint("e-", i)))
			acancel()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	for i := range events {
		publish(i)
		if i == events/3 {
			// The follower's consumer: the only one on the stream.
			eventstoretest.Eventually(t, 30*time.Second, func() bool { return received() > 0 }, "the follower hears the first changes")
			var leader string
			for info := range f.stream.ListConsumers(ctx).Info() {
				if info.Cluster != nil {
					leader = info.Cluster.Leader
				}
			}
			i, ok := f.servers[leader]
			if !ok {
				t.Fatalf("no server hosts the follower's consumer (%q)", leader)
			}
			cl.Stop(i)
			t.Logf("stopped %s, the follower's consumer's server, after %d changes; the client on %s", leader, received(), nc.ConnectedServerName())
		}
	}
	start := time.Now()
	eventstoretest.Eventually(t, time.Minute, func() bool { return received() >= events }, "every change followed")
	t.Logf("every change followed %v after the last was stored", time.Since(start))
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowStageChanges: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("change %d came with sequence %d (%d changes in all)", i+1, seq, len(seqs))
		}
	}
	if len(seqs) != events {
		t.Fatalf("%d changes, want %d", len(seqs), events)
	}
}

// clusterFixture is ORDERFLOW_ORDERS on three servers (replicas 3) and a
// Client connected to the first server, or to all of them (reconnecting
// to another when its server stops).
type clusterFixture struct {
	ctx     context.Context
	cl      *eventstoretest.Cluster
	servers map[string]int // index in cl.Servers by server name
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	c       *Client
}

func newClusterFixture(t *testing.T, allServers bool) *clusterFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster")
	}
	f := &clusterFixture{cl: eventstoretest.StartCluster(t, 3), servers: map[string]int{}}
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	t.Cleanup(cancel)
	f.ctx = ctx
	for i, s := range f.cl.Servers {
		f.servers[s.NATS().Name()] = i
	}
	url, opts := f.cl.Servers[0].ClientURL(), []nats.Option(nil)
	if allServers {
		url, opts = f.cl.URLs(), []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	}
	var err error
	if f.nc, err = nats.Connect(url, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.nc.Close)
	f.js, _ = jetstream.New(f.nc)
	if f.stream, err = f.js.CreateStream(ctx, jetstream.StreamConfig{Name: eventstore.StreamOrders,
		Subjects: []string{"orderflow.*.order.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if f.c, err = New(f.nc); err != nil {
		t.Fatal(err)
	}
	return f
}

// outcome stores the outcome of trigger t-1 on order o-1.
func (f *clusterFixture) outcome(t *testing.T) {
	t.Helper()
	if _, err := f.js.Publish(f.ctx, "orderflow.default.order.o-1.OrderAdvanced",
		[]byte(`{"type":"OrderAdvanced","aggregate_id":"o-1","version":2,"causation_id":"t-1","data":{}}`)); err != nil {
		t.Fatal(err)
	}
}
