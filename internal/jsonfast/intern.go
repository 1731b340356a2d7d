package jsonfast

import (
	"sync"
	"sync/atomic"
)

// Interner hands out one string per distinct value, for values that repeat
// across events (event types, tenants, workflow ids, statuses): reading
// them allocates nothing after the first time, and read models hold one
// copy of each. It keeps at most a fixed number of values; past that,
// values are allocated as usual, so input with ever-new values costs no
// more than without it.
type Interner struct {
	max  int
	full atomic.Bool
	m    atomic.Pointer[map[string]string] // copied on write
	mu   sync.Mutex
}

// NewInterner keeps up to max values.
func NewInterner(max int) *Interner { return &Interner{max: max} }

// Intern returns b as a string, the same string for the same bytes.
func (in *Interner) Intern(b []byte) string {
	if m := in.m.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	if in.full.Load() {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	var next map[string]string
	if old := in.m.Load(); old != nil {
		if prev, ok := (*old)[s]; ok {
			return prev
		}
		if len(*old) >= in.max {
			in.full.Store(true)
			return s
		}
		next = make(map[string]string, len(*old)+1)
		for k, v := range *old {
			next[k] = v
		}
	} else {
		next = map[string]string{}
	}
	next[s] = s
	in.m.Store(&next)
	return s
}

// Sym consumes a string like Str and interns it.
func (r *Reader) Sym(dst *string, in *Interner) bool {
	start := r.i
	if !r.scan(nil, false) {
		return false
	}
	*dst = in.Intern(r.b[start+1 : r.i-1])
	return true
}
