package domain

import "slices"

// libraryEntry is what the status and trigger libraries keep per key.
type libraryEntry interface {
	Status | Trigger
	archived() bool
}

func (s Status) archived() bool  { return s.Archived }
func (t Trigger) archived() bool { return t.Archived }

// entries are a library's entries by key, in the order they were added.
type entries[T libraryEntry] struct {
	noun  string // "status", "trigger": for errors
	byKey map[string]*T
	order []string
}

func newEntries[T libraryEntry](noun string) entries[T] {
	return entries[T]{noun: noun, byKey: map[string]*T{}}
}

// clone copies the entries, for a copy of the library to be read while
// the library goes on changing.
func (es *entries[T]) clone() entries[T] {
	c := entries[T]{noun: es.noun, byKey: make(map[string]*T, len(es.byKey)), order: slices.Clone(es.order)}
	for k, e := range es.byKey {
		v := *e
		c.byKey[k] = &v
	}
	return c
}

func (es *entries[T]) add(key string, e T) {
	es.byKey[key] = &e
	es.order = append(es.order, key)
}

// get returns one entry, archived or not.
func (es *entries[T]) get(key string) (T, bool) {
	e, ok := es.byKey[key]
	if !ok {
		var zero T
		return zero, false
	}
	return *e, true
}

// list returns every entry in the order they were added.
func (es *entries[T]) list() []T {
	out := make([]T, 0, len(es.order))
	for _, k := range es.order {
		out = append(out, *es.byKey[k])
	}
	return out
}

// checkNew refuses a key that is already taken, archived or not.
func (es *entries[T]) checkNew(key string) error {
	if e, ok := es.byKey[key]; ok {
		if (*e).archived() { // a key names one entry for good: history and pinned workflows read it
			return kindErr(ErrDuplicate, "key", "%s %q already exists, archived (a key is never used again: give another \"key\")", es.noun, key)
		}
		return kindErr(ErrDuplicate, "key", "%s %q already exists", es.noun, key)
	}
	return nil
}

// live returns the entry of key, refusing an unknown or archived one.
func (es *entries[T]) live(key string) (*T, error) {
	e, ok := es.byKey[key]
	if !ok {
		return nil, kindErr(ErrNotFound, "key", "no %s %q", es.noun, key)
	}
	if (*e).archived() {
		return nil, kindErr(ErrArchived, "key", "%s %q is archived", es.noun, key)
	}
	return e, nil
}

// archivable reports whether key may be archived now: false with no error
// when it already is (archiving again changes nothing), an error when it is
// unknown or live workflows (usedBy) still use it.
func (es *entries[T]) archivable(key string, usedBy func(string) []string) (bool, error) {
	e, ok := es.byKey[key]
	if !ok {
		return false, kindErr(ErrNotFound, "key", "no %s %q", es.noun, key)
	}
	if (*e).archived() {
		return false, nil
	}
	if ids := usedBy(key); len(ids) > 0 {
		return false, kindErr(ErrInUse, "key", "%s %q is used by live workflows %v", es.noun, key, ids)
	}
	return true, nil
}
