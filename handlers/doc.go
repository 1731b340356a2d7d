// Package handlers is orderflow's application layer: command handlers
// (load, decide, append), the trigger processor, and the HTTP API. It holds
// no business rules of its own; those live in domain.
package handlers
