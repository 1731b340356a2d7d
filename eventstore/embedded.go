package eventstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Sync is the embedded server's durability setting.
//
// With the default (SyncInterval 0, Always false) JetStream acknowledges a
// write once the server has handed it to the operating system and fsyncs
// every 2 minutes: an acknowledged event survives a crash of orderflow but
// may be lost if the whole machine loses power before the next fsync.
// With Always, every write is fsynced before it is acknowledged: an
// acknowledged event survives power loss too, at a cost in write latency.
type Sync struct {
	Interval time.Duration // 0: the server's default (2 minutes)
	Always   bool
}

// ParseSync reads the --sync flag: "default" (or empty), "always", or a
// Go duration such as "1s" for a shorter fsync interval.
func ParseSync(s string) (Sync, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "default":
		return Sync{}, nil
	case "always":
		return Sync{Always: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Sync{}, fmt.Errorf("sync %q: want default, always or a positive duration such as 10s", s)
	}
	return Sync{Interval: d}, nil
}

// ServerConfig configures the embedded nats-server.
type ServerConfig struct {
	// Name is the server's name; required in a cluster, unique per node.
	Name string
	// DataDir holds JetStream's files.
	DataDir string
	// Listen is where NATS clients (worker apps, dashboards) connect,
	// host:port; port 0 picks a free one.
	Listen string
	// Sync is the durability setting.
	Sync Sync
	// ClusterName, ClusterListen and Routes join the server to a NATS
	// cluster (used by the cluster tests); empty for a single server.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// Logger receives the server's log at notice level and above; nil
	// keeps the server quiet.
	Logger *slog.Logger
	// ConfigFile, when set, is a nats-server configuration file whose
	// authorization block (users with passwords or nkeys, each with its
	// permissions) and tls block the client listener then requires; the
	// rest of the file is not used. orderflow's own connections use a user
	// of their own (see ConnectOptions).
	ConfigFile string
	// MaxStore caps the file storage of all streams, in bytes; 0: the
	// server's default (75% of the disk free at start). A message that
	// would go over it is refused.
	MaxStore int64
	// MaxConnections caps the client connections the server holds at
	// once (orderflow's own among them); one more is refused. 0: the
	// server's default (65,536).
	MaxConnections int
}

// Validate reports every problem of the configuration at once.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("nats listen %q: %w", c.Listen, err))
	}
	if c.ClusterName != "" {
		if c.Name == "" {
			errs = append(errs, errors.New("a clustered server needs a name"))
		}
		if _, _, err := splitHostPort(c.ClusterListen); err != nil {
			errs = append(errs, fmt.Errorf("cluster listen %q: %w", c.ClusterListen, err))
		}
	}
	return errors.Join(errs...)
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not 0 to 65535", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Server is an in-process nats-server with JetStream.
type Server struct {
	ns       *server.Server
	running  string   // the RunningFile it made
	lock     *os.File // holds the LockFile's lock (nil where there is none)
	stopped  sync.Once
	internal *server.User // orderflow's own user when a ConfigFile asks for authorization
	tls      bool         // clients must use TLS (a ConfigFile's tls block)
	writeErr *atomic.Pointer[string]
}

// WriteError is the first error the server reported writing a stream's
// files ("no space left on device", say), or "" when none. A stream that
// met one answers no more publishes, whatever room is made, until the
// server restarts; nats-server has no API that says so, only its log,
// which this reads.
func (s *Server) WriteError() string {
	if e := s.writeErr.Load(); e != nil {
		return *e
	}
	return ""
}

// InternalUser is the name of the user orderflow's own connections use
// when the embedded server requires authorization; a ConfigFile may not
// name it.
const InternalUser = "orderflow-internal"

// loadClientConfig takes into opts the client side of a nats-server
// configuration file: its authorization block (users with passwords or
// nkeys, each with permissions), to which it adds orderflow's own user
// with a random password and no limits, and its tls block. It returns
// orderflow's user (nil without authorization) and whether clients must
// use TLS.
func loadClientConfig(path string, opts *server.Options) (internal *server.User, tlsOn bool, err error) {
	fo, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("nats config: %w", err)
	}
	auth := len(fo.Users)+len(fo.Nkeys) > 0
	switch {
	case fo.Username != "" || fo.Authorization != "":
		return nil, false, fmt.Errorf("nats config %s: a single user or token cannot sit beside orderflow's own user; list users (or nkeys) in authorization { users = [...] }", path)
	case len(fo.Accounts) > 0 || len(fo.TrustedOperators) > 0 || fo.AuthCallout != nil:
		return nil, false, fmt.Errorf("nats config %s: accounts, operators and auth callouts are not supported for the embedded server; run a NATS cluster for those and use --nats-url", path)
	case fo.TLSMap:
		return nil, false, fmt.Errorf("nats config %s: verify_and_map is not supported for the embedded server: orderflow's own user has no certificate", path)
	case !auth && fo.TLSConfig == nil:
		return nil, false, fmt.Errorf("nats config %s: neither users nor nkeys in an authorization block, nor a tls block: nothing to use", path)
	}
	for _, u := range fo.Users {
		if u.Username == InternalUser {
			return nil, false, fmt.Errorf("nats config %s: the user name %q is orderflow's own", path, InternalUser)
		}
	}
	if auth {
		internal = &server.User{Username: InternalUser, Password: rand.Text() + rand.Text()}
		opts.Users = append(fo.Users, internal)
		opts.Nkeys = fo.Nkeys
		opts.NoAuthUser = fo.NoAuthUser
	}
	if fo.TLSConfig != nil {
		opts.TLS, opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = true, fo.TLSConfig, fo.TLSVerify, fo.TLSTimeout
		opts.TLSCert, opts.TLSKey, opts.TLSCaCert, opts.TLSPinnedCerts = fo.TLSCert, fo.TLSKey, fo.TLSCaCert, fo.TLSPinnedCerts
		opts.TLSRateLimit, opts.TLSHandshakeFirst, opts.TLSHandshakeFirstFallback = fo.TLSRateLimit, fo.TLSHandshakeFirst, fo.TLSHandshakeFirstFallback
		opts.AllowNonTLS = fo.AllowNonTLS
	}
	return internal, fo.TLSConfig != nil, nil
}

// ConnectURL is the URL orderflow's own connections use with
// ConnectOptions: ClientURL, but never tls:// (with TLS on they are
// in-process and the server asks no TLS of them).
func (s *Server) ConnectURL() string {
	return strings.Replace(s.ClientURL(), "tls://", "nats://", 1)
}

// ConnectOptions are the options orderflow's own connections to the
// server need: its user when the server requires authorization, and an
// in-process connection when clients must use TLS (the server asks no TLS
// of those, and its certificate need not name the loopback address).
func (s *Server) ConnectOptions() []nats.Option {
	var opts []nats.Option
	if s.internal != nil {
		opts = append(opts, nats.UserInfo(s.internal.Username, s.internal.Password))
	}
	if s.tls {
		opts = append(opts, nats.InProcessServer(s.ns))
	}
	return opts
}

// RunningFile is the file an embedded server keeps in its data dir while it
// runs, and removes when it stops cleanly. A run that did not stop cleanly
// (killed, or the machine lost power) leaves it behind.
const RunningFile = "orderflow-running"

// LockFile is the file in a data dir that an embedded server holds an
// exclusive lock on (flock(2)) while it runs, so that a second server
// cannot open the same JetStream files: nats-server itself does not stop
// two servers sharing a store, and both would write it. The kernel drops
// the lock when its process ends, even when killed.
const LockFile = "orderflow.lock"

// ErrDataDirInUse is StartServer's error when another process runs an
// embedded server on the data dir.
var ErrDataDirInUse = errors.New("the data dir is in use")

// forgetLaneCopyPlace removes the lane stream's record of how far its copy
// of ORDERFLOW_TRIGGERS got (nats-server's sources.db), after a run that
// did not stop cleanly. The server writes that record only with the
// stream's full state, every two minutes or so and at a clean stop, so
// after a kill it can be minutes old, and a lane stream the kill left
// empty would copy again every trigger since. Without the record the
// server finds its place in the messages the lane stream holds, or, when
// it holds none, resumes from the copy's resume point (SetLaneCopyResume),
// which the trigger processor keeps within seconds of the copy. Either
// way triggers are copied again, never skipped; just fewer.
func forgetLaneCopyPlace(dataDir string, log *slog.Logger) {
	recs, _ := filepath.Glob(filepath.Join(dataDir, "jetstream", "*", "streams", StreamTriggerLanes, "sources.db"))
	for _, rec := range recs {
		if err := os.Remove(rec); err != nil {
			log.Warn("forgetting the lanes' stale record of their copy", "err", err)
		}
	}
}

// StartServer starts the embedded server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, port, _ := splitHostPort(cfg.Listen)
	opts := &server.Options{
		ServerName:   cfg.Name,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.DataDir,
		SyncInterval: cfg.Sync.Interval,
		SyncAlways:   cfg.Sync.Always,
		NoSigs:       true, // orderflow handles signals and shuts the server down itself
		MaxPayload:   2 << 20,
	}
	if cfg.MaxStore > 0 {
		opts.JetStreamMaxStore = cfg.MaxStore
	}
	if cfg.MaxConnections > 0 {
		opts.MaxConn = cfg.MaxConnections
	}
	var internal *server.User
	var tlsOn bool
	if cfg.ConfigFile != "" {
		var err error
		if internal, tlsOn, err = loadClientConfig(cfg.ConfigFile, opts); err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
	}
	if cfg.ClusterName != "" {
		chost, cport, _ := splitHostPort(cfg.ClusterListen)
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: chost, Port: cport}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("embedded nats: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	unlock := func() {
		if lock != nil {
			_ = lock.Close()
		}
	}
	running := filepath.Join(cfg.DataDir, RunningFile)
	if _, err := os.Stat(running); err == nil && cfg.ClusterName == "" {
		log.Warn("the last run on this data dir did not stop cleanly: the trigger lanes' copy resumes from its resume point, or finds its place in the lanes")
		forgetLaneCopyPlace(cfg.DataDir, log)
	}
	if err := os.WriteFile(running, fmt.Appendf(nil, "pid %d\n", os.Getpid()), 0o640); err != nil {
		unlock()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		_ = os.Remove(running)
		unlock()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	logger := &natsLogger{l: log.With("component", "nats-server"), writeErr: &atomic.Pointer[string]{}, fatal: &atomic.Pointer[string]{}}
	ns.SetLoggerV2(logger, false, false, false)
	go ns.Start()
	if err := waitReady(ns, logger.fatal, 30*time.Second); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = os.Remove(running)
		unlock()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	return &Server{ns: ns, running: running, lock: lock, internal: internal, tls: tlsOn, writeErr: logger.writeErr}, nil
}

// waitReady waits until the server accepts connections, for at most
// within, and no longer once it reported a fatal error: a port already
// taken, say, which nats-server logs and then runs on without a listener.
func waitReady(ns *server.Server, fatal *atomic.Pointer[string], within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); {
		if ns.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		if msg := fatal.Load(); msg != nil {
			return errors.New(*msg)
		}
	}
	return fmt.Errorf("not ready for connections after %s", within)
}

// ClientURL is the URL clients use to connect.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// NATS exposes the underlying server, for tests that inspect it.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server, flushing JetStream's files, and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	// A clean stop; once only, so that a second Shutdown cannot remove
	// the file of a server started on the data dir since. The lock goes
	// last: the next server may start once it is released.
	s.stopped.Do(func() {
		_ = os.Remove(s.running)
		if s.lock != nil {
			_ = s.lock.Close()
		}
	})
}

type natsLogger struct {
	l        *slog.Logger
	writeErr *atomic.Pointer[string] // the first critical write error logged
	fatal    *atomic.Pointer[string] // the first fatal error logged
}

func (n *natsLogger) Noticef(f string, v ...any) { n.l.Debug(fmt.Sprintf(f, v...)) }
func (n *natsLogger) Warnf(f string, v ...any)   { n.l.Warn(fmt.Sprintf(f, v...)) }
func (n *natsLogger) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	n.fatal.CompareAndSwap(nil, &msg)
	n.l.Error(msg)
}
func (n *natsLogger) Errorf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	// "JetStream stream '%s > %s' critical write error: %v", and the file
	// store's "Critical write error: %v".
	if strings.Contains(strings.ToLower(f), "critical write error") {
		n.writeErr.CompareAndSwap(nil, &msg)
	}
	n.l.Error(msg)
}
func (n *natsLogger) Debugf(f string, v ...any) { n.l.Debug(fmt.Sprintf(f, v...)) }
func (n *natsLogger) Tracef(f string, v ...any) { n.l.Debug(fmt.Sprintf(f, v...)) }
