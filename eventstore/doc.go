// Package eventstore keeps orderflow's events in NATS JetStream.
//
// It owns the three streams of the contract (ORDERFLOW_DEFINITIONS,
// ORDERFLOW_ORDERS, ORDERFLOW_TRIGGERS), the event envelope, appends with
// optimistic concurrency (one or several events, atomically), idempotent
// re-appends, loading an aggregate's history with batched direct gets,
// ordered subscriptions for projections, subject-token validation and the
// embedded nats-server.
//
// The package is generic: it knows envelopes, subjects and sequences, never
// the domain's event types, and it imports nothing of the project. Event
// type names live with the domain as explicit constants.
package eventstore
