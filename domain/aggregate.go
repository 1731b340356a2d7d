package domain

import "fmt"

// root is the bookkeeping every aggregate shares: its version (how many
// events it has applied) and the events recorded since it was loaded.
type root struct {
	version uint64
	changes []Event
}

// Version is the number of events applied, recorded ones included.
func (r *root) Version() uint64 { return r.version }

// Changes are the events recorded by commands since the aggregate was
// loaded, oldest first.
func (r *root) Changes() []Event { return r.changes }

// BaseVersion is the version the aggregate had when it was loaded.
func (r *root) BaseVersion() uint64 { return r.version - uint64(len(r.changes)) }

// ClearChanges forgets the recorded events once they are stored.
func (r *root) ClearChanges() { r.changes = nil }

// Aggregate is what the application layer needs of every aggregate.
type Aggregate interface {
	// Apply folds one stored event into the state (loading).
	Apply(Event) error
	Version() uint64
	BaseVersion() uint64
	Changes() []Event
	ClearChanges()
}

func unexpected(agg string, e Event) error {
	return fmt.Errorf("%s cannot apply %s", agg, e.EventType())
}
