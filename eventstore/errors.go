package eventstore

import (
	"errors"
	"fmt"
)

// ErrConcurrency is matched (errors.Is) when an append's expected sequence
// is not the aggregate's last: someone else appended first. Command
// handlers reload and retry on it; nothing else should.
var ErrConcurrency = errors.New("concurrency conflict")

// ErrIndexing is matched (errors.Is) when a load ran out of time waiting
// for the store's load index to read the events stored before the store
// opened (see Store.WaitIndexed): a few seconds after a start, per
// million events. Trying again later succeeds.
var ErrIndexing = errors.New("the load index is still reading the stream")

// ConcurrencyError carries the positions of a conflict.
type ConcurrencyError struct {
	Aggregate Aggregate
	Expected  uint64 // the sequence the caller expected to be last
	Actual    uint64 // the aggregate's last sequence when the conflict was seen
	Detail    string
}

func (e *ConcurrencyError) Error() string {
	msg := fmt.Sprintf("concurrency conflict on %s: expected last sequence %d, found %d", e.Aggregate.Filter(), e.Expected, e.Actual)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrConcurrency) true.
func (e *ConcurrencyError) Is(target error) bool { return target == ErrConcurrency }
