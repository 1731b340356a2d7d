package handlers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// putAside is the set of stored triggers, by ORDERFLOW_TRIGGERS sequence,
// that have a dead letter. A lane may deliver such a trigger again: after
// a process died before acknowledging it, or on a store restored by
// import, whose new lane stream copies every imported trigger. It is not
// processed again: processed now it could take effect (its order placed
// since it was put aside), and the store would no longer say what
// happened to it. `orderflow deadletters retry` publishes one again as a
// new stored trigger, which is processed.
type putAside struct {
	mu   sync.RWMutex
	seqs map[uint64]struct{}
}

// deadLetterPrefix starts a dead letter's Nats-Msg-Id (see mdDeadLetterID).
const deadLetterPrefix = "deadletter-"

// deadLetterID is the Nats-Msg-Id of the dead letter of the trigger
// stored at sequence seq of ORDERFLOW_TRIGGERS.
func deadLetterID(seq uint64) string { return deadLetterPrefix + strconv.FormatUint(seq, 10) }

// deadLetterSeq reads the stored trigger's sequence from a dead letter's
// Nats-Msg-Id (deadLetterID).
func deadLetterSeq(msgID string) (uint64, bool) {
	n, ok := strings.CutPrefix(msgID, deadLetterPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil && seq > 0
}

// add takes a dead letter's Nats-Msg-Id.
func (s *putAside) add(msgID string) {
	if seq, ok := deadLetterSeq(msgID); ok {
		s.mu.Lock()
		s.seqs[seq] = struct{}{}
		s.mu.Unlock()
	}
}

// has reports whether the trigger whose dead letter would have msgID has
// one.
func (s *putAside) has(msgID string) bool {
	seq, ok := deadLetterSeq(msgID)
	if !ok {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, found := s.seqs[seq]
	return found
}

// readPutAside reads the dead letters stored so far. The processor adds
// those it stores itself (deadLetters); another process's, stored later,
// it does not follow (following them on NATS would answer a dead letter
// published to a subject no stream takes, where the publisher waits for
// JetStream's "no stream" instead), but looks one up when a lane
// delivers a trigger again (putAsideElsewhere): a trigger another process
// put aside and died before acknowledging.
//
// A read that fails is tried again, every second for up to
// readPutAsideFor (a cluster electing the stream's leader, a server
// starting); each try reads the whole stream, which may take longer than
// a request's deadline.
//
// A dead letter stored before ORDERFLOW_TRIGGERS was made names a trigger
// of another stream of the name (one deleted and made anew while the
// dead letters stayed), and is left out: its sequence may be another
// trigger's now.
func readPutAside(ctx context.Context, st *eventstore.Store) (*putAside, error) {
	giveUp := time.Now().Add(readPutAsideFor)
	triggersMade := st.StreamCreated(eventstore.StreamTriggers)
	for {
		s := &putAside{seqs: map[uint64]struct{}{}}
		_, err := st.ReadStreamHeaders(ctx, eventstore.StreamDeadLetter, func(m eventstore.StoredMsg) error {
			if ids := m.Header[jetstream.MsgIDHeader]; len(ids) > 0 && !m.Time.Before(triggersMade) {
				s.add(ids[0])
			}
			return nil
		}, nil)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil || time.Now().After(giveUp) {
			return nil, fmt.Errorf("read the dead letters: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// readPutAsideFor is how long readPutAside tries.
const readPutAsideFor = 30 * time.Second

// putAsideElsewhere reports whether a trigger the lane delivered again
// (for tenant, order and key) has a dead letter that the set does not
// hold: one another process stored after this one read the set, before
// it died or gave the lane up without acknowledging the trigger. The set
// then takes it. Processed now, the trigger could take effect (its order
// placed since), and the store would no longer say what happened to it.
// The look-up reads the dead letters of the order's trigger key stored
// since the lane stored the trigger (usually none; a redelivery is rare:
// a process gone, a lane handed over), and stops at the one it looks for.
func (p *Processor) putAsideElsewhere(msg *message.Message, tenant, orderID, key string) (bool, error) {
	id := msg.Metadata.Get(mdDeadLetterID)
	if _, ok := deadLetterSeq(id); !ok {
		return false, nil
	}
	st := p.cmds.Store
	since := st.StreamCreated(eventstore.StreamTriggers) // older ones name another stream's triggers (see readPutAside)
	if stored, ok := msg.Context().Value(laneStoredKey{}).(time.Time); ok && !stored.IsZero() {
		// Its dead letter was stored after the lane delivered it, so after
		// the lane stored it: the letters of its order's key from before
		// are not read (a worker app that sent thousands of poison
		// triggers for one order made each look-up read them all, bodies
		// and all, and a flood of redeliveries read gigabytes).
		since = later(since, stored.Add(-deadLetterClockSkew))
	}
	var found bool
	err := st.ScanMessagesOn(msg.Context(), eventstore.StreamDeadLetter, eventstore.DeadLetterSubjectFor(tenant, orderID, key), since,
		func(m *jetstream.RawStreamMsg) (bool, error) {
			found = m.Header.Get(jetstream.MsgIDHeader) == id
			return !found, nil
		})
	if err != nil {
		return false, fmt.Errorf("look up a redelivered trigger's dead letter: %w", err)
	}
	if found {
		p.putAside.add(id)
	}
	return found, nil
}

// deadLetterClockSkew is how far behind the lane stream's clock the
// dead-letter stream's may run: on a cluster their leaders may be
// different servers.
const deadLetterClockSkew = time.Minute

// laneStoredKey is the context key under which a lane gives the handler
// of a trigger marked mdRedelivered the time the lane stored it (see
// putAsideElsewhere). Not metadata: the poison queue copies a message's
// metadata into its dead letter's headers.
type laneStoredKey struct{}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
