package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// benchFigure is one measured figure and its ratio to its raw baseline.
type benchFigure struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
}

// benchCmd: orderflow bench. Everything is measured in one run against one
// server, so every orderflow figure comes with its ratio to the raw
// JetStream figure measured in the same run.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("bench", "Usage: orderflow bench [flags]\n\n"+
		"Measure orderflow against raw JetStream on this machine, in one run on one server: every figure with its ratio to the raw one.", stderr)
	orders := fs.Int("orders", 2000, "orders per throughput run (7 triggers each)")
	rates := fs.String("rates", "500,2000", "offered trigger rates for the latency runs, per second, comma-separated")
	duration := fs.Duration("duration", 5*time.Second, "length of each latency run")
	lanes := fs.Int("lanes", 16, "trigger lanes")
	window := fs.Int("lane-window", 256, "unacknowledged triggers per lane")
	natsURL := fs.String("nats-url", "", "measure against this NATS server or cluster instead of an embedded one")
	replicas := fs.Int("replicas", 1, "stream replicas (3 on a cluster)")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the round-robin trigger throughput run to this file (go tool pprof)")
	memProfile := fs.String("memprofile", "", "write an allocation profile, taken after the round-robin trigger throughput run, to this file")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	errs := checkPipeline(*replicas, *lanes, *window, *natsURL == "")
	if *orders < 1 {
		errs = append(errs, fmt.Errorf("--orders %d: must be 1 or more", *orders))
	}
	if *duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration %s: must be positive", *duration))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	startProfile, stopProfile := func() error { return nil }, func() {}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		startProfile = func() error { return pprof.StartCPUProfile(f) }
		stopProfile = pprof.StopCPUProfile
		defer stopProfile()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		stopCPU, written := stopProfile, false
		stopProfile = func() {
			stopCPU()
			if !written {
				written = true
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
			}
		}
	}
	var offered []int
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("--rates: %q is not a positive rate", r)
		}
		offered = append(offered, n)
	}
	log := slog.New(slog.DiscardHandler)
	url := *natsURL
	if url == "" {
		dir, err := os.MkdirTemp("", "orderflow-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0"})
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		url = srv.ClientURL()
	}
	nc, err := nats.Connect(url, nats.SyncQueueLen(eventstore.SyncQueueLen))
	if err != nil {
		return err
	}
	defer nc.Close()
	if *natsURL != "" {
		if err := noProcessors(ctx, nc); err != nil {
			return err
		}
	}
	st, err := eventstore.Open(ctx, nc, eventstore.Config{Replicas: *replicas, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	var figs []benchFigure
	add := func(f benchFigure) { figs = append(figs, f) }

	// Raw baselines on a stream of their own.
	progress("raw JetStream baselines…")
	rawStream := "ORDERFLOW_BENCH_RAW_" + strings.ToUpper(uuid.NewString()[:8])
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{strings.ToLower(rawStream) + ".>"},
		Storage: jetstream.FileStorage, Replicas: *replicas}); err != nil {
		return err
	}
	defer js.DeleteStream(context.Background(), rawStream)
	const rawN = 100_000
	body := []byte(`{"worker":"bench","note":"a trigger-sized payload for the baseline"}`)
	start := time.Now()
	for i := range rawN {
		m := nats.NewMsg(fmt.Sprintf("%s.o%d.wash_done", strings.ToLower(rawStream), i%1000))
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
		if _, err := eventstore.PublishAsync(ctx, js, m); err != nil {
			return err
		}
	}
	<-js.PublishAsyncComplete()
	rawPub := float64(rawN) / time.Since(start).Seconds()
	add(benchFigure{Name: "raw async publish", Value: rawPub, Unit: "msgs/s"})
	start = time.Now()
	n, err := st.ReadStream(ctx, rawStream, func(eventstore.StoredMsg) error { return nil }, nil)
	if err != nil {
		return err
	}
	rawRead := float64(n) / time.Since(start).Seconds()
	add(benchFigure{Name: "raw ordered-consumer read", Value: rawRead, Unit: "msgs/s"})

	// Raw latency baselines: a synchronous publish's acknowledgement, and
	// publish → a subscriber seeing the stored message at each offered rate.
	var ackLat []time.Duration
	for i := range 500 {
		m := nats.NewMsg(fmt.Sprintf("%s.ack.o%d", strings.ToLower(rawStream), i))
		m.Data = body
		t := time.Now()
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return err
		}
		ackLat = append(ackLat, time.Since(t))
	}
	rawAck50, _, rawAck99 := percentiles(ackLat)
	add(benchFigure{Name: "raw publish acknowledgement p50", Value: ms(rawAck50), Unit: "ms"})
	add(benchFigure{Name: "raw publish acknowledgement p99", Value: ms(rawAck99), Unit: "ms"})
	rawSeen := map[int][3]time.Duration{}
	for _, rate := range offered {
		lat, err := rawDeliveryLatency(ctx, nc, js, strings.ToLower(rawStream)+".lat", body, rate, *duration)
		if err != nil {
			return err
		}
		p50, p90, p99 := percentiles(lat)
		rawSeen[rate] = [3]time.Duration{p50, p90, p99}
		for i, q := range []string{"p50", "p90", "p99"} {
			add(benchFigure{Name: fmt.Sprintf("raw publish → seen at %d/s, %s", rate, q), Value: ms(rawSeen[rate][i]), Unit: "ms"})
		}
	}

	// The same flow of messages with nothing of orderflow in it: what the
	// contract asks of JetStream per trigger.
	progress("raw trigger pipeline (JetStream only), %d orders…", *orders)
	const rawPipeName = "raw trigger pipeline (JetStream only), round-robin"
	rawPipe, err := rawTriggerPipeline(ctx, nc, *replicas, *orders, *lanes, *window, pipeLanes)
	if err != nil {
		return err
	}
	add(benchFigure{Name: rawPipeName, Value: rawPipe, Unit: "triggers/s", Baseline: "raw async publish", Ratio: rawPipe / rawPub})
	progress("raw trigger pipeline without the lane copy (JetStream only, one reader), %d orders…", *orders)
	rawDirect, err := rawTriggerPipeline(ctx, nc, *replicas, *orders, *lanes, *window, pipeDirect)
	if err != nil {
		return err
	}
	add(benchFigure{Name: "raw trigger pipeline, one reader, no lane copy", Value: rawDirect, Unit: "triggers/s", Baseline: "raw async publish", Ratio: rawDirect / rawPub})
	progress("raw trigger pipeline without the lane copy or acknowledgements (JetStream only, one ordered reader), %d orders…", *orders)
	rawOrdered, err := rawTriggerPipeline(ctx, nc, *replicas, *orders, *lanes, *window, pipeOrdered)
	if err != nil {
		return err
	}
	add(benchFigure{Name: "raw trigger pipeline, one ordered reader, no lane copy, no acks", Value: rawOrdered, Unit: "triggers/s", Baseline: "raw async publish", Ratio: rawOrdered / rawPub})

	// orderflow, on a tenant of its own so it can run against a live cluster.
	tenant := "bench-" + uuid.NewString()[:8]
	defs := projections.NewDefinitions(log)
	if err := defs.Start(ctx, st); err != nil {
		return err
	}
	defer defs.Stop()
	base := &handlers.Commands{Store: st, Defs: defs, Tenant: eventstore.DefaultTenant}
	cmds := base.ForTenant(tenant)
	progress("definition commands…")
	meta := handlers.Meta{Actor: eventstore.Actor{Kind: eventstore.ActorSystem, ID: "bench"}}
	var defLat []time.Duration
	t0 := time.Now()
	if err := handlers.SeedWorkedExample(ctx, cmds); err != nil {
		return err
	}
	_ = t0
	for i := range 200 {
		t := time.Now()
		if _, err := cmds.ChangeWorkflow(ctx, meta, "standard_laundry_production", handlers.RenameWorkflow(fmt.Sprintf("Production %d", i))); err != nil {
			return err
		}
		defLat = append(defLat, time.Since(t))
	}
	p50, _, p99 := percentiles(defLat)
	add(benchFigure{Name: "definition command latency p50", Value: ms(p50), Unit: "ms", Baseline: "raw publish acknowledgement p50", Ratio: ratio(p50, rawAck50)})
	add(benchFigure{Name: "definition command latency p99", Value: ms(p99), Unit: "ms", Baseline: "raw publish acknowledgement p99", Ratio: ratio(p99, rawAck99)})

	proc, err := handlers.NewProcessor(ctx, base, url, handlers.ProcessorConfig{Lanes: *lanes, Window: *window, Logger: log})
	if err != nil {
		return err
	}
	go func() { _ = proc.Run(context.Background()) }()
	<-proc.Running()
	defer proc.Close()

	outcomes := make(chan string, 1<<16)
	// The observer stands in for a dashboard that needs only which trigger
	// an outcome answers: it reads the event type from the subject and the
	// causation id from the body without decoding the rest.
	sub, err := nc.Subscribe(fmt.Sprintf("orderflow.%s.order.*.*", tenant), func(m *nats.Msg) {
		if strings.HasSuffix(m.Subject, "."+domain.TypeOrderPlaced) {
			return
		}
		if id := causationOf(m.Data); id != "" {
			outcomes <- id
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	place := func(prefix string, count int) error {
		var wg sync.WaitGroup
		errs := make(chan error, 1)
		sem := make(chan struct{}, 32)
		for i := range count {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := cmds.PlaceOrder(ctx, meta, fmt.Sprintf("%s-%d", prefix, i), handlers.WorkedExampleOrderType, ""); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	throughput := func(name string, backToBack bool) error {
		prefix := uuid.NewString()[:6]
		progress("trigger throughput, %s, %d orders…", name, *orders)
		if err := place(prefix, *orders); err != nil {
			return err
		}
		total := 7 * *orders
		if !backToBack {
			if err := startProfile(); err != nil {
				return err
			}
			defer stopProfile()
		}
		start := time.Now()
		publish := func(i, k int) error {
			m := nats.NewMsg(eventstore.TriggerSubject(tenant, fmt.Sprintf("%s-%d", prefix, i), handlers.WorkedExampleTriggers[k]))
			_, err := eventstore.PublishAsync(ctx, js, m)
			return err
		}
		for a := range 7 * *orders {
			i, k := a%*orders, a / *orders // round-robin: every order's first trigger, then every second…
			if backToBack {
				i, k = a/7, a%7
			}
			if err := publish(i, k); err != nil {
				return err
			}
			if a%2000 == 1999 {
				<-js.PublishAsyncComplete()
			}
		}
		for range total {
			select {
			case <-outcomes:
			case <-time.After(2 * time.Minute):
				return fmt.Errorf("%s: outcomes stopped arriving", name)
			}
		}
		rate := float64(total) / time.Since(start).Seconds()
		add(benchFigure{Name: "trigger throughput, " + name, Value: rate, Unit: "triggers/s", Baseline: "raw async publish", Ratio: rate / rawPub})
		if !backToBack {
			add(benchFigure{Name: "trigger throughput, " + name + ", against the raw pipeline", Value: rate, Unit: "triggers/s", Baseline: rawPipeName, Ratio: rate / rawPipe})
		}
		return nil
	}
	if err := throughput("round-robin across orders", false); err != nil {
		return err
	}
	if err := throughput("back to back per order", true); err != nil {
		return err
	}

	for _, rate := range offered {
		progress("latency at %d triggers/s for %s…", rate, *duration)
		total := int(float64(rate) * duration.Seconds())
		count := total/7 + 1
		prefix := uuid.NewString()[:6]
		if err := place(prefix, count); err != nil {
			return err
		}
		lat, err := pacedLatency(ctx, nc, js, fmt.Sprintf("orderflow.%s.order.*.*", tenant), rate, total,
			func(i int) (*nats.Msg, string) {
				id := fmt.Sprintf("%s-l%d", prefix, i)
				m := nats.NewMsg(eventstore.TriggerSubject(tenant, fmt.Sprintf("%s-%d", prefix, i%count), handlers.WorkedExampleTriggers[i/count]))
				m.Header.Set(jetstream.MsgIDHeader, id)
				return m, id
			},
			func(m *nats.Msg) string { // the outcome names its trigger as causation
				var env struct {
					CausationID string `json:"causation_id"`
				}
				_ = json.Unmarshal(m.Data, &env)
				return env.CausationID
			})
		if err != nil {
			return fmt.Errorf("latency run at %d/s: %w", rate, err)
		}
		for len(outcomes) > 0 {
			<-outcomes
		}
		p50, p90, p99 := percentiles(lat)
		for i, p := range []struct {
			q string
			v time.Duration
		}{{"p50", p50}, {"p90", p90}, {"p99", p99}} {
			add(benchFigure{Name: fmt.Sprintf("trigger → stage change at %d/s, %s", rate, p.q), Value: ms(p.v), Unit: "ms",
				Baseline: fmt.Sprintf("raw publish → seen at %d/s, %s", rate, p.q), Ratio: ratio(p.v, rawSeen[rate][i])})
		}
	}

	progress("projection rebuild…")
	last, err := st.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		return err
	}
	rb := projections.NewOrders(log)
	start = time.Now()
	if err := rb.Start(ctx, st); err != nil {
		return err
	}
	if err := rb.WaitFor(ctx, last); err != nil {
		return err
	}
	rb.Stop()
	rebuild := float64(last) / time.Since(start).Seconds()
	add(benchFigure{Name: fmt.Sprintf("orders read model rebuild (%d events)", last), Value: rebuild, Unit: "events/s",
		Baseline: "raw ordered-consumer read", Ratio: rebuild / rawRead})

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"lanes": *lanes, "orders": *orders, "figures": figs})
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tRATIO TO RAW")
	for _, f := range figs {
		r := ""
		if f.Baseline != "" {
			r = fmt.Sprintf("%.3f× %s", f.Ratio, f.Baseline)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\n", f.Name, f.Value, f.Unit, r)
	}
	return tw.Flush()
}

// causationOf is an envelope's causation_id ("" when it has none); ids
// never need JSON escapes.
func causationOf(body []byte) string {
	const key = `"causation_id":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func percentiles(d []time.Duration) (p50, p90, p99 time.Duration) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	return at(0.5), at(0.9), at(0.99)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// rawDeliveryLatency publishes to a stream at rate for d and measures how
// long each message takes to reach a subscriber once stored.
func rawDeliveryLatency(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, prefix string, body []byte, rate int, d time.Duration) ([]time.Duration, error) {
	run := uuid.NewString()[:6]
	return pacedLatency(ctx, nc, js, prefix+".>", rate, int(float64(rate)*d.Seconds()),
		func(i int) (*nats.Msg, string) {
			m := nats.NewMsg(fmt.Sprintf("%s.%s.%d", prefix, run, i))
			m.Data = body
			return m, m.Subject
		},
		func(m *nats.Msg) string { return m.Subject })
}

// pacedLatency publishes total messages at rate (msg makes the i-th and
// names it) and measures, for each, the time until a message on watch
// names it (key reads the name).
func pacedLatency(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, watch string, rate, total int,
	msg func(i int) (*nats.Msg, string), key func(*nats.Msg) string) ([]time.Duration, error) {
	var mu sync.Mutex
	sent := make(map[string]time.Time, total)
	lat := make([]time.Duration, 0, total)
	done := make(chan struct{})
	sub, err := nc.Subscribe(watch, func(m *nats.Msg) {
		now := time.Now()
		k := key(m)
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[k]; ok {
			lat = append(lat, now.Sub(t))
			delete(sent, k)
			if len(lat) == total {
				close(done)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	for i := range total {
		m, k := msg(i)
		if w := time.Until(next); w > 0 {
			time.Sleep(w) // pacing the offered rate
		}
		mu.Lock()
		sent[k] = time.Now()
		mu.Unlock()
		if _, err := eventstore.PublishAsync(ctx, js, m); err != nil {
			return nil, err
		}
		next = next.Add(interval)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return nil, errors.New("the watched messages stopped arriving")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	return lat, nil
}

// processorsHeardWithin is how long bench listens for the heartbeats of
// trigger processors (one a second each by default, at most
// handlers.MaxHeartbeat apart) before it runs its own.
const processorsHeardWithin = handlers.MaxHeartbeat + 1500*time.Millisecond

// noProcessors refuses a cluster that orderflow serves: bench's trigger
// processor would join its processors on the lanes, process their
// triggers (with bench's --lanes, --lane-window and version) and take
// theirs away from them, and the figures would measure both.
func noProcessors(ctx context.Context, nc *nats.Conn) error {
	heard, err := handlers.ProcessorsHeard(ctx, nc, processorsHeardWithin)
	if err != nil {
		return err
	}
	if heard {
		return errors.New("orderflow serves this cluster (its trigger processors are heard on " + eventstore.ProcessorsSubject +
			"): bench's processor would share their lanes and process their triggers; run bench against a cluster no orderflow serves")
	}
	return nil
}
