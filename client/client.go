// Package client is for worker apps and dashboards: publish a worker's
// trigger to orderflow, and follow orders' stage changes, straight over
// NATS. It imports nats.go, uuid and the domain's types only, so a worker
// app that uses it does not pull in the server.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
)

// Client talks to orderflow through a NATS connection.
type Client struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	tenant string
}

// Option configures a Client.
type Option func(*Client)

// WithTenant selects the tenant (default "default").
func WithTenant(tenant string) Option { return func(c *Client) { c.tenant = tenant } }

// New returns a client on nc.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	c := &Client{nc: nc, tenant: "default"}
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

// Ack is JetStream's acknowledgement of a stored trigger.
type Ack struct {
	TriggerID string
	Sequence  uint64 // the trigger's sequence in ORDERFLOW_TRIGGERS
	Duplicate bool   // the same trigger id was stored before
}

// PublishTrigger stores a trigger in ORDERFLOW_TRIGGERS and returns once
// JetStream has acknowledged it: from then on it is not lost, and the
// trigger processor will apply it exactly once.
func (c *Client) PublishTrigger(ctx context.Context, t Trigger) (Ack, error) {
	if err := errors.Join(domain.CheckKey("order id", t.OrderID), domain.CheckKey("trigger", t.Trigger)); err != nil {
		return Ack{}, err
	}
	if t.TriggerID == "" {
		t.TriggerID = uuid.Must(uuid.NewV7()).String()
	}
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
	ack, err := c.js.PublishMsg(ctx, m)
	if err != nil {
		return Ack{}, fmt.Errorf("publish trigger: %w", err)
	}
	return Ack{TriggerID: t.TriggerID, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
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
// from then on is delivered.
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
		sc := StageChange{OrderID: env.AggregateID, Type: env.Type, Version: env.Version, OccurredAt: env.OccurredAt,
			CausationID: env.CausationID, Data: env.Data}
		var pos struct {
			From *domain.Position `json:"from"`
			To   *domain.Position `json:"to"`
		}
		if json.Unmarshal(env.Data, &pos) == nil {
			sc.From, sc.To = pos.From, pos.To
		}
		fn(sc)
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
