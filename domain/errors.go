package domain

import (
	"errors"
	"fmt"
)

// Rule violations. The HTTP layer maps each to one problem code.
var (
	// ErrInvalid: an argument breaks a rule (empty name, 51 steps, a status
	// twice in one workflow, an unknown or archived status or trigger...).
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: the thing addressed does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a key or name is already taken.
	ErrDuplicate = errors.New("already exists")
	// ErrInUse: the thing is used by a live workflow or order type.
	ErrInUse = errors.New("in use")
	// ErrArchived: the thing addressed is archived and cannot be changed.
	ErrArchived = errors.New("archived")
	// ErrConflict: the command does not fit the aggregate's current state
	// (resume an active order, cancel a completed one).
	ErrConflict = errors.New("conflicts with the current state")
)

// FieldError says which field broke which rule. It matches ErrInvalid
// (or the sentinel given as Kind).
type FieldError struct {
	Field  string
	Reason string
	Kind   error // ErrInvalid unless set
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Is matches the error's kind.
func (e *FieldError) Is(target error) bool {
	if e.Kind == nil {
		return target == ErrInvalid
	}
	return target == e.Kind
}

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func kindErr(kind error, field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Kind: kind}
}
