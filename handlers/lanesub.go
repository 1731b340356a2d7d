package handlers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// laneSubscriber is the Watermill subscriber of the trigger lanes.
//
// It replaces watermill-nats's JetStream subscriber (v2.1.3), whose
// consume callback sends on the output channel while a separate goroutine
// closes that channel at shutdown: a data race (and a possible "send on
// closed channel" panic) that the race detector reports whenever the router
// stops with a trigger in hand. Here one goroutine per lane owns its
// output channel: it pulls a message, hands it to the router, waits for
// the ack or nack, settles it with JetStream, and closes the channel itself
// when it stops.
type laneSubscriber struct {
	js       jetstream.JetStream
	nakDelay time.Duration

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

func newLaneSubscriber(js jetstream.JetStream, nakDelay time.Duration) *laneSubscriber {
	return &laneSubscriber{js: js, nakDelay: nakDelay, closing: make(chan struct{})}
}

// Subscribe consumes the lane consumer named topic.
func (s *laneSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("lane subscriber closed")
	}
	cons, err := s.js.Consumer(ctx, eventstore.StreamTriggerLanes, topic)
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer it.Stop()
		go func() { // Next blocks; stopping the iterator releases it
			select {
			case <-ctx.Done():
			case <-s.closing:
			}
			it.Stop()
		}()
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				// A missed heartbeat or a reconnect: the iterator goes on
				// by itself; pause so a lasting fault does not spin.
				select {
				case <-ctx.Done():
					return
				case <-s.closing:
					return
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			wm, _ := triggerUnmarshaler{}.Unmarshal(m)
			mctx, cancel := context.WithCancel(ctx)
			wm.SetContext(mctx)
			select {
			case out <- wm:
			case <-ctx.Done():
				cancel()
				return // not acked: redelivered after AckWait
			case <-s.closing:
				cancel()
				return
			}
			select {
			case <-wm.Acked():
				_ = m.Ack()
			case <-wm.Nacked():
				_ = m.NakWithDelay(s.nakDelay)
			case <-ctx.Done():
			case <-s.closing:
			}
			cancel()
		}
	}()
	return out, nil
}

// Close stops every lane and waits for them.
func (s *laneSubscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
