package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// BenchmarkEventFeeds: triggers published over NATS as fast as they are
// taken (64 at a time, each order's seven in turn), with 0, 10 and 100
// event feeds (GET /v1/events) open and read, as dashboards would.
// Reports triggers/s until a subscriber has seen every outcome, and how
// long after that the slowest feed has sent them all (feeds-lag-ms).
// Compare the sub-benchmarks of one run:
//
//	go test -run '^$' -bench EventFeeds -benchtime 14000x ./cmd/orderflow/
func BenchmarkEventFeeds(b *testing.B) {
	for _, feeds := range []int{0, 10, 100} {
		b.Run(fmt.Sprintf("feeds=%d", feeds), func(b *testing.B) {
			app, ctx := seededBenchApp(b)
			steps := handlers.WorkedExampleTriggers
			orders := (b.N + len(steps) - 1) / len(steps)
			meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "bench"}}
			for i := range orders {
				if _, err := app.cmds.PlaceOrder(ctx, meta, fmt.Sprintf("f-%d", i), handlers.WorkedExampleOrderType, ""); err != nil {
					b.Fatal(err)
				}
			}

			fctx, stop := context.WithCancel(ctx)
			got := make([]atomic.Int64, feeds)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer stop() // before the wait: it ends the feeds
			for i := range feeds {
				req, err := http.NewRequestWithContext(fctx, http.MethodGet, "http://"+app.HTTPAddr()+"/v1/events", nil)
				if err != nil {
					b.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("feed %d: %s", i, resp.Status)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer resp.Body.Close()
					lines := bufio.NewScanner(resp.Body)
					lines.Buffer(make([]byte, 1<<20), 1<<20)
					for lines.Scan() {
						if strings.HasPrefix(lines.Text(), "id: ") {
							got[i].Add(1)
						}
					}
				}()
			}

			nc, err := nats.Connect(app.NATSURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			c, err := client.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			var seen atomic.Int64
			done := make(chan struct{})
			sub, err := c.SubscribeStageChanges("", func(client.StageChange) {
				if seen.Add(1) == int64(b.N) {
					close(done)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Unsubscribe()

			b.ResetTimer()
			start := time.Now()
			sem := make(chan struct{}, 64)
			var failed atomic.Value
			for i := range b.N {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					t := client.Trigger{OrderID: fmt.Sprintf("f-%d", i%orders), Trigger: steps[i/orders]}
					if _, err := c.PublishTrigger(ctx, t); err != nil {
						failed.Store(err)
					}
				}()
			}
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d outcomes seen (%v)", seen.Load(), b.N, failed.Load())
			}
			took := time.Since(start)
			b.StopTimer()
			deadline := time.Now().Add(5 * time.Minute)
			for i := 0; i < feeds; {
				switch {
				case got[i].Load() >= int64(b.N):
					i++
				case time.Now().After(deadline):
					b.Fatalf("feed %d sent %d of %d events", i, got[i].Load(), b.N)
				default:
					time.Sleep(time.Millisecond)
				}
			}
			lag := time.Since(start) - took
			b.ReportMetric(float64(b.N)/took.Seconds(), "triggers/s")
			b.ReportMetric(float64(lag.Milliseconds()), "feeds-lag-ms")
		})
	}
}
