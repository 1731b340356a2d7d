package eventstore

import (
	"bytes"
	"encoding/json"
	"time"
)

// decodeCanonical parses an envelope written in exactly the form the store
// writes it (see encode: the contract's fields in one fixed order, no
// whitespace, ASCII strings without escapes). It reports false for anything
// else, and DecodeEnvelope then takes the general path, so both paths give
// the same result for the same bytes; the fast path only saves reading
// JSON generically on every stored event (projections, loads, audits).
func decodeCanonical(b []byte) (Envelope, bool) {
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
	p := parser{b: b[:end]}
	ok := p.lit(`{"id":`) && p.str(&e.ID) &&
		p.lit(`,"type":`) && p.str(&e.Type) &&
		p.lit(`,"tenant":`) && p.str(&e.Tenant) &&
		p.lit(`,"aggregate_type":`) && p.str(&e.AggregateType) &&
		p.lit(`,"aggregate_id":`) && p.str(&e.AggregateID) &&
		p.lit(`,"version":`) && p.uint(&e.Version) &&
		p.lit(`,"occurred_at":`) && p.time(&e.OccurredAt) &&
		p.lit(`,"actor":{"kind":`) && p.str((*string)(&e.Actor.Kind)) &&
		p.lit(`,"id":`) && p.str(&e.Actor.ID) && p.lit(`}`)
	if !ok {
		return e, false
	}
	if p.lit(`,"correlation_id":`) && !p.str(&e.CorrelationID) {
		return e, false
	}
	if p.lit(`,"causation_id":`) && !p.str(&e.CausationID) {
		return e, false
	}
	if !p.lit(`,"data":`) || p.i == len(p.b) {
		return e, false
	}
	data := p.b[p.i:]
	if isSpace(data[0]) || isSpace(data[len(data)-1]) || !json.Valid(data) {
		return e, false
	}
	e.Data = bytes.Clone(data)
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

type parser struct {
	b []byte
	i int
}

// lit consumes s if the input continues with it.
func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str consumes a JSON string of printable ASCII without escapes.
func (p *parser) str(dst *string) bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			*dst = string(p.b[p.i+1 : j])
			p.i = j + 1
			return true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return false
		}
	}
	return false
}

// uint consumes a JSON number that is a whole number fitting uint64.
func (p *parser) uint(dst *uint64) bool {
	j, v := p.i, uint64(0)
	for ; j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9'; j++ {
		d := uint64(p.b[j] - '0')
		if v > (1<<64-1-d)/10 {
			return false
		}
		v = v*10 + d
	}
	if j == p.i || (p.b[p.i] == '0' && j > p.i+1) {
		return false
	}
	*dst, p.i = v, j
	return true
}

// time consumes an RFC 3339 timestamp string, read as encoding/json reads
// a time.Time.
func (p *parser) time(dst *time.Time) bool {
	var s string
	start := p.i
	if !p.str(&s) {
		return false
	}
	if err := dst.UnmarshalJSON(p.b[start:p.i]); err != nil {
		return false
	}
	return true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}
