// Package jsonfast reads JSON that is in one known, compact form: the form
// orderflow itself writes (fixed member order, no whitespace, ASCII strings
// without escapes). Each method consumes one expected piece and reports
// false when the input departs from that form in any way; callers then fall
// back to encoding/json, which decides. On the form it accepts, a reader
// reads exactly what encoding/json would, without reflection and without a
// separate validation pass; it exists because every stored event is read
// again by every projection, audit and restart.
package jsonfast

import (
	"math"
	"time"
)

// Reader reads b from the start.
type Reader struct {
	b []byte
	i int
}

// NewReader returns a reader at the start of b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Done reports whether the whole input has been consumed.
func (r *Reader) Done() bool { return r.i == len(r.b) }

// Rest is the input not consumed yet.
func (r *Reader) Rest() []byte { return r.b[r.i:] }

// Lit consumes s if the input continues with it.
func (r *Reader) Lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// Str consumes a JSON string of printable ASCII without escapes.
func (r *Reader) Str(dst *string) bool { return r.scan(dst, true) }

// scan consumes a string like Str, setting dst only when set is true.
func (r *Reader) scan(dst *string, set bool) bool {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return false
	}
	for j := r.i + 1; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			if set {
				*dst = string(r.b[r.i+1 : j])
			}
			r.i = j + 1
			return true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return false
		}
	}
	return false
}

// digits consumes a JSON integer's digits (no sign, no leading zero) and
// returns them.
func (r *Reader) digits() ([]byte, bool) {
	j := r.i
	for j < len(r.b) && r.b[j] >= '0' && r.b[j] <= '9' {
		j++
	}
	d := r.b[r.i:j]
	if len(d) == 0 || (d[0] == '0' && len(d) > 1) {
		return nil, false
	}
	r.i = j
	return d, true
}

// number consumes digits whose value is at most limit.
func (r *Reader) number(limit uint64) (uint64, bool) {
	start := r.i
	d, ok := r.digits()
	if !ok {
		return 0, false
	}
	var v uint64
	for _, c := range d {
		n := uint64(c - '0')
		if v > (limit-n)/10 {
			r.i = start
			return 0, false
		}
		v = v*10 + n
	}
	return v, true
}

// Uint consumes a non-negative whole number that fits in a uint64.
func (r *Reader) Uint(dst *uint64) bool {
	v, ok := r.number(math.MaxUint64)
	if ok {
		*dst = v
	}
	return ok
}

// Int consumes a non-negative whole number that fits in an int. (Negative
// numbers are left to encoding/json.)
func (r *Reader) Int(dst *int) bool {
	v, ok := r.number(math.MaxInt)
	if ok {
		*dst = int(v)
	}
	return ok
}

// Time consumes an RFC 3339 timestamp string, read as encoding/json reads
// a time.Time.
func (r *Reader) Time(dst *time.Time) bool {
	start := r.i
	if !r.scan(nil, false) {
		return false
	}
	if err := dst.UnmarshalJSON(r.b[start:r.i]); err != nil {
		r.i = start
		return false
	}
	return true
}

// Strs consumes null (a nil slice) or an array of strings, interned by in
// unless it is nil.
func (r *Reader) Strs(dst *[]string, in *Interner) bool {
	if r.Lit("null") {
		*dst = nil
		return true
	}
	start := r.i
	if !r.Lit("[") {
		return false
	}
	out := []string{}
	for first := true; !r.Lit("]"); first = false {
		var s string
		if !first && !r.Lit(",") {
			r.i = start
			return false
		}
		ok := false
		if in != nil {
			ok = r.Sym(&s, in)
		} else {
			ok = r.Str(&s)
		}
		if !ok {
			r.i = start
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return true
}
