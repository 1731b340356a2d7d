package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/orderflow/orderflow/eventstore"
)

// processStart is when this process started, for process_start_time_seconds.
var processStart = time.Now()

// runtimeSamples are the Go runtime's figures /metrics reports, under the
// names Prometheus' Go collector gives them, so dashboards made for any Go
// service read them.
var runtimeSamples = []struct {
	name, help, kind, runtime string
}{
	{"go_goroutines", "Goroutines that currently exist.", "gauge", "/sched/goroutines:goroutines"},
	{"go_memstats_heap_alloc_bytes", "Bytes of heap objects allocated and not yet freed.", "gauge", "/memory/classes/heap/objects:bytes"},
	{"go_memstats_sys_bytes", "Bytes of memory the Go runtime has from the operating system.", "gauge", "/memory/classes/total:bytes"},
	{"go_memstats_next_gc_bytes", "Heap size at which the next garbage collection starts.", "gauge", "/gc/heap/goal:bytes"},
	{"go_gc_cycles_total", "Garbage collections completed.", "counter", "/gc/cycles/total:gc-cycles"},
}

// writeProcessMetrics writes what the process is (version) and the Go
// runtime's memory, goroutine and garbage-collection figures. The embedded
// NATS server runs in this process, so they cover it too.
func writeProcessMetrics(w io.Writer) {
	version, revision := buildVersion()
	fmt.Fprintf(w, "# HELP orderflow_build_info The orderflow build: its module version, source revision and Go version.\n# TYPE orderflow_build_info gauge\norderflow_build_info{version=%q,revision=%q,go_version=%q} 1\n",
		version, revision, runtime.Version())
	fmt.Fprintf(w, "# HELP process_start_time_seconds When the process started, in seconds since the Unix epoch.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %d\n", processStart.Unix())
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, s := range runtimeSamples {
		samples[i].Name = s.runtime
	}
	metrics.Read(samples)
	for i, s := range runtimeSamples {
		var v uint64
		switch samples[i].Value.Kind() {
		case metrics.KindUint64:
			v = samples[i].Value.Uint64()
		default:
			continue // not known to this Go version
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", s.name, s.help, s.name, s.kind, s.name, v)
	}
}

// buildVersion is the main module's version and the source revision it
// was built from, as the Go toolchain recorded them ("unknown" when it did
// not: go run records no revision).
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return version, revision
}

// writeStorageMetrics writes what each stream holds and how much file
// storage the streams use against the limit: an append that would go over
// it is refused, so alert well before.
func (a *App) writeStorageMetrics(ctx context.Context, w io.Writer) {
	streams := []string{eventstore.StreamDefinitions, eventstore.StreamOrders, eventstore.StreamTriggers, eventstore.StreamDeadLetter}
	stats := make(map[string]eventstore.StreamStats, len(streams))
	for _, s := range streams {
		if st, err := a.store.StreamStats(ctx, s); err == nil {
			stats[s] = st
		}
	}
	fmt.Fprint(w, "# HELP orderflow_stream_last_sequence The last sequence of each stream.\n# TYPE orderflow_stream_last_sequence gauge\n")
	// The dead-letter stream's last sequence is how many triggers were ever
	// put aside (it denies deletes): alert when it grows.
	for _, s := range streams {
		if st, ok := stats[s]; ok {
			fmt.Fprintf(w, "orderflow_stream_last_sequence{stream=%q} %d\n", s, st.LastSeq)
		}
	}
	fmt.Fprint(w, "# HELP orderflow_stream_messages Messages each stream holds.\n# TYPE orderflow_stream_messages gauge\n")
	for _, s := range streams {
		if st, ok := stats[s]; ok {
			fmt.Fprintf(w, "orderflow_stream_messages{stream=%q} %d\n", s, st.Messages)
		}
	}
	fmt.Fprint(w, "# HELP orderflow_stream_bytes Bytes each stream holds on the server.\n# TYPE orderflow_stream_bytes gauge\n")
	for _, s := range streams {
		if st, ok := stats[s]; ok {
			fmt.Fprintf(w, "orderflow_stream_bytes{stream=%q} %d\n", s, st.Bytes)
		}
	}
	used, limit, err := a.store.Storage(ctx)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "# HELP orderflow_jetstream_storage_bytes Bytes of file storage the account's streams use on the server.\n# TYPE orderflow_jetstream_storage_bytes gauge\norderflow_jetstream_storage_bytes %d\n", used)
	if limit < 0 && a.server != nil {
		// No account limit: the embedded server's own limit applies (by
		// default 75% of the disk that was free when it started).
		limit = a.server.NATS().JetStreamConfig().MaxStore
	}
	if limit >= 0 {
		fmt.Fprintf(w, "# HELP orderflow_jetstream_storage_limit_bytes The most file storage the streams may use; appends beyond it are refused.\n# TYPE orderflow_jetstream_storage_limit_bytes gauge\norderflow_jetstream_storage_limit_bytes %d\n", limit)
	}
}
