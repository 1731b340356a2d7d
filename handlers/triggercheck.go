package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// TriggerCheck is an account of every trigger stored in
// ORDERFLOW_TRIGGERS: each one took effect or was answered (its order's
// history has an outcome caused by its id, for its trigger key:
// advanced, completed, rejected, or a duplicate of one that was), was put
// aside as a dead letter, or is still on its way
// (in the lanes, or not copied there yet). Any other is missing: stored,
// acknowledged to its worker app, and never processed.
type TriggerCheck struct {
	Triggers    uint64 // stored in ORDERFLOW_TRIGGERS
	Answered    uint64 // answered in their order's history
	DeadLetters uint64 // put aside
	Pending     uint64 // in the lanes, or not yet copied there
	Missing     []MissingTrigger
}

// MissingTrigger is a stored trigger that nothing accounts for.
type MissingTrigger struct {
	Seq                      uint64 // its sequence in ORDERFLOW_TRIGGERS
	Tenant, OrderID, Trigger string
	TriggerID                string
}

func (m MissingTrigger) String() string {
	return fmt.Sprintf("trigger %d: tenant %s, order %s, trigger %s, id %s", m.Seq, m.Tenant, m.OrderID, m.Trigger, m.TriggerID)
}

// storedTrigger is what the check keeps of one stored trigger: its
// sequence and the digest of its names (triggerDigest); the names of one
// found missing are read again.
type storedTrigger struct {
	seq  uint64
	name [16]byte
}

// CheckTriggers accounts for every trigger stored in ORDERFLOW_TRIGGERS.
// It reads the triggers first and the orders' histories last, so that a
// trigger processed while it runs is found in one or the other. It keeps
// 24 bytes for every trigger and an outcomes index (about 50 bytes an
// outcome) in memory: an auditor's tool, not a request path.
func CheckTriggers(ctx context.Context, st *eventstore.Store, progress eventstore.Progress) (TriggerCheck, error) {
	var rep TriggerCheck
	var triggers []storedTrigger
	if _, err := st.ReadStream(ctx, eventstore.StreamTriggers, func(m eventstore.StoredMsg) error {
		triggers = append(triggers, storedTrigger{seq: m.Sequence, name: storedTriggerOf(m).name()})
		return nil
	}, progress); err != nil {
		return rep, err
	}
	copied, inLanes, err := laneContents(ctx, st)
	if err != nil {
		return rep, err
	}
	dead, err := deadLetterKeys(ctx, st)
	if err != nil {
		return rep, err
	}
	answered := outcomeIndex{}
	if _, err := st.ReadStream(ctx, eventstore.StreamOrders, func(m eventstore.StoredMsg) error {
		answered.add(m)
		return nil
	}, progress); err != nil {
		return rep, err
	}
	for _, t := range triggers {
		rep.Triggers++
		switch {
		case answered[t.name]:
			rep.Answered++
		case dead[t.name]:
			rep.DeadLetters++
		case t.seq > copied || inLanes[t.seq]:
			rep.Pending++
		default:
			rep.Missing = append(rep.Missing, MissingTrigger{Seq: t.seq})
		}
	}
	return rep, namesOfMissing(ctx, st, rep.Missing)
}

// storedTriggerOf names a stored trigger: its tenant, order and trigger
// key as its subject spells them (none when it names no trigger), and its
// id.
func storedTriggerOf(m eventstore.StoredMsg) MissingTrigger {
	t := MissingTrigger{Seq: m.Sequence, TriggerID: triggerIDOf(m)}
	if tenant, order, key, err := eventstore.ParseTriggerSubject(m.Subject); err == nil {
		t.Tenant, t.OrderID, t.Trigger = tenant, order, key
	}
	return t
}

// name is the trigger's name as the accounts know it (triggerDigest).
func (t MissingTrigger) name() [16]byte {
	return triggerDigest(t.Tenant, t.OrderID, t.Trigger, t.TriggerID)
}

// namesOfMissing reads the triggers found missing again, for their names.
func namesOfMissing(ctx context.Context, st *eventstore.Store, missing []MissingTrigger) error {
	if len(missing) == 0 {
		return nil
	}
	stream, err := st.JetStream().Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		return fmt.Errorf("%s: %w", eventstore.StreamTriggers, err)
	}
	for i, t := range missing {
		m, err := stream.GetMsg(ctx, t.Seq)
		if err != nil {
			return fmt.Errorf("%s: trigger %d: %w", eventstore.StreamTriggers, t.Seq, err)
		}
		missing[i] = storedTriggerOf(eventstore.StoredMsg{Stream: eventstore.StreamTriggers, Sequence: t.Seq, Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return nil
}

// outcomeIndex holds the name (triggerDigest) of each trigger an order's
// history answers: its order, its trigger key and its id. An order
// records one outcome per id: the same id sent again with another key is
// put aside, not answered.
type outcomeIndex map[[16]byte]bool

// add takes an order event; it keeps only a trigger's outcome.
func (x outcomeIndex) add(m eventstore.StoredMsg) {
	if !domain.IsTriggerOutcome(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]) {
		return // the order placed, or a supervisor's action
	}
	ev, err := m.Event()
	if err != nil || ev.CausationID == "" {
		return // an unreadable event is verify's business
	}
	if trigger, ok := domain.OutcomeTrigger(ev.Type, ev.Data); ok {
		x[triggerDigest(ev.Tenant, ev.AggregateID, trigger, ev.CausationID)] = true
	}
}

// triggerIDOf is the id the processor gives a trigger stored in
// ORDERFLOW_TRIGGERS (see pickTriggerID).
func triggerIDOf(m eventstore.StoredMsg) string {
	var bodyID string
	if body, err := DecodeTriggerBody(m.Data); err == nil {
		bodyID = body.TriggerID
	}
	var msgID string
	if ids := m.Header[jetstream.MsgIDHeader]; len(ids) > 0 {
		msgID = ids[0]
	}
	return pickTriggerID(bodyID, msgID, m.Sequence)
}

// laneContents returns how far the lane stream has copied
// ORDERFLOW_TRIGGERS and which triggers (by their ORDERFLOW_TRIGGERS
// sequence) it still holds.
func laneContents(ctx context.Context, st *eventstore.Store) (copied uint64, held map[uint64]bool, err error) {
	held = map[uint64]bool{}
	stream, err := st.JetStream().Stream(ctx, eventstore.StreamTriggerLanes)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, held, nil // no processor has run: nothing is copied yet
	}
	if err != nil {
		return 0, nil, fmt.Errorf("trigger lanes: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("trigger lanes: %w", err)
	}
	for _, src := range info.Sources {
		if src.Name == eventstore.StreamTriggers {
			copied = src.Seq
		}
	}
	// Each get asks for the first message at or after seq, so the triggers
	// applied (deleted from the work queue) between FirstSeq and LastSeq
	// cost nothing: one request per trigger still held, not per sequence.
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break // none left: applied meanwhile
		}
		if err != nil {
			return 0, nil, fmt.Errorf("trigger lanes: %w", err)
		}
		if n, ok := sourceSequence(m.Header.Get(streamSourceHeader)); ok {
			held[n] = true
		}
		seq = m.Sequence + 1
	}
	return copied, held, nil
}

// ImportedTriggers finds, as import stores an export, the first imported
// trigger that a trigger processor on the restored store still has to
// read: one neither answered in its order's history (as CheckTriggers
// counts it) nor put aside as a dead letter (as the processor knows one:
// by its dead letter's Nats-Msg-Id). Every trigger before it would only
// be answered again as a duplicate, or left put aside; the restored
// store's lanes start there (eventstore.Store.StartLanesAt).
//
// It takes the export's messages in export's order: the order events
// first, then the triggers, then the dead letters. It keeps a 16-byte
// digest of each trigger's outcome (a trigger id taken by another
// trigger key does not match it) and the sequence of each trigger found
// without one.
type ImportedTriggers struct {
	answered outcomeIndex
	open     []uint64 // triggers without an outcome, in stream order
	putAside map[uint64]bool
	last     uint64 // the last trigger's sequence
}

// NewImportedTriggers starts an account of an import.
func NewImportedTriggers() *ImportedTriggers {
	return &ImportedTriggers{answered: outcomeIndex{}, putAside: map[uint64]bool{}}
}

// Add takes the next message of the export.
func (it *ImportedTriggers) Add(m eventstore.StoredMsg) {
	switch m.Stream {
	case eventstore.StreamOrders:
		it.answered.add(m)
	case eventstore.StreamTriggers:
		it.last = m.Sequence
		if it.answered[storedTriggerOf(m).name()] {
			return
		}
		it.open = append(it.open, m.Sequence)
	case eventstore.StreamDeadLetter:
		if ids := m.Header[jetstream.MsgIDHeader]; len(ids) > 0 {
			if seq, ok := deadLetterSeq(ids[0]); ok {
				it.putAside[seq] = true
			}
		}
	}
}

// FirstToRead is the sequence of the first trigger taken that is neither
// answered nor put aside; one past the last trigger when there is none,
// and 1 when no trigger was taken.
func (it *ImportedTriggers) FirstToRead() uint64 {
	for _, seq := range it.open {
		if !it.putAside[seq] {
			return seq
		}
	}
	return it.last + 1
}

// triggerDigest names a trigger by its order, key and id: their SHA-256,
// cut to 16 bytes (finding two names that share one takes about 2⁶⁴
// tries).
func triggerDigest(tenant, orderID, trigger, triggerID string) [16]byte {
	h := sha256.New()
	for _, s := range []string{tenant, orderID, trigger, triggerID} {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	var d [16]byte
	copy(d[:], h.Sum(nil))
	return d
}
