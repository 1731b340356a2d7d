package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// statusCmd: orderflow status, one running orderflow's health at a
// glance, read from its /metrics.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("status", "Usage: orderflow status [flags]\n\n"+
		"Print how a running orderflow stands, from its /metrics: readiness, the streams and storage, the read models, the trigger lanes, latencies. "+
		"Exit 1 when it is not ready, its storage is 80% full or more, or the lanes' copy of stored triggers reports an error.", stderr)
	server := serverFlags(fs)
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	b, err := apiCall(ctx, server, "GET", "/metrics", nil)
	if err != nil {
		return err
	}
	m := parseMetrics(string(b))
	problems := m.print(stdout, server.base(), time.Now())
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// samples are the values of a /metrics answer, by series ("name" or
// `name{labels}`, as written).
type samples map[string]float64

func parseMetrics(text string) samples {
	m := samples{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// sum adds the series of a family whose labels start with prefix (after
// the brace).
func (m samples) sum(name, prefix string) float64 {
	total := 0.0
	for s, v := range m {
		if strings.HasPrefix(s, name+"{"+prefix) {
			total += v
		}
	}
	return total
}

// quantile tells where the q-quantile of histogram name (with labels,
// `k="v",` pairs or "") lies: "≤ " the bound of the first bucket that
// holds it, or "> " the last finite bound when it lies past them all, and
// how many observations the histogram has.
func (m samples) quantile(name, labels string, q float64) (where string, count float64) {
	type bucket struct{ le, n float64 }
	var buckets []bucket
	prefix := name + "_bucket{" + labels + `le="`
	for s, v := range m {
		if rest, ok := strings.CutPrefix(s, prefix); ok {
			le, err := strconv.ParseFloat(strings.TrimSuffix(rest, `"}`), 64)
			if err == nil {
				buckets = append(buckets, bucket{le, v})
			}
		}
	}
	if len(buckets) == 0 {
		return "", 0
	}
	slices.SortFunc(buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	count = buckets[len(buckets)-1].n
	last := math.Inf(1) // the last finite bound
	for _, b := range buckets {
		if math.IsInf(b.le, 1) {
			break
		}
		if count > 0 && b.n >= q*count {
			return "≤ " + seconds(b.le), count
		}
		last = b.le
	}
	if math.IsInf(last, 1) {
		return "unknown (no bounded bucket)", count
	}
	return "> " + seconds(last), count
}

// print writes the summary and returns what is wrong (empty: nothing).
func (m samples) print(w io.Writer, at string, now time.Time) (problems []string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	line := func(what, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{what}, args...)...)
	}

	ready := m["orderflow_ready"]
	state := "ready"
	if ready != 1 {
		state = "NOT READY"
		problems = append(problems, "not ready")
	}
	build := "version unknown"
	for s := range m {
		if labels, ok := strings.CutPrefix(s, "orderflow_build_info{"); ok {
			l := map[string]string{}
			for _, kv := range labelPair.FindAllStringSubmatch(labels, -1) {
				l[kv[1]] = kv[2]
			}
			build = fmt.Sprintf("version %s, revision %s, %s", l["version"], l["revision"], l["go_version"])
		}
	}
	up := ""
	if start, ok := m["process_start_time_seconds"]; ok {
		up = ", up " + now.Sub(time.Unix(int64(start), 0)).Round(time.Second).String()
	}
	line("orderflow", "%s at %s (%s%s)", state, at, build, up)
	if ready != 1 {
		return problems
	}

	var streams []string
	for _, s := range []struct{ stream, what string }{
		{"ORDERFLOW_ORDERS", "order events"}, {"ORDERFLOW_TRIGGERS", "triggers"},
		{"ORDERFLOW_DEFINITIONS", "definition events"}, {"ORDERFLOW_DEADLETTER", "dead letters"},
	} {
		if n, ok := m[`orderflow_stream_messages{stream="`+s.stream+`"}`]; ok {
			streams = append(streams, fmt.Sprintf("%.0f %s", n, s.what))
		}
	}
	line("streams", "%s", strings.Join(streams, ", "))
	if used, ok := m["orderflow_jetstream_storage_bytes"]; ok {
		if limit, ok := m["orderflow_jetstream_storage_limit_bytes"]; ok && limit > 0 {
			share := used / limit
			line("storage", "%s of %s (%.1f%%)", sizeText(used), sizeText(limit), 100*share)
			if share >= 0.8 {
				problems = append(problems, fmt.Sprintf("storage %.0f%% full", 100*share))
			}
		} else {
			line("storage", "%s", sizeText(used))
		}
	}
	var models []string
	for _, r := range []struct{ model, stream string }{{"definitions", "ORDERFLOW_DEFINITIONS"}, {"orders", "ORDERFLOW_ORDERS"}} {
		applied, ok := m[`orderflow_read_model_applied_sequence{model="`+r.model+`"}`]
		last := m[`orderflow_stream_last_sequence{stream="`+r.stream+`"}`]
		switch {
		case !ok:
		case applied >= last:
			models = append(models, fmt.Sprintf("%s caught up (%.0f)", r.model, applied))
		default:
			models = append(models, fmt.Sprintf("%s %.0f behind (%.0f of %.0f)", r.model, last-applied, applied, last))
		}
	}
	line("read models", "%s", strings.Join(models, ", "))
	if saved, ok := m[`orderflow_checkpoint_saved_sequence{checkpoint="orders"}`]; ok {
		text := "orders: none saved by this process yet"
		if at := m[`orderflow_checkpoint_saved_timestamp_seconds{checkpoint="orders"}`]; at > 0 {
			text = fmt.Sprintf("orders saved at %.0f, %s ago", saved, now.Sub(time.Unix(0, int64(at*1e9))).Round(time.Second))
		}
		if failed := m.sum("orderflow_checkpoint_failures_total", ""); failed > 0 {
			text += fmt.Sprintf("; %.0f failed to save (see the log)", failed)
		}
		line("checkpoints", "%s", text)
	}

	if procs, ok := m["orderflow_trigger_processors"]; ok {
		owned := m["orderflow_trigger_lanes_owned"]
		waiting := m["orderflow_trigger_lanes_waiting"]
		line("trigger lanes", "%.0f processor(s), %.0f lane(s) owned here, %.0f trigger(s) waiting", procs, owned, waiting)
		if copyErr := m["orderflow_trigger_lanes_copy_error"]; copyErr != 0 {
			line("", "the copy of stored triggers into the lanes reports an error (see the log)")
			problems = append(problems, "the lanes' copy reports an error")
		}
		applied := m["orderflow_triggers_applied_total"]
		rejected := m.sum("orderflow_trigger_outcomes_total", `outcome="rejected"`)
		p50, n := m.quantile("orderflow_trigger_duration_seconds", "", 0.5)
		p99, _ := m.quantile("orderflow_trigger_duration_seconds", "", 0.99)
		took := ""
		if n > 0 {
			took = fmt.Sprintf("; lane to outcome p50 %s, p99 %s", p50, p99)
		}
		line("triggers", "%.0f applied here, %.0f rejected%s", applied, rejected, took)
	}
	requests, failed := m.sum("orderflow_http_requests_total", ""), 0.0
	for s, v := range m {
		if strings.HasPrefix(s, "orderflow_http_requests_total{") && strings.Contains(s, `code="5`) {
			failed += v
		}
	}
	conns := ""
	if limit := m["orderflow_http_connections_limit"]; limit > 0 {
		open := m["orderflow_http_connections"]
		conns = fmt.Sprintf("; %.0f of %.0f connection(s) open", open, limit)
		if open >= limit {
			problems = append(problems, "HTTP connections at their limit (--max-connections): more wait to be accepted")
		}
	}
	line("http", "%.0f request(s) answered, %.0f with 5xx%s", requests, failed, conns)
	return problems
}

// labelPair is one label of a series: name and value.
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)

// sizeText shows a size in bytes with a binary unit.
func sizeText(b float64) string {
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if b < 1024 {
			return strconv.FormatFloat(b, 'f', 1, 64) + " " + u
		}
		b /= 1024
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + " TiB"
}

// seconds shows a histogram's finite bound.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}
