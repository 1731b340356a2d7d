package eventstoretest_test

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A port taken by someone else before its node starts: the cluster starts
// again on other ports.
func TestStartClusterAgainWhenAPortIsTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	starts := 0
	cl := eventstoretest.StartClusterWith(t, 3, func(cfg *eventstore.ServerConfig) {
		if cfg.Name != "n3" {
			return
		}
		if starts++; starts == 1 {
			cfg.Listen = taken.Addr().String()
		}
	})
	if starts != 2 {
		t.Fatalf("node 3 started %d times, want 2 (once on the taken port, once on another)", starts)
	}
	for i, s := range cl.Servers {
		if !s.NATS().Running() || !s.NATS().JetStreamEnabled() {
			t.Fatalf("node %d is not running with JetStream", i+1)
		}
	}
}

// A node of one cluster that still dials a route to a port another
// cluster's node has taken (its own node there stopped for a while, as the
// restart tests do) is refused: the two clusters are not joined into one,
// whose stream leaders would then answer the other test's appends.
func TestClustersStayApart(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster")
	}
	t.Parallel()
	a := eventstoretest.StartCluster(t, 3)
	port := a.Servers[1].NATS().ClusterAddr().String()
	a.Stop(1)
	var logs eventstoretest.LogBuffer
	b := eventstoretest.StartClusterWith(t, 3, func(cfg *eventstore.ServerConfig) {
		if cfg.Name == "n1" {
			cfg.ClusterListen = port
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		}
	})
	ids := map[string]bool{}
	for _, s := range b.Servers {
		ids[s.NATS().ID()] = true
	}
	foreign := func() string {
		for i, s := range b.Servers {
			rz, err := s.NATS().Routez(nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rz.Routes {
				if !ids[r.RemoteID] {
					return fmt.Sprintf("node %d of the second cluster has a route to %s (%s), not one of its own", i+1, r.RemoteName, r.RemoteID)
				}
			}
		}
		return ""
	}
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "does not match") || foreign() != ""
	}, "node 1 of the second cluster to hear from the first cluster")
	if f := foreign(); f != "" {
		t.Fatal(f)
	}
}
