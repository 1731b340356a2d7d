// Package domain holds orderflow's business rules: the status and trigger
// libraries, workflows, order types and orders as aggregates, their events
// and their errors.
//
// It is pure Go: no NATS, no Watermill, no HTTP, and no clock (time is
// passed in). Every aggregate has one shape: unexported state, command
// methods that check invariants and then record an event, and one apply
// switch that is the only place state changes. Loading an aggregate is
// applying its past events; a command's new events are taken with Changes.
package domain
