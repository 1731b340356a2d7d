package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// eventsCmd: orderflow events: follow the order events feed
// (GET /v1/events), a line per event, until interrupted.
func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("events", "Usage: orderflow events [flags]\n\n"+
		"Follow order events as they are stored (GET /v1/events), a line each, until interrupted; with --after, from an earlier event on.", stderr)
	server := serverFlags(fs)
	order := fs.String("order", "", "one order's events only")
	types := fs.String("types", "", "these event types only, comma-separated (OrderAdvanced,OrderCompleted)")
	after := fs.Uint64("after", 0, "start after this event (the SEQ of an earlier line; 0: from the first); not given: with the next one stored")
	asJSON := fs.Bool("json", false, "print each event's envelope as JSON, a line each")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	q := url.Values{}
	if *order != "" {
		q.Set("order_id", *order)
	}
	if *types != "" {
		q.Set("types", *types)
	}
	statusName := statusNames(ctx, server)
	f := &feedReader{server: server, path: pathWith("/v1/events", q), last: *after, from: flagGiven(fs, "after")}
	return f.follow(ctx, stderr, func(env eventstore.Envelope, seq uint64, raw []byte) error {
		if *asJSON {
			_, err := fmt.Fprintf(stdout, "%s\n", raw)
			return err
		}
		_, err := fmt.Fprintf(stdout, "%d  %s  %s  %s  %s:%s  %s\n", seq, env.OccurredAt.Format(time.RFC3339), env.AggregateID, env.Type,
			env.Actor.Kind, env.Actor.ID, envelopeWhat(env, statusName))
		return err
	})
}

// envelopeWhat is an order event as a timeline shows it ("" for one that
// does not decode).
func envelopeWhat(env eventstore.Envelope, statusName func(string) string) string {
	e, err := domain.DecodeEvent(env.Type, env.Data)
	if err != nil {
		return ""
	}
	what, _ := orderEventWhat(e, env.Actor, statusName)
	return what
}

// statusNames names statuses as the server's status library names them
// now; a key it does not know (yet), or all when the library cannot be
// read, is shown as it is.
func statusNames(ctx context.Context, server *apiServer) func(string) string {
	names := map[string]string{}
	if b, err := apiCall(ctx, server, "GET", "/v1/statuses", nil); err == nil {
		var res struct{ Items []domain.Status }
		if json.Unmarshal(b, &res) == nil {
			for _, s := range res.Items {
				names[s.Key] = s.Name
			}
		}
	}
	return func(k string) string { return cmp.Or(names[k], k) }
}

// feedReader reads the order events feed, and follows it again from the
// last event it read when the feed ends (the server restarting, say), as
// a browser's EventSource does.
type feedReader struct {
	server *apiServer
	path   string
	last   uint64 // the stream sequence read up to
	from   bool   // last is a position to follow after (else: from now)
}

// handlerError is an error of follow's fn: it ends follow.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// follow calls fn for each event until ctx ends (nil) or fn fails. A
// refusal, or a server never reached, is an error. A feed that ends, or
// an answer that may change (see transient), is followed again after a
// second, from where it stood.
func (f *feedReader) follow(ctx context.Context, stderr io.Writer, fn func(env eventstore.Envelope, seq uint64, raw []byte) error) error {
	hc, err := f.server.client()
	if err != nil {
		return err
	}
	reached, waiting := false, false
	for {
		connected, err := f.read(ctx, hc, stderr, fn)
		if ctx.Err() != nil {
			return nil
		}
		if stop, ok := errors.AsType[*handlerError](err); ok {
			return stop.err
		}
		pe, refused := errors.AsType[*problemError](err)
		switch {
		case connected:
			reached, waiting = true, false
			fmt.Fprintf(stderr, "the feed ended; following again after event %d\n", f.last)
		case refused && !transient(pe.status):
			return err
		case !reached && !refused:
			return err
		case !waiting:
			waiting = true
			fmt.Fprintf(stderr, "waiting for the server (%v)\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// transient reports whether an answer of status may be followed by a
// good one later: the server busy (429), not ready (503), or a proxy
// before it that cannot reach it now (502, 504: the server restarting).
// The feed follows on after one; the other commands send a GET, or a
// request that carries its own idempotency key, again.
func transient(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// feedHeading starts the feed's first line, which names the stream
// sequence the feed follows after.
const feedHeading = ": orderflow order events after sequence "

// read reads the feed once, until it ends; connected reports that the
// server answered with the feed.
func (f *feedReader) read(ctx context.Context, hc *http.Client, stderr io.Writer, fn func(env eventstore.Envelope, seq uint64, raw []byte) error) (connected bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.server.base()+f.path, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if f.server.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.server.token)
	}
	if f.from {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(f.last, 10))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, unreachable(f.server.base(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return false, apiProblem(http.MethodGet, f.path, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var (
		id     uint64
		haveID bool
		data   []byte
	)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "": // the end of one message
			if data != nil {
				var env eventstore.Envelope
				if json.Unmarshal(data, &env) == nil {
					if err := fn(env, id, data); err != nil {
						return true, &handlerError{err}
					}
				}
			}
			if haveID {
				f.last, f.from = id, true
			}
			data, haveID = nil, false
		case strings.HasPrefix(line, feedHeading):
			rest := strings.TrimPrefix(line, feedHeading)
			n, note, _ := strings.Cut(rest, " ")
			if v, err := strconv.ParseUint(n, 10, 64); err == nil {
				f.last, f.from = v, true
			}
			if note != "" {
				fmt.Fprintln(stderr, strings.Trim(note, "()"))
			}
		case line == ": keep-alive":
		case strings.HasPrefix(line, ":"):
			fmt.Fprintln(stderr, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "id: "):
			id, err = strconv.ParseUint(line[len("id: "):], 10, 64)
			haveID = err == nil
		case strings.HasPrefix(line, "data: "):
			data = []byte(line[len("data: "):])
		}
	}
	return true, sc.Err()
}
