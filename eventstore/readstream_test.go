package eventstore_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// ReadStream reads a stream of messages as large as the streams take
// (its pulls are bounded in bytes, and the bound must not stall on the
// largest), whole and in order; ReadStreamHeaders reads the same without
// their bodies.
func TestReadStreamOfLargeMessages(t *testing.T) {
	t.Parallel()
	st := eventstoretest.DeadLetterStore(t, eventstore.Config{})
	ctx := ctxT(t)
	subject := eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up")
	const n = 24
	for i := range n {
		m := nats.NewMsg(subject)
		m.Header.Set("Seq", fmt.Sprint(i))
		m.Data = bytes.Repeat([]byte{'a' + byte(i%26)}, 900<<10) // 21 MB in all, over the pull's bound
		if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, headersOnly := range []bool{false, true} {
		read := st.ReadStream
		if headersOnly {
			read = st.ReadStreamHeaders
		}
		var i int
		got, err := read(ctx, eventstore.StreamDeadLetter, func(m eventstore.StoredMsg) error {
			switch {
			case nats.Header(m.Header).Get("Seq") != fmt.Sprint(i) || m.Sequence != uint64(i+1) || m.Subject != subject || m.Time.IsZero():
				return fmt.Errorf("message %d: sequence %d, header %q, subject %s, time %v", i, m.Sequence, nats.Header(m.Header).Get("Seq"), m.Subject, m.Time)
			case headersOnly && len(m.Data) != 0:
				return fmt.Errorf("message %d: a body of %d bytes read with the headers only", i, len(m.Data))
			case !headersOnly && !bytes.Equal(m.Data, bytes.Repeat([]byte{'a' + byte(i%26)}, 900<<10)):
				return fmt.Errorf("message %d: a body of %d bytes, not as stored", i, len(m.Data))
			}
			i++
			return nil
		}, nil)
		if err != nil || got != n {
			t.Fatalf("headers only %v: read %d of %d: %v", headersOnly, got, n, err)
		}
	}
}
