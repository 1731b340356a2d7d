package eventstore_test

import (
	"errors"
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
