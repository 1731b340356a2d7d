package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What start-up retries (creates, look-ups) and what it gives up on.
func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("create: %w", context.DeadlineExceeded), true},
		{nats.ErrTimeout, true},
		{fmt.Errorf("info: %w", nats.ErrNoResponders), true},
		{fmt.Errorf("append: %w", ErrNoLeader), true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "consumer create failed"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, true},
		{jetstream.ErrJetStreamNotEnabled, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{jetstream.ErrStreamNotFound, false},
		// A 500, but one a retry only repeats: replicas asked of a
		// server that is not clustered.
		{fmt.Errorf("create: %w", &jetstream.APIError{Code: 500, ErrorCode: 10074, Description: "replicas > 1 not supported in non-clustered mode"}), false},
		// No storage left: a 503, but not one that passes by itself.
		{&jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}, false},
		{fmt.Errorf("put: %w", &jetstream.APIError{Code: 400, ErrorCode: 10047, Description: "insufficient storage resources available"}), false},
		{fmt.Errorf("append: %w", ErrConcurrency), false},
		{errors.New("something else"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A retry that runs out of time says what the server last answered, not
// only that the time ran out: "no suitable peers for placement" says why.
func TestRetryThatGivesUpKeepsTheServersLastAnswer(t *testing.T) {
	noPeers := &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}
	ctx, cancel := context.WithCancel(context.Background())
	attempts := 0
	err := retryTransient(ctx, time.Millisecond, func() error {
		attempts++
		if attempts < 3 {
			return noPeers
		}
		cancel()
		return fmt.Errorf("create: %w", context.DeadlineExceeded)
	})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, noPeers) ||
		!strings.Contains(err.Error(), "the server's last answer: nats: API error: code=400 err_code=10005 description=no suitable peers for placement") {
		t.Errorf("after %d attempts: %v", attempts, err)
	}
	// No responders is an answer too: no JetStream listens.
	ctx, cancel = context.WithCancel(context.Background())
	attempts = 0
	err = retryTransient(ctx, time.Millisecond, func() error {
		if attempts++; attempts < 2 {
			return nats.ErrNoResponders
		}
		cancel()
		return nats.ErrTimeout
	})
	if !errors.Is(err, nats.ErrNoResponders) || !strings.Contains(err.Error(), "nats: timeout (the server's last answer: nats: no responders available for request)") {
		t.Errorf("no responders, then the time ran out: %v", err)
	}
	// An attempt that fails for good is the answer, whatever came before.
	err = retryTransient(context.Background(), time.Millisecond, func() error { return ErrConcurrency })
	if err != ErrConcurrency {
		t.Errorf("a lasting failure: %v", err)
	}
	// Only timeouts: nothing to add.
	ctx, cancel = context.WithCancel(context.Background())
	err = retryTransient(ctx, time.Millisecond, func() error { cancel(); return context.DeadlineExceeded })
	if err != context.DeadlineExceeded {
		t.Errorf("only a timeout: %v", err)
	}
}
