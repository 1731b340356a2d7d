package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/domain"
)

// BenchmarkApplyTrigger: ApplyTrigger one at a time, each a wrong trigger
// for order-42 (rejected, so the order stays where it is and its history
// grows by one event per call), with a trigger id the client makes and
// with one the caller gives. Each call reads the order's history (one
// ephemeral consumer) to confirm the outcome it heard. A caller's id may
// have taken effect before, longer ago than JetStream remembers ids, so
// for one ApplyTrigger also reads the history before publishing. The
// reads grow with the history (here from 1 to 2×b.N events).
//
//	go test -run '^$' -bench ApplyTrigger -benchtime 200x ./client/
func BenchmarkApplyTrigger(b *testing.B) {
	ctx := context.Background()
	c, stop := startWithClient(ctx)
	defer stop()
	for _, given := range []bool{true, false} { // the caller's ids first, while the history is short
		b.Run(fmt.Sprintf("caller_id=%v", given), func(b *testing.B) {
			var took time.Duration
			for i := range b.N {
				id := ""
				if given {
					id = fmt.Sprintf("%s-%d", b.Name(), i)
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t := time.Now()
				_, err := c.ApplyTrigger(cctx, client.Trigger{OrderID: "order-42", Trigger: "delivered", TriggerID: id})
				took += time.Since(t)
				cancel()
				if _, ok := errors.AsType[*domain.RejectedError](err); !ok {
					b.Fatalf("a wrong trigger: %v", err)
				}
			}
			b.ReportMetric(float64(took.Microseconds())/float64(b.N), "µs/apply")
		})
	}
}
