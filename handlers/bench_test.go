package handlers

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The trigger pipeline, measured in one run on one embedded server:
//
//	go test -run '^$' -bench TriggerPipeline -benchtime 1x ./handlers/
//
// raw: JetStream PublishAsync of trigger-sized messages to a stream of
// their own (the baseline); throughput: every trigger of -bench.orders
// orders published round-robin, until every outcome is stored and seen;
// latency: triggers offered at -bench.rate per second, from publish to the
// stage change seen by a subscriber.
var (
	benchOrders = flag.Int("bench.orders", 2000, "orders in the throughput run")
	benchRate   = flag.Int("bench.rate", 2000, "offered triggers per second in the latency run")
	benchFor    = flag.Duration("bench.duration", 5*time.Second, "length of the latency run")
	benchLanes  = flag.Int("bench.lanes", 16, "trigger lanes")
)

func BenchmarkTriggerPipeline(b *testing.B) {
	srv := eventstoretest.StartServer(b)
	c := newCommands(b, srv)
	ctx := context.Background()
	p, err := NewProcessor(ctx, c, srv.ClientURL(), ProcessorConfig{Lanes: *benchLanes, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = p.Run(context.Background()) }()
	<-p.Running()
	defer p.Close()
	nc := eventstoretest.Connect(b, srv.ClientURL())
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))

	// Raw baseline.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	const rawN = 100_000
	body := []byte(`{"worker":"bench-worker"}`)
	start := time.Now()
	for i := range rawN {
		m := nats.NewMsg(fmt.Sprintf("bench.raw.o-%d.wash_done", i%1000))
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("raw-%d", i))
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	raw := float64(rawN) / time.Since(start).Seconds()

	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "bench"}}
	place := func(prefix string, n int) {
		for i := range n {
			if _, err := c.PlaceOrder(ctx, meta, fmt.Sprintf("%s-%d", prefix, i), WorkedExampleOrderType, ""); err != nil {
				b.Fatal(err)
			}
		}
	}

	// Throughput: all triggers of all orders, round-robin across orders.
	n := *benchOrders
	place("tp", n)
	outcomes := make(chan struct{}, 7*n)
	sub, err := nc.Subscribe("orderflow.default.order.*.>", func(m *nats.Msg) {
		var env struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(m.Data, &env)
		if env.Type == "OrderAdvanced" || env.Type == "OrderCompleted" || env.Type == "TriggerRejected" {
			outcomes <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start = time.Now()
	for _, tr := range WorkedExampleTriggers {
		for i := range n {
			m := nats.NewMsg(eventstore.TriggerSubject("default", fmt.Sprintf("tp-%d", i), tr))
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range 7 * n {
		<-outcomes
	}
	throughput := float64(7*n) / time.Since(start).Seconds()
	b.StopTimer()
	_ = sub.Unsubscribe()

	// Latency at a fixed offered rate.
	rate := *benchRate
	total := int(float64(rate) * benchFor.Seconds())
	orders := total/7 + 1
	place("lat", orders)
	var mu sync.Mutex
	sent := make(map[string]time.Time, total)
	lat := make([]time.Duration, 0, total)
	done := make(chan struct{})
	sub, err = nc.Subscribe("orderflow.default.order.*.>", func(m *nats.Msg) {
		now := time.Now()
		var env struct {
			CausationID string `json:"causation_id"`
		}
		_ = json.Unmarshal(m.Data, &env)
		mu.Lock()
		defer mu.Unlock()
		if t0, ok := sent[env.CausationID]; ok {
			lat = append(lat, now.Sub(t0))
			delete(sent, env.CausationID)
			if len(lat) == total {
				close(done)
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	for i := range total {
		order, tr := fmt.Sprintf("lat-%d", i%orders), WorkedExampleTriggers[i/orders]
		id := fmt.Sprintf("lat-%d", i)
		m := nats.NewMsg(eventstore.TriggerSubject("default", order, tr))
		m.Header.Set(jetstream.MsgIDHeader, id)
		if d := time.Until(next); d > 0 {
			time.Sleep(d) // pacing the offered rate
		}
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		next = next.Add(interval)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		b.Fatalf("%d of %d outcomes seen", len(lat), total)
	}
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }

	b.ReportMetric(raw, "raw-publish/s")
	b.ReportMetric(throughput, "triggers/s")
	b.ReportMetric(throughput/raw, "ratio")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.Logf("raw publish %.0f/s; pipeline %.0f triggers/s (%.2f×, %d orders, %d lanes); at %d/s offered: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms",
		raw, throughput, throughput/raw, n, *benchLanes, rate, pct(0.5), pct(0.9), pct(0.99))
}
