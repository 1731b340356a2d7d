package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// App is one orderflow process: the embedded NATS server (unless
// Config.NATSURL is set), the event store and the HTTP API. End-to-end tests
// run it in-process on random ports.
type App struct {
	Config Config
	Logger *slog.Logger
	// Now is the clock events are stamped with (tests control it); nil
	// for the real one. Set it before Run.
	Now func() time.Time

	server   *eventstore.Server
	nc       *nats.Conn
	store    *eventstore.Store
	defs     *projections.Definitions
	orders   atomic.Pointer[projections.Orders]
	stopCP   context.CancelFunc
	cpDone   chan struct{}
	cp       checkpointStats
	rebuilds sync.Mutex
	// rebuilding is the model a rebuild is filling, and rebuildTo the
	// sequence it must reach (for progress).
	rebuilding atomic.Pointer[projections.Orders]
	rebuildTo  atomic.Uint64
	cmds       *handlers.Commands
	proc       *handlers.Processor
	procDone   chan error
	stopDemo   context.CancelFunc
	demoDone   chan struct{}
	api        *handlers.API
	http       *http.Server
	httpLn     *limitListener
	// answerTimeout is handlers.AnswerTimeout unless a test sets another
	// before Run.
	answerTimeout time.Duration
	httpDone      chan error
	cert          atomic.Pointer[tls.Certificate] // the HTTP API's, with --tls-cert
	reloads       sync.Mutex                      // one reading of the files at a time
	endClosing    context.CancelFunc              // ends the background waits below, at Close
	watchDone     chan struct{}                   // closed when watchFiles has returned
	ready         atomic.Bool
	// afterStoreOpen, when set (by tests), runs once the streams are open
	// and before the read models start.
	afterStoreOpen func()
	// checkpointEvery, when set (by tests), stands for CheckpointInterval.
	checkpointEvery time.Duration
}

// NewApp returns an App that has not started.
func NewApp(cfg Config, logger *slog.Logger) *App {
	if logger == nil {
		logger = slog.Default()
	}
	return &App{Config: cfg, Logger: logger}
}

// Run starts everything and returns once orderflow is serving: the HTTP
// listener first (so /healthz answers during start-up), then NATS and the
// streams, after which /readyz answers 200. Call Close to stop.
func (a *App) Run(ctx context.Context) (err error) {
	if err := a.Config.Validate(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	mux := http.NewServeMux()
	handlers.Health{Ready: a.checkReady, Live: a.checkLive}.Register(mux)
	api := &handlers.API{Log: a.Logger, MaxFeeds: a.Config.MaxFeeds, MaxFeedsPerKey: a.Config.MaxFeedsPerKey}
	api.SetRateLimit(a.Config.RateLimit)
	a.api = api
	closing, endClosing := context.WithCancel(context.WithoutCancel(ctx))
	a.endClosing = endClosing
	files := a.filesToWatch()
	if err := a.Reload(); err != nil {
		return err
	}
	if a.Config.ReloadInterval > 0 && len(files) > 0 {
		a.watchDone = make(chan struct{})
		go func() {
			defer close(a.watchDone)
			a.watchFiles(closing, a.Config.ReloadInterval, files)
		}()
	}
	v1 := http.NewServeMux()
	api.Register(v1)
	origins, _ := handlers.ParseOrigins(a.Config.CORSOrigins) // checked by Validate
	mux.Handle("/v1/", handlers.CORS(origins, a.whenReady(v1)))
	mux.HandleFunc("GET /openapi.json", api.ServeOpenAPI)
	mux.HandleFunc("GET /metrics", a.serveMetrics)
	httpMax, natsMax := a.connectionLimits()
	ln, err := net.Listen("tcp", a.Config.HTTP)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	a.httpLn = newLimitListener(ln, httpMax)
	a.http = &http.Server{
		// No write timeout: the event feed (SSE) streams for as long as a
		// dashboard stays (each of its writes has a deadline of its own,
		// see handlers.API.FeedWriteTimeout); every other answer must be
		// taken within handlers.AnswerTimeout of its start.
		Handler:           handlers.AnswerWithin(cmp.Or(a.answerTimeout, handlers.AnswerTimeout), handlers.NoSniff(handlers.RequestID(mux))),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,  // held in memory while they arrive
		IdleTimeout:       2 * time.Minute, // and closed sooner to make room at --max-connections
		ConnState:         a.httpLn.connState,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: MaxStreams},
		ErrorLog:          slog.NewLogLogger(a.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	a.http.RegisterOnShutdown(api.EndStreams)
	serve := a.http.Serve
	if a.Config.TLSCert != "" {
		a.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.cert.Load(), nil }}
		serve = func(ln net.Listener) error { return a.http.ServeTLS(ln, "", "") }
	}
	a.httpDone = make(chan error, 1)
	go func() { a.httpDone <- serve(a.httpLn) }()

	url := a.Config.NATSURL
	if url == "" {
		sync, _ := eventstore.ParseSync(a.Config.Sync) // validated above
		a.server, err = eventstore.StartServer(eventstore.ServerConfig{
			DataDir:        a.Config.DataDir,
			Listen:         a.Config.NATSListen,
			Sync:           sync,
			Logger:         a.Logger,
			ConfigFile:     a.Config.NATSConfig,
			MaxStore:       a.Config.MaxStore,
			MaxConnections: natsMax,
		})
		if err != nil {
			return err
		}
		url = a.server.ConnectURL()
	}
	a.nc, err = a.dial(ctx, url, append(a.connectOptions(),
		nats.Name("orderflow"),
		nats.SyncQueueLen(eventstore.SyncQueueLen),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil { // our own Close, at shutdown
				a.Logger.Debug("nats connection closed")
				return
			}
			a.Logger.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			a.Logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			a.Logger.Warn("nats", "err", err)
		}),
	))
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", redactURLs(url), notNATS(err))
	}
	opened := time.Now()
	a.store, err = eventstore.Open(ctx, a.nc, eventstore.Config{
		Replicas:         a.Config.Replicas,
		DuplicateWindow:  a.Config.DuplicateWindow,
		Logger:           a.Logger,
		IndexCheckpoints: a.Config.Checkpoints,
	})
	if err != nil {
		return err
	}
	if a.afterStoreOpen != nil {
		a.afterStoreOpen()
	}
	// Each step below that asks the servers goes through the store's
	// Retry, like the opening of the streams: a stream between leaders or
	// a server restarting for a moment delays the start, not fails it.
	a.defs = projections.NewDefinitions(a.Logger)
	if err := a.store.Retry(ctx, func(ctx context.Context) error { return a.defs.Start(ctx, a.store) }); err != nil {
		return err
	}
	orders := projections.NewOrders(a.Logger)
	var restored uint64
	if a.Config.Checkpoints {
		err := a.store.Retry(ctx, func(ctx context.Context) (err error) {
			restored, err = orders.Restore(ctx, a.store)
			return err
		})
		if err != nil {
			return err
		}
	}
	if err := a.store.Retry(ctx, func(ctx context.Context) error { return orders.Start(ctx, a.store) }); err != nil {
		return err
	}
	a.orders.Store(orders)
	// Ready means the read models answer for what was stored before the
	// start: catch up first (from the checkpoint, or from the beginning).
	lastOrder, err := a.lastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		return err
	}
	if err := orders.WaitFor(ctx, lastOrder); err != nil {
		return err
	}
	a.Logger.Info("orders read model caught up", "from_checkpoint", restored, "to", lastOrder)
	// Loads wait for the store's load index to read what was stored before
	// the start (eventstore.Store.WaitIndexed); readiness does not, so the
	// read models answer at once. Logged for operators.
	go func(st *eventstore.Store, started time.Time) { // st: Close sets a.store to nil, at once when the start fails
		if err := st.WaitIndexed(closing); err == nil {
			a.Logger.Info("load index caught up", "took", time.Since(started).Round(time.Millisecond),
				"from_checkpoint", st.IndexRestoredAt(eventstore.StreamOrders))
		}
	}(a.store, opened)
	if a.Config.Checkpoints {
		a.startCheckpoints()
	}
	cacheSize := a.Config.OrderCache
	if cacheSize == 0 {
		cacheSize = -1 // none
	}
	a.cmds = &handlers.Commands{Store: a.store, Defs: a.defs, Tenant: eventstore.DefaultTenant, Now: a.Now, Log: a.Logger, OrderCacheSize: cacheSize}
	api.Commands = a.cmds
	api.Orders = a.orders.Load
	api.Rebuild = a.RebuildProjections
	api.ProjectionStatus = a.ProjectionStatus
	if err := a.startProcessor(ctx); err != nil {
		return err
	}
	if a.Config.Demo {
		if err := a.startDemo(ctx); err != nil {
			return err
		}
	}
	a.ready.Store(true)
	a.Logger.Info("orderflow ready", "http", a.HTTPAddr(), "nats", redactURLs(a.NATSURL()), "embedded", a.server != nil, "processor", a.proc.ID(),
		"max_connections", httpMax, "nats_max_connections", natsMax)
	for _, w := range exposures(a.Config, a.HTTPAddr(), a.server != nil) {
		a.Logger.Warn(w)
	}
	return nil
}

// exposures are the warnings for listeners open beyond this machine with
// nothing to say who may use them: the HTTP API (at httpAddr) without
// --api-keys, the embedded NATS server without --nats-config.
func exposures(cfg Config, httpAddr string, embedded bool) []string {
	var out []string
	if beyondLoopback(httpAddr) && cfg.APIKeys == "" {
		out = append(out, "the HTTP API listens beyond this machine ("+httpAddr+") without --api-keys: whoever reaches it may change definitions and orders")
	}
	if embedded && beyondLoopback(cfg.NATSListen) && cfg.NATSConfig == "" {
		out = append(out, "the embedded NATS server listens beyond this machine ("+cfg.NATSListen+") without --nats-config: whoever reaches it may publish triggers and read every event")
	}
	return out
}

// beyondLoopback reports whether a listen address (host:port) takes
// connections from other machines: its host is empty, unspecified
// (0.0.0.0, ::) or anything other than a loopback address or localhost.
func beyondLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false // not a listen address; Validate said so
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// startProcessor starts the trigger processor once the definitions read
// model has caught up, so no trigger is decided on stale workflows.
func (a *App) startProcessor(ctx context.Context) error {
	last, err := a.lastSequence(ctx, eventstore.StreamDefinitions)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := a.defs.WaitFor(wctx, last); err != nil {
		return err
	}
	a.proc, err = handlers.NewProcessor(ctx, a.cmds, a.connectURL(), handlers.ProcessorConfig{
		Lanes: a.Config.Lanes, AckWait: a.Config.AckWait, Heartbeat: a.Config.Heartbeat, Window: a.Config.LaneWindow, Logger: a.Logger,
		ConnectOptions: a.connectOptions(),
	})
	if err != nil {
		return err
	}
	a.procDone = make(chan error, 1)
	go func() { a.procDone <- a.proc.Run(context.WithoutCancel(ctx)) }()
	select {
	case <-a.proc.Running():
		return nil
	case err := <-a.procDone:
		return fmt.Errorf("trigger processor: %w", err)
	case <-wctx.Done():
		return fmt.Errorf("trigger processor did not start: %w", wctx.Err())
	}
}

// lastSequence is the stream's last sequence, asked through the store's
// Retry (for the start).
func (a *App) lastSequence(ctx context.Context, stream string) (uint64, error) {
	var last uint64
	err := a.store.Retry(ctx, func(ctx context.Context) (err error) {
		last, err = a.store.LastSequence(ctx, stream)
		return err
	})
	return last, err
}

// startDemo seeds the worked example into an empty store and starts the
// simulated worker apps, which publish their triggers over NATS.
func (a *App) startDemo(ctx context.Context) error {
	wc, err := client.New(a.nc)
	if err != nil {
		return err
	}
	demo := &handlers.Demo{
		Commands: a.cmds,
		Orders:   a.orders.Load,
		Name:     demoName(a.Config.HTTP),
		Log:      a.Logger,
		Publish: func(ctx context.Context, orderID, trigger, worker string) error {
			_, err := wc.PublishTrigger(ctx, client.Trigger{OrderID: orderID, Trigger: trigger, Worker: worker})
			return err
		},
	}
	seeded, err := demo.SeedIfEmpty(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if !demo.HasWorkedExample() {
		// Each simulated order would be refused, a warning every 400 ms.
		a.Logger.Warn("demo: this store has definitions of its own and no order type " + handlers.WorkedExampleOrderType +
			", so the worked example is not seeded and no simulated workers run; --demo seeds an empty --data-dir")
		return nil
	}
	a.Logger.Info("demo running", "seeded_worked_example", seeded)
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopDemo, a.demoDone = cancel, make(chan struct{})
	go func() {
		defer close(a.demoDone)
		demo.Run(dctx)
	}()
	return nil
}

// demoName tells the demo of a process from those of other processes on
// the same store, and stays the same when the process starts again: a
// short hash of its host's name and its HTTP address.
func demoName(httpAddr string) string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host + " " + httpAddr))
	return hex.EncodeToString(sum[:4])
}

// CheckpointInterval is how often the orders read model is checkpointed
// when it has changed (see checkpointWait).
const CheckpointInterval = 30 * time.Second

// checkpointWait is how long to wait for the next checkpoint after one
// that took took: every (CheckpointInterval), or longer, so that saving
// takes at most a twentieth of the time. A checkpoint encodes every order
// (about 2.4 µs each, see docs/benchmarks.md): at a million orders it
// takes seconds.
func checkpointWait(every, took time.Duration) time.Duration {
	return max(every, 20*took)
}

// checkpointStats are what /metrics says of the checkpoints this process
// saves: a checkpoint that keeps failing leaves only warnings in the log,
// and a restart then replays far more than it need.
type checkpointStats struct {
	ordersSeq      atomic.Uint64 // of the last orders checkpoint saved (0: none yet)
	ordersAt       atomic.Int64  // when, in Unix nanoseconds
	ordersFailures atomic.Uint64
	indexFailures  atomic.Uint64
}

// orders records an orders checkpoint saved at applied, or its failure.
func (c *checkpointStats) orders(applied uint64, err error) {
	if err != nil {
		c.ordersFailures.Add(1)
		return
	}
	c.ordersSeq.Store(applied)
	c.ordersAt.Store(time.Now().UnixNano())
}

// write writes the checkpoint metrics.
func (c *checkpointStats) write(w io.Writer) {
	fmt.Fprint(w, "# HELP orderflow_checkpoint_saved_sequence The ORDERFLOW_ORDERS sequence of the last orders read model checkpoint this process saved (0: none yet).\n# TYPE orderflow_checkpoint_saved_sequence gauge\n")
	fmt.Fprintf(w, "orderflow_checkpoint_saved_sequence{checkpoint=\"orders\"} %d\n", c.ordersSeq.Load())
	fmt.Fprint(w, "# HELP orderflow_checkpoint_saved_timestamp_seconds When this process last saved the orders read model checkpoint (Unix time; 0: not yet).\n# TYPE orderflow_checkpoint_saved_timestamp_seconds gauge\n")
	at := 0.0
	if ns := c.ordersAt.Load(); ns != 0 {
		at = float64(ns) / 1e9
	}
	fmt.Fprintf(w, "orderflow_checkpoint_saved_timestamp_seconds{checkpoint=\"orders\"} %.3f\n", at)
	fmt.Fprint(w, "# HELP orderflow_checkpoint_failures_total Checkpoints this process failed to save, of the orders read model and of the load index (each is logged).\n# TYPE orderflow_checkpoint_failures_total counter\n")
	fmt.Fprintf(w, "orderflow_checkpoint_failures_total{checkpoint=\"orders\"} %d\n", c.ordersFailures.Load())
	fmt.Fprintf(w, "orderflow_checkpoint_failures_total{checkpoint=\"index\"} %d\n", c.indexFailures.Load())
}

func (a *App) startCheckpoints() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopCP, a.cpDone = cancel, make(chan struct{})
	go func() {
		defer close(a.cpDone)
		every := cmp.Or(a.checkpointEvery, CheckpointInterval)
		t := time.NewTimer(every)
		defer t.Stop()
		var saved uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			wait := a.checkpointOrders(ctx, every, &saved)
			a.checkpointIndexes(ctx)
			t.Reset(wait)
		}
	}()
}

// checkpointOrders saves the orders read model when it has changed since
// the sequence saved, and says how long to wait for the next checkpoint
// (every, or longer after a slow one).
func (a *App) checkpointOrders(ctx context.Context, every time.Duration, saved *uint64) time.Duration {
	o := a.orders.Load()
	if o == nil || o.Applied() == *saved {
		return every
	}
	applied, start := o.Applied(), time.Now()
	// A minute, not the store's few seconds: a large model takes seconds
	// to encode, and it is written as it is encoded.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := o.Checkpoint(ctx, a.store)
	a.cp.orders(applied, err)
	if err != nil {
		a.Logger.Warn("checkpoint", "err", err)
		return every
	}
	*saved = applied
	return checkpointWait(every, time.Since(start))
}

// checkpointIndexes saves the store's load indexes when they have moved
// on (eventstore.Store.CheckpointIndexes), so that the next start reads
// only the events stored since.
func (a *App) checkpointIndexes(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := a.store.CheckpointIndexes(ctx); err != nil && ctx.Err() == nil {
		a.cp.indexFailures.Add(1)
		a.Logger.Warn("load index checkpoint", "err", err)
	}
}

// RebuildProjections rebuilds the orders read model from the streams into
// a new model, swaps it in once it has caught up, and replaces the
// checkpoint. The definitions read model is always built from the stream
// at start-up (it is small), so it needs no rebuild.
func (a *App) RebuildProjections(ctx context.Context) (handlers.RebuildReport, error) {
	a.rebuilds.Lock()
	defer a.rebuilds.Unlock()
	start := time.Now()
	last, err := a.store.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		return handlers.RebuildReport{}, err
	}
	fresh := projections.NewOrders(a.Logger)
	a.rebuildTo.Store(last)
	a.rebuilding.Store(fresh)
	defer a.rebuilding.Store(nil)
	if err := fresh.Start(ctx, a.store); err != nil {
		return handlers.RebuildReport{}, err
	}
	if err := fresh.WaitFor(ctx, last); err != nil {
		fresh.Stop()
		return handlers.RebuildReport{}, err
	}
	took := time.Since(start)
	if old := a.orders.Swap(fresh); old != nil {
		old.Stop()
	}
	if err := a.store.DropCheckpoint(ctx, projections.CheckpointName); err != nil {
		return handlers.RebuildReport{}, err
	}
	err = fresh.Checkpoint(ctx, a.store)
	a.cp.orders(fresh.Applied(), err)
	if err != nil {
		return handlers.RebuildReport{}, err
	}
	rep := handlers.RebuildReport{Events: last, Seconds: took.Seconds(), Applied: fresh.Applied()}
	if took > 0 {
		rep.EventsPerSec = float64(last) / took.Seconds()
	}
	return rep, nil
}

// ProjectionStatus reports the read models' positions and a rebuild's
// progress.
func (a *App) ProjectionStatus(ctx context.Context) (handlers.ProjectionStatus, error) {
	last, err := a.store.LastSequence(ctx, eventstore.StreamOrders)
	if err != nil {
		return handlers.ProjectionStatus{}, err
	}
	st := handlers.ProjectionStatus{StreamLast: last}
	if o := a.orders.Load(); o != nil {
		st.Applied = o.Applied()
	}
	if r := a.rebuilding.Load(); r != nil {
		st.Rebuilding = true
		st.RebuildApplied, st.RebuildTarget = r.Applied(), a.rebuildTo.Load()
	}
	return st, nil
}

// serveMetrics writes Prometheus text metrics: readiness, the process,
// the streams' sequences and sizes, where the read models and the store's
// index stand, and how many triggers this process has applied.
func (a *App) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	ready := 0
	if a.checkReady(r.Context()) == nil {
		ready = 1
	}
	fmt.Fprintf(w, "# HELP orderflow_ready 1 when orderflow serves requests.\n# TYPE orderflow_ready gauge\norderflow_ready %d\n", ready)
	writeProcessMetrics(w)
	fmt.Fprintf(w, "# HELP orderflow_http_connections HTTP connections open now.\n# TYPE orderflow_http_connections gauge\norderflow_http_connections %d\n", a.httpLn.open())
	fmt.Fprintf(w, "# HELP orderflow_http_connections_limit The most HTTP connections held open at once (--max-connections); more wait to be accepted.\n# TYPE orderflow_http_connections_limit gauge\norderflow_http_connections_limit %d\n", a.httpLn.limit())
	fmt.Fprintf(w, "# HELP orderflow_http_idle_connections_closed_total Idle keep-alive HTTP connections closed to make room for new ones at --max-connections.\n# TYPE orderflow_http_idle_connections_closed_total counter\norderflow_http_idle_connections_closed_total %d\n", a.httpLn.idleClosed.Load())
	if ready == 0 {
		return
	}
	a.writeStorageMetrics(r.Context(), w)
	fmt.Fprint(w, "# HELP orderflow_read_model_applied_sequence The last stream sequence each read model reflects.\n# TYPE orderflow_read_model_applied_sequence gauge\n")
	fmt.Fprintf(w, "orderflow_read_model_applied_sequence{model=\"definitions\"} %d\n", a.defs.Applied())
	if o := a.orders.Load(); o != nil {
		fmt.Fprintf(w, "orderflow_read_model_applied_sequence{model=\"orders\"} %d\n", o.Applied())
	}
	if a.Config.Checkpoints {
		a.cp.write(w)
	}
	fmt.Fprint(w, "# HELP orderflow_index_applied_sequence The last stream sequence the store's load index has seen.\n# TYPE orderflow_index_applied_sequence gauge\n")
	for _, s := range []string{eventstore.StreamDefinitions, eventstore.StreamOrders} {
		fmt.Fprintf(w, "orderflow_index_applied_sequence{stream=%q} %d\n", s, a.store.Indexed(s))
	}
	fmt.Fprint(w, "# HELP orderflow_index_caught_up 1 once the load index has read every event stored before the start; until then loads wait for it.\n# TYPE orderflow_index_caught_up gauge\n")
	for _, s := range []string{eventstore.StreamDefinitions, eventstore.StreamOrders} {
		up := 0
		if a.store.IndexCaughtUp(s) {
			up = 1
		}
		fmt.Fprintf(w, "orderflow_index_caught_up{stream=%q} %d\n", s, up)
	}
	cs := a.cmds.OrderCacheStats()
	fmt.Fprintf(w, "# HELP orderflow_orders_cached Orders this process holds in memory, as they stand, to decide commands and triggers and answer reads.\n# TYPE orderflow_orders_cached gauge\norderflow_orders_cached %d\n", cs.Cached)
	fmt.Fprintf(w, "# HELP orderflow_order_cache_hits_total Order commands, triggers and reads served from memory.\n# TYPE orderflow_order_cache_hits_total counter\norderflow_order_cache_hits_total %d\n", cs.Hits)
	fmt.Fprintf(w, "# HELP orderflow_order_loads_total Order histories read from the store (not in memory, or changed by another process).\n# TYPE orderflow_order_loads_total counter\norderflow_order_loads_total %d\n", cs.Loads)
	fmt.Fprintf(w, "# HELP orderflow_order_load_seconds_total Time spent reading order histories from the store.\n# TYPE orderflow_order_load_seconds_total counter\norderflow_order_load_seconds_total %g\n", cs.LoadTime.Seconds())
	if o := a.orders.Load(); o != nil && a.Config.StageMetrics {
		writeStageMetrics(w, o, time.Now())
	}
	fmt.Fprintf(w, "# HELP orderflow_event_feeds_open Open event feeds (GET /v1/events).\n# TYPE orderflow_event_feeds_open gauge\norderflow_event_feeds_open %d\n", a.api.OpenFeeds())
	fmt.Fprintf(w, "# HELP orderflow_event_feed_stream_reads_total Times an event feed read events from the stream because its tenant's shared reader no longer held them (a feed resumed from an earlier event, or its client fell behind).\n# TYPE orderflow_event_feed_stream_reads_total counter\norderflow_event_feed_stream_reads_total %d\n", a.api.FeedStreamReads())
	a.api.WriteMetrics(w)
	if a.proc != nil {
		fmt.Fprintf(w, "# HELP orderflow_triggers_applied_total Triggers this process has applied.\n# TYPE orderflow_triggers_applied_total counter\norderflow_triggers_applied_total %d\n", a.proc.Handled())
		fmt.Fprint(w, "# HELP orderflow_trigger_outcomes_total Triggers this process has applied, by outcome and, for rejections, reason.\n# TYPE orderflow_trigger_outcomes_total counter\n")
		for _, c := range a.proc.Outcomes() {
			if c.Reason != "" {
				fmt.Fprintf(w, "orderflow_trigger_outcomes_total{outcome=%q,reason=%q} %d\n", c.Outcome, c.Reason, c.N)
			} else {
				fmt.Fprintf(w, "orderflow_trigger_outcomes_total{outcome=%q} %d\n", c.Outcome, c.N)
			}
		}
		a.proc.WriteLatency(w)
		fmt.Fprintf(w, "# HELP orderflow_trigger_processors Trigger processors sharing the lanes as this process knows them (none of them taken for gone: each heard within its last three heartbeats, or up to twelve for one wrongly taken for gone lately), itself included.\n# TYPE orderflow_trigger_processors gauge\norderflow_trigger_processors %d\n", a.proc.Processors())
		fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_owned Trigger lanes this process owns.\n# TYPE orderflow_trigger_lanes_owned gauge\norderflow_trigger_lanes_owned %d\n", a.proc.OwnedLanes())
		fmt.Fprintf(w, "# HELP orderflow_triggers_recopied_total Stored triggers the trigger lanes skipped, found and published again by this process.\n# TYPE orderflow_triggers_recopied_total counter\norderflow_triggers_recopied_total %d\n", a.proc.Recopied())
		fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_leftovers_removed_total Triggers this process removed from the lanes because their lane had acknowledged past them (left by a server stopped hard); each was published again unless it had taken effect.\n# TYPE orderflow_trigger_lanes_leftovers_removed_total counter\norderflow_trigger_lanes_leftovers_removed_total %d\n", a.proc.LaneLeftovers())
		fmt.Fprintf(w, "# HELP orderflow_triggers_handed_back_total Triggers handed back, not started, when this process gave a lane up.\n# TYPE orderflow_triggers_handed_back_total counter\norderflow_triggers_handed_back_total %d\n", a.proc.HandedBack())
		fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_resets_total Lanes this process took over with triggers their reader, gone (a process that died, a server restarted), had not acknowledged: reset so that those came again at once instead of after --ack-wait.\n# TYPE orderflow_trigger_lanes_resets_total counter\norderflow_trigger_lanes_resets_total %d\n", a.proc.LaneResets())
		fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_unpinned_total Lanes this process took over whose pin a process no longer heard from (killed, its NATS servers still up) held: released so that the lane went on at once instead of after --ack-wait.\n# TYPE orderflow_trigger_lanes_unpinned_total counter\norderflow_trigger_lanes_unpinned_total %d\n", a.proc.LaneUnpins())
		fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_copy_restarts_total Times this process found the lanes' copy of the stored triggers silent, or without ORDERFLOW_TRIGGERS after a restart, and had it set up again.\n# TYPE orderflow_trigger_lanes_copy_restarts_total counter\norderflow_trigger_lanes_copy_restarts_total %d\n", a.proc.CopyRestarts())
		// A copy error means stored triggers wait until the server's retry
		// succeeds: alert when it lasts, or when waiting keeps growing.
		if lc, err := a.store.LaneCopyState(r.Context()); err == nil {
			copyErr := 0
			if lc.Err != "" {
				copyErr = 1
			}
			fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_waiting Triggers in the lanes, not yet applied and acknowledged.\n# TYPE orderflow_trigger_lanes_waiting gauge\norderflow_trigger_lanes_waiting %d\n", lc.Waiting)
			fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_copy_error 1 while the server reports an error copying stored triggers into the lanes.\n# TYPE orderflow_trigger_lanes_copy_error gauge\norderflow_trigger_lanes_copy_error %d\n", copyErr)
			idle := -1.0
			if lc.Idle >= 0 {
				idle = lc.Idle.Seconds()
			}
			fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_copy_idle_seconds Seconds since the lanes last heard from their copy of the stored triggers (about every second while it works; -1: never).\n# TYPE orderflow_trigger_lanes_copy_idle_seconds gauge\norderflow_trigger_lanes_copy_idle_seconds %g\n", idle)
			fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_copied_sequence The last stored trigger's sequence the lanes' copy has taken: below orderflow_stream_last_sequence of ORDERFLOW_TRIGGERS, triggers wait to be copied.\n# TYPE orderflow_trigger_lanes_copied_sequence gauge\norderflow_trigger_lanes_copied_sequence %d\n", lc.Copied)
			fmt.Fprintf(w, "# HELP orderflow_trigger_lanes_copy_resume_at The stored triggers' sequence the lanes' copy starts again from should the server lose its place (0: not set).\n# TYPE orderflow_trigger_lanes_copy_resume_at gauge\norderflow_trigger_lanes_copy_resume_at %d\n", lc.ResumeAt)
		}
	}
}

// writeStageMetrics writes the board of every tenant as gauges: how
// many orders are in each stage, active and on hold, and how long the
// active one that has waited longest there has been in it at now, for
// alerts on stuck orders (an order on hold waits on purpose). A stage is
// a workflow and a status that has held an order; there are as many as
// the tenants' definitions make, not as orders.
func writeStageMetrics(w io.Writer, orders *projections.Orders, now time.Time) {
	fmt.Fprint(w, "# HELP orderflow_stage_orders Orders in flight per tenant, workflow and status, active or on hold, as the board counts them.\n# TYPE orderflow_stage_orders gauge\n")
	type cell struct {
		labels string
		oldest float64
	}
	var cells []cell
	for _, tenant := range orders.Tenants() {
		for _, c := range orders.Board(tenant, "") {
			labels := fmt.Sprintf("tenant=%q,workflow=%q,status=%q", tenant, c.WorkflowID, c.Status)
			fmt.Fprintf(w, "orderflow_stage_orders{%s,state=\"active\"} %d\norderflow_stage_orders{%s,state=\"on_hold\"} %d\n",
				labels, c.Count-c.Held, labels, c.Held)
			oldest := 0.0
			if !c.OldestActiveAt.IsZero() {
				oldest = max(now.Sub(c.OldestActiveAt).Seconds(), 0)
			}
			cells = append(cells, cell{labels, oldest})
		}
	}
	fmt.Fprint(w, "# HELP orderflow_stage_oldest_seconds How long the active order that entered a stage first has been in it (0: none active there; orders on hold are left out).\n# TYPE orderflow_stage_oldest_seconds gauge\n")
	for _, c := range cells {
		fmt.Fprintf(w, "orderflow_stage_oldest_seconds{%s} %g\n", c.labels, c.oldest)
	}
}

// whenReady answers 503 until the streams and read models are open.
func (a *App) whenReady(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"title":"Starting","detail":"orderflow is starting","code":"unavailable"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *App) checkReady(context.Context) error {
	if !a.ready.Load() {
		return errors.New("starting: streams not open yet")
	}
	if st := a.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats connection is %s", st)
	}
	if err := a.checkLive(); err != nil {
		return err
	}
	if a.server != nil && !a.server.NATS().JetStreamEnabled() {
		// The server shuts JetStream down when storing a copied message
		// (the trigger lanes' copy of a stored trigger) finds the disk
		// full ("JetStream out of space, will be DISABLED" in its log):
		// nothing can be stored or read until a restart with room.
		return errors.New("JetStream is shut down on the embedded server (its log says why; out of disk space?): restart orderflow once there is room")
	}
	return nil
}

// checkLive reports a condition only a restart ends: a stream of the
// embedded server that failed to write its files (a full disk) refuses
// every write from then on, whatever room is made.
func (a *App) checkLive() error {
	if a.server == nil {
		return nil
	}
	if e := a.server.WriteError(); e != "" {
		return fmt.Errorf("the embedded server could not write a stream's files (%s); its streams refuse writes until orderflow restarts, with room on the disk (or, when it had too many files open, fewer connections: see --max-connections)", e)
	}
	return nil
}

// HTTPAddr is the address the HTTP API listens on (useful with port 0).
func (a *App) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// NATSURL is the URL of the NATS server in use.
func (a *App) NATSURL() string {
	if a.server != nil {
		return a.server.ClientURL()
	}
	return a.Config.NATSURL
}

// connectURL is where orderflow's own connections go (with
// connectOptions).
func (a *App) connectURL() string {
	if a.server != nil {
		return a.server.ConnectURL()
	}
	return a.Config.NATSURL
}

// connectOptions authenticate orderflow's own connections: with the
// --nats-creds file (and check the cluster's TLS with --nats-ca) on a
// cluster, as the embedded server's own user when it
// requires authorization (--nats-config).
func (a *App) connectOptions() []nats.Option {
	opts := natsClient(a.Config.NATSCreds, a.Config.NATSCA)
	if a.server != nil {
		opts = append(opts, a.server.ConnectOptions()...)
	}
	return opts
}

// Store is the app's event store.
func (a *App) Store() *eventstore.Store { return a.store }

// Close stops the HTTP API (letting requests in flight finish), drains the
// NATS connection and shuts the embedded server down. It is safe to call
// on an app that failed to start, and more than once.
func (a *App) Close() error {
	a.ready.Store(false)
	var errs []error
	if a.endClosing != nil {
		a.endClosing()
		a.endClosing = nil
	}
	if a.watchDone != nil {
		<-a.watchDone
		a.watchDone = nil
	}
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		if err := <-a.httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		a.http = nil
	}
	if a.stopDemo != nil {
		a.stopDemo()
		<-a.demoDone
		a.stopDemo = nil
	}
	if a.proc != nil {
		if err := a.proc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("trigger processor: %w", err))
		}
		<-a.procDone
		a.proc = nil
	}
	if a.stopCP != nil {
		a.stopCP()
		<-a.cpDone
		a.stopCP = nil
	}
	if o := a.orders.Swap(nil); o != nil {
		o.Stop()
		switch {
		case a.store == nil || !a.Config.Checkpoints:
		case !a.store.Conn().IsConnected():
			// The next start replays from the last checkpoint instead.
			a.Logger.Warn("final checkpoint skipped: NATS is not reachable")
		case a.server != nil && (!a.server.NATS().JetStreamEnabled() || a.checkLive() != nil):
			// Nothing can be stored until a restart (checkReady says
			// why): trying would only wait out the timeouts below.
			a.Logger.Warn("final checkpoint skipped: the embedded server stores nothing until a restart")
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := o.Checkpoint(ctx, a.store); err != nil {
				a.Logger.Warn("final checkpoint", "err", err)
			}
			if err := a.store.CheckpointIndexes(ctx); err != nil {
				a.Logger.Warn("final load index checkpoint", "err", err)
			}
			cancel()
		}
	}
	if a.defs != nil {
		a.defs.Stop()
		a.defs = nil
	}
	if a.store != nil {
		a.store.Close()
		a.store = nil
	}
	if a.nc != nil {
		a.nc.Close()
		a.nc = nil
	}
	if a.server != nil {
		a.server.Shutdown()
		a.server = nil
	}
	return errors.Join(errs...)
}

// Reload reads the --api-keys file and the --tls-cert and --tls-key
// files again (serve does on SIGHUP, and when they change: see
// watchFiles); what cannot be read stays as it was.
func (a *App) Reload() error {
	return errors.Join(a.ReloadAPIKeys(), a.ReloadTLS())
}

// ReloadTLS reads the HTTP API's certificate and key again: connections
// from then on get the new certificate. Without --tls-cert it does
// nothing.
func (a *App) ReloadTLS() error {
	a.reloads.Lock()
	defer a.reloads.Unlock()
	if a.Config.TLSCert == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(a.Config.TLSCert, a.Config.TLSKey)
	if err != nil {
		return fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	a.cert.Store(&cert)
	a.Logger.Info("HTTP API serves HTTPS", "cert", a.Config.TLSCert, "not_after", cert.Leaf.NotAfter)
	return nil
}

// ReloadAPIKeys reads the --api-keys file again (serve does on SIGHUP and
// when the file changes): a key added there is let in, and one taken out
// is refused, from the next request on. A file that cannot be used
// changes nothing. Without --api-keys it does nothing.
func (a *App) ReloadAPIKeys() error {
	a.reloads.Lock()
	defer a.reloads.Unlock()
	if a.Config.APIKeys == "" {
		return nil
	}
	keys, err := handlers.LoadAPIKeys(a.Config.APIKeys)
	if err != nil {
		return fmt.Errorf("--api-keys: %w", err)
	}
	a.api.SetKeys(keys)
	a.Logger.Info("HTTP API keys in use: /v1 requests need a bearer token", "keys", keys.Len(), "file", a.Config.APIKeys)
	var expired, soon []string
	now := time.Now()
	for _, k := range keys.List() {
		switch {
		case k.ExpiredAt(now):
			expired = append(expired, k.Name)
		case k.ExpiredAt(now.Add(7 * 24 * time.Hour)):
			soon = append(soon, k.Name)
		}
	}
	if len(expired) > 0 {
		a.Logger.Warn("API keys that expired are refused; revoke them or make new ones", "keys", expired)
	}
	if len(soon) > 0 {
		a.Logger.Warn("API keys expire within 7 days", "keys", soon)
	}
	return nil
}

// dial connects to url. A process for a cluster (--nats-url) may start
// before the cluster's servers listen (containers started together, a
// cluster restarting): while no server is reachable it tries again every
// second until one is or ctx ends, and says so once every 30 s. /readyz
// answers 503 meanwhile. Any other failure (a refused password, say) ends
// the start at once.
func (a *App) dial(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	var said time.Time
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil || a.server != nil || !errors.Is(err, nats.ErrNoServers) {
			return nc, err
		}
		if time.Since(said) >= 30*time.Second {
			said = time.Now()
			a.Logger.Warn("no NATS server reachable yet: trying again every second", "nats_url", redactURLs(url), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}
