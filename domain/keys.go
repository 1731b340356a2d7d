package domain

import (
	"strings"
	"unicode/utf8"
)

// Limits on names and keys.
const (
	MaxNameLen        = 200
	MaxKeyLen         = 64
	MaxDescriptionLen = 2000
)

// DeriveKey makes a key from a name: lower case, every character other
// than a-z and 0-9 becomes '_' ("Pending Pickup" → "pending_pickup").
func DeriveKey(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// CheckKey reports whether value is a valid key or id: the rule every
// key, id and tenant follows, so that it is always one safe subject token.
func CheckKey(field, value string) error { return checkKey(field, value) }

// checkKey enforces the key rule: [A-Za-z0-9][A-Za-z0-9_-]*, at most
// MaxKeyLen bytes, so a key is always one safe subject token.
func checkKey(field, key string) error {
	if key == "" {
		return invalid(field, "must not be empty")
	}
	if len(key) > MaxKeyLen {
		return invalid(field, "longer than %d characters", MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '_' || c == '-'))
		if !ok {
			return invalid(field, "%q may hold only letters, digits, '_' and '-', starting with a letter or digit", key)
		}
	}
	return nil
}

// checkName trims and checks a display name.
func checkName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalid(field, "must not be empty")
	}
	if !utf8.ValidString(name) {
		return "", invalid(field, "is not valid UTF-8")
	}
	if utf8.RuneCountInString(name) > MaxNameLen {
		return "", invalid(field, "longer than %d characters", MaxNameLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", invalid(field, "must not contain control characters")
		}
	}
	return name, nil
}

// SameName compares names the way uniqueness does: without regard to case
// or to how much space separates their words ("Laundry  intake" is
// "Laundry Intake"), which a list would show alike.
func SameName(a, b string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " "))
}
