package eventstore_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// Benchmarks, all on one embedded server in one run, so their figures can
// be compared as ratios:
//
//	go test -run '^$' -bench . -benchtime 50000x ./eventstore/
//
// BenchmarkRawPublishAsync is the baseline: JetStream PublishAsync of the
// same envelopes to the same stream, with nothing of orderflow in the way.

var (
	benchLoadTotal = flag.Int("bench.load-total", 1_000_000, "events stored before BenchmarkLoad20 runs")
	benchWriters   = flag.Int("bench.writers", 256, "concurrent appenders in BenchmarkAppendConcurrent")
)

var bench struct {
	once sync.Once
	st   *eventstore.Store
	srv  *eventstore.Server
	dir  string
	err  error
}

// benchStore is one embedded server shared by every benchmark of the run.
func benchStore(b *testing.B) *eventstore.Store {
	bench.once.Do(func() {
		dir, err := os.MkdirTemp("", "orderflow-bench-")
		if err != nil {
			bench.err = err
			return
		}
		bench.dir = dir
		srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0"})
		if err != nil {
			bench.err = err
			return
		}
		bench.srv = srv
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			bench.err = err
			return
		}
		bench.st, bench.err = eventstore.Open(context.Background(), nc, eventstore.Config{})
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.st
}

func benchEnvelope(agg eventstore.Aggregate, version uint64) eventstore.Envelope {
	return eventstore.Envelope{
		ID:            uuid.Must(uuid.NewV7()).String(),
		Type:          "OrderAdvanced",
		Tenant:        agg.Tenant,
		AggregateType: agg.Type,
		AggregateID:   agg.ID,
		Version:       version,
		OccurredAt:    time.Now().UTC(),
		Actor:         eventstore.Actor{Kind: eventstore.ActorWorker, ID: "bench-worker"},
		CorrelationID: "bench",
		Data: json.RawMessage(`{"trigger":"wash_done","trigger_id":"0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b","worker":"w1",` +
			`"from":{"workflow_id":"production","workflow_version":1,"step":0,"status":"washing"},` +
			`"to":{"workflow_id":"production","workflow_version":1,"step":1,"status":"drying"}}`),
	}
}

func BenchmarkRawPublishAsync(b *testing.B) {
	st := benchStore(b)
	js := st.JetStream()
	run := uuid.NewString()[:8]
	msgs := make([]*nats.Msg, b.N)
	for i := range msgs {
		agg := order(fmt.Sprintf("raw-%s-%d", run, i%1024))
		env := benchEnvelope(agg, 1)
		body, _ := json.Marshal(env)
		m := nats.NewMsg(agg.Subject(env.Type))
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, env.ID)
		msgs[i] = m
	}
	b.ResetTimer()
	for _, m := range msgs {
		if _, err := eventstore.PublishAsync(context.Background(), js, m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("async publishes not acknowledged within a minute")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawPublishAsyncOCC is the server's own ceiling for appends with
// optimistic concurrency: raw PublishAsync of the same envelopes, round-robin
// over 4096 aggregates, each carrying the Nats-Expected-Last-Subject-Sequence
// headers that an append sets (computed ahead, as nothing else writes).
func BenchmarkRawPublishAsyncOCC(b *testing.B) {
	st := benchStore(b)
	js := st.JetStream()
	run := uuid.NewString()[:8]
	base, err := st.LastSequence(context.Background(), eventstore.StreamOrders)
	if err != nil {
		b.Fatal(err)
	}
	const aggregates = 4096
	msgs := make([]*nats.Msg, b.N)
	for i := range msgs {
		agg := order(fmt.Sprintf("rawocc-%s-%d", run, i%aggregates))
		env := benchEnvelope(agg, uint64(i/aggregates+1))
		body, _ := json.Marshal(env)
		m := nats.NewMsg(agg.Subject(env.Type))
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, env.ID)
		var expected uint64
		if i >= aggregates {
			expected = base + uint64(i-aggregates) + 1
		}
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(expected, 10))
		m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, agg.Filter())
		msgs[i] = m
	}
	b.ResetTimer()
	futures := make([]jetstream.PubAckFuture, 0, b.N)
	for _, m := range msgs {
		f, err := eventstore.PublishAsync(context.Background(), js, m)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("async publishes not acknowledged within a minute")
	}
	b.StopTimer()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatalf("raw publish with OCC refused: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendConcurrent: many writers, each appending to its own
// aggregates with optimistic concurrency (one event per append).
func BenchmarkAppendConcurrent(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	run := uuid.NewString()[:8]
	var next atomic.Int64
	var writer atomic.Int64
	// Envelopes are built before the clock starts, as the raw baseline's
	// messages are: the benchmark measures the store, not uuid and clock.
	envs := make([]eventstore.Envelope, b.N)
	proto := order("proto")
	for i := range envs {
		envs[i] = benchEnvelope(proto, 1)
		envs[i].AggregateID = ""
	}
	b.SetParallelism(max(1, *benchWriters/runtimeProcs())) // goroutines = parallelism × GOMAXPROCS
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := writer.Add(1)
		agg := order(fmt.Sprintf("conc-%s-%d", run, w))
		var last uint64
		var lastHash string
		var version uint64
		for pb.Next() {
			i := next.Add(1) - 1
			version++
			envs[i].Version = version
			envs[i].PrevHash = lastHash
			r, err := st.Append(ctx, agg, last, envs[i])
			if err != nil {
				b.Error(err)
				return
			}
			last, lastHash = r.LastSeq, r.LastHash
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendPipelined: one appender spreading events round-robin over
// many aggregates with AppendAsync, as the trigger processor does. Each
// aggregate's next append waits for its previous one (it needs the
// sequence), so per-aggregate order and optimistic concurrency hold.
func BenchmarkAppendPipelined(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	run := uuid.NewString()[:8]
	const aggregates = 4096
	aggs := make([]eventstore.Aggregate, aggregates)
	for i := range aggs {
		aggs[i] = order(fmt.Sprintf("pipe-%s-%d", run, i))
	}
	envs := make([]eventstore.Envelope, b.N)
	for i := range envs {
		envs[i] = benchEnvelope(aggs[i%aggregates], uint64(i/aggregates+1))
	}
	pending := make([]*eventstore.PendingAppend, aggregates)
	b.ResetTimer()
	for i := range b.N {
		a := i % aggregates
		var last uint64
		if p := pending[a]; p != nil {
			r, err := p.Wait(ctx)
			if err != nil {
				b.Fatal(err)
			}
			last = r.LastSeq
			envs[i].PrevHash = r.LastHash
		}
		p, err := st.AppendAsync(ctx, aggs[a], last, envs[i])
		if err != nil {
			b.Fatal(err)
		}
		pending[a] = p
	}
	for _, p := range pending {
		if p == nil {
			continue
		}
		if _, err := p.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendLatency: one aggregate, one append at a time.
func BenchmarkAppendLatency(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	agg := order("lat-" + uuid.NewString()[:8])
	lat := make([]time.Duration, 0, b.N)
	var last uint64
	var lastHash string
	b.ResetTimer()
	for i := range b.N {
		e := benchEnvelope(agg, uint64(i+1))
		e.PrevHash = lastHash
		t := time.Now()
		r, err := st.Append(ctx, agg, last, e)
		lat = append(lat, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		last, lastHash = r.LastSeq, r.LastHash
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

var loadFixture struct {
	once sync.Once
	aggs []eventstore.Aggregate
	err  error
}

// fixture stores -bench.load-total events, 20 per aggregate, once per
// run. The aggregates are interleaved round-robin, so each aggregate's
// events are spread over the whole stream, in many of the server's 8 MB
// blocks. The first half of the aggregates is for the load benchmarks,
// which need them at exactly 20 events; the second half for appends.
func fixture(b *testing.B, st *eventstore.Store) (load, appendTo []eventstore.Aggregate) {
	loadFixture.once.Do(func() {
		const perAgg = 20
		n := *benchLoadTotal / perAgg
		run := uuid.NewString()[:8]
		js := st.JetStream()
		for i := range n {
			loadFixture.aggs = append(loadFixture.aggs, order(fmt.Sprintf("load-%s-%d", run, i)))
		}
		start := time.Now()
		for v := uint64(1); v <= perAgg; v++ {
			for _, agg := range loadFixture.aggs {
				env := benchEnvelope(agg, v)
				body, _ := json.Marshal(env)
				m := nats.NewMsg(agg.Subject(env.Type))
				m.Data = body
				if _, err := eventstore.PublishAsync(context.Background(), js, m); err != nil {
					loadFixture.err = err
					return
				}
			}
		}
		<-js.PublishAsyncComplete()
		stored := time.Since(start)
		last, err := st.LastSequence(context.Background(), eventstore.StreamOrders)
		if err != nil {
			loadFixture.err = err
			return
		}
		for st.Indexed(eventstore.StreamOrders) < last {
			time.Sleep(10 * time.Millisecond)
		}
		b.Logf("stored %d events for the load fixture in %s; indexed after %s", n*perAgg,
			stored.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})
	if loadFixture.err != nil {
		b.Fatal(loadFixture.err)
	}
	aggs := loadFixture.aggs
	return aggs[:len(aggs)/2], aggs[len(aggs)/2:]
}

// BenchmarkLoad20 loads a 20-event aggregate out of -bench.load-total
// stored events.
func BenchmarkLoad20(b *testing.B) {
	st := benchStore(b)
	aggs, _ := fixture(b, st)
	b.ResetTimer()
	lat := timeLoads(b, st, aggs, b.N, 0, false)
	b.StopTimer()
	reportPercentiles(b, lat)
}

// The server reads a message of a file-store block that is not in its
// memory by loading the whole block (up to 8 MB), and holds blocks that
// are only read by a weak pointer: the next garbage collection drops
// them. The embedded server shares orderflow's process, so any
// collection does. The "cold" benchmarks below force one before each
// measured operation (outside the clock): the worst case, in which no
// block an operation needs is still held. They run at most
// -bench.cold-ops operations, whatever -benchtime says (each costs a
// full collection), and report the mean of those as ns/op.
var benchColdOps = flag.Int("bench.cold-ops", 300, "operations measured by the cold benchmarks")

// BenchmarkLoad20Cold is BenchmarkLoad20 with none of the server's blocks
// in memory.
func BenchmarkLoad20Cold(b *testing.B) {
	st := benchStore(b)
	aggs, _ := fixture(b, st)
	lat := timeLoads(b, st, aggs, min(b.N, *benchColdOps), 13, true)
	reportMean(b, lat)
	reportPercentiles(b, lat)
}

// timeLoads loads ops of the fixture's 20-event aggregates (spread from
// offset) and returns each load's time; cold forces a garbage collection
// before each, outside the time.
func timeLoads(b *testing.B, st *eventstore.Store, aggs []eventstore.Aggregate, ops, offset int, cold bool) []time.Duration {
	ctx := context.Background()
	lat := make([]time.Duration, 0, ops)
	for i := range ops {
		agg := aggs[(i*7919+offset)%len(aggs)]
		if cold {
			runtime.GC()
		}
		t := time.Now()
		evs, err := st.Load(ctx, agg, 0)
		lat = append(lat, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) != 20 {
			b.Fatalf("loaded %d events, want 20", len(evs))
		}
	}
	return lat
}

var oldAppends atomic.Int64 // how far BenchmarkAppendToOld got in the fixture

// BenchmarkAppendToOld appends one event to an aggregate whose last event
// lies in an older block of the stream, as a trigger for an order last
// touched long ago does. The server's check of the expected version reads
// that last event. "held": the block was read a moment before, as loading
// the aggregate does (the usual case for the trigger processor, which
// loads what it has not cached); "cold": a collection came in between.
func BenchmarkAppendToOld(b *testing.B) {
	for _, cold := range []bool{false, true} {
		name := "held"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			st := benchStore(b)
			_, aggs := fixture(b, st)
			ctx := context.Background()
			ops := min(b.N, *benchColdOps)
			lat := make([]time.Duration, 0, ops)
			for range ops {
				agg := aggs[(oldAppends.Add(1)*7919)%int64(len(aggs))]
				evs, err := st.Load(ctx, agg, 0)
				if err != nil {
					b.Fatal(err)
				}
				last := evs[len(evs)-1]
				e := benchEnvelope(agg, last.Version+1)
				e.PrevHash = last.Hash
				if cold {
					runtime.GC()
				}
				t := time.Now()
				_, err = st.Append(ctx, agg, last.Sequence, e)
				lat = append(lat, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
			}
			reportMean(b, lat)
			reportPercentiles(b, lat)
		})
	}
}

// reportMean replaces ns/op by the mean of lat, for benchmarks that
// measure fewer operations than b.N.
func reportMean(b *testing.B, lat []time.Duration) {
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(sum.Nanoseconds())/float64(max(1, len(lat))), "ns/op")
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	p := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(p(0.50), "p50-µs")
	b.ReportMetric(p(0.99), "p99-µs")
}

// BenchmarkIndexCatchUp opens another store on the stream of
// -bench.load-total events and measures how long its load index takes to
// read them (Store.WaitIndexed), against a raw headers-only ordered
// consumer read of the same stream with the same pull size. It runs at
// most twice, whatever -benchtime says, and reports the index's mean as
// ns/op.
func BenchmarkIndexCatchUp(b *testing.B) {
	st := benchStore(b)
	fixture(b, st)
	ctx := context.Background()
	last, err := st.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		b.Fatal(err)
	}
	runs := min(b.N, 2)
	var index, raw time.Duration
	for range runs {
		nc, err := nats.Connect(bench.srv.ClientURL(), nats.SyncQueueLen(eventstore.SyncQueueLen))
		if err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		other, err := eventstore.Open(ctx, nc, eventstore.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := other.WaitIndexed(ctx); err != nil {
			b.Fatal(err)
		}
		index += time.Since(t)
		other.Close()

		t = time.Now()
		js, _ := jetstream.New(nc)
		cons, err := js.OrderedConsumer(ctx, eventstore.StreamOrders, jetstream.OrderedConsumerConfig{HeadersOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if meta, err := m.Metadata(); err == nil && meta.Sequence.Stream == last {
				close(done)
			}
		}, jetstream.PullMaxMessages(eventstore.IndexPull))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		raw += time.Since(t)
		cc.Stop()
		nc.Close()
	}
	b.ReportMetric(float64(index.Nanoseconds())/float64(runs), "ns/op")
	b.ReportMetric(float64(last)*float64(runs)/index.Seconds(), "indexed-events/s")
	b.ReportMetric(float64(last)*float64(runs)/raw.Seconds(), "raw-headers/s")
	b.ReportMetric(raw.Seconds()/index.Seconds(), "index/raw")
}

// BenchmarkReadStream reads the stream of -bench.load-total events with
// Store.ReadStream, against a raw read of the same stream: an ordered
// consumer's Next in the caller's goroutine, with the same pull size.
// ReadStream's Next runs in a goroutine of its own (see orderedread); this
// is what that hand-over costs. It runs at most twice, whatever
// -benchtime says, and reports ReadStream's mean as ns/op.
func BenchmarkReadStream(b *testing.B) {
	st := benchStore(b)
	fixture(b, st)
	ctx := context.Background()
	last, err := st.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		b.Fatal(err)
	}
	runs := min(b.N, 2)
	var read, raw time.Duration
	for range runs {
		t := time.Now()
		n, err := st.ReadStream(ctx, eventstore.StreamOrders, func(eventstore.StoredMsg) error { return nil }, nil)
		if err != nil || n != last {
			b.Fatalf("ReadStream: %d of %d, %v", n, last, err)
		}
		read += time.Since(t)

		t = time.Now()
		cons, err := st.JetStream().OrderedConsumer(ctx, eventstore.StreamOrders, jetstream.OrderedConsumerConfig{})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1024))
		if err != nil {
			b.Fatal(err)
		}
		for {
			m, err := it.Next()
			if err != nil {
				b.Fatal(err)
			}
			if meta, err := m.Metadata(); err == nil && meta.Sequence.Stream == last {
				break
			}
		}
		raw += time.Since(t)
		it.Stop()
	}
	b.ReportMetric(float64(read.Nanoseconds())/float64(runs), "ns/op")
	b.ReportMetric(float64(last)*float64(runs)/read.Seconds(), "read-events/s")
	b.ReportMetric(float64(last)*float64(runs)/raw.Seconds(), "raw-read/s")
	b.ReportMetric(raw.Seconds()/read.Seconds(), "read/raw")
}
