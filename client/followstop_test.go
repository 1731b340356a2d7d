package client

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// FollowStageChanges returns as its ctx ends even while nats.go tries to
// recreate its consumer on a server that does not answer: nats.go's
// iterator waits out each attempt (a request that times out after 10 s,
// then a pause), Stop or no Stop.
func TestFollowStageChangesReturnsWhileItsConsumerIsRecreated(t *testing.T) {
	t.Parallel()
	c, st, fz := clientThroughFreezer(t, time.Second)
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()
	follow, stop := context.WithCancel(ctx)
	defer stop()
	seen := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowStageChanges(follow, "order-1", 0, func(StageChange) error {
			select {
			case seen <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	agg := eventstore.Aggregate{Tenant: c.tenant, Type: eventstore.OrderAggregateType, ID: "order-1"}
	placed := eventstore.Envelope{ID: uuid.NewString(), Type: domain.TypeOrderPlaced, Version: 1, OccurredAt: time.Now(),
		Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "ana"}, Data: []byte("{}")}
	if _, err := st.Append(ctx, agg, eventstore.ExpectNew, placed); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case err := <-done:
		t.Fatalf("FollowStageChanges = %v before its first change", err)
	case <-ctx.Done():
		t.Fatal("the first change never came")
	}

	// Only a request to recreate the follower's consumer names the
	// order's filter.
	fz.HoldUntilSent(ctx, t, agg.Filter())
	eventstoretest.ReturnsOnCancel(ctx, t, "FollowStageChanges", stop, done)
}
