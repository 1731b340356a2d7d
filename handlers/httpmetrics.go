package handlers

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// routeStats counts one route's answers by status code, and the time they
// took.
type routeStats struct {
	mu      sync.Mutex
	codes   map[int]uint64
	seconds float64
	replays uint64 // answers to resends of a request with an Idempotency-Key

	latency histogram // the time answers took; not kept for the event feed, which lasts as long as its reader
}

// httpStats are the API's request counts and times, by route pattern (a
// fixed set, so the metrics cannot grow with ids in paths).
type httpStats struct {
	routes map[string]*routeStats
}

func newHTTPStats(patterns []string) *httpStats {
	s := &httpStats{routes: make(map[string]*routeStats, len(patterns))}
	for _, p := range patterns {
		s.routes[p] = &routeStats{codes: map[int]uint64{}}
	}
	return s
}

// statusWriter remembers the status a handler answered with. It passes
// Flush on (the event feed needs it) and unwraps for
// http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// feedRoute is the event feed's route: its requests last as long as
// their reader, so no latency is kept for them.
const feedRoute = "GET /v1/events"

// observe wraps a route's handler: it counts the answer under pattern,
// with the time it took, and logs it at debug level.
func (api *API) observe(pattern string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		took := time.Since(start)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		if rs := api.stats().routes[pattern]; rs != nil {
			if pattern != feedRoute {
				rs.latency.observe(took)
			}
			rs.mu.Lock()
			rs.codes[sw.status]++
			rs.seconds += took.Seconds()
			if sw.Header().Get("Idempotent-Replayed") == "true" {
				rs.replays++
			}
			rs.mu.Unlock()
		}
		api.log().Debug("http request", "route", pattern, "path", r.URL.Path, "status", sw.status, "took", took)
	}
}

func (api *API) stats() *httpStats {
	api.statsOnce.Do(func() {
		var patterns []string
		for _, rt := range api.routes() {
			patterns = append(patterns, rt.pattern)
		}
		api.httpStats = newHTTPStats(patterns)
	})
	return api.httpStats
}

// WriteMetrics writes the API's request counts by route and status code,
// and the seconds they took, as Prometheus text.
func (api *API) WriteMetrics(w io.Writer) {
	type row struct {
		rs      *routeStats
		route   string
		codes   []int
		counts  map[int]uint64
		seconds float64
		replays uint64
	}
	var rows []row
	for route, rs := range api.stats().routes {
		rs.mu.Lock()
		r := row{rs: rs, route: route, counts: maps.Clone(rs.codes), seconds: rs.seconds, replays: rs.replays}
		rs.mu.Unlock()
		if len(r.counts) > 0 {
			r.codes = slices.Sorted(maps.Keys(r.counts))
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.route, b.route) })
	fmt.Fprint(w, "# HELP orderflow_http_requests_total HTTP API requests answered, by route and status code.\n# TYPE orderflow_http_requests_total counter\n")
	for _, r := range rows {
		for _, c := range r.codes {
			fmt.Fprintf(w, "orderflow_http_requests_total{route=%q,code=\"%d\"} %d\n", r.route, c, r.counts[c])
		}
	}
	fmt.Fprint(w, "# HELP orderflow_http_request_seconds_total Seconds spent answering HTTP API requests, by route (an event feed counts when it ends).\n# TYPE orderflow_http_request_seconds_total counter\n")
	for _, r := range rows {
		fmt.Fprintf(w, "orderflow_http_request_seconds_total{route=%q} %g\n", r.route, r.seconds)
	}
	fmt.Fprint(w, "# HELP orderflow_http_request_duration_seconds How long HTTP API requests took to answer, by route (the event feed, which lasts as long as its reader, is left out).\n# TYPE orderflow_http_request_duration_seconds histogram\n")
	for _, r := range rows {
		if r.route != feedRoute {
			r.rs.latency.write(w, "orderflow_http_request_duration_seconds", fmt.Sprintf("route=%q,", r.route))
		}
	}
	fmt.Fprint(w, "# HELP orderflow_http_idempotent_replays_total Requests answered as resends of an earlier one with the same Idempotency-Key (nothing recorded), by route: clients that lost answers, or sent too soon again.\n# TYPE orderflow_http_idempotent_replays_total counter\n")
	for _, r := range rows {
		if keyedRoutes[r.route].replays {
			fmt.Fprintf(w, "orderflow_http_idempotent_replays_total{route=%q} %d\n", r.route, r.replays)
		}
	}
}
