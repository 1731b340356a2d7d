package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// ActorKind says who caused an event.
type ActorKind string

// The actor kinds of the contract.
const (
	ActorWorker ActorKind = "worker"
	ActorUser   ActorKind = "user"
	ActorSystem ActorKind = "system"
)

// Valid reports whether k is one of the contract's actor kinds.
func (k ActorKind) Valid() bool {
	return k == ActorWorker || k == ActorUser || k == ActorSystem
}

// Actor is who caused an event: a worker app, a user or the system itself.
type Actor struct {
	Kind ActorKind `json:"kind"`
	ID   string    `json:"id"`
}

// Envelope is the JSON body of every event message (DESIGN.md, "Event
// envelope"). Data holds the event's own fields as raw JSON: the store never
// interprets it.
type Envelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Tenant        string          `json:"tenant"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	Version       uint64          `json:"version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Actor         Actor           `json:"actor"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	CausationID   string          `json:"causation_id,omitempty"`
	Data          json.RawMessage `json:"data"`
	// PrevHash is the Hash of the aggregate's previous event ("" for its
	// first); Hash is the SHA-256 of this event's canonical bytes (see
	// Seal). Together they chain each aggregate's history.
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Event is an envelope as stored: where it sits in its stream.
type Event struct {
	Envelope
	Stream   string    // the stream that holds it
	Sequence uint64    // its stream sequence
	Subject  string    // the subject it was stored under
	StoredAt time.Time // the server's timestamp
}

// ErrInvalidEnvelope is matched by every error DecodeEnvelope and Validate
// return for a malformed envelope.
var ErrInvalidEnvelope = errors.New("invalid event envelope")

// ErrUnreadableEvent is matched by the error of a read that met a stored
// message which is not an event envelope: one a client with publish
// rights on the stream's subjects sent there by hand, say. The aggregate
// it belongs to cannot be loaded while it is there, and the streams deny
// deletes, so NATS permissions are what keeps such messages out;
// orderflow verify names it.
var ErrUnreadableEvent = errors.New("a stored message is not a readable event")

// MaxEnvelopeSize bounds one encoded envelope. It stays below the NATS
// default max payload (1 MiB) so an event that is accepted can always be
// stored.
const MaxEnvelopeSize = 900 * 1024

// Validate checks that e has every field the contract requires, with tokens
// that are safe in subjects.
func (e *Envelope) Validate() error {
	return e.validate(true)
}

func (e *Envelope) validate(checkData bool) error {
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("id is required"))
	} else if len(e.ID) > MaxTokenLen {
		errs = append(errs, fmt.Errorf("id longer than %d bytes", MaxTokenLen))
	}
	for _, t := range []struct{ field, value string }{
		{"type", e.Type},
		{"tenant", e.Tenant},
		{"aggregate_type", e.AggregateType},
		{"aggregate_id", e.AggregateID},
	} {
		if err := ValidateToken(t.field, t.value); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Version == 0 {
		errs = append(errs, errors.New("version must be 1 or more"))
	}
	if e.OccurredAt.IsZero() {
		errs = append(errs, errors.New("occurred_at is required"))
	}
	if !e.Actor.Kind.Valid() {
		errs = append(errs, fmt.Errorf("actor.kind %q is not worker, user or system", e.Actor.Kind))
	}
	if checkData && len(e.Data) > 0 && !json.Valid(e.Data) {
		errs = append(errs, errors.New("data is not valid JSON"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEnvelope, err)
	}
	return nil
}

// DecodeEnvelope parses and validates one envelope. Unknown fields are
// tolerated so that readers keep working when the envelope gains a field.
func DecodeEnvelope(b []byte) (Envelope, error) {
	return decodeEnvelope(b, false, true)
}

// decodeEnvelope is DecodeEnvelope; with owned, Data may share b's bytes,
// and without checkData, the data of an envelope in the store's own form
// is not checked to be valid JSON (see decodeCanonical).
func decodeEnvelope(b []byte, owned, checkData bool) (Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return Envelope{}, fmt.Errorf("%w: %d bytes is over the %d byte limit", ErrInvalidEnvelope, len(b), MaxEnvelopeSize)
	}
	e, canonical := decodeCanonical(b, owned, checkData) // data already checked on this path, if it is to be
	if !canonical {
		var err error
		if e, err = decodeJSON(b); err != nil {
			return Envelope{}, err
		}
	}
	if err := e.validate(!canonical); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// decodeJSON reads an envelope in any form JSON allows.
func decodeJSON(b []byte) (Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrInvalidEnvelope, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Envelope{}, fmt.Errorf("%w: trailing data after the envelope", ErrInvalidEnvelope)
	}
	return e, nil
}

// encode renders e as the contract's JSON, occurred_at in UTC. It is
// written by hand because it is on every append's path: encoding/json would
// re-validate and re-compact Data, which Validate has already checked.
func (e *Envelope) encode() ([]byte, error) {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	// Room for every member (256 bytes covers the names, quotes, version
	// and time) and for seal's hash member, so that the body is written
	// into one buffer that never grows: a string needing escapes is rare.
	size := 256 + len(e.ID) + len(e.Type) + len(e.Tenant) + len(e.AggregateType) + len(e.AggregateID) +
		len(e.Actor.Kind) + len(e.Actor.ID) + len(e.CorrelationID) + len(e.CausationID) + len(e.PrevHash) +
		len(data) + len(hashMember) + 66
	b := make([]byte, 0, size)
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"tenant":`...)
	b = appendString(b, e.Tenant)
	b = append(b, `,"aggregate_type":`...)
	b = appendString(b, e.AggregateType)
	b = append(b, `,"aggregate_id":`...)
	b = appendString(b, e.AggregateID)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, `,"occurred_at":"`...)
	b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","actor":{"kind":`...)
	b = appendString(b, string(e.Actor.Kind))
	b = append(b, `,"id":`...)
	b = appendString(b, e.Actor.ID)
	b = append(b, '}')
	if e.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = appendString(b, e.CorrelationID)
	}
	if e.CausationID != "" {
		b = append(b, `,"causation_id":`...)
		b = appendString(b, e.CausationID)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	if e.PrevHash != "" {
		b = append(b, `,"prev_hash":`...)
		b = appendString(b, e.PrevHash)
	}
	if e.Hash != "" {
		b = append(b, `,"hash":`...)
		b = appendString(b, e.Hash)
	}
	b = append(b, '}')
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: event %s is %d bytes, over the %d byte limit", ErrInvalidEnvelope, e.ID, len(b), MaxEnvelopeSize)
	}
	return b, nil
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// MarshalJSONForFeed renders the envelope as stored (the contract's JSON),
// on one line, for feeds such as Server-Sent Events.
func (e *Envelope) MarshalJSONForFeed() ([]byte, error) {
	b, err := e.encode()
	if err != nil || !bytes.ContainsAny(b, "\r\n") {
		return b, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// The hash chain.
//
// An event's canonical bytes are its stored JSON body without the final
// `,"hash":"<64 hex digits>"` member: the envelope as encoded by the store
// (fields in the order id, type, tenant, aggregate_type, aggregate_id,
// version, occurred_at, actor, correlation_id, causation_id, data,
// prev_hash; empty optional fields left out), closed by `}`. Its hash is the
// lower-case hex SHA-256 of those bytes. prev_hash is inside the canonical
// bytes, so each hash covers the whole history of its aggregate before it.

const hashMember = `,"hash":"`

// seal sets e.Hash and returns the body to store.
func (e *Envelope) seal() ([]byte, error) {
	e.Hash = ""
	canonical, err := e.encode()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(canonical)
	e.Hash = hex.EncodeToString(sum[:])
	// The body is the canonical bytes with the hash member in place of the
	// closing brace, written into the same buffer once the hash is taken.
	body := append(canonical[:len(canonical)-1], hashMember...)
	body = append(body, e.Hash...)
	body = append(body, '"', '}')
	return body, nil
}

// CanonicalBytes splits a stored body into its canonical bytes and the hash
// it claims. ok is false when the body does not end with a hash member.
func CanonicalBytes(body []byte) (canonical []byte, claimed string, ok bool) {
	const tail = 64 + 2 // the hex digits, `"}`
	n := len(body)
	if n < len(hashMember)+tail+1 || !bytes.Equal(body[n-tail-len(hashMember):n-tail], []byte(hashMember)) || !bytes.HasSuffix(body, []byte(`"}`)) {
		return nil, "", false
	}
	claimed = string(body[n-tail : n-2])
	canonical = append(append([]byte(nil), body[:n-tail-len(hashMember)]...), '}')
	return canonical, claimed, true
}

// HashOf is the hex SHA-256 of canonical bytes.
func HashOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// AsEncoded returns an event body as the store encoded it, when a JSON
// tool wrote it out again with other escapes: encoding/json, by default,
// writes "<", ">", "&", U+2028 and U+2029 in strings as \u escapes, which
// reads the same but no longer matches the event's hash. The envelope is
// encoded anew from what it says, and taken when that matches the hash it
// claims. A body that matches its hash, or that re-encoding does not
// mend (one really altered), comes back as it is, for Verify to report.
func AsEncoded(body []byte) []byte {
	canonical, claimed, ok := CanonicalBytes(body)
	if !ok || HashOf(canonical) == claimed {
		return body
	}
	e, err := DecodeEnvelope(body)
	if err != nil {
		return body
	}
	sealed, err := e.seal()
	if err != nil || e.Hash != claimed {
		return body
	}
	return sealed
}
