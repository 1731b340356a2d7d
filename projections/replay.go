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
// into new models: no live state is touched.
func Replay(ctx context.Context, st *eventstore.Store, until *time.Time, progress eventstore.Progress) (*Definitions, *Orders, ReplayStats, error) {
	start := time.Now()
	defs, orders := NewDefinitions(nil), NewOrders(nil)
	var stats ReplayStats
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
			if until != nil && ev.OccurredAt.After(*until) {
				return nil
			}
			if err := s.apply(ev); err != nil {
				if !json.Valid(ev.Data) {
					return nil // undecodable, as above
				}
				return err
			}
			stats.Applied++
			return nil
		}, progress)
		stats.Events += n
		if err != nil {
			return nil, nil, stats, err
		}
	}
	stats.Took = time.Since(start)
	return defs, orders, stats, nil
}
