// Package client is for worker apps and dashboards: publish a worker's
// trigger to orderflow, and follow orders' stage changes, straight over
// NATS. It imports nats.go, uuid and the domain's types only, so a worker
// app that uses it does not pull in the server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/internal/orderedread"
)

// Client talks to orderflow through a NATS connection.
type Client struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	tenant    string
	noHistory bool                     // WithoutHistory
	attempt   time.Duration            // how long one request waits for its answer (apiAttempt; tests shorten it)
	sending   func(n int)              // when set (tests), told of PublishTrigger's nth send of a trigger before it is made
	readMade  func(jetstream.Consumer) // when set (tests), given each history read's consumer once it is made
}

// Option configures a Client.
type Option func(*Client)

// WithTenant selects the tenant (default "default").
func WithTenant(tenant string) Option { return func(c *Client) { c.tenant = tenant } }

// WithoutHistory is for a connection whose NATS user may not read order
// histories (no $JS.API.CONSUMER.* permissions; see the README's
// "Authentication and tenants"). ApplyTrigger then answers with the
// outcome it hears, unconfirmed: rarely, that is an event the stream
// refused, and the trigger's stored outcome differs (see
// SubscribeStageChanges). It refuses a trigger id of the caller's, which
// it could not look up in the order's history; PublishTrigger takes one.
// FollowStageChanges needs the permissions in any case.
func WithoutHistory() Option { return func(c *Client) { c.noHistory = true } }

// ErrNeedsHistory is ApplyTrigger's error for a trigger id of the
// caller's on a client made WithoutHistory.
var ErrNeedsHistory = errors.New("a trigger id of the caller's is looked up in the order's history, which this client does not read (WithoutHistory): publish it with PublishTrigger")

// New returns a client on nc. On a NATS server shared by several tenants,
// connect nc with an inbox prefix of its user's own
// (nats.CustomInboxPrefix) that only that user may subscribe to: the
// client's replies (JetStream's acknowledgements, its reads of an order's
// history) come on inbox subjects, which under the default "_INBOX." any
// user allowed "_INBOX.>" could read.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	c := &Client{nc: nc, tenant: "default", attempt: apiAttempt}
	for _, o := range opts {
		o(c)
	}
	if err := domain.CheckKey("tenant", c.tenant); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	c.js = js
	return c, nil
}

// Trigger is a worker's action on one order.
type Trigger struct {
	OrderID string
	Trigger string // the trigger key, e.g. "wash_done"
	// TriggerID is the idempotency key: the same id never takes effect
	// twice. Generated (UUIDv7) when empty.
	TriggerID  string
	Worker     string
	Note       string
	OccurredAt time.Time
}

// check refuses, before anything is sent, a trigger the trigger processor
// would put aside as a dead letter for what it holds.
func (t Trigger) check() error {
	errs := []error{domain.CheckKey("order id", t.OrderID), domain.CheckKey("trigger", t.Trigger),
		domain.TriggerReport{Worker: t.Worker, Note: t.Note, OccurredAt: t.OccurredAt}.Check()}
	if t.TriggerID != "" {
		errs = append(errs, domain.ValidateTriggerID(t.TriggerID))
	}
	return errors.Join(errs...)
}

// Ack is JetStream's acknowledgement of a stored trigger.
type Ack struct {
	TriggerID string
	Sequence  uint64 // the trigger's sequence in ORDERFLOW_TRIGGERS
	// Duplicate: a trigger with the same id was stored before, at
	// Sequence, and this one was not stored again. JetStream remembers ids
	// across all orders for its duplicate window (2 minutes by default), so
	// an id reused for another order's trigger in that time is a duplicate
	// too, and that trigger never takes effect: give each trigger an id of
	// its own (a UUIDv7 is made when TriggerID is empty). When Resent is
	// set, the trigger stored before may be this call's own; with an id
	// made for the call it is, and that is not a Duplicate.
	Duplicate bool
	// Resent: an earlier send of this call went unanswered (its
	// acknowledgement lost with a connection, a cluster electing the
	// stream's leader) or found no stream, and the trigger was sent
	// again, with the same id.
	Resent bool
}

// ErrNotAcknowledged is matched (errors.Is) by PublishTrigger's and
// ApplyTrigger's error when JetStream did not acknowledge the trigger: no
// server answered in time, the stream had no leader or no storage left, or
// the connection may not publish there. The trigger may or may not be
// stored. The Ack returned with the error names the TriggerID (the one
// made when none was given), so publishing again with it is safe: the
// trigger takes effect at most once.
var ErrNotAcknowledged = errors.New("trigger not acknowledged (send it again with the same trigger id)")

// PublishTrigger stores a trigger in ORDERFLOW_TRIGGERS and returns once
// JetStream has acknowledged it: from then on it is not lost, and the
// trigger processor will apply it exactly once.
//
// A send that goes unanswered for 5 s, or finds no stream to store it, is
// sent again with the same trigger id, which JetStream stores at most
// once (within its duplicate window; the trigger processor never applies
// an id twice): while ctx lasts, or publishAttempts times for a ctx
// without a deadline. The acknowledgement of a send can be lost with its
// connection (the client reconnects), or never come while a cluster
// elects the stream's leader; a cluster whose servers are starting again
// has no stream for a moment. A server that never had orderflow's streams
// answers the same way: the error then says "no response from stream".
func (c *Client) PublishTrigger(ctx context.Context, t Trigger) (Ack, error) {
	if err := t.check(); err != nil {
		return Ack{}, err
	}
	made := t.TriggerID == ""
	if made {
		t.TriggerID = uuid.Must(uuid.NewV7()).String()
	}
	return c.publishTrigger(ctx, t, made)
}

// publishTrigger is PublishTrigger for a checked trigger with its id;
// made says the id was made for this call, so that a trigger stored
// before under it is this call's own, from a send whose acknowledgement
// was lost: not a Duplicate.
func (c *Client) publishTrigger(ctx context.Context, t Trigger, made bool) (Ack, error) {
	body, err := json.Marshal(struct {
		Worker     string    `json:"worker,omitempty"`
		OccurredAt time.Time `json:"occurred_at,omitzero"`
		Note       string    `json:"note,omitempty"`
	}{t.Worker, t.OccurredAt, t.Note})
	if err != nil {
		return Ack{}, err
	}
	m := nats.NewMsg(fmt.Sprintf("orderflow.%s.trigger.%s.%s", c.tenant, t.OrderID, t.Trigger))
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, t.TriggerID)
	ack, sends, err := c.publish(ctx, m)
	if err != nil {
		what := "publish trigger " + t.TriggerID
		if sends > 1 {
			what += fmt.Sprintf(" (sent %d times)", sends)
		}
		return Ack{TriggerID: t.TriggerID}, fmt.Errorf("%s: %w: %w", what, ErrNotAcknowledged, err)
	}
	resent := sends > 1
	return Ack{TriggerID: t.TriggerID, Sequence: ack.Sequence, Duplicate: ack.Duplicate && !(made && resent), Resent: resent}, nil
}

// publishAttempts is how many times PublishTrigger sends a trigger that
// goes unanswered, or finds no stream, when ctx has no deadline.
const publishAttempts = 3

// noStreamPause is how long PublishTrigger waits before it sends again a
// trigger that found no stream (nats.go has tried twice by then).
const noStreamPause = 250 * time.Millisecond

// publish sends m, again while a send goes unanswered for c.attempt or
// finds no stream to store it (see PublishTrigger), and says how many
// times it was sent. An answer that refuses (no storage left, not
// allowed) is not sent again: it would refuse again.
func (c *Client) publish(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, int, error) {
	_, bounded := ctx.Deadline()
	var noStream error // the last send's, when it found no stream
	for sends := 1; ; sends++ {
		if c.sending != nil {
			c.sending(sends)
		}
		actx, cancel := context.WithTimeout(ctx, c.attempt)
		ack, err := c.js.PublishMsg(actx, m)
		cancel()
		switch {
		case err == nil:
			return ack, sends, nil
		case ctx.Err() != nil:
			if noStream != nil && !errors.Is(err, jetstream.ErrNoStreamResponse) {
				err = fmt.Errorf("%w, after %w", err, noStream) // say why, not only that time ran out
			}
			return nil, sends, err
		case errors.Is(err, jetstream.ErrNoStreamResponse):
			noStream = err
		case errors.Is(actx.Err(), context.DeadlineExceeded):
			noStream = nil // unanswered
		default:
			return nil, sends, err
		}
		if !bounded && sends == publishAttempts {
			return nil, sends, err
		}
		if noStream != nil {
			t := time.NewTimer(noStreamPause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, sends, fmt.Errorf("%w, after %w", ctx.Err(), noStream)
			}
		}
	}
}

// StageChange is an order event as a dashboard sees it.
type StageChange struct {
	OrderID     string
	Type        string // domain.TypeOrderAdvanced, ...
	Version     uint64
	OccurredAt  time.Time
	CausationID string // the trigger id, for a trigger's outcome
	// From and To are the positions the event names, when it has them.
	From, To *domain.Position
	Data     json.RawMessage
	// Sequence is the event's ORDERFLOW_ORDERS stream sequence, as the
	// HTTP feed's event id (GET /v1/events): where FollowStageChanges
	// resumes. 0 from SubscribeStageChanges, whose plain subscription
	// does not carry it.
	Sequence uint64
}

type envelope struct {
	Type        string          `json:"type"`
	AggregateID string          `json:"aggregate_id"`
	Version     uint64          `json:"version"`
	OccurredAt  time.Time       `json:"occurred_at"`
	CausationID string          `json:"causation_id"`
	Data        json.RawMessage `json:"data"`
}

// SubscribeStageChanges calls fn for every stage change of one order, or
// of every order when orderID is "": placed, advanced, completed, held,
// resumed, cancelled, moved, migrated (rejected triggers are not stage
// changes). It is a plain NATS subscription: live events only; replay
// from a position is the HTTP feed's (GET /v1/events) job. When it
// returns, the server has the subscription: every stage change stored
// from then on is delivered. Being plain, it hears an event as it is
// published: a moment before the stream has stored it, and, rarely, one
// the stream refuses (an append that lost a race with another writer of
// the order, decided again after; its Version is then heard twice).
// FollowStageChanges, which reads the stream, sees only stored events.
func (c *Client) SubscribeStageChanges(orderID string, fn func(StageChange)) (*nats.Subscription, error) {
	subject := fmt.Sprintf("orderflow.%s.order.*.>", c.tenant)
	if orderID != "" {
		if err := domain.CheckKey("order id", orderID); err != nil {
			return nil, err
		}
		subject = fmt.Sprintf("orderflow.%s.order.%s.>", c.tenant, orderID)
	}
	sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) {
		var env envelope
		if err := json.Unmarshal(m.Data, &env); err != nil || env.Type == domain.TypeTriggerRejected {
			return
		}
		fn(stageChange(env))
	})
	if err != nil {
		return nil, err
	}
	if err := c.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to stage changes: %w", err)
	}
	return sub, nil
}

// FollowStageChanges calls fn, one at a time and in the order they were
// stored, for every stage change of one order (of every order when
// orderID is "") stored after the ORDERFLOW_ORDERS sequence after (0:
// from the first), then for each one stored later, until ctx ends (it
// returns ctx's error) or fn returns an error (it returns that one).
// Each change carries its Sequence: a dashboard that keeps the last one
// it handled and follows again after it, when it starts again, misses no
// change and sees none twice. Rejected triggers are not stage changes.
//
// Unlike SubscribeStageChanges it reads the stream, through an ordered
// consumer (recreated from where it stood when the connection drops; its
// removal asked for, not awaited, as FollowStageChanges returns), so its
// NATS user needs the JetStream consumer permissions that ApplyTrigger's
// history reads need.
func (c *Client) FollowStageChanges(ctx context.Context, orderID string, after uint64, fn func(StageChange) error) error {
	filter := fmt.Sprintf("orderflow.%s.order.>", c.tenant)
	if orderID != "" {
		if err := domain.CheckKey("order id", orderID); err != nil {
			return err
		}
		filter = fmt.Sprintf("orderflow.%s.order.%s.>", c.tenant, orderID)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, InactiveThreshold: 30 * time.Second}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	cons, err := untilAnswered(ctx, apiAttempt, func(ctx context.Context) (jetstream.Consumer, error) {
		return c.js.OrderedConsumer(ctx, "ORDERFLOW_ORDERS", cfg)
	})
	if err != nil {
		return fmt.Errorf("follow stage changes: %w", err)
	}
	// nats.go leaves the server's consumer to its inactivity threshold;
	// drop drops it now, without waiting for the answer.
	drop := func() {
		if info := cons.CachedInfo(); info != nil {
			_ = c.nc.Publish(apiPrefix+"CONSUMER.DELETE.ORDERFLOW_ORDERS."+info.Name, nil)
		}
	}
	// A heartbeat a second: a consumer lost with its server is noticed
	// (and made again where it stood) within seconds, not nats.go's 10.
	it, err := cons.Messages(jetstream.PullHeartbeat(time.Second))
	if err != nil {
		drop() // Messages may have made the server's consumer before it failed
		return fmt.Errorf("follow stage changes: %w", err)
	}
	// nats.go's Next would not return as ctx ends while no server answers
	// (see orderedread). fn is called from the loop below only, so none
	// runs after the return.
	r := orderedread.New(it, followAhead)
	defer r.Close(drop)
	for {
		m, err := r.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow stage changes: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("follow stage changes: %w", err)
		}
		var env envelope
		if json.Unmarshal(m.Data(), &env) != nil || env.Type == domain.TypeTriggerRejected {
			continue
		}
		sc := stageChange(env)
		sc.Sequence = md.Sequence.Stream
		if err := fn(sc); err != nil {
			return err
		}
	}
}

// followAhead is how many events FollowStageChanges reads ahead of fn;
// those read and not handled when it returns are dropped.
const followAhead = 256

// stageChange is an order event as a dashboard sees it.
func stageChange(env envelope) StageChange {
	sc := StageChange{OrderID: env.AggregateID, Type: env.Type, Version: env.Version, OccurredAt: env.OccurredAt,
		CausationID: env.CausationID, Data: env.Data}
	var pos struct {
		From *domain.Position `json:"from"`
		To   *domain.Position `json:"to"`
	}
	if json.Unmarshal(env.Data, &pos) == nil {
		sc.From, sc.To = pos.From, pos.To
	}
	return sc
}

// DeadLetterError is a trigger the processor put aside as one that can
// never be processed (an order it does not know, say), with the reason.
type DeadLetterError struct{ Reason string }

func (e *DeadLetterError) Error() string { return "trigger put aside as a dead letter: " + e.Reason }

// apiPrefix starts JetStream's API subjects; triggerIDHeader names a dead
// letter's trigger id (its Nats-Msg-Id).
const (
	apiPrefix       = "$JS.API."
	triggerIDHeader = "_watermill_message_uuid"
)

// deadLetterSubject is where the trigger processor puts a trigger for the
// order and trigger key that it can never process
// (eventstore.DeadLetterSubjectFor).
func deadLetterSubject(tenant, orderID, trigger string) string {
	return "orderflow._deadletter.triggers." + tenant + "." + orderID + "." + trigger
}

// Applied is a trigger that took effect, or had before.
type Applied struct {
	// Ack is JetStream's acknowledgement of the stored trigger. Its
	// Sequence is 0 when the caller's trigger id was found in the order's
	// history and nothing was published.
	Ack
	// Outcome is domain.OutcomeAdvanced, OutcomeCompleted or
	// OutcomeDuplicate (the same trigger id took effect before).
	Outcome domain.TriggerOutcome
	// Change is the stage change it caused (nil for a duplicate).
	Change *StageChange
}

// ApplyTrigger publishes a trigger and waits, until ctx ends, for what the
// trigger processor made of it, as POST /v1/orders/{id}/triggers does: it
// took effect (advanced, completed), or had before (duplicate); or the
// order refused it (*domain.RejectedError, the order unchanged; sent again
// with the same TriggerID, the same rejection again); or it can
// never be processed (*DeadLetterError); or its TriggerID is already the
// id of another trigger of the order (an error matching
// domain.ErrDuplicate: it never takes effect). A ctx that ends first leaves the
// trigger stored: it takes effect later, and sending it again with the
// same TriggerID is safe. The answer is the outcome as the order's
// stored history has it: an outcome heard is confirmed by a read of that
// history (one ephemeral consumer) before it is returned, except on a
// client made WithoutHistory.
func (c *Client) ApplyTrigger(ctx context.Context, t Trigger) (Applied, error) {
	if err := t.check(); err != nil {
		return Applied{}, err
	}
	given := t.TriggerID != ""
	if given && c.noHistory {
		return Applied{}, ErrNeedsHistory
	}
	if !given {
		t.TriggerID = uuid.Must(uuid.NewV7()).String()
	}
	// Listen before looking or publishing, so the outcome cannot slip past.
	msgs := make(chan *nats.Msg, 64)
	filter := fmt.Sprintf("orderflow.%s.order.%s.>", c.tenant, t.OrderID)
	deadLetters := deadLetterSubject(c.tenant, t.OrderID, t.Trigger)
	for _, subject := range []string{filter, deadLetters} {
		sub, err := c.nc.ChanSubscribe(subject, msgs)
		if err != nil {
			return Applied{}, err
		}
		defer sub.Unsubscribe()
	}
	if err := flush(ctx, c.nc); err != nil {
		return Applied{}, err
	}
	if given { // a trigger id of the caller's may have taken effect before
		env, err := c.caused(ctx, filter, t.TriggerID)
		if err != nil {
			return Applied{}, err
		}
		if env != nil {
			return outcome(t, Ack{TriggerID: t.TriggerID, Duplicate: true}, *env)
		}
	}
	ack, err := c.publishTrigger(ctx, t, !given)
	if err != nil {
		return Applied{Ack: ack}, err
	}
	// An outcome heard is only word that one may be stored: a plain
	// subscriber hears every event published, also one the stream then
	// refuses (the processor's append lost a race with another writer of
	// the order, and the trigger is decided again, perhaps otherwise), and
	// hears it before the stream has stored it. So the order's history
	// answers: when word comes, and again after a pause that doubles
	// (recheckFirst to recheckMost) while it has not; from the start for a
	// duplicate (stored before: its outcome may have been heard by no one
	// here, and stored after the read above), and for a trigger sent again
	// (its outcome may have come while the connection was down).
	pause := recheckFirst
	recheck := time.NewTimer(pause)
	defer recheck.Stop()
	if !(ack.Duplicate || ack.Resent) || c.noHistory {
		recheck.Stop() // until word comes
	}
	for {
		select {
		case m := <-msgs:
			if m.Subject == deadLetters {
				if m.Header.Get(triggerIDHeader) == t.TriggerID {
					return Applied{Ack: ack}, &DeadLetterError{Reason: m.Header.Get("reason_poisoned")}
				}
				continue
			}
			var env envelope
			if json.Unmarshal(m.Data, &env) != nil || env.CausationID != t.TriggerID || !domain.IsTriggerOutcome(env.Type) {
				continue
			}
			if c.noHistory {
				return outcome(t, ack, env)
			}
		case <-recheck.C:
		case <-ctx.Done():
			// The outcome may be stored and not seen here: stored before
			// we listened (a duplicate), or its copy dropped (a reconnect).
			if !c.noHistory {
				hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				env, err := c.caused(hctx, filter, t.TriggerID)
				cancel()
				if err == nil && env != nil {
					return outcome(t, ack, *env)
				}
			}
			if ack.Duplicate && !ack.Resent { // resent: stored before by this call, most likely
				return Applied{Ack: ack}, fmt.Errorf("trigger id %s was stored before (sequence %d) and its outcome on order %s not seen yet; "+
					"if that id was another order's trigger, this one was not stored: %w", t.TriggerID, ack.Sequence, t.OrderID, ctx.Err())
			}
			return Applied{Ack: ack}, fmt.Errorf("trigger %s stored, its outcome not seen yet: %w", t.TriggerID, ctx.Err())
		}
		if env, err := c.caused(ctx, filter, t.TriggerID); err == nil && env != nil {
			return outcome(t, ack, *env)
		}
		recheck.Reset(pause)
		pause = min(2*pause, recheckMost)
	}
}

// The pauses of ApplyTrigger's reads of the order's history while the
// outcome is not there.
const (
	recheckFirst = 20 * time.Millisecond
	recheckMost  = time.Second
)

// flushTimeout bounds the flush of a ctx without a deadline.
const flushTimeout = 10 * time.Second

// flush makes sure the server has the subscriptions made before it: nats.go
// asks ctx for a deadline, which a worker app's ctx need not have.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("subscribe to the order's outcomes: %w", err)
	}
	return nil
}

// outcome is what a trigger's outcome event says of t. For a trigger id
// sent again it is a duplicate, or the first one's rejection again. An
// event the id caused as the id of another trigger key is an error
// matching domain.ErrDuplicate: t never takes effect.
func outcome(t Trigger, ack Ack, env envelope) (Applied, error) {
	if err := domain.CheckOutcomeTrigger(t.OrderID, t.TriggerID, t.Trigger, env.Type, env.Data); err != nil {
		return Applied{Ack: ack}, err
	}
	o, err := domain.OutcomeOf(env.Type, env.Data)
	if err != nil {
		return Applied{Ack: ack}, err
	}
	if ack.Duplicate {
		return Applied{Ack: ack, Outcome: domain.OutcomeDuplicate}, nil
	}
	sc := stageChange(env)
	return Applied{Ack: ack, Outcome: o, Change: &sc}, nil
}

// caused finds the outcome in the order's history (filter) that the
// trigger id caused (nil when there is none). It reads the history with
// one ephemeral pull consumer (no acknowledgements, in memory, deleted
// when the read ends), not an ordered consumer, which nats.go makes again
// for every fetch. It reads as many events as the consumer had pending
// when it was made, decodes only the events whose bytes hold the id, and
// fails rather than miss one: a delivery gap (a connection
// dropped mid-read) is an error, and the trigger can be sent again with
// the same id. A consumer lost with its server (a cluster losing one) is
// made again and the history read again, until ctx ends.
func (c *Client) caused(ctx context.Context, filter, triggerID string) (*envelope, error) {
	for {
		env, err := c.readCaused(ctx, filter, triggerID)
		if !errors.Is(err, errReadLost) {
			return env, err
		}
		select { // the cluster places the next one on a server that is up
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errReadLost is a history read whose consumer went away with its server
// (stopped, or cut off from the client's) before the read was done.
var errReadLost = errors.New("the read's consumer is gone")

// consumerGoneAfter is how long a read's pulls may go unanswered
// ("no responders") before its consumer is taken for gone. Word of a new
// consumer reaching the client's server took at most tens of
// milliseconds (see readCaused); a consumer whose server stopped is
// never answered for again.
const consumerGoneAfter = time.Second

// readCaused is one read of caused, with a consumer of its own.
func (c *Client) readCaused(ctx context.Context, filter, triggerID string) (*envelope, error) {
	cons, err := untilAnswered(ctx, apiAttempt, func(ctx context.Context) (jetstream.Consumer, error) {
		return c.js.CreateConsumer(ctx, "ORDERFLOW_ORDERS", jetstream.ConsumerConfig{
			FilterSubject:     filter,
			DeliverPolicy:     jetstream.DeliverAllPolicy,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: 5 * time.Second,
			Replicas:          1,
			MemoryStorage:     true,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read the order's history: %w", err)
	}
	made := time.Now()
	if c.readMade != nil {
		c.readMade(cons)
	}
	// Drop it now rather than after InactiveThreshold, without waiting for
	// the answer: a worker app calling often would leave many behind.
	defer c.nc.Publish(apiPrefix+"CONSUMER.DELETE.ORDERFLOW_ORDERS."+cons.CachedInfo().Name, nil)
	// The events the order had when the consumer was made; those stored
	// later reach ApplyTrigger's subscription, made before this read.
	want := cons.CachedInfo().NumPending
	mention := mentionOf(triggerID)
	var delivered uint64
	for delivered < want {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read the order's history: %w", err)
		}
		// A fetch that has heard nothing for a second ends without an
		// error (nats.go), so one that ends short is asked again.
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, fmt.Errorf("read the order's history: %w", err)
		}
		before := delivered
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read the order's history: %w", err)
			}
			if delivered++; md.Sequence.Consumer != delivered {
				return nil, fmt.Errorf("read the order's history: event %d of the read came as %d", delivered, md.Sequence.Consumer)
			}
			if mention != nil && !bytes.Contains(m.Data(), mention) {
				continue
			}
			var env envelope
			if json.Unmarshal(m.Data(), &env) == nil && env.CausationID == triggerID && domain.IsTriggerOutcome(env.Type) {
				return &env, nil
			}
		}
		pause := 50 * time.Millisecond // nothing came: rather than ask the server in a tight loop
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			// On a cluster the consumer may be on another server, and a
			// pull can reach the client's server before word of the
			// consumer has: no responders, for a moment. Asked again
			// after a shorter pause: the word is on its way (5 ms against
			// 50 took the slowest of 1,200 reads, eight at once on three
			// servers, from 60-68 ms to 20-26 ms). Unanswered for longer,
			// or told its server is shutting down, the consumer is gone.
			switch {
			case errors.Is(err, jetstream.ErrServerShutdown), errors.Is(err, jetstream.ErrConsumerDeleted),
				errors.Is(err, jetstream.ErrConsumerNotFound),
				errors.Is(err, nats.ErrNoResponders) && time.Since(made) > consumerGoneAfter:
				return nil, fmt.Errorf("read the order's history: %w: %w", errReadLost, err)
			case !errors.Is(err, nats.ErrNoResponders):
				return nil, fmt.Errorf("read the order's history: %w", err)
			}
			pause = 5 * time.Millisecond
		}
		if delivered == before {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
	return nil, nil
}

// apiAttempt bounds one JetStream API request of the client's while the
// caller's ctx lasts longer.
const apiAttempt = 5 * time.Second

// untilAnswered makes a consumer with request, asking again each
// attempt while no answer comes, until ctx ends. A request can go
// unanswered: lost with a reconnect, or on a cluster while it elects a
// leader (the store asks again for the same reason, see
// eventstore.Store.Retry). Without a bound one lost request would take all
// of a long ctx. A consumer made from a request whose answer came too
// late is left to its inactivity threshold.
func untilAnswered(ctx context.Context, attempt time.Duration, request func(context.Context) (jetstream.Consumer, error)) (jetstream.Consumer, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		cons, err := request(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return cons, err
		}
	}
}

// mentionOf is how an event that a trigger id caused spells the id (the
// JSON string, quotes included), or nil when the id holds a character that
// a JSON encoder may escape, and only decoding tells.
func mentionOf(triggerID string) []byte {
	for i := 0; i < len(triggerID); i++ {
		if b := triggerID[i]; b < 0x20 || b > 0x7e || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			return nil
		}
	}
	return []byte(`"` + triggerID + `"`)
}
