// Package projections builds orderflow's read models from the event
// streams and answers queries from them. Read models are fed by ordered
// consumers, apply each event at most once (they remember the last stream
// sequence applied), and never write events.
package projections
