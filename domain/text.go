package domain

import (
	"unicode"
	"unicode/utf8"
)

// Limits on the ids callers give: a trigger id, a worker's or user's id.
const (
	MaxTriggerIDLen = 128
	MaxActorIDLen   = 128
)

// CheckText checks free text a caller gives (a description, a reason, a
// note): valid UTF-8, at most max characters, and no control characters
// but tab and line breaks. What is refused here would otherwise be stored
// altered (invalid UTF-8 becomes U+FFFD) or unreadable on a screen.
func CheckText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > max {
		return invalid(field, "longer than %d characters", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return invalid(field, "must not contain control characters (%U); tab and line breaks are allowed", r)
		}
	}
	return nil
}

// CheckActorID checks an id that names who acted (a worker, a user) or
// ties requests together (a correlation id): valid UTF-8, at most
// MaxActorIDLen bytes, no control characters. Spaces are allowed
// ("Ana Lopez").
func CheckActorID(field, id string) error { return checkID(field, id, MaxActorIDLen, false) }

// ValidateTriggerID checks a trigger id a caller gives (it is a
// Nats-Msg-Id and goes into events): valid UTF-8, at most MaxTriggerIDLen
// bytes, no spaces or control characters. "" is left to the caller (one
// is then made).
func ValidateTriggerID(id string) error { return checkID("trigger_id", id, MaxTriggerIDLen, true) }

// checkID checks an id a caller gives: valid UTF-8, at most max bytes, no
// control characters, and with noSpaces no spaces either.
func checkID(field, id string, max int, noSpaces bool) error {
	if !utf8.ValidString(id) {
		return invalid(field, "is not valid UTF-8")
	}
	if len(id) > max {
		return invalid(field, "longer than %d bytes", max)
	}
	for _, r := range id {
		switch {
		case noSpaces && (unicode.IsControl(r) || unicode.IsSpace(r)):
			return invalid(field, "must not contain spaces or control characters")
		case unicode.IsControl(r):
			return invalid(field, "must not contain control characters (%U)", r)
		}
	}
	return nil
}
