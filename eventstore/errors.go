package eventstore

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// ErrIncompleteRead is matched (errors.Is) when a load got fewer of an
// aggregate's events than the stream holds (the load index has seen
// them stored): the server failed to read some (a block file it could
// not open, say, which its log names) or a replica behind the stream
// answered. The part read is not returned, since an aggregate decided on
// or shown from part of its history would be wrong; reading again later
// gets the whole history.
var ErrIncompleteRead = errors.New("the server returned part of the aggregate's history")

// ErrOutcomeUnknown is matched (errors.Is) when an append's
// acknowledgement did not come in time, or the connection to the server
// dropped while it was awaited: the events may or may not be stored.
// Appending the same events again (the same ids) is safe: if they were
// stored, it finds them and reports the original position.
var ErrOutcomeUnknown = errors.New("outcome unknown (not acknowledged in time: send it again with the same ids)")

// ErrStorageFull is matched (errors.Is) when the server refused a message
// because the streams have used all the storage they may: the limit of
// the embedded server (--max-store) or of the cluster's account. Nothing of
// the refused message is stored; it can be sent again once an operator
// has made room (a higher limit, more disk).
var ErrStorageFull = errors.New("the server has no storage left for the streams")

// JetStream's error codes for a message refused for lack of storage:
// "resource limits exceeded for account", "insufficient resources" (what a
// server at its own limit answers) and "insufficient storage resources
// available". nats.go names none of them.
const (
	jsErrCodeAccountResourcesExceeded jetstream.ErrorCode = 10002
	jsErrCodeInsufficientResources    jetstream.ErrorCode = 10023
	jsErrCodeStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// JetStream's error codes for a stream it cannot make, which nats.go
// names none of.
const (
	// jsErrCodeNoPeers: no suitable peers for placement. A cluster still
	// learning of its nodes answers it for a while; one with fewer
	// servers than a stream's replicas, for good.
	jsErrCodeNoPeers jetstream.ErrorCode = 10005
	// jsErrCodeNotClustered: replicas > 1 not supported in non-clustered
	// mode (an HTTP 500, which no retry cures).
	jsErrCodeNotClustered jetstream.ErrorCode = 10074
	// jsErrCodeSubjectsOverlap: subjects overlap with an existing stream.
	jsErrCodeSubjectsOverlap jetstream.ErrorCode = 10065
)

// ErrNoLeader is matched (errors.Is) when no server took a write: the
// stream has no leader. On a cluster that is brief while one is elected;
// a clustered stream whose servers ran out of storage stayed without one
// until they restarted (nats-server v2.15.2 and v2.15.3). Nothing of the
// write is stored.
var ErrNoLeader = errors.New("the stream has no leader to take writes")

// Unavailable reports an error of a stream that no server serves at the
// moment: no leader to take a write (ErrNoLeader), no server answering
// for it ("no responders": a cluster restarting, its servers still
// loading the stream), or JetStream answering 503 ("JetStream system
// temporarily unavailable": a leader that stopped answering, until the
// others elect a new one). All pass within seconds on a healthy cluster;
// sending the same request again is the cure.
func Unavailable(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, ErrNoLeader) || errors.Is(err, nats.ErrNoResponders) ||
		(errors.As(err, &apiErr) && apiErr.Code == 503)
}

// Refusal returns err wrapped so that errors.Is matches ErrStorageFull or
// ErrNoLeader when it is JetStream refusing a publish for lack of storage
// or answering it from no stream, and err as it is otherwise. Use it on
// errors of publishing to the streams directly.
func Refusal(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case jsErrCodeAccountResourcesExceeded, jsErrCodeInsufficientResources, jsErrCodeStorageResourcesExceeded:
			return fmt.Errorf("%w: %w", ErrStorageFull, err)
		}
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	}
	return err
}

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

// ErrFewerReplicas is Open's error (and EnsureLanes's, and the checkpoint
// bucket's) when a stream exists with more replicas than the store's
// Config.Replicas: updating it would scale it down.
var ErrFewerReplicas = errors.New("fewer replicas than the streams have")
