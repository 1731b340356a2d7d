package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// The supervisor actions, each with the body it takes: hold, resume and
// cancel {"reason"}, move {"workflow_id", "step", "reason"}, migrate
// {"workflow_id", "to_version", "reason"}. A field of another action's
// body is unknown (400), not dropped.

type reasonBody struct {
	Reason string `json:"reason"`
}

type moveOrderBody struct {
	WorkflowID *string `json:"workflow_id"`
	Step       *int    `json:"step"`
	Reason     string  `json:"reason"`
}

type migrateOrderBody struct {
	WorkflowID *string `json:"workflow_id"`
	ToVersion  *uint64 `json:"to_version"`
	Reason     string  `json:"reason"`
}

func holdOrder(c *Commands, ctx context.Context, m Meta, id string, b reasonBody) (OrderSnapshot, error) {
	return c.HoldOrder(ctx, m, id, b.Reason)
}

func resumeOrder(c *Commands, ctx context.Context, m Meta, id string, b reasonBody) (OrderSnapshot, error) {
	return c.ResumeOrder(ctx, m, id, b.Reason)
}

func cancelOrder(c *Commands, ctx context.Context, m Meta, id string, b reasonBody) (OrderSnapshot, error) {
	return c.CancelOrder(ctx, m, id, b.Reason)
}

func moveOrder(c *Commands, ctx context.Context, m Meta, id string, b moveOrderBody) (OrderSnapshot, error) {
	if b.WorkflowID == nil || b.Step == nil {
		return OrderSnapshot{}, &domain.FieldError{Field: "workflow_id, step", Reason: "both are required"}
	}
	return c.MoveOrder(ctx, m, id, *b.WorkflowID, *b.Step, b.Reason)
}

func migrateOrder(c *Commands, ctx context.Context, m Meta, id string, b migrateOrderBody) (OrderSnapshot, error) {
	if b.WorkflowID == nil || b.ToVersion == nil {
		return OrderSnapshot{}, &domain.FieldError{Field: "workflow_id, to_version", Reason: "both are required"}
	}
	return c.MigrateOrder(ctx, m, id, *b.WorkflowID, *b.ToVersion, b.Reason)
}

// OrderJSON is an order as the API shows it.
type OrderJSON struct {
	ID          string            `json:"id"`
	OrderTypeID string            `json:"order_type_id"`
	State       domain.OrderState `json:"state"`
	Position    PositionJSON      `json:"position"`
	PlacedAt    time.Time         `json:"placed_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Version     uint64            `json:"version"`
}

// PositionJSON is an order's current step with its names.
type PositionJSON struct {
	WorkflowID      string    `json:"workflow_id"`
	WorkflowName    string    `json:"workflow_name"`
	WorkflowType    string    `json:"workflow_type"`
	WorkflowVersion uint64    `json:"workflow_version"`
	Step            int       `json:"step"`
	Status          string    `json:"status"`
	StatusName      string    `json:"status_name"`
	Category        string    `json:"category"`
	ExpectedTrigger *string   `json:"expected_trigger"`
	EnteredAt       time.Time `json:"entered_at"`
}

// orderJSON renders an order.
func (c *Commands) orderJSON(o OrderSnapshot) OrderJSON {
	out := OrderJSON{ID: o.ID, OrderTypeID: o.OrderTypeID, State: o.State, Version: o.Version,
		PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt}
	out.Position = c.positionJSON(o.Position, o.State)
	out.Position.EnteredAt = o.EnteredAt
	return out
}

type placeBody struct {
	ID                    string `json:"id"`
	OrderTypeID           string `json:"order_type_id"`
	FulfillmentWorkflowID string `json:"fulfillment_workflow_id"`
}

// placeOrder places an order. With an Idempotency-Key header the request
// is safe to send again: the order's id is the body's, else derived from
// the key; OrderPlaced carries the key as its causation id, and a resend
// answers the order the first one placed (201 with Idempotent-Replayed:
// true) instead of 409.
func (api *API) placeOrder(w http.ResponseWriter, r *http.Request) {
	var b placeBody
	m, err := meta(r)
	if err == nil {
		err = api.decodeBody(w, r, &b)
	}
	if err == nil && b.OrderTypeID == "" {
		err = &domain.FieldError{Field: "order_type_id", Reason: "is required"}
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	switch {
	case b.ID != "":
	case m.RequestKey != "":
		b.ID = OrderIDForKey(m.RequestKey)
	default:
		b.ID = uuid.Must(uuid.NewV7()).String()
	}
	o, err := api.cmds(r).PlaceOrder(r.Context(), m, b.ID, b.OrderTypeID, b.FulfillmentWorkflowID)
	if err != nil {
		// The order may be placed (a 503 leaves it open): its id, made
		// here when the request gave none, is what reading it needs.
		api.fail(w, r, &namedError{orderID: b.ID, err: err})
		return
	}
	api.writeOrder(w, r, http.StatusCreated, o)
}

// maxIdempotencyKey is the longest Idempotency-Key taken (a UUID is 36).
const maxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header ("" when absent): a
// structured-field string (quoted, as the IETF draft writes it) or the
// bare value, of printable ASCII.
func idempotencyKey(r *http.Request) (string, error) {
	vs := r.Header.Values("Idempotency-Key")
	if len(vs) == 0 {
		return "", nil
	}
	k := strings.TrimSpace(vs[0])
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	switch {
	case len(vs) > 1:
		return "", fmt.Errorf("%w: Idempotency-Key given %d times", errBadRequest, len(vs))
	case k == "":
		return "", fmt.Errorf("%w: Idempotency-Key is empty", errBadRequest)
	case len(k) > maxIdempotencyKey:
		return "", fmt.Errorf("%w: Idempotency-Key longer than %d bytes", errBadRequest, maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\' {
			return "", fmt.Errorf("%w: Idempotency-Key %q holds a character that is not printable ASCII, or a quote or backslash", errBadRequest, k)
		}
	}
	return k, nil
}

// writeOrder writes an order as a command left it or a read found it. It
// also waits (bounded) until the orders read model shows the order's last
// event, so a list or board read after a command reflects it, and names
// that event's stream sequence in X-Orderflow-Sequence (the value
// ?min_seq= takes).
func (api *API) writeOrder(w http.ResponseWriter, r *http.Request, status int, o OrderSnapshot) {
	api.writeOrderAs(w, r, status, o, func(o OrderJSON) any { return o })
}

// setReplayed marks the answer to a resend of a request with an
// Idempotency-Key: it records nothing and answers what the first did.
func setReplayed(w http.ResponseWriter, replayed bool) {
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
}

// writeOrderAs is writeOrder with the order's JSON placed in a body of
// the route's own (body builds it).
func (api *API) writeOrderAs(w http.ResponseWriter, r *http.Request, status int, o OrderSnapshot, body func(OrderJSON) any) {
	api.settle(r.Context(), w, o.Sequence)
	setETag(w, o.Version)
	setReplayed(w, o.Replayed)
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/orders/"+o.ID)
	}
	writeJSON(w, status, body(api.cmds(r).orderJSON(o)))
}

// getOrder answers with the order as it is now, or as it was at ?as_of=
// (read from its whole history).
func (api *API) getOrder(w http.ResponseWriter, r *http.Request) {
	id, asOf, err := pathTokenAsOf(r, "id", "order id")
	if err != nil {
		api.fail(w, r, err)
		return
	}
	if asOf == nil {
		o, err := api.cmds(r).CurrentOrder(r.Context(), id)
		if err != nil {
			api.fail(w, r, err)
			return
		}
		api.writeOrder(w, r, http.StatusOK, o)
		return
	}
	o, events, err := api.cmds(r).LoadOrderAsOf(r.Context(), id, asOf)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	snap := snapshotFrom(o, events)
	setETag(w, snap.Version)
	writeJSON(w, http.StatusOK, api.cmds(r).orderJSON(snap))
}

// pathTokenAsOf reads a path token and ?as_of=, for the routes that answer
// as of a point in time.
func pathTokenAsOf(r *http.Request, name, field string) (string, *time.Time, error) {
	id, err := pathToken(r, name, field)
	if err != nil {
		return "", nil, err
	}
	asOf, err := asOfParam(r)
	return id, asOf, err
}

// asOfParam reads ?as_of= (RFC 3339); nil when absent (a zero time is
// given: 0001-01-01T00:00:00Z, before everything). A zone offset's
// "+" sent as it is (as_of=2026-11-30T09:00:00+01:00, which curl and
// browsers pass on unescaped) is read as the "+" it was: a query string
// decodes it as a space, which no RFC 3339 time holds.
func asOfParam(r *http.Request) (*time.Time, error) {
	v := r.URL.Query().Get("as_of")
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil && strings.Contains(v, " ") {
		t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
	}
	if err != nil {
		return nil, &domain.FieldError{Field: "as_of", Reason: fmt.Sprintf("%q is not an RFC 3339 time such as 2026-11-27T17:00:00Z", v)}
	}
	return &t, nil
}

// historyJSON is an order's events, oldest first, and where the next
// page starts when there is one.
type historyJSON struct {
	Events     []eventstore.Envelope `json:"events"`
	NextCursor string                `json:"next_cursor,omitempty"`
}

// orderHistory answers with the order's events, oldest first: all of
// them, or with ?limit= (and ?cursor= from the page before) a page, with
// next_cursor when more follow. A page reads only its own events from the
// store, so a long history can be read a page at a time.
func (api *API) orderHistory(w http.ResponseWriter, r *http.Request) {
	id, err := pathToken(r, "id", "order id")
	if err != nil {
		api.fail(w, r, err)
		return
	}
	q := r.URL.Query() // checkQuery has refused parameters the route does not take
	limit := 0         // all
	if q.Has("limit") || q.Has("cursor") {
		limit = defaultLimit
	}
	limit, err = limitParam(q, limit)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	var after uint64
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err == nil {
			after, err = strconv.ParseUint(string(b), 10, 64)
		}
		if err != nil || after == 0 {
			api.fail(w, r, fmt.Errorf("%w: cursor %q is not one this API returned", errBadRequest, c))
			return
		}
	}
	c := api.cmds(r)
	addr := c.orderAddr(id)
	events, more, err := c.Store.LoadPage(r.Context(), addr, after, limit)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	if len(events) == 0 && after == 0 {
		api.fail(w, r, notFoundOrder(id))
		return
	}
	out := historyJSON{Events: make([]eventstore.Envelope, len(events))}
	for i, ev := range events {
		out.Events[i] = ev.Envelope
	}
	if more {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(events[len(events)-1].Sequence, 10)))
	}
	writeJSON(w, http.StatusOK, out)
}

// supervise serves a supervisor action that reads a body B (none sent
// is B's zero value).
func supervise[B any](api *API, do func(c *Commands, ctx context.Context, m Meta, id string, b B) (OrderSnapshot, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b B
		id, err := pathToken(r, "id", "order id")
		m, merr := meta(r)
		err = errors.Join(err, merr)
		if err == nil && r.ContentLength != 0 {
			err = api.decodeBody(w, r, &b)
		}
		if err != nil {
			api.fail(w, r, err)
			return
		}
		o, err := do(api.cmds(r), r.Context(), m, id, b)
		if err != nil {
			api.fail(w, r, err)
			return
		}
		api.writeOrder(w, r, http.StatusOK, o)
	}
}

type triggerRequest struct {
	Trigger   string `json:"trigger"`
	TriggerID string `json:"trigger_id"`
	Worker    string `json:"worker"`
	// Note and OccurredAt are what a worker app may also say over NATS
	// (a trigger body's note and occurred_at): recorded with the outcome.
	Note       string    `json:"note,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
}

// postTrigger publishes the trigger to ORDERFLOW_TRIGGERS, as a worker app
// would, and answers once the trigger processor has stored its outcome: an
// HTTP trigger takes its place in the order's lane like any other. An
// Idempotency-Key header is the trigger id when the body gives none.
func (api *API) postTrigger(w http.ResponseWriter, r *http.Request) {
	var b triggerRequest
	id, err := pathToken(r, "id", "order id")
	if err == nil {
		err = api.decodeBody(w, r, &b)
	}
	if err == nil {
		err = eventstore.ValidateToken("trigger", b.Trigger)
	}
	var key string
	if err == nil {
		key, err = idempotencyKey(r)
	}
	switch {
	case err != nil || key == "":
	case b.TriggerID == "":
		b.TriggerID = key // the trigger's idempotency key, as trigger_id is
	case b.TriggerID != key:
		err = &domain.FieldError{Field: "trigger_id", Reason: fmt.Sprintf("%q differs from the Idempotency-Key %q: give one of them, or both the same", b.TriggerID, key)}
	}
	if err == nil {
		if err = domain.ValidateTriggerID(b.TriggerID); err != nil && key != "" {
			err = fmt.Errorf("Idempotency-Key, the trigger's id: %w", err)
		}
	}
	if err == nil {
		b.Worker, err = triggerWorker(r, b.Worker)
	}
	if err == nil {
		err = domain.TriggerReport{Worker: b.Worker, Note: b.Note, OccurredAt: b.OccurredAt}.Check()
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	if b.TriggerID == "" {
		b.TriggerID = uuid.Must(uuid.NewV7()).String()
	}
	var o OrderSnapshot
	outcome, err := api.cmds(r).SendTrigger(r.Context(), id, b.Trigger,
		TriggerBody{TriggerID: b.TriggerID, Worker: b.Worker, Note: b.Note, OccurredAt: b.OccurredAt})
	if err == nil {
		o, err = api.cmds(r).CurrentOrder(r.Context(), id)
	}
	if err != nil {
		// The trigger may be stored (a 503 says it is): its id, made here
		// when the request gave none, is what sending it again needs.
		api.fail(w, r, &namedError{triggerID: b.TriggerID, err: err})
		return
	}
	api.writeOrderAs(w, r, http.StatusOK, o, func(o OrderJSON) any {
		return triggerAnswer{Outcome: outcome, Order: o}
	})
}

// namedError is a command's failure and the ids its problem names (see
// Problem.OrderID).
type namedError struct {
	orderID, triggerID string
	err                error
}

func (e *namedError) Error() string { return e.err.Error() }
func (e *namedError) Unwrap() error { return e.err }

// triggerAnswer is a trigger's answer: what it did, and the order after.
type triggerAnswer struct {
	Outcome domain.TriggerOutcome `json:"outcome"`
	Order   OrderJSON             `json:"order"`
}

// triggerWorker is the worker a trigger sent over HTTP names: the body's
// worker, or else the caller's X-Orderflow-Actor, or else "api" (see
// onBehalf for a caller with an API key). The
// request's headers are checked as every command's are (meta); If-Match
// is refused, since no version of the order decides a trigger: its
// current step does.
func triggerWorker(r *http.Request, worker string) (string, error) {
	m, err := meta(r)
	switch {
	case err != nil:
		return "", err
	case m.IfMatch != nil:
		return "", fmt.Errorf("%w: If-Match: a trigger is not applied to a version of the order; its current step decides it (409 trigger_rejected when the trigger is not that step's)", errBadRequest)
	}
	actor := strings.TrimSpace(r.Header.Get("X-Orderflow-Actor"))
	switch {
	case worker == "":
		worker = actor
	case actor != "" && actor != worker:
		return "", &domain.FieldError{Field: "worker", Reason: fmt.Sprintf("%q differs from X-Orderflow-Actor %q: give one of them, or both the same", worker, actor)}
	}
	if _, keyed := callerKey(r); !keyed && worker == "" {
		worker = "api" // as meta names a caller who gives no name
	}
	return onBehalf(r, worker, "worker")
}

// SendTrigger publishes a trigger for an order, with body as a worker app
// would send it (its TriggerID set), and waits until its outcome is
// stored: advanced, completed or duplicate, or a *domain.RejectedError.
func (c *Commands) SendTrigger(ctx context.Context, orderID, trigger string, body TriggerBody) (domain.TriggerOutcome, error) {
	triggerID := body.TriggerID
	addr := c.orderAddr(orderID)
	if err := addr.Validate(); err != nil {
		return "", err
	}
	if err := c.knownTrigger(ctx, trigger); err != nil {
		return "", err
	}
	// Listen on the order's subjects before looking or publishing, so the
	// outcome cannot slip past.
	events := make(chan *nats.Msg, 64)
	sub, err := c.Store.Conn().ChanSubscribe(addr.Filter(), events)
	if err != nil {
		return "", err
	}
	defer sub.Unsubscribe()

	// Seen before: a duplicate, or the same rejection again. The order
	// comes from the orders' cache when it is there, or is read into it,
	// where the processor that applies the trigger next finds it. A cached
	// order that lacks events the store's load index has seen (another
	// process applied a trigger since) is brought up to date first: after
	// JetStream's duplicate window nothing else would tell that this
	// trigger took effect there, and stored again it would record nothing,
	// its outcome waited for in vain. The index costs no round trip.
	if c.orderCache().behind(addr.Filter(), c.Store.IndexedLast(addr)) {
		if _, err := c.CurrentOrder(ctx, orderID); err != nil {
			return "", err
		}
	}
	if out, found, err := c.storedOutcome(ctx, orderID, trigger, triggerID, true); found || err != nil {
		return out, err
	}
	m := nats.NewMsg(eventstore.TriggerSubject(c.Tenant, orderID, trigger))
	m.Data, _ = json.Marshal(body)
	m.Header.Set(jetstream.MsgIDHeader, triggerID)
	ack, err := c.Store.JetStream().PublishMsg(ctx, m)
	if err != nil {
		return "", fmt.Errorf("publish trigger: %w", eventstore.Refusal(err))
	}
	if ack.Duplicate {
		if err := c.checkTriggerIDOwner(ctx, orderID, trigger, triggerID, ack.Sequence); err != nil {
			return "", err
		}
		// JetStream had this trigger id already, so its outcome is likely
		// stored: by another process, say, whose work the cache above did
		// not show. The order's history answers at once.
		if out, ok, err := c.repeatOf(ctx, orderID, trigger, triggerID); ok {
			return out, err
		}
	}
	return c.awaitOutcome(ctx, events, orderID, trigger, triggerID, ack.Duplicate, 2*c.readTimeout())
}

// checkTriggerIDOwner refuses a trigger id that JetStream reported as a
// duplicate of a trigger stored (at seq) for another order, or for another
// trigger key of this order: JetStream deduplicates Nats-Msg-Id across the
// whole stream, so this trigger was not stored and would never take
// effect. The same order and key is a repeat: a duplicate. When the
// stored trigger cannot be read, nothing is refused: the outcome is
// waited for as before.
func (c *Commands) checkTriggerIDOwner(ctx context.Context, orderID, trigger, triggerID string, seq uint64) error {
	subject, err := c.Store.SubjectAt(ctx, eventstore.StreamTriggers, seq)
	if err != nil {
		return nil
	}
	tenant, owner, key, err := eventstore.ParseTriggerSubject(subject)
	if err != nil {
		return nil
	}
	if tenant == c.Tenant && owner == orderID {
		if key == trigger {
			return nil
		}
		return &domain.FieldError{Field: "trigger_id", Kind: domain.ErrDuplicate, Reason: fmt.Sprintf(
			"%q is already the id of trigger %q on order %q, so this one was not stored; give each trigger an id of its own",
			triggerID, key, orderID)}
	}
	other := "another order" // of another tenant: not named
	if tenant == c.Tenant {
		other = fmt.Sprintf("order %q (%s)", owner, key)
	}
	return &domain.FieldError{Field: "trigger_id", Kind: domain.ErrDuplicate, Reason: fmt.Sprintf(
		"%q is already the id of a trigger for %s, so this one was not stored; give each trigger an id of its own",
		triggerID, other)}
}

// knownTrigger refuses a trigger key that the tenant's trigger library has
// never held (an archived one is known: an order's pinned workflow version
// may still wait for it). Over HTTP such a key is bad input and stores
// nothing; over NATS the processor records it as a TriggerRejected, as it
// does any trigger that is not the current step's. The read model is
// synced before refusing, so a trigger added a moment ago is known.
func (c *Commands) knownTrigger(ctx context.Context, key string) error {
	if found, _ := c.view().LookupTrigger(key); found {
		return nil
	}
	if err := c.syncReadModel(ctx); err != nil {
		return fmt.Errorf("%w: the trigger library: %w", errUnavailable, err)
	}
	if found, _ := c.view().LookupTrigger(key); found {
		return nil
	}
	return &domain.FieldError{Field: "trigger", Reason: "no trigger " + strconv.Quote(key) + " in the trigger library"}
}

// awaitOutcome waits up to within for a stored trigger's outcome. An
// outcome heard among events (the order's subjects, listened to since
// before the trigger was stored) is only word that one may be stored: a
// plain subscriber hears every event published, also one the stream then
// refuses (the processor's append lost a race with another writer of the
// order, and the trigger is decided again, perhaps otherwise), and hears
// it before the stream has stored it. So the order as stored answers
// (storedOutcome): when word comes, and again after a pause that doubles
// (recheckFirst to recheckMost) while it has not, from the start for a
// duplicate (stored before: its outcome may have been heard by nobody
// here, and stored after the look before publishing), and once more when
// within ends. A duplicate answers duplicate, or the first one's
// rejection again; an id that names another trigger of the order is
// refused (it never takes effect).
func (c *Commands) awaitOutcome(ctx context.Context, events <-chan *nats.Msg, orderID, trigger, triggerID string, duplicate bool, within time.Duration) (domain.TriggerOutcome, error) {
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	pause := recheckFirst
	recheck := time.NewTimer(pause)
	defer recheck.Stop()
	if !duplicate {
		recheck.Stop() // until word comes
	}
	for {
		select {
		case msg := <-events:
			var env eventstore.Envelope
			if json.Unmarshal(msg.Data, &env) != nil || env.CausationID != triggerID || !domain.IsTriggerOutcome(env.Type) {
				continue
			}
		case <-recheck.C:
		case <-wctx.Done():
			out, found, err := c.currentOutcome(ctx, orderID, trigger, triggerID, duplicate)
			if found {
				return out, err
			}
			return "", fmt.Errorf("%w: trigger %s is stored and takes effect when a trigger processor gets to it, "+
				"but its outcome was not seen within %s (send it again with the same trigger_id to learn it): %w",
				errUnavailable, triggerID, within, wctx.Err())
		}
		if out, found, err := c.currentOutcome(wctx, orderID, trigger, triggerID, duplicate); found {
			return out, err
		}
		recheck.Reset(pause)
		pause = min(2*pause, recheckMost)
	}
}

// The pauses of awaitOutcome's look at the stored order while the
// outcome is not there.
const (
	recheckFirst = 20 * time.Millisecond
	recheckMost  = time.Second
)

// currentOutcome is storedOutcome of the order brought up to date with
// what the store has (CurrentOrder).
func (c *Commands) currentOutcome(ctx context.Context, orderID, trigger, triggerID string, again bool) (domain.TriggerOutcome, bool, error) {
	if _, err := c.CurrentOrder(ctx, orderID); err != nil {
		return "", false, err
	}
	return c.storedOutcome(ctx, orderID, trigger, triggerID, again)
}

// storedOutcome is what the order as held (the orders' cache) says of
// trigger id triggerID sent for trigger: found with its outcome (advanced
// or completed; duplicate when sent again) or its rejection
// (*domain.RejectedError, the same when sent again), or an error matching
// domain.ErrDuplicate when the id is another trigger's of the order (it
// never takes effect); an order that does not exist is an error.
func (c *Commands) storedOutcome(ctx context.Context, orderID, trigger, triggerID string, again bool) (out domain.TriggerOutcome, found bool, err error) {
	var rejected bool
	var rejection domain.RejectedError
	if _, err := c.order(ctx, orderID, Meta{}, func(o *domain.Order) error {
		if !o.Exists() {
			return notFoundOrder(orderID)
		}
		if err := o.CheckTriggerID(trigger, triggerID); err != nil {
			found = true
			return err // the id of another trigger of the order: never takes effect
		}
		out, found = o.TriggerOutcome(triggerID)
		rejection, rejected = o.Rejection(triggerID)
		return nil
	}); err != nil {
		return "", found, err
	}
	switch {
	case rejected:
		return "", true, &rejection
	case found && again:
		return domain.OutcomeDuplicate, true, nil
	}
	return out, found, nil
}

// repeatOf answers a trigger id sent again from the event it caused in the
// order's history, if it is there (see repeated), or refuses it when that
// event is another trigger's (domain.CheckOutcomeTrigger).
func (c *Commands) repeatOf(ctx context.Context, orderID, trigger, triggerID string) (out domain.TriggerOutcome, found bool, err error) {
	_, history, err := c.LoadOrder(ctx, orderID)
	if err != nil {
		return "", false, nil
	}
	ev, ok := causedBy(history, triggerID)
	if !ok {
		return "", false, nil
	}
	if err := domain.CheckOutcomeTrigger(orderID, triggerID, trigger, ev.Type, ev.Data); err != nil {
		return "", true, err
	}
	out, err = repeated(ev.Envelope)
	return out, true, err
}

// repeated is the answer to a trigger id sent again, from the outcome
// event the first one caused: duplicate, or the first one's rejection
// again (*domain.RejectedError with the reason and expected trigger it
// recorded), so a worker app that sends a trigger again after losing the
// answer learns what the first one did, and never takes a rejected
// trigger for a success.
func repeated(env eventstore.Envelope) (domain.TriggerOutcome, error) {
	if _, err := domain.OutcomeOf(env.Type, env.Data); err != nil {
		return "", err
	}
	return domain.OutcomeDuplicate, nil
}

// causedBy finds the outcome a trigger id caused in an order's history.
func causedBy(history []eventstore.Event, triggerID string) (eventstore.Event, bool) {
	for _, ev := range history {
		if ev.CausationID == triggerID && domain.IsTriggerOutcome(ev.Type) {
			return ev, true
		}
	}
	return eventstore.Event{}, false
}

// settle waits until the orders read model shows stream sequence seq (an
// order's last event) and sets X-Orderflow-Sequence.
func (api *API) settle(ctx context.Context, w http.ResponseWriter, seq uint64) {
	if seq == 0 {
		return
	}
	w.Header().Set("X-Orderflow-Sequence", strconv.FormatUint(seq, 10))
	if api.Orders != nil {
		wctx, cancel := context.WithTimeout(ctx, api.Commands.readTimeout())
		defer cancel()
		_ = api.Orders().WaitFor(wctx, seq) // a timeout leaves the list a little behind; the answer itself is exact
	}
}

// minSeq honours ?min_seq=N: wait (bounded) until the orders read model
// reflects stream sequence N, as returned in X-Orderflow-Sequence.
func (api *API) minSeq(r *http.Request) error {
	v := r.URL.Query().Get("min_seq")
	if v == "" {
		return nil
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: min_seq %q is not a sequence number", errBadRequest, v)
	}
	if api.Orders().Applied() >= seq {
		return nil
	}
	// Behind: a sequence past the stream's end would never come.
	if last, err := api.Commands.Store.LastSequence(r.Context(), eventstore.StreamOrders); err == nil && seq > last {
		return &domain.FieldError{Field: "min_seq", Reason: fmt.Sprintf("%d is past the last order event (%d)", seq, last)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), api.Commands.readTimeout())
	defer cancel()
	if err := api.Orders().WaitFor(ctx, seq); err != nil {
		return fmt.Errorf("%w: %v", errUnavailable, err)
	}
	return nil
}

// Paging limits of GET /v1/orders.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// limitParam reads ?limit= (1 to maxLimit); def when absent.
func limitParam(q url.Values, def int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, &domain.FieldError{Field: "limit", Reason: fmt.Sprintf("%q is not 1 to %d", v, maxLimit)}
	}
	return n, nil
}

func (api *API) listOrders(w http.ResponseWriter, r *http.Request) {
	if err := api.minSeq(r); err != nil {
		api.fail(w, r, err)
		return
	}
	q := r.URL.Query() // checkQuery has refused parameters the route does not take
	f := projections.OrderFilter{Status: q.Get("status"), WorkflowID: q.Get("workflow_id"), OrderTypeID: q.Get("order_type_id"),
		State: domain.OrderState(q.Get("state"))}
	// A key or id no definition can have is refused, as in a path; one
	// that could exist but does not matches nothing.
	var bad []error
	for _, p := range [][2]string{{"status", f.Status}, {"workflow_id", f.WorkflowID}, {"order_type_id", f.OrderTypeID}} {
		if p[1] != "" {
			bad = append(bad, eventstore.ValidateToken(p[0], p[1]))
		}
	}
	if err := errors.Join(bad...); err != nil {
		api.fail(w, r, err)
		return
	}
	switch f.State {
	case "", domain.StateActive, domain.StateOnHold, domain.StateCompleted, domain.StateCancelled:
	default:
		api.fail(w, r, &domain.FieldError{Field: "state", Reason: fmt.Sprintf("%q is not active, on_hold, completed or cancelled", f.State)})
		return
	}
	limit, err := limitParam(q, defaultLimit)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	var (
		rows []projections.OrderRow
		more bool
		// cursorAfter is the next page's cursor, after the last row.
		cursorAfter = func(last projections.OrderRow) string { return last.ID }
	)
	switch sort := q.Get("sort"); sort {
	case "", "id":
		after := ""
		if c := q.Get("cursor"); c != "" {
			b, err := base64.RawURLEncoding.DecodeString(c)
			if err != nil || eventstore.ValidateToken("cursor", string(b)) != nil {
				api.fail(w, r, fmt.Errorf("%w: cursor %q is not one this API returned (for sort=id)", errBadRequest, c))
				return
			}
			after = string(b)
		}
		rows, more = api.Orders().List(api.cmds(r).Tenant, f, after, limit)
	case "entered_at":
		var after projections.EntryCursor
		if c := q.Get("cursor"); c != "" {
			if after, err = entryCursor(c); err != nil {
				api.fail(w, r, err)
				return
			}
		}
		rows, more = api.Orders().ListByEntry(api.cmds(r).Tenant, f, after, limit)
		cursorAfter = func(last projections.OrderRow) string {
			return entryCursorPrefix + last.EnteredAt.UTC().Format(time.RFC3339Nano) + "/" + last.ID
		}
	default:
		api.fail(w, r, &domain.FieldError{Field: "sort", Reason: fmt.Sprintf("%q is not id (by order id, the default) or entered_at (longest in its stage first)", sort)})
		return
	}
	out := list[OrderJSON]{Items: make([]OrderJSON, 0, len(rows))}
	for _, row := range rows {
		out.Items = append(out.Items, api.cmds(r).rowJSON(row))
	}
	if more && len(rows) > 0 {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(cursorAfter(rows[len(rows)-1])))
	}
	w.Header().Set("X-Orderflow-Sequence", strconv.FormatUint(api.Orders().Applied(), 10))
	writeJSON(w, http.StatusOK, out)
}

// entryCursorPrefix starts a cursor of a listing by entry time
// (sort=entered_at): "e:<entered_at>/<id>", which no id cursor can be.
const entryCursorPrefix = "e:"

// entryCursor reads a next_cursor of a listing by entry time.
func entryCursor(c string) (projections.EntryCursor, error) {
	bad := fmt.Errorf("%w: cursor %q is not one this API returned for sort=entered_at", errBadRequest, c)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return projections.EntryCursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(b), entryCursorPrefix)
	at, id, found := strings.Cut(rest, "/")
	if !ok || !found || eventstore.ValidateToken("cursor", id) != nil {
		return projections.EntryCursor{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return projections.EntryCursor{}, bad
	}
	return projections.EntryCursor{EnteredAt: t, ID: id}, nil
}

// rowJSON renders a read-model row like orderJSON renders an aggregate.
func (c *Commands) rowJSON(row projections.OrderRow) OrderJSON {
	out := OrderJSON{ID: row.ID, OrderTypeID: row.OrderTypeID, State: row.State, PlacedAt: row.PlacedAt, UpdatedAt: row.UpdatedAt, Version: row.Version}
	out.Position = c.positionJSON(row.Position, row.State)
	out.Position.EnteredAt = row.EnteredAt
	return out
}

// positionJSON names a position from the definitions.
func (c *Commands) positionJSON(p domain.Position, state domain.OrderState) PositionJSON {
	out := PositionJSON{WorkflowID: p.WorkflowID, WorkflowVersion: p.WorkflowVersion, Step: p.Step, Status: p.Status}
	view := c.view()
	if w, ok := view.WorkflowVersion(p.WorkflowID, p.WorkflowVersion); ok {
		out.WorkflowName, out.WorkflowType = w.Name, w.Type.String()
		if (state == domain.StateActive || state == domain.StateOnHold) && p.Step < len(w.Steps) {
			exp := w.Steps[p.Step].Trigger
			out.ExpectedTrigger = &exp
		}
	}
	if st, _, ok := view.Status(p.Status); ok {
		out.StatusName, out.Category = st.Name, st.Category.String()
	}
	return out
}

// BoardItem is one stage of the board (GET /v1/board): a status of a
// workflow, how many orders are in it, and how long orders stayed.
type BoardItem struct {
	WorkflowID      string     `json:"workflow_id"`
	WorkflowName    string     `json:"workflow_name"`
	Status          string     `json:"status"`
	StatusName      string     `json:"status_name"`
	Count           int        `json:"count"`
	OldestEnteredAt *time.Time `json:"oldest_entered_at"`
	// Held of Count are on hold.
	Held int `json:"held"`
	// Left and AverageStaySeconds: time spent per stage by the orders
	// that have left it.
	Left               int     `json:"left"`
	AverageStaySeconds float64 `json:"average_stay_seconds"`
}

func (api *API) board(w http.ResponseWriter, r *http.Request) {
	if err := api.minSeq(r); err != nil {
		api.fail(w, r, err)
		return
	}
	wf := r.URL.Query().Get("workflow_id")
	if wf != "" {
		if err := eventstore.ValidateToken("workflow_id", wf); err != nil {
			api.fail(w, r, err)
			return
		}
	}
	out := list[BoardItem]{Items: BoardJSON(api.reads(r), wf, api.Orders().Board(api.cmds(r).Tenant, wf))}
	w.Header().Set("X-Orderflow-Sequence", strconv.FormatUint(api.Orders().Applied(), 10))
	writeJSON(w, http.StatusOK, out)
}
