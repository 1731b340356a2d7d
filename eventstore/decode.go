package eventstore

import (
	"bytes"
	"encoding/json"

	"github.com/orderflow/orderflow/internal/jsonfast"
)

// symbols interns the envelope fields that repeat from event to event.
var symbols = jsonfast.NewInterner(4096)

// decodeCanonical parses an envelope written in exactly the form the store
// writes it (see encode: the contract's fields in one fixed order, no
// whitespace, ASCII strings without escapes). It reports false for anything
// else, and DecodeEnvelope then takes the general path, so both paths give
// the same result for the same bytes; the fast path only saves reading
// JSON generically on every stored event (projections, loads, audits).
//
// Data is b's own bytes when owned is true (b is not reused: a message
// received from NATS), else a copy. It is checked to be valid JSON unless
// checkData is false (a reader that decodes it anyway, and so checks it).
func decodeCanonical(b []byte, owned, checkData bool) (Envelope, bool) {
	var e Envelope
	// The tail first: data is followed by optional prev_hash and hash
	// members of fixed shape, so its end is found without scanning it.
	end := len(b) - 1
	if end < 0 || b[end] != '}' {
		return e, false
	}
	if h, at, ok := tailMember(b[:end], hashMember); ok {
		e.Hash, end = h, at
	}
	if h, at, ok := tailMember(b[:end], `,"prev_hash":"`); ok {
		e.PrevHash, end = h, at
	}
	r := jsonfast.NewReader(b[:end])
	ok := r.Lit(`{"id":`) && r.Str(&e.ID) &&
		r.Lit(`,"type":`) && r.Sym(&e.Type, symbols) &&
		r.Lit(`,"tenant":`) && r.Sym(&e.Tenant, symbols) &&
		r.Lit(`,"aggregate_type":`) && r.Sym(&e.AggregateType, symbols) &&
		r.Lit(`,"aggregate_id":`) && r.Str(&e.AggregateID) &&
		r.Lit(`,"version":`) && r.Uint(&e.Version) &&
		r.Lit(`,"occurred_at":`) && r.Time(&e.OccurredAt) &&
		r.Lit(`,"actor":{"kind":`) && r.Sym((*string)(&e.Actor.Kind), symbols) &&
		r.Lit(`,"id":`) && r.Str(&e.Actor.ID) && r.Lit(`}`)
	if !ok {
		return e, false
	}
	if r.Lit(`,"correlation_id":`) && !r.Str(&e.CorrelationID) {
		return e, false
	}
	if r.Lit(`,"causation_id":`) && !r.Str(&e.CausationID) {
		return e, false
	}
	if !r.Lit(`,"data":`) || r.Done() {
		return e, false
	}
	data := r.Rest()
	if isSpace(data[0]) || isSpace(data[len(data)-1]) || (checkData && !json.Valid(data)) {
		return e, false
	}
	if !owned {
		data = bytes.Clone(data)
	}
	e.Data = data
	return e, true
}

// tailMember finds b ending with member (`,"name":"`) followed by 64
// lower-case hex digits and a closing quote, and returns the digits and
// where the member starts.
func tailMember(b []byte, member string) (string, int, bool) {
	const digits = 64
	at := len(b) - len(member) - digits - 1
	if at < 0 || b[len(b)-1] != '"' || string(b[at:at+len(member)]) != member {
		return "", 0, false
	}
	h := b[at+len(member) : len(b)-1]
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", 0, false
		}
	}
	return string(h), at, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}
