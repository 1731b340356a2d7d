package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The client names the dead-letter subject without importing the server.
func TestDeadLetterSubject(t *testing.T) {
	if got, want := deadLetterSubject("t", "o-1", "picked_up"), eventstore.DeadLetterSubjectFor("t", "o-1", "picked_up"); got != want {
		t.Fatalf("client %q, server %q", got, want)
	}
}

// A consumer request that goes unanswered is asked again while the
// caller's ctx lasts; any other error, or the end of ctx, ends it.
func TestUntilAnsweredAsksAgain(t *testing.T) {
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	calls := 0
	_, err := untilAnswered(ctx, 10*time.Millisecond, func(actx context.Context) (jetstream.Consumer, error) {
		if calls++; calls < 3 {
			<-actx.Done() // no answer comes
			return nil, actx.Err()
		}
		return nil, nil
	})
	if err != nil || calls != 3 || ctx.Err() != nil {
		t.Fatalf("unanswered twice, then answered: %v after %d requests", err, calls)
	}

	refused := errors.New("consumer refused")
	calls = 0
	if _, err := untilAnswered(ctx, 10*time.Millisecond, func(context.Context) (jetstream.Consumer, error) {
		calls++
		return nil, refused
	}); !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("an answer that refuses: %v after %d requests", err, calls)
	}

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := untilAnswered(short, 10*time.Millisecond, func(actx context.Context) (jetstream.Consumer, error) {
		<-actx.Done()
		return nil, actx.Err()
	}); !errors.Is(err, context.DeadlineExceeded) || short.Err() == nil {
		t.Fatalf("never answered: %v, returned before the caller's ctx ended: %v", err, short.Err() == nil)
	}
}
