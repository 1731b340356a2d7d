// Package orderedread reads a nats.go ordered consumer so that a reader
// can stop waiting when its context ends.
//
// While no server answers (one that froze, say, or a cluster without a
// leader for the stream), nats.go's ordered consumer tries to recreate
// itself from inside Next, holding the consumer's lock, until a server
// answers: each attempt is a request that times out after 10 s, then a
// pause. Next ignores its context meanwhile, and Stop waits for that lock.
// A Reader calls Next in a goroutine of its own and hands over what it
// reads, so that its own Next returns as the context ends.
package orderedread

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// Reader hands over what a MessagesContext reads.
type Reader struct {
	it     jetstream.MessagesContext
	nexts  chan next
	closed chan struct{}
}

type next struct {
	m   jetstream.Msg
	err error
}

// New starts reading it, at most buffer messages ahead of Next.
func New(it jetstream.MessagesContext, buffer int) *Reader {
	r := &Reader{it: it, nexts: make(chan next, buffer), closed: make(chan struct{})}
	go r.read()
	return r
}

func (r *Reader) read() {
	for {
		m, err := r.it.Next()
		select {
		case r.nexts <- next{m, err}:
		case <-r.closed:
			return
		}
		if err != nil {
			return
		}
	}
}

// Next returns the next message read, the error that ended the reading,
// or ctx's error once ctx ends, whichever comes first. Only one goroutine
// may call it.
func (r *Reader) Next(ctx context.Context) (jetstream.Msg, error) {
	select {
	case n := <-r.nexts:
		return n.m, n.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the reading and returns at once; nats.go's consumer is
// stopped in the background (Stop waits for the lock that nats.go holds
// while it tries to recreate the consumer), and then, if not nil, after
// is called: removing the server's consumer, say. Next must not be called
// after Close.
func (r *Reader) Close(after func()) {
	close(r.closed)
	go func() {
		r.it.Stop()
		if after != nil {
			after()
		}
	}()
}
