package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// Config is everything `orderflow serve` can be told. Every field has a
// flag, and every flag also reads ORDERFLOW_<NAME> (upper case, '-' as
// '_') when it is not given on the command line.
type Config struct {
	// DataDir holds the embedded server's JetStream files.
	DataDir string
	// NATSListen is where the embedded server accepts NATS clients.
	NATSListen string
	// NATSURL, when set, connects to an existing NATS (cluster) instead of
	// starting the embedded server.
	NATSURL string
	// NATSConfig is a nats-server configuration file whose authorization
	// block (users or nkeys, with permissions) and tls block the embedded
	// server's listener then requires (eventstore.ServerConfig.ConfigFile).
	NATSConfig string
	// NATSCA is a PEM file of the certificate authorities a --nats-url
	// cluster's TLS certificates are checked against (empty: the system's).
	NATSCA string
	// NATSCreds is a NATS credentials file (a user JWT and its seed) for
	// a cluster that requires one; only with NATSURL.
	NATSCreds string
	// HTTP is the HTTP API's listen address.
	HTTP string
	// Sync is the embedded server's fsync policy: default, always or an
	// interval (see eventstore.Sync).
	Sync string
	// Replicas is each stream's replica count (3 on a three-node cluster).
	Replicas int
	// DuplicateWindow is JetStream's Nats-Msg-Id deduplication window.
	DuplicateWindow time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is text (key=value pairs) or json (an object a line).
	LogFormat string
	// Lanes is the number of trigger lanes; every process sharing one
	// cluster must use the same number.
	Lanes int
	// Checkpoints saves the orders read model and the store's load index
	// to the object store and restores them at start-up (off: every start
	// replays the streams).
	Checkpoints bool
	// Demo seeds the worked example into an empty store and runs
	// simulated worker apps.
	Demo bool
	// AckWait is how long a trigger lane waits for a process to finish a
	// trigger before handing it to another.
	AckWait time.Duration
	// Heartbeat is how often the trigger processor tells the others it is
	// alive (handlers.ProcessorConfig.Heartbeat); every process should
	// use the same.
	Heartbeat time.Duration
	// LaneWindow is how many unacknowledged triggers the process reading
	// a lane may hold; every process must use the same.
	LaneWindow int
	// APIKeys, when set, is a keys file (handlers.ParseAPIKeys): every
	// /v1 request then needs a bearer token of one of its keys, and acts
	// for that key's tenant. Empty: no authentication, default tenant.
	APIKeys string
	// TLSCert and TLSKey, when set, are PEM files of the HTTP API's
	// certificate (chain) and key: the API then serves HTTPS only.
	TLSCert, TLSKey string
	// CORSOrigins lets web pages of these origins (comma-separated, or
	// "*") call the HTTP API from a browser (handlers.CORS).
	CORSOrigins string
	// OrderCache is how many orders each process keeps in memory, as they
	// stand, to decide commands and triggers and answer reads without
	// reading their histories from the store; 0: none.
	OrderCache int
	// RateLimit is how many requests a second each API key may send
	// (handlers.API.SetRateLimit); 0: no limit.
	RateLimit float64
	// ReloadInterval is how often the APIKeys, TLSCert and TLSKey files
	// are checked for changes, which are then read again; 0: only on
	// SIGHUP.
	ReloadInterval time.Duration
	// MaxFeeds is how many event feeds (GET /v1/events) the process
	// serves at once; one more is answered 503 (handlers.API.MaxFeeds).
	MaxFeeds int
	// MaxFeedsPerKey is how many of them one API key may hold open; one
	// more is answered 429 (handlers.API.MaxFeedsPerKey).
	MaxFeedsPerKey int
	// StageMetrics has GET /metrics carry the board as gauges, a few
	// series per tenant, workflow and status (off: a store of many
	// tenants keeps its scrapes small; the board stays at GET /v1/board).
	StageMetrics bool
	// MaxConnections is how many connections the HTTP API holds open at
	// once; more wait to be accepted. NATSMaxConnections is how many
	// client connections the embedded server holds; more are refused.
	// 0: a quarter of the process's open-file limit, at most 4,096
	// (connectionShare).
	MaxConnections, NATSMaxConnections int
	// MaxStore caps the file storage the embedded server's streams may
	// use, in bytes; 0: the server's default, 75% of the disk free at
	// start. Appends beyond it are refused (nothing accepted is lost).
	MaxStore int64
}

// DefaultConfig is the configuration of a plain `orderflow serve`.
func DefaultConfig() Config {
	return Config{
		DataDir:         "./data",
		NATSListen:      "127.0.0.1:4222",
		HTTP:            "127.0.0.1:8080",
		Sync:            "default",
		Replicas:        1,
		DuplicateWindow: 2 * time.Minute,
		LogLevel:        "info",
		LogFormat:       "text",
		Lanes:           16,
		Checkpoints:     true,
		AckWait:         10 * time.Second,
		Heartbeat:       time.Second,
		LaneWindow:      256,
		ReloadInterval:  5 * time.Second,
		OrderCache:      handlers.DefaultOrderCacheSize,
		MaxFeeds:        handlers.DefaultMaxFeeds,
		MaxFeedsPerKey:  handlers.DefaultMaxFeedsPerKey,
		StageMetrics:    true,
	}
}

// RegisterFlags binds c's fields to fs, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the embedded JetStream server's files")
	fs.StringVar(&c.NATSListen, "nats-listen", c.NATSListen, "address where the embedded server accepts NATS clients (worker apps, dashboards)")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "connect to this NATS server or cluster (comma-separated URLs) instead of starting the embedded one")
	fs.StringVar(&c.NATSConfig, "nats-config", c.NATSConfig, "nats-server configuration file whose authorization block (users or nkeys, each with permissions) and tls block the embedded server's NATS listener then requires; empty: neither")
	fs.StringVar(&c.NATSCA, "nats-ca", c.NATSCA, "PEM file of the CAs a tls:// --nats-url cluster's certificates are checked against; empty: the system's")
	fs.StringVar(&c.NATSCreds, "nats-creds", c.NATSCreds, "NATS credentials file (user JWT and seed) for a --nats-url cluster that requires one")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "HTTP API listen address")
	fs.StringVar(&c.Sync, "sync", c.Sync, "embedded server fsync policy: default (fsync every 2m; an ack means the OS has the write), always (fsync before every ack), or an interval such as 1s")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "replicas of each stream (1 embedded, 3 on a three-node cluster)")
	fs.DurationVar(&c.DuplicateWindow, "duplicate-window", c.DuplicateWindow, "JetStream deduplication window for event and trigger ids")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log lines as text (key=value pairs) or json (one object a line, for a log collector)")
	fs.BoolVar(&c.Checkpoints, "checkpoints", c.Checkpoints, "checkpoint the orders read model and the load index and restore them at start-up (off: replay the streams at every start)")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "seed the worked example into an empty store and run simulated worker apps")
	fs.IntVar(&c.Lanes, "lanes", c.Lanes, "trigger lanes (triggers of one order share a lane and take effect in order; lanes run in parallel); the same on every process")
	fs.DurationVar(&c.AckWait, "ack-wait", c.AckWait, "how long a trigger lane waits for a process before handing the trigger to another; the same on every process")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "how often the trigger processor tells the others it is alive; one silent for three of its heartbeats is taken for gone and its lanes go to the others (shorter: lanes move on sooner after a crash; longer: a busy machine is less often taken for gone); 100ms to 5s, the same on every process")
	fs.StringVar(&c.APIKeys, "api-keys", c.APIKeys, "file of the HTTP API's keys (made by 'orderflow apikey'): every /v1 request then needs one's bearer token and acts for its tenant; empty: no authentication, default tenant")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) for the HTTP API; with --tls-key it serves HTTPS only")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.CORSOrigins, "cors-origins", c.CORSOrigins, "web page origins allowed to call the HTTP API from a browser, comma-separated (https://board.example.com), or *; empty: none")
	fs.IntVar(&c.OrderCache, "order-cache", c.OrderCache, "orders in progress each process keeps in memory (the most recently used) to decide triggers and commands and answer reads without reading their histories from the store, completed ones only in room those do not need (a quarter at most); 0: none")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "requests a second each API key may send (bursts of as many), answered 429 with Retry-After beyond; needs --api-keys; 0: no limit")
	fs.DurationVar(&c.ReloadInterval, "reload-interval", c.ReloadInterval, "how often the --api-keys, --tls-cert and --tls-key files are checked for changes and read again when changed (SIGHUP reads them at once); 0: only on SIGHUP")
	fs.Var((*byteSize)(&c.MaxStore), "max-store", "most file storage the embedded server's streams may use (512MiB, 20GB, …); appends beyond it are refused; 0: 75% of the disk free at start")
	fs.IntVar(&c.MaxFeeds, "max-feeds", c.MaxFeeds, "event feeds (GET /v1/events) served at once; one more is answered 503 (each takes a connection and the CPU to write what it follows; the feeds of one tenant share one consumer on ORDERFLOW_ORDERS, and JetStream allows a stream 1,000 by default, for all processes together)")
	fs.BoolVar(&c.StageMetrics, "stage-metrics", c.StageMetrics, "GET /metrics carries the board: orderflow_stage_orders and orderflow_stage_oldest_seconds for each tenant, workflow and status (false: left out, for a store of many tenants; 1,000 tenants of the worked example made 21,021 series)")
	fs.IntVar(&c.MaxFeedsPerKey, "max-feeds-per-key", c.MaxFeedsPerKey, "event feeds one API key may hold open at once (with --api-keys); one more is answered 429")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "HTTP connections held open at once; more wait to be accepted until one closes; 0: a quarter of the process's open-file limit, at most 4096 (so that connections never take the files the embedded server's streams need)")
	fs.IntVar(&c.NATSMaxConnections, "nats-max-connections", c.NATSMaxConnections, "NATS client connections the embedded server holds at once; more are refused; 0: a quarter of the process's open-file limit, at most 4096")
	fs.IntVar(&c.LaneWindow, "lane-window", c.LaneWindow, "unacknowledged triggers a process may hold per lane (different orders run in parallel, one order's triggers in turn); the same on every process")
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.NATSURL == "" {
		if c.DataDir == "" {
			errs = append(errs, errors.New("--data-dir is required for the embedded server"))
		}
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			errs = append(errs, fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err))
		} else if sameListener(c.HTTP, c.NATSListen) {
			errs = append(errs, fmt.Errorf("--http %s and --nats-listen %s take the same port: give each its own", c.HTTP, c.NATSListen))
		}
		if _, err := eventstore.ParseSync(c.Sync); err != nil {
			errs = append(errs, fmt.Errorf("--sync: %w", err))
		}
	}
	if c.MaxStore < 0 {
		errs = append(errs, fmt.Errorf("--max-store %d: must be 0 (the server's default) or positive", c.MaxStore))
	} else if c.MaxStore > 0 && c.NATSURL != "" {
		errs = append(errs, errors.New("--max-store is for the embedded server; a --nats-url cluster keeps its own limits"))
	}
	if c.NATSConfig != "" && c.NATSURL != "" {
		errs = append(errs, errors.New("--nats-config is for the embedded server; a --nats-url cluster keeps its own authorization"))
	}
	if c.NATSCA != "" {
		if c.NATSURL == "" {
			errs = append(errs, errors.New("--nats-ca needs --nats-url: orderflow's own connections to the embedded server need no CA"))
		}
		if err := checkCA(c.NATSCA); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NATSCreds != "" {
		if c.NATSURL == "" {
			errs = append(errs, errors.New("--nats-creds needs --nats-url: the embedded server takes no credentials"))
		}
		if err := checkCreds(c.NATSCreds); err != nil {
			errs = append(errs, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		errs = append(errs, fmt.Errorf("--http %q: %w", c.HTTP, err))
	}
	errs = append(errs, checkPipeline(c.Replicas, c.Lanes, c.LaneWindow, c.NATSURL == "")...)
	if c.DuplicateWindow <= 0 {
		errs = append(errs, fmt.Errorf("--duplicate-window %s: must be positive", c.DuplicateWindow))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("--ack-wait %s: must be at least 1s", c.AckWait))
	}
	if c.Heartbeat < handlers.MinHeartbeat || c.Heartbeat > handlers.MaxHeartbeat {
		errs = append(errs, fmt.Errorf("--heartbeat %s: must be from %s to %s", c.Heartbeat, handlers.MinHeartbeat, handlers.MaxHeartbeat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.MaxFeeds < 1 {
		errs = append(errs, fmt.Errorf("--max-feeds %d: must be 1 or more", c.MaxFeeds))
	}
	if c.MaxFeedsPerKey < 1 {
		errs = append(errs, fmt.Errorf("--max-feeds-per-key %d: must be 1 or more", c.MaxFeedsPerKey))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("--max-connections %d: must be 0 (from the open-file limit) or more", c.MaxConnections))
	}
	if c.NATSMaxConnections < 0 {
		errs = append(errs, fmt.Errorf("--nats-max-connections %d: must be 0 (from the open-file limit) or more", c.NATSMaxConnections))
	} else if c.NATSMaxConnections > 0 && c.NATSURL != "" {
		errs = append(errs, errors.New("--nats-max-connections is for the embedded server; a --nats-url cluster keeps its own limits"))
	}
	if c.OrderCache < 0 {
		errs = append(errs, fmt.Errorf("--order-cache %d: must be 0 (none) or more", c.OrderCache))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, fmt.Errorf("--rate-limit %g: must be 0 (no limit) or positive", c.RateLimit))
	} else if c.RateLimit > 0 && c.APIKeys == "" {
		errs = append(errs, errors.New("--rate-limit needs --api-keys: it limits each key"))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("--reload-interval %s: must be 0 (off) or positive", c.ReloadInterval))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if _, err := handlers.ParseOrigins(c.CORSOrigins); err != nil {
		errs = append(errs, fmt.Errorf("--cors-origins: %w", err))
	}
	return errors.Join(errs...)
}

// sameListener reports whether two listen addresses would take the same
// port: the same port number (not 0, which picks a free one) on the same
// host, or with either on every interface.
func sameListener(a, b string) bool {
	ah, ap, aerr := net.SplitHostPort(a)
	bh, bp, berr := net.SplitHostPort(b)
	if aerr != nil || berr != nil || ap != bp || ap == "0" {
		return false
	}
	every := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ah == bh || every(ah) || every(bh)
}

// checkReplicas checks --replicas: 1 to 5, and 1 for the embedded
// server, which is one node (it would refuse each stream itself).
func checkReplicas(replicas int, embedded bool) error {
	switch {
	case replicas < 1 || replicas > 5:
		return fmt.Errorf("--replicas %d: must be 1 to 5", replicas)
	case replicas > 1 && embedded:
		return fmt.Errorf("--replicas %d needs --nats-url: the embedded server is one node and keeps one copy of each stream", replicas)
	}
	return nil
}

// checkPipeline checks --replicas, --lanes and --lane-window, which serve
// and bench share.
func checkPipeline(replicas, lanes, window int, embedded bool) []error {
	var errs []error
	if err := checkReplicas(replicas, embedded); err != nil {
		errs = append(errs, err)
	}
	if lanes < 1 || lanes > 1024 {
		errs = append(errs, fmt.Errorf("--lanes %d: must be 1 to 1024", lanes))
	}
	if window < 1 || window > 10000 {
		errs = append(errs, fmt.Errorf("--lane-window %d: must be 1 to 10000", window))
	}
	return errs
}

// byteSize is a flag of a number of bytes, with an optional unit: B, KB,
// MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		factor int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, factor := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, factor = strings.TrimSpace(n), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/factor {
		return fmt.Errorf("%q: want a number of bytes such as 536870912, 512MiB or 20GB", s)
	}
	*b = byteSize(n * factor)
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger makes serve's logger: lines of format (text or json, as
// Validate checks) at level, to w.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		// Durations as text ("1.5s"), as the text lines show them, not
		// as nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// envPrefix is the prefix of the environment variables that back flags.
const envPrefix = "ORDERFLOW_"

// EnvName is the environment variable that backs a flag.
func EnvName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagGiven reports whether the flag name was given, on the command line
// or by its ORDERFLOW_ variable (parseFlags sets those): a flag's zero
// value may be a value too (--step 0, --after 0).
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// parseFlags parses args (flags may come before, between or after the
// positional arguments, which fs.Args() then holds), then fills every flag
// not given on the command line from its ORDERFLOW_* variable (the command
// line wins).
func parseFlags(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return wantedValue(fs, err)
		}
		if fs.NArg() == 0 {
			break
		}
		if err := boolGivenApart(fs, args[:len(args)-fs.NArg()], fs.Arg(0)); err != nil {
			return err
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				if msg := err.Error(); msg == "parse error" || msg == "value out of range" { // the flag package's own words
					if want := valueWanted(f); want != "" {
						err = fmt.Errorf("want %s", want)
					}
				}
				errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	var names []string // the environment's, as lookup sees it
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "" {
			if _, ok := lookup(k); ok {
				names = append(names, k)
			}
		}
	}
	for _, hint := range envHints(names, fs) {
		fmt.Fprintf(fs.Output(), "orderflow %s: %s\n", fs.Name(), hint)
	}
	return errors.Join(errs...)
}

// flagValueError is how the flag package says a value did not parse:
// `invalid value "10" for flag -ack-wait: parse error`.
var flagValueError = regexp.MustCompile(`^invalid value ("[^"]*") for flag -([^:]+): (parse error|value out of range)$`)

// wantedValue adds to the flag package's "parse error" what the flag
// takes (a duration such as 10s, a whole number).
func wantedValue(fs *flag.FlagSet, err error) error {
	m := flagValueError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	if want := valueWanted(f); want != "" {
		return fmt.Errorf("--%s %s: want %s", m[2], m[1], want)
	}
	return err
}

// valueWanted says what a flag of one of the flag package's own kinds
// takes; "" for others, whose errors say it themselves.
func valueWanted(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return "a duration such as 10s, 2m or 1h30m"
	case int, int64:
		return "a whole number"
	case uint, uint64:
		return "a whole number, 0 or more"
	case bool:
		return "true or false"
	}
	return ""
}

// boolGivenApart refuses a true-or-false flag followed by true or false
// as a word of its own (--demo false): the flag package takes the flag
// as true and the word as an argument, so the opposite of what was meant
// would run. parsed are the arguments before word.
func boolGivenApart(fs *flag.FlagSet, parsed []string, word string) error {
	if len(parsed) == 0 {
		return nil
	}
	last := parsed[len(parsed)-1]
	name := strings.TrimLeft(last, "-")
	if name == last || strings.Contains(name, "=") {
		return nil
	}
	f := fs.Lookup(name)
	if f == nil {
		return nil
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
		return nil
	}
	if w := strings.ToLower(word); w != "true" && w != "false" { // "1" may well be an order's id
		return nil
	}
	return fmt.Errorf("%s %s: a true-or-false flag takes its value after '=' (%s=%s); alone it means true", last, word, last, word)
}

// envHints points out the ORDERFLOW_ variables among names that no flag
// of fs reads but that nearly name one of its flags' variables
// (ORDERFLOW_NATSURL, ORDERFLOW_data_dir): set by mistake, they would
// otherwise be ignored without a word, and orderflow would run with the
// flag's default (an embedded server instead of the cluster, say). A
// variable far from every flag's is left alone: it may be another
// command's (ORDERFLOW_SERVER where serve runs).
func envHints(names []string, fs *flag.FlagSet) []string {
	var hints []string
	for _, name := range names {
		rest, ok := strings.CutPrefix(strings.ToUpper(name), envPrefix)
		if !ok || rest == "" {
			continue
		}
		if slices.ContainsFunc(allFlagNames, func(f string) bool { return EnvName(f) == name }) {
			continue // another command's (ORDERFLOW_ORDERS of bench, where events runs)
		}
		best, bestDist := "", len(rest)
		fs.VisitAll(func(f *flag.Flag) {
			if bestDist < 0 {
				return
			}
			if EnvName(f.Name) == name {
				bestDist = -1 // read
				return
			}
			want := strings.TrimPrefix(EnvName(f.Name), envPrefix)
			if d := editDistance(rest, want); d < bestDist {
				best, bestDist = f.Name, d
			}
		})
		if bestDist < 0 || bestDist > 2 || 3*bestDist > len(rest) { // far from every flag, best is "" and this holds
			continue
		}
		hints = append(hints, fmt.Sprintf("%s is set, but no flag reads it: did you mean %s (--%s)?", name, EnvName(best), best))
	}
	return hints
}

// allFlagNames are the flags of every command (TestMainUsage checks them
// against each command's -h): a variable that one of them reads is no
// misspelling, even when it is close to a flag of the command running.
var allFlagNames = []string{
	"ack-wait", "actor", "after", "api-keys", "as-of", "checkpoints", "cors-origins", "cpuprofile", "cursor", "data-dir", "definitions", "demo",
	"dry-run", "duplicate-window", "duration", "expires-in", "file", "fulfillment", "heartbeat", "http", "id", "in", "json", "key", "keys-file",
	"lane-window", "lanes", "limit", "log-format", "log-level", "max-connections", "max-feeds", "max-feeds-per-key", "max-store", "memprofile", "name",
	"nats-ca", "nats-config", "nats-creds", "nats-listen", "nats-max-connections", "nats-url", "note", "oldest", "order", "order-cache", "orders", "out", "parallel", "prune",
	"rate-limit", "rates", "reason", "reload-interval", "replicas", "role", "server", "server-ca", "since", "stage-metrics", "state", "status", "step",
	"streams", "sync", "tenant", "tls-cert", "tls-key", "to-version", "token", "trigger-id", "triggers", "type", "types",
	"until", "worker", "workflow",
}

// editDistance is the Levenshtein distance between two short names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// noArguments refuses positional arguments to a command that takes none,
// so a stray word (a misspelt flag without its dashes, say) is not
// silently ignored.
func noArguments(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("takes no arguments, got %q", fs.Args())
	}
	return nil
}

// redactURLs hides the secrets in NATS URLs (comma-separated), a password
// or a token given as the user, for logs and error messages: --nats-url
// may carry credentials (nats://user:password@host:4222,
// nats://token@host:4222).
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		at := strings.LastIndexByte(p, '@')
		if at < 0 {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			scheme, _, _ := strings.Cut(p, "://")
			parts[i] = scheme + "://xxxxx" + p[at:]
		case u.User == nil:
		default:
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// checkCreds reports a credentials file that cannot be read, before any
// connection is tried (nats.go would only say so when connecting).
func checkCreds(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--nats-creds: %w", err)
	}
	return f.Close()
}

// checkCA reports a --nats-ca file that holds no PEM certificate, before
// any connection is tried.
func checkCA(path string) error {
	_, err := loadCAs(path, "--nats-ca")
	return err
}

// loadCAs reads a PEM file of certificate authorities (given with flag).
func loadCAs(path, flag string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", flag, path)
	}
	return roots, nil
}

// notNATS adds to a connection that timed out waiting for the server's
// first line what is likely wrong: an address that takes connections
// but speaks no NATS, such as orderflow's own HTTP address.
func notNATS(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: nothing there spoke NATS in time (is it a NATS server's client port, not an HTTP one such as serve's --http?)", err)
	}
	return err
}

// natsClient is the connection options for a --nats-url cluster: the
// credentials file that authenticates, and the CA file that its TLS
// certificates are checked against (none when empty; the system's CAs).
func natsClient(creds, ca string) []nats.Option {
	var opts []nats.Option
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	return opts
}
