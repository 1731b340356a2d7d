package eventstoretest_test

import (
	"net"
	"testing"

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
