package projections

import (
	"context"
	"encoding/json"
	"time"

	"github.com/orderflow/orderflow/eventstore"
)

// ReplayStats says how much a replay read.
type ReplayStats struct {
	Events  uint64 // events read
	Applied uint64 // events applied (occurred at or before the cut-off)
	Took    time.Duration
}

// Replay builds the read models from the streams as they were at until
// (events that occurred after it are left out; a nil until keeps all),
// into new models: no live state is touched. The definitions are taken
// as DefinitionsAt takes them.
func Replay(ctx context.Context, st *eventstore.Store, until *time.Time, progress eventstore.Progress) (*Definitions, *Orders, ReplayStats, error) {
	start := time.Now()
	defs, orders := NewDefinitions(nil), NewOrders(nil)
	var stats ReplayStats
	var defEvents []eventstore.Event // with until: applied once all are read
	for _, s := range []struct {
		stream string
		apply  func(eventstore.Event) error
	}{{eventstore.StreamDefinitions, defs.Apply}, {eventstore.StreamOrders, orders.Apply}} {
		if !st.HasStream(s.stream) {
			continue
		}
		n, err := st.ReadStream(ctx, s.stream, func(m eventstore.StoredMsg) error {
			// The read models decode each event's data, which checks it:
			// it need not be checked first.
			ev, err := m.Event(eventstore.DataCheckedByHandler())
			if err != nil {
				return nil // verify reports undecodable events
			}
			if until != nil && s.stream == eventstore.StreamDefinitions {
				defEvents = append(defEvents, ev)
				return nil
			}
			if until != nil && ev.OccurredAt.After(*until) {
				return nil
			}
			ok, err := applyReadable(s.apply, ev)
			if ok {
				stats.Applied++
			}
			return err
		}, progress)
		stats.Events += n
		if err != nil {
			return nil, nil, stats, err
		}
		if len(defEvents) > 0 {
			var applied uint64
			if defs, applied, err = DefinitionsAt(defEvents, *until); err != nil {
				return nil, nil, stats, err
			}
			stats.Applied += applied
			defEvents = nil
		}
	}
	stats.Took = time.Since(start)
	return defs, orders, stats, nil
}

// DefinitionsAt builds the definitions as they were at asOf from events
// of the definitions stream, in stream order: each definition (each
// status or trigger library, workflow, order type) as of its last event
// that occurred then or before. That leaves out what occurred after, and
// takes each one's events whole up to a version even were the clocks of
// the processes that stored them to disagree. It says how many events it
// applied.
func DefinitionsAt(events []eventstore.Event, asOf time.Time) (*Definitions, uint64, error) {
	type aggregate struct{ tenant, kind, id string }
	upTo := map[aggregate]uint64{}
	for _, ev := range events {
		if !ev.OccurredAt.After(asOf) {
			upTo[aggregate{ev.Tenant, ev.AggregateType, ev.AggregateID}] = ev.Version
		}
	}
	defs := NewDefinitions(nil)
	var applied uint64
	for _, ev := range events {
		if ev.Version > upTo[aggregate{ev.Tenant, ev.AggregateType, ev.AggregateID}] {
			continue
		}
		ok, err := applyReadable(defs.Apply, ev)
		if err != nil {
			return nil, applied, err
		}
		if ok {
			applied++
		}
	}
	return defs, applied, nil
}

// applyReadable applies an event and says whether it did, passing over
// one whose data is not JSON (verify reports it).
func applyReadable(apply func(eventstore.Event) error, ev eventstore.Event) (bool, error) {
	err := apply(ev)
	if err != nil && json.Valid(ev.Data) {
		return false, err
	}
	return err == nil, nil
}
