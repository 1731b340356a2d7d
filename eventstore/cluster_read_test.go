package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A load right after an acknowledged append sees it, from every node of a
// cluster, and so does a range read up to it (OpenRange): a replica a
// moment behind the write must not answer for either.
func TestLoadSeesAcknowledgedAppendsOnACluster(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	writer := eventstoretest.OpenStore(t, c.Servers[0].ClientURL(), eventstore.Config{Replicas: 3})
	readers := []*eventstore.Store{
		eventstoretest.OpenStore(t, c.Servers[1].ClientURL(), eventstore.Config{Replicas: 3}),
		eventstoretest.OpenStore(t, c.Servers[2].ClientURL(), eventstore.Config{Replicas: 3}),
	}
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	defer cancel()
	reads := map[string]func(r *eventstore.Store, agg eventstore.Aggregate, last uint64) (int, error){
		"Load": func(r *eventstore.Store, agg eventstore.Aggregate, _ uint64) (int, error) {
			evs, err := r.Load(ctx, agg, 0)
			return len(evs), err
		},
		"OpenRange": func(r *eventstore.Store, agg eventstore.Aggregate, last uint64) (int, error) {
			rr, err := r.OpenRange(ctx, eventstore.StreamOrders, agg.Filter(), 0, last)
			if err != nil {
				return 0, err
			}
			defer rr.Close()
			n := 0
			for {
				_, ok, err := rr.Next(ctx)
				if err != nil || !ok {
					return n, err
				}
				n++
			}
		},
	}
	for name, read := range reads {
		agg := eventstore.Aggregate{Tenant: "t", Type: "order", ID: "ryw-" + name}
		var last uint64
		stale := 0
		for i := 1; i <= 100; i++ {
			res, err := writer.Append(ctx, agg, last, ev("OrderAdvanced", uint64(i)))
			if err != nil {
				t.Fatal(err)
			}
			last = res.LastSeq
			for _, r := range readers {
				n, err := read(r, agg, last)
				if err != nil {
					t.Fatal(err)
				}
				if n != i {
					stale++
				}
			}
		}
		if stale > 0 {
			t.Errorf("%d of 200 %s calls missed an acknowledged append", stale, name)
		}
	}
}

// A store opened with fewer replicas than the streams have (a process
// started without --replicas 3 on a cluster) is refused, and the streams
// keep their replicas: updating them would quietly scale every stream
// down to one copy. More replicas than they have is a scale-up, and
// taken.
func TestFewerReplicasAreRefused(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	one := eventstoretest.OpenStore(t, c.URLs(), eventstore.Config{Replicas: 1})
	three := eventstoretest.OpenStore(t, c.URLs(), eventstore.Config{Replicas: 3})
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	if _, err := three.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := three.Claim(ctx, "s", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Claim(ctx, "s", "k", "w"); !errors.Is(err, eventstore.ErrFewerReplicas) {
		t.Fatalf("a claim from a store of 1 replica on a bucket of 3: %v, want ErrFewerReplicas", err)
	}
	nc := eventstoretest.Connect(t, c.URLs())
	_, err := eventstore.Open(ctx, nc, eventstore.Config{Replicas: 1})
	if !errors.Is(err, eventstore.ErrFewerReplicas) {
		t.Fatalf("open with 1 replica on streams of 3: %v, want ErrFewerReplicas", err)
	}
	// More replicas than the cluster has servers: the server's answer,
	// named, when the store gives up (a cluster still forming answers
	// the same for a while, so it is retried until then).
	short, cancelShort := eventstoretest.Context(2 * time.Second)
	defer cancelShort()
	_, err = eventstore.Open(short, nc, eventstore.Config{Replicas: 5})
	if err == nil || !strings.Contains(err.Error(), "create stream "+eventstore.StreamDefinitions+" on 5 replicas: ") ||
		!strings.Contains(err.Error(), "no suitable peers for placement") ||
		!strings.Contains(err.Error(), "the cluster needs 5 JetStream servers up and joined to place it on") {
		t.Fatalf("open with 5 replicas on 3 servers: %v", err)
	}
	for _, name := range []string{eventstore.StreamDefinitions, eventstore.StreamOrders, eventstore.StreamTriggers,
		eventstore.StreamTriggerLanes, eventstore.StreamDeadLetter, "KV_" + eventstore.ClaimBucket} {
		s, err := three.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("%s has %d replicas, want 3", name, r)
		}
	}
}

// The leader's answer to a load's question (its last sequence for the
// aggregate) is lost, the connection cut: the load asks again after an
// attempt's deadline, and does not wait for the rest of its ctx. A worker
// app's hold on one order waited nine minutes that way on a cluster whose
// node had been stopped and started again.
func TestLoadAsksTheLeaderAgainWhenItsAnswerIsLost(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	fz := eventstoretest.StartFreezer(t, c.Servers[0].ClientURL())
	st := eventstoretest.OpenStore(t, fz.URL(), eventstore.Config{Replicas: 3})
	// The deadline is what the test checks: without an attempt's own,
	// the load waited for all of it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agg := eventstore.Aggregate{Tenant: "t", Type: "order", ID: "lost-answer"}
	if _, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}
	asked := fz.Sent("$JS.API.STREAM.MSG.GET." + eventstore.StreamOrders)
	fz.Hold(true) // the answer is dropped
	loadThroughLostAnswer(ctx, t, st, fz, asked, agg, 1)
}

// loadThroughLostAnswer loads agg through fz, which holds what the server
// sends: once the load has asked (asked is closed), the connection is cut
// and the Freezer lets answers through again. The load must find want
// events.
func loadThroughLostAnswer(ctx context.Context, t *testing.T, st *eventstore.Store, fz *eventstoretest.Freezer, asked <-chan struct{}, agg eventstore.Aggregate, want int) {
	t.Helper()
	loaded := make(chan error, 1)
	go func() {
		evs, err := st.Load(ctx, agg, 0)
		if err == nil && len(evs) != want {
			err = fmt.Errorf("%d events, want %d", len(evs), want)
		}
		loaded <- err
	}()
	select {
	case <-asked:
	case <-ctx.Done():
		t.Fatal("the load did not ask")
	}
	fz.Cut()
	fz.Hold(false)
	if err := <-loaded; err != nil {
		t.Fatalf("load after a lost answer: %v", err)
	}
}

// A load's direct get, whose answer is lost with its connection, is asked
// again after the store's Timeout, not after all of the caller's longer
// deadline: a worker waiting for its held order to be resumed sat six
// minutes in a batched direct get on a cluster whose node was stopped.
// The Freezer drops whatever the server sends once the load has asked,
// then cuts the connection: on the direct gets of the sequences the
// store's load index has seen, and on the batched read by filter of
// events stored after it (not indexed yet: the index's reads are held
// too).
func TestLoadAsksAgainWhenADirectGetAnswerIsLost(t *testing.T) {
	t.Parallel()
	for _, indexed := range []bool{true, false} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			t.Parallel()
			srv := eventstoretest.StartServer(t)
			fz := eventstoretest.StartFreezer(t, srv.ClientURL())
			writer := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
			// The deadline is what the test checks: without an attempt's
			// own, the load waited for all of it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			agg := eventstore.Aggregate{Tenant: "t", Type: "order", ID: "lost-get"}
			placed := eventstore.Aggregate{Tenant: "t", Type: "order", ID: "placed-before"}
			if _, err := writer.Append(ctx, placed, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
				t.Fatal(err)
			}
			appendAgg := func() {
				t.Helper()
				if _, err := writer.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderHeld", 2)); err != nil {
					t.Fatal(err)
				}
			}
			if indexed {
				appendAgg()
			}
			st := eventstoretest.OpenStore(t, fz.URL(), eventstore.Config{Timeout: time.Second})
			eventstoretest.Eventually(t, 30*time.Second, func() bool {
				return st.IndexedLast(placed) > 0 && (!indexed || st.IndexedLast(agg) > 0)
			}, "the store's index caught up")
			asked := fz.Sent("$JS.API.DIRECT.GET." + eventstore.StreamOrders)
			fz.Hold(true) // the answers are dropped
			if !indexed {
				appendAgg()
			}
			loadThroughLostAnswer(ctx, t, st, fz, asked, agg, 2)
		})
	}
}
