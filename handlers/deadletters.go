package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// DeadLetter is a trigger the processor put aside as one that can never be
// processed, as stored in ORDERFLOW_DEADLETTER.
type DeadLetter struct {
	Seq    uint64    // its sequence in ORDERFLOW_DEADLETTER
	Time   time.Time // when it was put aside
	Reason string    // why (the poison queue's reason_poisoned)
	// Tenant, OrderID and Trigger come from the trigger's subject; they
	// are empty when that subject was not a valid trigger subject.
	Tenant, OrderID, Trigger string
	// TriggerID is the trigger's idempotency key: its body's trigger_id,
	// or else its Nats-Msg-Id.
	TriggerID string
	Body      []byte // the trigger's body, as the worker app sent it
	subject   string // the lane subject it was read from
}

// ErrNotRedrivable is a dead letter that would be put aside again whatever
// happens meanwhile: its subject is not a valid trigger subject, its body
// cannot be read, or its trigger id is already another trigger's on its
// order.
var ErrNotRedrivable = errors.New("dead letter cannot be processed")

// DeadLetterQuery picks the dead letters ReadDeadLetters lists.
type DeadLetterQuery struct {
	// Tenant and OrderID, when set, keep the dead letters whose trigger
	// subject names them (wherever they are stored: on their tenant's
	// subject, or on DeadLetterSubject itself as earlier versions put
	// them).
	Tenant, OrderID string
	After           uint64 // list those after this sequence
	Limit           int    // at most this many (0: every one)
}

// ReadDeadLetters returns the dead letters q picks, oldest first (none
// when no trigger processor has run yet), without their bodies
// (ReadDeadLetter reads one whole): a listing of 30,000 dead letters of
// 65 KB held 2 GB of bodies it never showed.
func ReadDeadLetters(ctx context.Context, st *eventstore.Store, q DeadLetterQuery) ([]DeadLetter, error) {
	if _, err := st.JetStream().Stream(ctx, eventstore.StreamDeadLetter); errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	var out []DeadLetter
	for _, filter := range deadLetterFilters(q) {
		var part []DeadLetter
		err := st.ScanMessages(ctx, eventstore.StreamDeadLetter, filter, q.After, func(m *jetstream.RawStreamMsg) (bool, error) {
			dl := deadLetterOf(m.Sequence, m.Time, m.Header, m.Data)
			dl.Body = nil
			if (q.Tenant == "" || dl.Tenant == q.Tenant) && (q.OrderID == "" || dl.OrderID == q.OrderID) {
				part = append(part, dl)
			}
			return q.Limit <= 0 || len(part) < q.Limit, nil
		})
		if err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		out = append(out, part...)
	}
	slices.SortFunc(out, func(a, b DeadLetter) int { return cmp.Compare(a.Seq, b.Seq) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// deadLetterFilters are the subjects ReadDeadLetters reads for q: every
// one when q names no tenant or order; else its tenant's or order's own
// subjects, which the server picks out from every other's, and
// DeadLetterSubject itself, where earlier versions put every dead letter
// (and a trigger whose subject cannot be read goes). Before, a query for
// one order read every dead letter: on a store holding 30,000 of 65 KB,
// `orderflow deadletters --order` read 2 GB and gave up after 5 s.
//
// A tenant or order that no subject token can spell (a dot, a wildcard,
// white space) has no subjects of its own to read.
func deadLetterFilters(q DeadLetterQuery) []string {
	if q.Tenant == "" && q.OrderID == "" {
		return []string{""}
	}
	token := func(v string) (string, bool) {
		if v == "" {
			return "*", true
		}
		return v, !strings.ContainsAny(v, ".*> \t\n\f\r")
	}
	tenant, ok1 := token(q.Tenant)
	order, ok2 := token(q.OrderID)
	if !ok1 || !ok2 {
		return []string{eventstore.DeadLetterSubject}
	}
	return []string{eventstore.DeadLetterSubject, eventstore.DeadLetterSubjectFor(tenant, order, "*")}
}

// ReadDeadLetter returns the dead letter at sequence seq.
func ReadDeadLetter(ctx context.Context, st *eventstore.Store, seq uint64) (DeadLetter, error) {
	stream, err := st.JetStream().Stream(ctx, eventstore.StreamDeadLetter)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letters: %w", err)
	}
	return readDeadLetter(ctx, stream, seq)
}

func readDeadLetter(ctx context.Context, stream jetstream.Stream, seq uint64) (DeadLetter, error) {
	m, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("dead letter %d: there is none at that sequence (orderflow deadletters lists them): %w", seq, err)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return deadLetterOf(m.Sequence, m.Time, m.Header, m.Data), nil
}

// deadLetterOf reads the dead letter stored at seq.
func deadLetterOf(seq uint64, at time.Time, h nats.Header, data []byte) DeadLetter {
	dl := DeadLetter{Seq: seq, Time: at, Reason: h.Get("reason_poisoned"), Body: data, subject: h.Get(mdSubject)}
	if tenant, order, trigger, err := eventstore.ParseLaneSubject(dl.subject); err == nil {
		dl.Tenant, dl.OrderID, dl.Trigger = tenant, order, trigger
	} else if tenant, order, trigger, err := eventstore.ParseTriggerSubject(dl.subject); err == nil {
		dl.Tenant, dl.OrderID, dl.Trigger = tenant, order, trigger // put aside by the lanes' recovery (putAsideOnce)
	}
	// The processor's id for it (an unreadable body has no trigger_id).
	body, _ := DecodeTriggerBody(data)
	dl.TriggerID = pickTriggerID(body.TriggerID, h.Get(wmnats.WatermillUUIDHdr), 0)
	return dl
}

// deadLetterKeys is the name of every dead letter's trigger (its
// triggerDigest: an id sent again with another trigger key is put aside
// while its first trigger took effect), read in one pass over the stream:
// 20,000 in 56–62 ms, against 1.6–1.7 s for a request per dead letter
// (about 80 µs each) in the same ad-hoc run. Dead letters stored before
// ORDERFLOW_TRIGGERS was made are of a trigger stream since deleted, and
// left out (as readPutAside leaves them out).
func deadLetterKeys(ctx context.Context, st *eventstore.Store) (map[[16]byte]bool, error) {
	keys := map[[16]byte]bool{}
	triggersMade := st.StreamCreated(eventstore.StreamTriggers)
	_, err := st.ReadStream(ctx, eventstore.StreamDeadLetter, func(m eventstore.StoredMsg) error {
		if m.Time.Before(triggersMade) {
			return nil
		}
		dl := deadLetterOf(m.Sequence, m.Time, m.Header, m.Data)
		keys[triggerDigest(dl.Tenant, dl.OrderID, dl.Trigger, dl.TriggerID)] = true
		return nil
	}, nil)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return keys, nil // no trigger processor has run yet
	}
	return keys, err
}

// Redrive publishes a dead-lettered trigger again, to the subject it was
// first published to, for when what it lacked is there now (an order
// placed after its first trigger, say). It keeps its trigger id (in the
// body's trigger_id), so however often it is sent again it takes effect
// at most once; its Nats-Msg-Id is new, or JetStream would take it for the
// first one within the duplicate window. One that would be put aside
// again whatever happens meanwhile is refused (ErrNotRedrivable): an
// unsafe subject, an unreadable body, a worker or note against the rules,
// no usable trigger id, or an id its order has as another trigger's.
func Redrive(ctx context.Context, st *eventstore.Store, dl DeadLetter) (*jetstream.PubAck, error) {
	for _, t := range []struct{ field, value string }{{"tenant", dl.Tenant}, {"order id", dl.OrderID}, {"trigger key", dl.Trigger}} {
		if err := eventstore.ValidateToken(t.field, t.value); err != nil {
			return nil, fmt.Errorf("%w: dead letter %d was read from %q: %v", ErrNotRedrivable, dl.Seq, dl.subject, err)
		}
	}
	body, err := DecodeTriggerBody(dl.Body)
	if err == nil {
		err = errors.Join(checkTriggerBody(dl.Body), domain.TriggerReport{Worker: body.Worker, Note: body.Note}.Check())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dead letter %d: %v", ErrNotRedrivable, dl.Seq, err)
	}
	if err := domain.ValidateTriggerID(dl.TriggerID); err != nil || dl.TriggerID == "" {
		return nil, fmt.Errorf("%w: dead letter %d has no usable trigger id %q", ErrNotRedrivable, dl.Seq, dl.TriggerID)
	}
	if err := idOfAnotherTrigger(ctx, st, dl); err != nil {
		return nil, err
	}
	ack, err := publishAgain(ctx, st.JetStream(), dl.Tenant, dl.OrderID, dl.Trigger, dl.TriggerID, dl.Body,
		"redrive-"+strconv.FormatUint(dl.Seq, 10)+"-"+dl.TriggerID)
	if err != nil {
		return nil, fmt.Errorf("redrive dead letter %d: %w", dl.Seq, err)
	}
	return ack, nil
}

// AnsweredBy is the event type with which the dead letter's order has
// answered its trigger since it was put aside (a retry that took effect,
// or the worker app sending the trigger again with its id), or "" while
// none has. An outcome of the id for another trigger key does not count.
func AnsweredBy(ctx context.Context, st *eventstore.Store, dl DeadLetter) (string, error) {
	if eventstore.ValidateToken("tenant", dl.Tenant) != nil || eventstore.ValidateToken("order id", dl.OrderID) != nil || dl.TriggerID == "" {
		return "", nil // read from a subject or with an id no order can hold
	}
	ev, taken, err := outcomeOf(ctx, st, dl)
	if err != nil || taken != nil {
		return "", err
	}
	return ev.Type, nil // "" when none
}

// idOfAnotherTrigger refuses (ErrNotRedrivable) a dead letter whose
// trigger id its order's history has as the id of another trigger key
// (domain.Order.CheckTriggerID): sent again, it would only be put aside
// again. The trigger can be published anew with an id of its own.
func idOfAnotherTrigger(ctx context.Context, st *eventstore.Store, dl DeadLetter) error {
	_, taken, err := outcomeOf(ctx, st, dl)
	if err == nil && taken != nil {
		err = fmt.Errorf("%w: dead letter %d: %v", ErrNotRedrivable, dl.Seq, taken)
	}
	return err
}

// outcomeOf is the outcome with which the dead letter's order answered
// its trigger id (the zero Event while it has not); taken is
// domain.CheckOutcomeTrigger's refusal when that outcome is of another
// trigger key.
func outcomeOf(ctx context.Context, st *eventstore.Store, dl DeadLetter) (ev eventstore.Event, taken, err error) {
	events, err := st.Load(ctx, eventstore.Aggregate{Tenant: dl.Tenant, Type: domain.AggregateOrder, ID: dl.OrderID}, 0)
	if err != nil {
		return ev, nil, fmt.Errorf("dead letter %d: read order %q: %w", dl.Seq, dl.OrderID, err)
	}
	if ev, found := causedBy(events, dl.TriggerID); found {
		return ev, domain.CheckOutcomeTrigger(dl.OrderID, dl.TriggerID, dl.Trigger, ev.Type, ev.Data), nil
	}
	return ev, nil, nil
}

// publishAgain publishes a trigger again to its own subject under a new
// Nats-Msg-Id, with its trigger id in the body's trigger_id: it takes
// effect at most once however often it is sent.
func publishAgain(ctx context.Context, js jetstream.JetStream, tenant, orderID, trigger, triggerID string, raw []byte, msgID string) (*jetstream.PubAck, error) {
	body, err := DecodeTriggerBody(raw)
	if err == nil {
		err = checkTriggerBody(raw) // re-encoded, such text would pass altered
	}
	if err != nil {
		return nil, err
	}
	body.TriggerID = triggerID
	m := nats.NewMsg(eventstore.TriggerSubject(tenant, orderID, trigger))
	if m.Data, err = json.Marshal(body); err != nil {
		return nil, err
	}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return js.PublishMsg(ctx, m)
}
