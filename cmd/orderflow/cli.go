package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/handlers"
)

// apiServer is a running orderflow's HTTP API, as the client commands
// reach it.
type apiServer struct {
	url   string
	token string // an API key's bearer token, when the server asks for one
	ca    string // a PEM file of the CAs its HTTPS certificate is checked against
	actor string // who acts, sent as X-Orderflow-Actor ("": none)

	mu    sync.Mutex
	hc    *http.Client // made by the first call, then kept
	hcErr error
}

// serverFlags registers --server (ORDERFLOW_SERVER), the HTTP address of a
// running orderflow, --token (ORDERFLOW_TOKEN), the API key's bearer token
// for a server run with --api-keys, and --server-ca (ORDERFLOW_SERVER_CA)
// for an HTTPS certificate from a private CA.
func serverFlags(fs *flag.FlagSet) *apiServer {
	var s apiServer
	fs.StringVar(&s.url, "server", "http://127.0.0.1:8080", "URL or host:port of a running orderflow (https:// for one run with --tls-cert)")
	fs.StringVar(&s.token, "token", "", "bearer token of an API key, for a server run with --api-keys")
	fs.StringVar(&s.ca, "server-ca", "", "PEM file of the CAs the server's HTTPS certificate is checked against; empty: the system's")
	return &s
}

// actorFlag registers --actor (ORDERFLOW_ACTOR) on a command that
// changes something: who acts, sent as X-Orderflow-Actor, so the events
// it makes name a person (audit's WHO column) rather than only "api" or
// the API key. Its default is the operating system's user.
func actorFlag(fs *flag.FlagSet, s *apiServer) {
	var who string
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	fs.StringVar(&s.actor, "actor", who, "who acts, recorded on the events this command makes (sent as X-Orderflow-Actor; with --api-keys after the key's name); empty: the server names none but the key")
}

// base is --server as a URL without a trailing slash: a bare host:port,
// as serve's --http takes it, is http://host:port.
func (s *apiServer) base() string {
	u := strings.TrimRight(s.url, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u
}

// client is the HTTP client for the server, made once per command so that
// its calls share connections: one that trusts the --server-ca file when
// given, else the system's CAs. It keeps up to maxIdlePerServer
// connections open between calls, where Go's default keeps two: a command
// with calls in flight at once (order migrate's --parallel) would
// otherwise open a connection for most of them, and one with a transport
// per call (as before) held every connection it ever opened until the
// server's idle timeout, so the server's --max-connections was soon full.
func (s *apiServer) client() (*http.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hc != nil || s.hcErr != nil {
		return s.hc, s.hcErr
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxIdlePerServer
	if s.ca != "" {
		roots, err := loadCAs(s.ca, "--server-ca")
		if err != nil {
			s.hcErr = err
			return nil, err
		}
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	s.hc = &http.Client{Transport: t}
	return s.hc, nil
}

// maxIdlePerServer is how many idle connections a command keeps to the
// server: order migrate's most calls in flight.
const maxIdlePerServer = maxMigrateParallel

// apiCall sends one request to a running orderflow and returns the body
// of a 2xx answer; a problem answer becomes an error with its detail. A
// request over the key's rate limit (429) is sent again after the
// Retry-After the server names, if that comes within the call's 30 s. A
// GET is also sent again when the server answers 503 (its store is
// electing a leader or out of reach, or it is starting), or a proxy before
// it 502 or 504 (the server restarting); see apiCallRepeatable for a POST.
func apiCall(ctx context.Context, server *apiServer, method, path string, body any) ([]byte, error) {
	b, _, _, err := apiRoundTrips(ctx, server, method, path, body, nil, method == http.MethodGet)
	return b, err
}

// apiCallRepeatable is apiCall for a POST that carries its own
// idempotency key, such as a trigger with its trigger_id, or an order
// with the Idempotency-Key header in hdr: sending it again after a 503 (or
// a proxy's 502 or 504, which may come after the server took it) cannot
// take effect twice, so it is sent again like a GET. It also returns the
// answer's header; resentAfter is the status of the last answer that had
// it sent again (0: sent once, or again only for the rate limit).
func apiCallRepeatable(ctx context.Context, server *apiServer, method, path string, body any, hdr http.Header) (b []byte, answer http.Header, resentAfter int, err error) {
	return apiRoundTrips(ctx, server, method, path, body, hdr, true)
}

func apiRoundTrips(ctx context.Context, server *apiServer, method, path string, body any, hdr http.Header, repeatable bool) ([]byte, http.Header, int, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, nil, 0, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc, err := server.client()
	if err != nil {
		return nil, nil, 0, err
	}
	resent := 0
	for {
		resp, b, err := apiSend(ctx, hc, server, method, path, payload, hdr)
		if err != nil {
			return nil, nil, resent, err
		}
		if resp.StatusCode == http.StatusTooManyRequests || repeatable && transient(resp.StatusCode) {
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			if deadline, _ := ctx.Deadline(); time.Until(deadline) > wait {
				select {
				case <-time.After(wait):
					if resp.StatusCode != http.StatusTooManyRequests {
						resent = resp.StatusCode
					}
					continue
				case <-ctx.Done():
					return nil, nil, resent, ctx.Err()
				}
			}
		}
		if err := apiProblem(method, path, resp.StatusCode, b); err != nil {
			return nil, nil, resent, err
		}
		return b, resp.Header, resent, nil
	}
}

// apiSend sends one request and reads the answer.
func apiSend(ctx context.Context, hc *http.Client, server *apiServer, method, path string, payload []byte, hdr http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, server.base()+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if server.token != "" {
		req.Header.Set("Authorization", "Bearer "+server.token)
	}
	if server.actor != "" && method != http.MethodGet {
		req.Header.Set("X-Orderflow-Actor", server.actor)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, unreachable(server.base(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp, b, err
}

// unreachable says that a request to base found no orderflow there. A
// NATS server there is named, since the NATS and HTTP addresses are easy
// to swap: what net/http says of one depends on when its INFO line came
// ("malformed HTTP status code" quoting it, or an unsolicited response).
func unreachable(base string, err error) error {
	if speaksNATS(base) {
		return fmt.Errorf("%s is a NATS server, not orderflow's HTTP API: --server takes the address serve's --http listens on (default 127.0.0.1:8080)", base)
	}
	return fmt.Errorf("is orderflow running at %s? %w", base, err)
}

// speaksNATS reports whether the server at base greets a connection with
// a NATS INFO line, as every NATS server does before it reads anything.
func speaksNATS(base string) bool {
	u, err := url.Parse(base)
	if err != nil || u.Port() == "" {
		return false
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		return false
	}
	greeting := make([]byte, len("INFO {"))
	_, err = io.ReadFull(conn, greeting)
	return err == nil && string(greeting) == "INFO {"
}

// apiProblem is nil for a 2xx status, and otherwise a *problemError with
// the problem's detail.
func apiProblem(method, path string, status int, b []byte) error {
	if status/100 == 2 {
		return nil
	}
	var p handlers.Problem
	if json.Unmarshal(b, &p) == nil && p.Code != "" {
		msg := fmt.Sprintf("%s (%s): %s", p.Title, p.Code, p.Detail)
		if p.Reason != "" {
			msg = fmt.Sprintf("%s (%s): %s", p.Title, p.Code, p.Reason)
			if p.Expected != "" {
				msg += ", expected " + p.Expected
			}
		}
		return &problemError{status: status, msg: msg}
	}
	return &problemError{status: status, msg: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, status, bytes.TrimSpace(b))}
}

// problemError is an answer of the server that is not a success.
type problemError struct {
	status int
	msg    string
}

func (e *problemError) Error() string { return e.msg }

// storeUsage is the usage of the commands that read (or write) the
// streams themselves, over NATS or in a data directory: what -h prints
// before the flags.
var storeUsage = map[string]string{
	"verify": "Usage: orderflow verify [flags]\n\nCheck every aggregate's hash chain (with --triggers, also account for every stored trigger). Exit 1 on a fault.",
	"export": "Usage: orderflow export [flags]\n\nWrite every stored message as JSON Lines, for a backup or 'orderflow import'.",
	"import": "Usage: orderflow import --data-dir D --in F [flags]\n\nLoad an export into an empty store (a new --data-dir, or a cluster without orderflow's streams; start orderflow on it only after the import). The trigger lanes start at the first imported trigger neither answered nor put aside, so a server on the restored store does not read the others again.",
	"replay": "Usage: orderflow replay --until T [--out F | --definitions] [flags]\n\nRebuild the read models as they were at T and print the board (with --out, write one tenant's read models as JSON; with --definitions, print its definitions as 'definitions show' does).",
	"deadletters": "Usage: orderflow deadletters [flags]\n       orderflow deadletters retry [flags] SEQ...\n\n" +
		"List the triggers put aside as unprocessable, or publish them again.",
	"deadletters retry": "Usage: orderflow deadletters retry [flags] SEQ...\n\nPublish dead letters again as triggers, with their trigger ids.",
	"audit order":       "Usage: orderflow audit order [flags] ID\n\nPrint an order's history as a timeline.",
	"audit workflow":    "Usage: orderflow audit workflow [flags] ID\n\nPrint a workflow's history as a timeline.",
	"audit ordertype":   "Usage: orderflow audit ordertype [flags] ID\n\nPrint an order type's history as a timeline.",
	"audit definitions": "Usage: orderflow audit definitions [flags]\n\nPrint every change to a tenant's statuses, triggers, workflows and order types as one timeline, oldest first.",
}

// commandFlags is the flag set of a subcommand whose -h prints usage,
// then the flags, on stderr.
func commandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// triggerCmd: orderflow trigger ORDER TRIGGER.
func triggerCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("trigger", "Usage: orderflow trigger [flags] ORDER TRIGGER\n\nApply a worker's trigger to an order and print the outcome.", stderr)
	server := serverFlags(fs)
	triggerID := fs.String("trigger-id", "", "idempotency key (generated when empty)")
	worker := fs.String("worker", "cli", "worker who did it")
	note := fs.String("note", "", "the worker's note, recorded with the outcome (at most 2000 characters)")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("want ORDER and TRIGGER")
	}
	order, trigger := fs.Arg(0), fs.Arg(1)
	// The id is made here, not by the server, so that the trigger can be
	// sent again after a 503 (or a proxy's 502 or 504) or a lost answer and
	// take effect once.
	id := *triggerID
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	b, _, resentAfter, err := apiCallRepeatable(ctx, server, "POST", "/v1/orders/"+url.PathEscape(order)+"/triggers",
		map[string]string{"trigger": trigger, "trigger_id": id, "worker": *worker, "note": *note}, nil)
	if err != nil {
		if mayHaveTakenEffect(err) {
			return fmt.Errorf("%w (the trigger may have taken effect; send it again with --trigger-id %s to be sure it takes effect once)", err, id)
		}
		return err
	}
	var res struct {
		Outcome string          `json:"outcome"`
		Order   json.RawMessage `json:"order"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", res.Outcome)
	if resentAfter != 0 && res.Outcome == "duplicate" {
		fmt.Fprintf(stderr, "(sent again after a %d: the first attempt had taken effect)\n", resentAfter)
	}
	return printOrder(stdout, res.Order)
}

// mayHaveTakenEffect reports whether a request that failed with err may
// have been applied all the same: the server could not tell (5xx), or its
// answer was lost or not waited for. A refusal (4xx), a connection never
// made or a request never sent was not.
func mayHaveTakenEffect(err error) bool {
	var pe *problemError
	if errors.As(err, &pe) {
		return pe.status >= 500
	}
	var sent *url.Error // what the HTTP client returns once it tried
	var op *net.OpError
	return errors.As(err, &sent) && !(errors.As(err, &op) && op.Op == "dial") ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// orderCmd: orderflow order show ORDER, order place ORDER_TYPE, order
// hold|resume|cancel|move ORDER, order migrate.
func orderCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return orderMigrateCmd(ctx, args[1:], stdout, stderr, env)
		case "place":
			return orderPlaceCmd(ctx, args[1:], stdout, stderr, env)
		case "list":
			return orderListCmd(ctx, args[1:], stdout, stderr, env)
		case "history":
			return orderHistoryCmd(ctx, args[1:], stdout, stderr, env)
		case "hold", "resume", "cancel", "move":
			return orderActionCmd(ctx, args[0], args[1:], stdout, stderr, env)
		}
	}
	if len(args) == 0 || args[0] != "show" {
		fmt.Fprintln(stderr, "Usage: orderflow order show [flags] ORDER\n       orderflow order list [flags]\n       orderflow order history [flags] ORDER\n       orderflow order place [flags] ORDER_TYPE\n"+
			"       orderflow order hold|resume|cancel [flags] ORDER\n       orderflow order move [flags] --workflow ID --step N --reason R ORDER\n"+
			"       orderflow order migrate [flags] --workflow ID")
		return errors.New("want: order show ORDER, order list, order history ORDER, order place ORDER_TYPE, order hold|resume|cancel|move ORDER, or order migrate --workflow ID")
	}
	fs := commandFlags("order show", "Usage: orderflow order show [flags] ORDER\n\nShow an order's current step (with --as-of, where it stood then).", stderr)
	server := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print the order as JSON")
	asOf := fs.String("as-of", "", "show the order as it was at this time (RFC 3339, as GET /v1/orders/{id}?as_of= takes)")
	if err := parseFlags(fs, args[1:], env); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one ORDER")
	}
	path := "/v1/orders/" + url.PathEscape(fs.Arg(0))
	if *asOf != "" {
		path += "?as_of=" + url.QueryEscape(*asOf) // the server says what it takes
	}
	b, err := apiCall(ctx, server, "GET", path, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return printIndented(stdout, b)
	}
	if *asOf != "" {
		fmt.Fprintf(stdout, "as of %s:\n", *asOf)
	}
	return printOrder(stdout, b)
}

// orderPlaceCmd: orderflow order place ORDER_TYPE. The request carries
// an Idempotency-Key made here (--key to give one), so that it can be
// sent again after a 503 or a lost answer and place one order.
func orderPlaceCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("order place", "Usage: orderflow order place [flags] ORDER_TYPE\n\nPlace an order of an order type and print it.", stderr)
	server := serverFlags(fs)
	actorFlag(fs, server)
	id := fs.String("id", "", "the order's id (empty: derived from the key)")
	fulfillment := fs.String("fulfillment", "", "one of the order type's fulfillment workflows (empty: its first)")
	key := fs.String("key", "", "idempotency key (generated when empty): sent again with it, the request places one order")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want one ORDER_TYPE")
	}
	body := map[string]string{"order_type_id": fs.Arg(0)}
	if *id != "" {
		body["id"] = *id
	}
	if *fulfillment != "" {
		body["fulfillment_workflow_id"] = *fulfillment
	}
	return sendKeyed(ctx, server, "/v1/orders", body, *key, "placed", stdout, stderr)
}

// sendKeyed POSTs an order command with an Idempotency-Key (key, or one
// made here), sent again after a 503, and prints what it did (done, or
// "already " + done for a resend of one that did it) and the order. When
// the answer is lost, the error names the key to send it again with.
func sendKeyed(ctx context.Context, server *apiServer, path string, body any, key, done string, stdout, stderr io.Writer) error {
	if key == "" {
		key = uuid.Must(uuid.NewV7()).String()
	}
	b, answer, resentAfter, err := apiCallRepeatable(ctx, server, "POST", path, body, http.Header{"Idempotency-Key": {key}})
	if err != nil {
		if mayHaveTakenEffect(err) {
			return fmt.Errorf("%w (the order may have been %s; send it again with --key %s to be sure it is %s once)", err, done, key, done)
		}
		return err
	}
	if answer.Get("Idempotent-Replayed") != "true" {
		fmt.Fprintln(stdout, done)
		return printOrder(stdout, b)
	}
	fmt.Fprintln(stdout, "already "+done)
	if resentAfter != 0 {
		fmt.Fprintf(stderr, "(sent again after a %d: the first attempt had %s it)\n", resentAfter, done)
	}
	return printOrder(stdout, b)
}

// orderActionCmd: orderflow order hold|resume|cancel|move ORDER, a
// supervisor's action. Like order place, the request carries an
// Idempotency-Key (--key to give one): it is sent again after a 503, and
// sent again with the key after a lost answer it takes effect once.
func orderActionCmd(ctx context.Context, action string, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	done := map[string]string{"hold": "held", "resume": "resumed", "cancel": "cancelled", "move": "moved"}[action]
	usage := fmt.Sprintf("Usage: orderflow order %s [flags] ORDER\n\n%s an order, with a reason, and print it.", action, strings.ToUpper(action[:1])+action[1:])
	if action == "move" {
		usage = "Usage: orderflow order move [flags] --workflow ID --step N --reason R ORDER\n\nMove an order to a step of one of its workflows, and print it."
	}
	fs := commandFlags("order "+action, usage, stderr)
	server := serverFlags(fs)
	actorFlag(fs, server)
	why := "why (recorded on the event; may be left out)"
	if action == "move" {
		why = "why (recorded on the event; required)"
	}
	reason := fs.String("reason", "", why)
	key := fs.String("key", "", "idempotency key (generated when empty): sent again with it, the action takes effect once")
	var workflow *string
	var step *int
	if action == "move" {
		workflow = fs.String("workflow", "", "the workflow of the step: the order's current one or another of its route")
		step = fs.Int("step", 0, "the step's index in that workflow (0, 1, 2 …); required")
	}
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want one ORDER")
	}
	body := map[string]any{}
	if *reason != "" {
		body["reason"] = *reason
	}
	if action == "move" {
		if *workflow == "" || !flagGiven(fs, "step") {
			fs.Usage()
			return errors.New("move wants --workflow and --step")
		}
		body["workflow_id"], body["step"] = *workflow, *step
	}
	return sendKeyed(ctx, server, "/v1/orders/"+url.PathEscape(fs.Arg(0))+"/"+action, body, *key, done, stdout, stderr)
}

func printOrder(w io.Writer, b []byte) error {
	var o handlers.OrderJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&o); err != nil {
		return err
	}
	p := o.Position
	fmt.Fprintf(w, "order %s (%s): %s, version %d\n", o.ID, o.OrderTypeID, o.State, o.Version)
	fmt.Fprintf(w, "  at %s (%s), step %d of %s v%d, since %s\n", p.StatusName, p.Status, p.Step, p.WorkflowName, p.WorkflowVersion,
		p.EnteredAt.Format(time.RFC3339))
	switch {
	case p.ExpectedTrigger == nil:
	case o.State == "on_hold": // a trigger now is rejected (order_on_hold)
		fmt.Fprintf(w, "  on hold: waiting to be resumed, then for %s\n", *p.ExpectedTrigger)
	default:
		fmt.Fprintf(w, "  waiting for %s\n", *p.ExpectedTrigger)
	}
	return nil
}

// projectionsCmd: orderflow projections rebuild.
func projectionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(stderr, "Usage: orderflow projections rebuild [flags]")
		return errors.New("want: projections rebuild")
	}
	fs := commandFlags("projections rebuild", "Usage: orderflow projections rebuild [flags]\n\nRebuild a running orderflow's read models from the streams.", stderr)
	server := serverFlags(fs)
	if err := parseFlags(fs, args[1:], env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	// Show the rebuild's progress on a terminal while it runs.
	if progress := progressTo(stderr, "rebuild"); progress != nil {
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
				b, err := apiCall(pctx, server, "GET", "/v1/projections", nil)
				var st struct {
					Rebuilding     bool   `json:"rebuilding"`
					RebuildApplied uint64 `json:"rebuild_applied"`
					RebuildTarget  uint64 `json:"rebuild_target"`
				}
				if err == nil && json.Unmarshal(b, &st) == nil && st.Rebuilding {
					progress(st.RebuildApplied, st.RebuildTarget)
				}
			}
		}()
	}
	b, err := apiCall(ctx, server, "POST", "/v1/projections/rebuild", nil)
	if err != nil {
		return err
	}
	var rep struct {
		Events       uint64  `json:"events"`
		Seconds      float64 `json:"seconds"`
		EventsPerSec float64 `json:"events_per_second"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt the orders read model from %d events in %.2fs (%.0f events/s)\n", rep.Events, rep.Seconds, rep.EventsPerSec)
	return nil
}

// openAPICmd prints the HTTP API's OpenAPI document, the one GET
// /openapi.json serves, without a server: for generating clients in a
// build.
func openAPICmd(args []string, stdout, stderr io.Writer) error {
	fs := commandFlags("openapi", "Usage: orderflow openapi\n\nPrint the HTTP API's OpenAPI document (as GET /openapi.json serves it), for generating clients.", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // as GET /openapi.json writes it: "reader < worker", not "reader \u003c worker"
	return enc.Encode((&handlers.API{}).OpenAPI())
}
