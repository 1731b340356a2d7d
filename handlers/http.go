package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// DefaultMaxFeeds is API.MaxFeeds's default: four processes serving
// that many feeds each, each feed of a tenant of its own (a consumer
// each), leave room for everything else.
const DefaultMaxFeeds = 200

// DefaultMaxFeedsPerKey is API.MaxFeedsPerKey's default: a quarter of
// DefaultMaxFeeds, so that one dashboard that opens feeds and never
// closes them (a new feed per page render, say) cannot take them all.
const DefaultMaxFeedsPerKey = 50

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
const MaxBodyBytes = 1 << 20

// A request body is held in memory while it is read and decoded, so
// bodies larger than SmallBodyBytes (by their Content-Length), and bodies
// sent without a length, are read at most MaxLargeBodies at a time; the
// others wait, for as long as a body may take to arrive, and are then
// answered 503. Without this, clients holding every connection the server
// takes (--max-connections), each with a body of nearly MaxBodyBytes sent
// all but its last byte, held over a gigabyte of memory for each thousand
// connections. A trigger, an order or a definition is a few hundred bytes,
// and the largest the rules allow stays under SmallBodyBytes even with
// every non-ASCII character written as a \u escape (a note of
// MaxDescriptionLen emoji is 24,000 bytes so written), so worker apps and
// dashboards never wait for this.
const (
	SmallBodyBytes = 32 << 10
	MaxLargeBodies = 16
)

// API serves the HTTP routes of DESIGN.md under /v1.
type API struct {
	Commands *Commands
	// Orders returns the orders read model in use (lists, board); it may
	// be swapped by a rebuild.
	Orders func() *projections.Orders
	// Rebuild, when set, rebuilds the read models from the streams
	// (POST /v1/projections/rebuild).
	Rebuild func(ctx context.Context) (RebuildReport, error)
	// ProjectionStatus, when set, answers GET /v1/projections.
	ProjectionStatus func(ctx context.Context) (ProjectionStatus, error)
	Log              *slog.Logger
	// BodyReadTimeout bounds the time a request body may take to arrive
	// (default 30 s); one that takes longer is refused with 400.
	BodyReadTimeout time.Duration
	// FeedWriteTimeout bounds each write to an event feed (default 30 s):
	// a client that stops reading is disconnected, and resumes with
	// Last-Event-ID when it comes back.
	FeedWriteTimeout time.Duration
	// FeedHeartbeat is how often an idle event feed sends a comment line
	// (": keep-alive"), so proxies and clients see the connection alive
	// (default 15 s).
	FeedHeartbeat time.Duration
	// MaxFeeds is how many event feeds may be open at once (default
	// DefaultMaxFeeds); one more is answered 503. Each takes a connection
	// and the CPU to write every event it follows. The feeds of one tenant
	// share one JetStream consumer on ORDERFLOW_ORDERS (see feedHub),
	// which takes 1,000 consumers (the server's default) across all
	// processes, the read models' included.
	MaxFeeds int
	// MaxFeedsPerKey is how many of those one API key may hold open at
	// once (default DefaultMaxFeedsPerKey); one more is answered 429.
	// Without API keys there is nobody to tell apart, and only MaxFeeds
	// applies.
	MaxFeedsPerKey int

	openFeeds   atomic.Int64
	feedHubs    feedHubs                // the feeds' shared readers, one per tenant
	keyFeeds    keyFeeds                // open feeds per API key
	unavailable reporter                // 503s, logged once per reportEvery
	keys        atomic.Pointer[APIKeys] // see SetKeys
	keysMu      sync.Mutex
	keysSet     chan struct{} // closed when SetKeys next sets the keys (see keysChanged)
	limiter     *rateLimiter  // see SetRateLimit
	statsOnce   sync.Once
	httpStats   *httpStats
	largeOnce   sync.Once
	largeBodies chan struct{} // a slot for each large body being read (see SmallBodyBytes)

	streamsOnce sync.Once
	streamsEnd  chan struct{} // closed by EndStreams
	endOnce     sync.Once
}

// EndStreams ends every open event feed (GET /v1/events), and any opened
// later at once. Shutdown calls it: http.Server.Shutdown waits for
// requests in flight, and a feed would otherwise never finish.
func (api *API) EndStreams() { api.endOnce.Do(func() { close(api.streamsEnding()) }) }

// OpenFeeds is how many event feeds (GET /v1/events) are open.
func (api *API) OpenFeeds() int64 { return api.openFeeds.Load() }

// FeedStreamReads is how many times an event feed has read events from
// the stream itself because its tenant's shared reader no longer held
// them: a feed that resumed from an earlier event, or whose dashboard
// fell behind.
func (api *API) FeedStreamReads() int64 { return api.feedHubs.reads.Load() }

// streamsEnding is closed when the feeds are to end.
func (api *API) streamsEnding() chan struct{} {
	api.streamsOnce.Do(func() { api.streamsEnd = make(chan struct{}) })
	return api.streamsEnd
}

// reads are the definitions of the request's tenant.
func (api *API) reads(r *http.Request) *projections.TenantView { return api.cmds(r).view() }

// route is one HTTP route: the table both serves and documents the API
// (GET /openapi.json is made from it).
type route struct {
	pattern string // "METHOD /path"
	op      string // its OpenAPI operationId, which generated clients name their calls by: part of the contract
	role    Role   // the least role an API key needs for it
	summary string
	body    any // an example request body of the type the route reads, nil when none
	answer  any // a value of the type the route answers with (its schema), nil when none is documented
	handler http.HandlerFunc
}

// keyedRoute is what an Idempotency-Key header does on a route.
type keyedRoute struct {
	does   string
	maxLen int
	// replays: the route's command takes the key as Meta.RequestKey (meta
	// reads it), and a resend's answer carries Idempotent-Replayed: true.
	// The trigger route reads the key itself, as the trigger id.
	replays bool
}

// keyedRoutes are the routes that take an Idempotency-Key, by pattern
// (the OpenAPI document shows it on them).
var keyedRoutes = func() map[string]keyedRoute {
	action := keyedRoute{"Makes the request safe to send again: the event it records carries the key as its causation id, " +
		"and a resend (the same action and body) answers the order as it stands (200, Idempotent-Replayed: true) instead of acting again; " +
		"the key sent with another action or body, or for another order (a key names one order for 24 hours), is 409", maxIdempotencyKey, true}
	m := map[string]keyedRoute{
		"POST /v1/orders": {"Makes the request safe to send again: the order's id when the body names none is derived from the key, " +
			"and a resend answers the order the first placed (201, Idempotent-Replayed: true) instead of 409; " +
			"a key names one order for 24 hours: sent for another order id, or with another order type, it is 409", maxIdempotencyKey, true},
		"POST /v1/orders/{id}/triggers": {"The trigger id when the body gives no trigger_id (the same if it gives one): " +
			"sent again with it, the trigger takes effect once (the answer's outcome is duplicate); sent with another trigger key, or for another order within the duplicate window, 409", domain.MaxTriggerIDLen, false},
	}
	for _, a := range []string{"hold", "resume", "cancel", "move", "migrate"} {
		m["POST /v1/orders/{id}/"+a] = action
	}
	create := keyedRoute{"Makes the request safe to send again: the created definition's event carries the key as its causation id, " +
		"and a resend (the same body) answers what the first created, as it now stands (201, Idempotent-Replayed: true) instead of creating again; " +
		"the key sent for another creation or with another body is 409", maxIdempotencyKey, true}
	for _, p := range []string{"statuses", "triggers", "workflows", "order-types"} {
		m["POST /v1/"+p] = create
	}
	return m
}()

// routes is the API under /v1.
func (api *API) routes() []route {
	str := func(s string) *string { return &s }
	num := func(n int) *int { return &n }
	steps := []domain.Step{{Status: "washing", Trigger: "wash_done"}}
	five := uint64(5)
	return []route{
		{"GET /v1/statuses", "listStatuses", RoleReader, "List the status library (ETag: the library's version; ?as_of= RFC 3339 for the library as it was then)", nil, list[domain.Status]{}, api.listStatuses},
		{"POST /v1/statuses", "addStatus", RoleAdmin, "Add a status (a missing key is derived from the name)", statusBody{Name: "Washing", Category: &domain.CategoryInProgress}, domain.Status{}, api.addStatus},
		{"GET /v1/statuses/{key}", "getStatus", RoleReader, "One status, archived or not (ETag: the library's version; ?as_of= as it was then)", nil, domain.Status{}, api.getStatus},
		{"PATCH /v1/statuses/{key}", "updateStatus", RoleAdmin, "Rename or recategorize a status", statusPatch{Name: str("Wash")}, domain.Status{}, api.updateStatus},
		{"DELETE /v1/statuses/{key}", "archiveStatus", RoleAdmin, "Archive a status (refused while a live workflow uses it)", nil, domain.Status{}, api.archiveStatus},

		{"GET /v1/triggers", "listTriggers", RoleReader, "List the trigger library (?as_of= RFC 3339 for the library as it was then)", nil, list[domain.Trigger]{}, api.listTriggers},
		{"POST /v1/triggers", "addTrigger", RoleAdmin, "Add a trigger", triggerBody{Key: "wash_done", Name: "Wash done"}, domain.Trigger{}, api.addTrigger},
		{"GET /v1/triggers/{key}", "getTrigger", RoleReader, "One trigger, archived or not (ETag: the library's version; ?as_of= as it was then)", nil, domain.Trigger{}, api.getTrigger},
		{"PATCH /v1/triggers/{key}", "updateTrigger", RoleAdmin, "Rename a trigger or change its description", triggerPatch{Name: str("Washed")}, domain.Trigger{}, api.updateTrigger},
		{"DELETE /v1/triggers/{key}", "archiveTrigger", RoleAdmin, "Archive a trigger (refused while a live workflow uses it)", nil, domain.Trigger{}, api.archiveTrigger},

		{"GET /v1/workflows", "listWorkflows", RoleReader, "The workflows table (?as_of= RFC 3339 for the workflows as they were then)", nil, list[WorkflowJSON]{}, api.listWorkflows},
		{"POST /v1/workflows", "createWorkflow", RoleAdmin, "Create a workflow", workflowBody{Name: "Production", Type: &domain.WorkflowProduction, Steps: steps}, WorkflowJSON{}, api.createWorkflow},
		{"GET /v1/workflows/{id}", "getWorkflow", RoleReader, "One workflow (?as_of= RFC 3339 for the version in force then)", nil, WorkflowJSON{}, api.getWorkflow},
		{"PATCH /v1/workflows/{id}", "updateWorkflow", RoleAdmin, "Rename, or change type and fulfillment method", workflowPatch{Name: str("Laundry Production")}, WorkflowJSON{}, api.updateWorkflow},
		{"PUT /v1/workflows/{id}/steps", "replaceSteps", RoleAdmin, "Replace the ordered step list", stepsBody{Steps: steps}, WorkflowJSON{}, api.replaceSteps},
		{"POST /v1/workflows/{id}/steps", "addStep", RoleAdmin, "Add a step (at position, or at the end)", stepBody{Status: "drying", Trigger: "dry_done", Position: num(1)}, WorkflowJSON{}, api.addStep},
		{"POST /v1/workflows/{id}/steps/move", "moveStep", RoleAdmin, "Move a step (drag and drop)", moveBody{From: num(2), To: num(0)}, WorkflowJSON{}, api.moveStep},
		{"PATCH /v1/workflows/{id}/steps/{index}", "changeStepTrigger", RoleAdmin, "Change one step's trigger", stepTriggerBody{Trigger: "dry_done"}, WorkflowJSON{}, api.changeStepTrigger},
		{"DELETE /v1/workflows/{id}/steps/{index}", "removeStep", RoleAdmin, "Remove a step", nil, WorkflowJSON{}, api.removeStep},
		{"POST /v1/workflows/{id}/archive", "archiveWorkflow", RoleAdmin, "Archive a workflow", nil, WorkflowJSON{}, api.archiveWorkflow},
		{"GET /v1/workflows/{id}/versions/{v}", "getWorkflowVersion", RoleReader, "A past version of a workflow", nil, WorkflowJSON{}, api.workflowVersion},

		{"GET /v1/order-types", "listOrderTypes", RoleReader, "List order types (?as_of= RFC 3339 for the order types as they were then)", nil, list[OrderTypeJSON]{}, api.listOrderTypes},
		{"POST /v1/order-types", "createOrderType", RoleAdmin, "Create an order type", orderTypeBody{Name: "Wash & Fold Delivery", Intake: str("laundry_intake"),
			Production: str("standard_laundry_production"), Fulfillment: []string{"home_delivery"}}, OrderTypeJSON{}, api.createOrderType},
		{"GET /v1/order-types/{id}", "getOrderType", RoleReader, "One order type (?as_of= RFC 3339 for the order type as it was then)", nil, OrderTypeJSON{}, api.getOrderType},
		{"PATCH /v1/order-types/{id}", "updateOrderType", RoleAdmin, "Change an order type's name or workflows", orderTypePatch{Name: str("Wash & Fold")}, OrderTypeJSON{}, api.updateOrderType},
		{"POST /v1/order-types/{id}/archive", "archiveOrderType", RoleAdmin, "Archive an order type", nil, OrderTypeJSON{}, api.archiveOrderType},

		{"POST /v1/orders", "placeOrder", RoleWorker, "Place an order (an id is made when neither id nor Idempotency-Key is given; a problem answer names it as order_id)", placeBody{ID: "order-1", OrderTypeID: "wash_fold_delivery"}, OrderJSON{}, api.placeOrder},
		{"GET /v1/orders", "listOrders", RoleReader, "List orders (status, workflow_id, order_type_id, state; sort=id or entered_at; limit, cursor; min_seq)", nil, list[OrderJSON]{}, api.listOrders},
		{"GET /v1/orders/{id}", "getOrder", RoleReader, "One order (?as_of= RFC 3339 for the state then)", nil, OrderJSON{}, api.getOrder},
		{"GET /v1/orders/{id}/history", "getOrderHistory", RoleReader, "An order's events, oldest first (all; or a page: limit, cursor, next_cursor)", nil, historyJSON{}, api.orderHistory},
		{"POST /v1/orders/{id}/triggers", "applyTrigger", RoleWorker, "Apply a trigger; answers advanced, completed or duplicate, or a trigger_rejected problem (a key not in the trigger library: invalid_argument). " +
			"Give it a trigger_id of your own, or an Idempotency-Key header (one is made when both are absent, and a problem answer names it as trigger_id): sent again with it after a 503 or a lost answer, it takes effect once. " +
			"The id names one trigger: the id of another trigger of the order, or of another order's within the duplicate window (--duplicate-window, 2 minutes by default), is 409 conflict",
			triggerRequest{Trigger: "picked_up", TriggerID: "0193a1f2-5c7e-7d3b-9a41-3f6e2b8c1d05", Worker: "ana", Note: "torn sleeve"}, triggerAnswer{}, api.postTrigger},
		{"POST /v1/orders/{id}/hold", "holdOrder", RoleSupervisor, "Hold an order", reasonBody{Reason: "customer away"}, OrderJSON{}, supervise(api, holdOrder)},
		{"POST /v1/orders/{id}/resume", "resumeOrder", RoleSupervisor, "Resume a held order", reasonBody{Reason: "back"}, OrderJSON{}, supervise(api, resumeOrder)},
		{"POST /v1/orders/{id}/cancel", "cancelOrder", RoleSupervisor, "Cancel an order", reasonBody{Reason: "duplicate"}, OrderJSON{}, supervise(api, cancelOrder)},
		{"POST /v1/orders/{id}/move", "moveOrder", RoleSupervisor, "Move an order to a step of one of its workflows", moveOrderBody{WorkflowID: str("standard_laundry_production"),
			Step: num(2), Reason: "already dry"}, OrderJSON{}, supervise(api, moveOrder)},
		{"POST /v1/orders/{id}/migrate", "migrateOrder", RoleSupervisor, "Move an in-flight order to a newer version of its workflow", migrateOrderBody{WorkflowID: str("standard_laundry_production"),
			ToVersion: &five, Reason: "ironing added"}, OrderJSON{}, supervise(api, migrateOrder)},
		{"GET /v1/board", "getBoard", RoleReader, "Orders per workflow and status, in step order with every step of a live workflow: count, oldest entry, average stay (?workflow_id=, min_seq)", nil, list[BoardItem]{}, api.board},
		{feedRoute, "streamEvents", RoleReader, "Server-Sent Events of order events (?types=, ?order_id=; Last-Event-ID resumes; ?access_token= for browsers)", nil, nil, api.events},
		{"GET /v1/projections", "getProjections", RoleOperator, "Where the read models stand, and a rebuild's progress", nil, ProjectionStatus{}, api.projectionStatus},
		{"POST /v1/projections/rebuild", "rebuildProjections", RoleOperator, "Rebuild the read models from the streams", nil, RebuildReport{}, api.rebuild},
	}
}

// routeQuery is the query parameters each route takes, by pattern; the
// routes not named take none.
var routeQuery = map[string][]string{
	"GET /v1/statuses":            {"as_of"},
	"GET /v1/statuses/{key}":      {"as_of"},
	"GET /v1/triggers":            {"as_of"},
	"GET /v1/triggers/{key}":      {"as_of"},
	"GET /v1/workflows":           {"as_of"},
	"GET /v1/workflows/{id}":      {"as_of"},
	"GET /v1/order-types":         {"as_of"},
	"GET /v1/order-types/{id}":    {"as_of"},
	"GET /v1/orders":              {"status", "workflow_id", "order_type_id", "state", "sort", "limit", "cursor", "min_seq"},
	"GET /v1/orders/{id}":         {"as_of"},
	"GET /v1/orders/{id}/history": {"limit", "cursor"},
	"GET /v1/board":               {"workflow_id", "min_seq"},
	feedRoute:                     {"types", "order_id", "last_event_id", "after", "access_token"},
}

// checkQuery refuses a query the route would misread: one that does not
// parse (url.Values would drop the pair it cannot read), a parameter the
// route does not take, and one given twice (the route would read the
// first and ignore the other).
func (api *API) checkQuery(takes []string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next(w, r)
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			api.fail(w, r, fmt.Errorf("%w: the query %q does not parse: %v", errBadRequest, r.URL.RawQuery, err))
			return
		}
		for _, k := range slices.Sorted(maps.Keys(q)) {
			switch {
			case !slices.Contains(takes, k) && len(takes) == 0:
				err = fmt.Errorf("%w: unknown query parameter %q: this route takes none", errBadRequest, k)
			case !slices.Contains(takes, k):
				err = fmt.Errorf("%w: unknown query parameter %q: this route takes %s", errBadRequest, k, strings.Join(takes, ", "))
			case len(q[k]) > 1:
				err = fmt.Errorf("%w: query parameter %q is given %d times; give it once", errBadRequest, k, len(q[k]))
			}
			if err != nil {
				api.fail(w, r, err)
				return
			}
		}
		next(w, r)
	}
}

// Register adds every route to mux.
func (api *API) Register(mux *http.ServeMux) {
	for _, r := range api.routes() {
		h := r.handler
		method, _, _ := strings.Cut(r.pattern, " ")
		if r.body == nil && method != http.MethodGet {
			h = api.takesNoBody(h)
		}
		h = api.guard(r.role, api.checkQuery(routeQuery[r.pattern], h))
		switch {
		case r.pattern == feedRoute: // a browser's EventSource cannot send headers
			h = tokenFromQuery(h)
		case conditionalReads[r.pattern]:
			h = conditional(h)
		}
		mux.HandleFunc(r.pattern, api.observe(r.pattern, h))
	}
	mux.HandleFunc("/v1/", noRoute(mux))
}

// noRoute answers, as problems like every other error of the API, a
// request that no route takes: 405 with Allow when the path has routes
// for other methods, 404 otherwise (the ServeMux's own answers are plain
// text).
func noRoute(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			other := r.Clone(r.Context())
			other.Method = m
			if _, pattern := mux.Handler(other); pattern != "/v1/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeProblem(w, Problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Code: "method_not_allowed",
				Detail: fmt.Sprintf("%s %s: this path takes %s", r.Method, r.URL.Path, strings.Join(allow, ", "))})
			return
		}
		writeProblem(w, Problem{Status: http.StatusNotFound, Title: "Not found", Code: "not_found",
			Detail: fmt.Sprintf("no route %s %s (see /openapi.json)", r.Method, r.URL.Path)})
	}
}

// ProjectionStatus is where the orders read model stands.
type ProjectionStatus struct {
	StreamLast     uint64 `json:"stream_last"`
	Applied        uint64 `json:"applied"`
	Rebuilding     bool   `json:"rebuilding"`
	RebuildApplied uint64 `json:"rebuild_applied,omitempty"`
	RebuildTarget  uint64 `json:"rebuild_target,omitempty"`
}

func (api *API) projectionStatus(w http.ResponseWriter, r *http.Request) {
	serveOptional(api, w, r, api.ProjectionStatus, "projection status")
}

// serveOptional answers with what fn returns, or 503 when the API was set
// up without it.
func serveOptional[T any](api *API, w http.ResponseWriter, r *http.Request, fn func(context.Context) (T, error), what string) {
	if fn == nil {
		api.fail(w, r, fmt.Errorf("%w: %s is not available", errUnavailable, what))
		return
	}
	v, err := fn(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	Events       uint64  `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_second"`
	Applied      uint64  `json:"applied"`
}

func (api *API) rebuild(w http.ResponseWriter, r *http.Request) {
	serveOptional(api, w, r, api.Rebuild, "rebuild")
}

// Request errors found before any command runs.
var (
	errBadRequest  = errors.New("bad request")
	errTooLarge    = errors.New("request body too large")
	errUnavailable = errors.New("not available yet")
)

func (api *API) bodyReadTimeout() time.Duration {
	if api.BodyReadTimeout > 0 {
		return api.BodyReadTimeout
	}
	return 30 * time.Second
}

// decodeBody reads one JSON object into v: at most MaxBodyBytes, no unknown
// fields, nothing after it, and a JSON content type when one is given. A
// body over MaxBodyBytes is errTooLarge whatever it holds, so a bad body
// that is also too large is told its size, not the first bad byte.
func (api *API) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("%w: content type %q: send application/json", errBadRequest, ct)
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return fmt.Errorf("%w: content type %q: JSON is read as UTF-8; send the body in UTF-8 (charset=utf-8, or none)", errBadRequest, ct)
		}
	}
	tooLarge := fmt.Errorf("%w: more than %d bytes", errTooLarge, MaxBodyBytes)
	if r.ContentLength > MaxBodyBytes {
		return tooLarge
	}
	within := api.bodyReadTimeout()
	if r.ContentLength < 0 || r.ContentLength > SmallBodyBytes {
		release, err := api.largeBody(r.Context(), within)
		if err != nil {
			return err
		}
		defer release()
	}
	// A body must arrive in time: a caller that trickles one in cannot
	// hold the connection. net/http lifts the deadline itself once the body
	// is read to its end, so the rest of the request is not cut short;
	// after a bad body it stays, so the server's reading of what is left
	// ends too.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(within))
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	err := decodeOne(body, r.ContentLength, v)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: the body did not arrive within %s", errBadRequest, within)
	}
	if err != nil {
		// The rest of a body sent without a length tells whether it was
		// too large; reading it stops at the limit.
		var tooBig *http.MaxBytesError
		if _, rest := io.Copy(io.Discard, body); errors.As(err, &tooBig) || errors.As(rest, &tooBig) {
			return tooLarge
		}
	}
	return err
}

// largeBody waits, for at most within, until fewer than MaxLargeBodies
// large bodies are being read, and takes a slot; release gives it back.
func (api *API) largeBody(ctx context.Context, within time.Duration) (release func(), err error) {
	api.largeOnce.Do(func() { api.largeBodies = make(chan struct{}, MaxLargeBodies) })
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case api.largeBodies <- struct{}{}:
		return func() { <-api.largeBodies }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("%w: %d request bodies of over %d bytes (or sent without a Content-Length) were being read, and none ended within %s: send this one again later",
			errUnavailable, MaxLargeBodies, SmallBodyBytes, within)
	}
}

// errEmptyBody is a request body with nothing in it.
var errEmptyBody = errors.New("empty body; send a JSON object")

// takesNoBody refuses, on a route that takes no body, one with something
// in it: what it asks (a reason for an archive, say) would be dropped
// without a word. No body, an empty one and {} pass.
func (api *API) takesNoBody(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 { // -1: sent without a length
			var none struct{}
			if err := api.decodeBody(w, r, &none); err != nil && !errors.Is(err, errEmptyBody) {
				api.fail(w, r, fmt.Errorf("%w (%s takes no body)", err, r.Pattern))
				return
			}
		}
		h(w, r)
	}
}

// decodeOne reads exactly one JSON object into v, refusing unknown fields,
// a field given twice, and text encoding/json would read altered (see
// checkJSONText). size is the body's Content-Length (-1 when sent without
// one).
func decodeOne(body io.Reader, size int64, v any) error {
	b, err := readAll(body, size)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The client closed the connection, or half of it, before the
		// whole body: its fault, not the server's.
		whole := "its last chunk"
		if size >= 0 {
			whole = fmt.Sprintf("the %d bytes of its Content-Length", size)
		}
		return fmt.Errorf("%w: the body ended after %d bytes, before %s: send it whole", errBadRequest, len(b), whole)
	case err != nil:
		return fmt.Errorf("%w: reading the body: %w", errBadRequest, err)
	}
	if string(bytes.TrimSpace(b)) == "null" { // encoding/json would leave v as it is
		return fmt.Errorf("%w: the body is JSON null; send a JSON object", errBadRequest)
	}
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		return fmt.Errorf("%w: the body starts with a byte-order mark (U+FEFF); send JSON without one", errBadRequest)
	}
	names := scanNames(b, reflect.TypeOf(v)) // one walk of the tokens for both checks
	if names.dupFound {
		return fmt.Errorf("%w: field %q is given twice", errBadRequest, names.dup)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var fe *domain.FieldError
		switch {
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: %w", errBadRequest, errEmptyBody)
		case errors.As(err, &fe):
			return err // an enum field with a value outside its set
		}
		return fmt.Errorf("%w: %w", errBadRequest, JSONError(v, err, "the body"))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the JSON object", errBadRequest)
	}
	if names.caseFound { // encoding/json took it for names.want
		return fmt.Errorf("%w: unknown field %q (names are case-sensitive: %q)", errBadRequest, names.got, names.want)
	}
	if err := checkJSONText(b); err != nil {
		return fmt.Errorf("%w: the body %w", errBadRequest, err)
	}
	return nil
}

// readAll is io.ReadAll for a body of declared size (Content-Length, -1
// when none): its buffer grows as the body arrives, by doubling, but not
// past that size (and a byte, where the last read finds the end), where
// io.ReadAll's growth leaves up to twice a body's size allocated. A
// client that declares a size and sends little holds little.
func readAll(body io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > MaxBodyBytes {
		return io.ReadAll(body)
	}
	b := make([]byte, 0, min(size+1, 512))
	for {
		if len(b) == cap(b) {
			grown := 2 * cap(b)
			if int64(cap(b)) <= size { // not more than declared yet
				grown = int(min(int64(grown), size+1))
			}
			b = append(make([]byte, 0, grown), b...)
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}

// foldName is name as encoding/json matches it to a field: without
// regard to case ("Trigger" sets the field "trigger"), each rune folded
// to the smallest of its Unicode fold set, as encoding/json's own
// foldName does. Two names are one field's exactly when they fold alike.
func foldName(name string) string {
	var b strings.Builder
	for _, r := range name {
		for {
			next := unicode.SimpleFold(r)
			if next <= r {
				r = next
				break
			}
			r = next
		}
		b.WriteRune(r)
	}
	return b.String()
}

// JSONError says in JSON's words why encoding/json refused a JSON text
// (a request's body, a trigger's, a definitions document) into v, a
// pointer to a struct: a JSON value of the wrong kind, an unknown field,
// a time that is not RFC 3339, or malformed JSON. whole names the text
// ("the body"). It never names a Go type or function.
func JSONError(v any, err error, whole string) error {
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch wrongKind := errors.As(err, &te); {
	case errors.As(err, &pe) || strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"): // which field, encoding/json does not say
		return notATime(strings.Join(timeFields(v), " or "))
	case wrongKind && te.Type == reflect.TypeFor[time.Time]() && te.Field != "":
		// Go 1.27's encoding/json (json/v2 underneath) decodes a time
		// itself and names the field; Go 1.26's leaves it to the time.
		return notATime(te.Field)
	case wrongKind && te.Field == "":
		return fmt.Errorf("%s is a JSON %s; send a JSON object", whole, te.Value)
	case wrongKind:
		return fmt.Errorf("field %s: a JSON %s where %s belongs", fieldPath(te.Field), te.Value, jsonKind(te.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "): // encoding/json has no type for it
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return err // a field's own UnmarshalJSON said why
}

// fieldPath is the path encoding/json gives a field ("steps.status"),
// without the array indexes Go 1.27's adds ("steps.0.status"), so that a
// message is the same whichever Go built the binary.
func fieldPath(path string) string {
	parts := strings.Split(path, ".")
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool {
		_, err := strconv.ParseUint(p, 10, 64)
		return err == nil
	}), ".")
}

// notATime says that the time fields named are not RFC 3339 times.
func notATime(fields string) error {
	return fmt.Errorf(`%s: not an RFC 3339 time such as "2026-11-28T09:00:00Z"`, fields)
}

// timeFields are the JSON names of the time fields of the struct v
// points to.
func timeFields(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.Type == reflect.TypeFor[time.Time]() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			names = append(names, name)
		}
	}
	return names
}

// jsonKind names what JSON a request field of type t takes.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string" // encoding/json's []byte
		}
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

// problemFor is the one table from errors to HTTP problems.
func problemFor(err error) Problem {
	var rejected *domain.RejectedError
	switch {
	case errors.As(err, &rejected):
		return Problem{Status: http.StatusConflict, Title: "Trigger rejected", Code: "trigger_rejected",
			Reason: string(rejected.Reason), Expected: rejected.Expected}
	case errors.Is(err, errUnauthenticated):
		return Problem{Status: http.StatusUnauthorized, Title: "Unauthenticated", Code: "unauthenticated"}
	case errors.Is(err, errForbidden):
		return Problem{Status: http.StatusForbidden, Title: "Forbidden", Code: "forbidden"}
	case errors.Is(err, errRateLimited):
		return Problem{Status: http.StatusTooManyRequests, Title: "Too many requests", Code: "rate_limited"}
	case errors.Is(err, errTooLarge):
		return Problem{Status: http.StatusRequestEntityTooLarge, Title: "Payload too large", Code: "payload_too_large"}
	case errors.Is(err, errBadRequest), errors.Is(err, domain.ErrInvalid), errors.Is(err, eventstore.ErrInvalidToken),
		errors.Is(err, eventstore.ErrInvalidEnvelope):
		return Problem{Status: http.StatusBadRequest, Title: "Invalid argument", Code: "invalid_argument"}
	case errors.Is(err, errUnavailable), errors.Is(err, domain.ErrDefinitionMissing), errors.Is(err, eventstore.ErrIndexing),
		errors.Is(err, eventstore.ErrStorageFull), errors.Is(err, eventstore.ErrOutcomeUnknown), errors.Is(err, eventstore.ErrIncompleteRead),
		eventstore.Unavailable(err), errors.Is(err, context.DeadlineExceeded):
		// The store did not answer in time (a cluster electing a leader,
		// say): the same request may well succeed a moment later.
		return Problem{Status: http.StatusServiceUnavailable, Title: "Unavailable", Code: "unavailable"}
	case errors.Is(err, eventstore.ErrUnreadableEvent):
		return Problem{Status: http.StatusInternalServerError, Title: "Unreadable event", Code: "internal"}
	case errors.Is(err, domain.ErrNotFound):
		return Problem{Status: http.StatusNotFound, Title: "Not found", Code: "not_found"}
	case errors.Is(err, ErrPreconditionFailed):
		return Problem{Status: http.StatusPreconditionFailed, Title: "Precondition failed", Code: "precondition_failed"}
	case errors.Is(err, domain.ErrDuplicate), errors.Is(err, domain.ErrInUse), errors.Is(err, domain.ErrArchived),
		errors.Is(err, domain.ErrConflict), errors.Is(err, eventstore.ErrConcurrency):
		return Problem{Status: http.StatusConflict, Title: "Conflict", Code: "conflict"}
	}
	return Problem{Status: http.StatusInternalServerError, Title: "Internal error", Code: "internal"}
}

// statusClientClosed is what the metrics count for a request its client
// gave up on before the answer (nginx's "client closed request").
const statusClientClosed = 499

func (api *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client closed the connection (its own timeout, say, while
		// a cluster elects a leader): nobody reads an answer, and it is
		// not the server's failure to log.
		api.log().Debug("request given up by its client", "method", r.Method, "path", r.URL.Path, "err", err)
		w.WriteHeader(statusClientClosed)
		return
	}
	p := problemFor(err)
	p.Detail = err.Error()
	if n, ok := errors.AsType[*namedError](err); ok {
		p.OrderID, p.TriggerID = n.orderID, n.triggerID
	}
	switch {
	case p.Status == http.StatusServiceUnavailable:
		// Every request meets the same election or slow store, and
		// clients send them again each second: one line, not one per
		// request (orderflow_http_requests_total counts them all).
		if unlogged, ok := api.unavailable.due(time.Now()); ok {
			api.log().Warn("requests answered 503: the server could not serve them in time (err says why; logged once every "+reportEvery.String()+")",
				"method", r.Method, "path", r.URL.Path, "request_id", w.Header().Get("X-Request-ID"), "err", err, "unlogged_since_last", unlogged)
		}
		w.Header().Set("Retry-After", "1")
	case p.Status >= 500:
		id := w.Header().Get("X-Request-ID") // as RequestID answers it
		api.log().Error("request failed", "method", r.Method, "path", r.URL.Path, "request_id", id, "err", err)
		if p.Status == http.StatusInternalServerError && !errors.Is(err, eventstore.ErrUnreadableEvent) {
			p.Detail = "internal error; see the server log"
			if id != "" {
				p.Detail += " (request_id " + id + ")"
			}
		}
	}
	writeProblem(w, p)
}

func (api *API) log() *slog.Logger {
	if api.Log != nil {
		return api.Log
	}
	return slog.Default()
}

// meta reads who is asking (X-Orderflow-Actor, default "api"; with API
// keys the key's name, followed by "/" and X-Orderflow-Actor when given),
// the correlation id (X-Request-ID, generated when absent), If-Match, and
// on the routes whose commands take one, the Idempotency-Key.
func meta(r *http.Request) (Meta, error) {
	for _, h := range []string{"X-Request-ID", "X-Orderflow-Actor", "If-Match"} {
		if n := len(r.Header.Values(h)); n > 1 { // Get would read the first and ignore the rest
			return Meta{}, fmt.Errorf("%w: %s given %d times", errBadRequest, h, n)
		}
	}
	m := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "api"}, CorrelationID: r.Header.Get("X-Request-ID")}
	a, err := onBehalf(r, strings.TrimSpace(r.Header.Get("X-Orderflow-Actor")), "X-Orderflow-Actor")
	if err != nil {
		return m, err
	}
	if a != "" {
		m.Actor.ID = a
	}
	if err := domain.CheckActorID("X-Request-ID", m.CorrelationID); err != nil {
		return m, err
	}
	if m.CorrelationID == "" {
		m.CorrelationID, _ = r.Context().Value(requestIDCtx{}).(string) // the one RequestID made and answers with
	}
	if m.CorrelationID == "" {
		m.CorrelationID = uuid.NewString()
	}
	if keyedRoutes[r.Pattern].replays { // a command that takes the key as its RequestKey
		if m.RequestKey, err = idempotencyKey(r); err != nil {
			return m, err
		}
	}
	if im := strings.TrimSpace(r.Header.Get("If-Match")); im != "" && im != "*" {
		v, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(im, "W/"), `"`), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%w: If-Match %q is not a version such as \"3\"", errBadRequest, im)
		}
		m.IfMatch = &v
	}
	return m, nil
}

func setETag(w http.ResponseWriter, version uint64) {
	w.Header().Set("ETag", `"`+strconv.FormatUint(version, 10)+`"`)
}

// pathToken reads a path value that must be a safe subject token.
func pathToken(r *http.Request, name, field string) (string, error) {
	v := r.PathValue(name)
	if err := eventstore.ValidateToken(field, v); err != nil {
		return "", err
	}
	return v, nil
}

func pathIndex(r *http.Request, name string) (int, error) {
	v := r.PathValue(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || strconv.Itoa(n) != v { // "01" and "+1" would name step 1 too
		return 0, fmt.Errorf("%w: %s %q is not a step index (0, 1, 2 …)", errBadRequest, name, v)
	}
	return n, nil
}

type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}
