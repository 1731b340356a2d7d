package eventstore

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// TokenPattern is the regular expression (RE2 and ECMA-262 alike) a valid
// token matches, at most MaxTokenLen bytes long: what ValidateToken
// accepts, for documents that describe it (the OpenAPI document).
const TokenPattern = `^[A-Za-z0-9][A-Za-z0-9_-]*$`

// MaxTokenLen is the longest tenant, key or id accepted as a subject token.
// It keeps subjects well under NATS limits and ids readable.
const MaxTokenLen = 128

// ErrInvalidToken is matched (errors.Is) by every *TokenError.
var ErrInvalidToken = errors.New("invalid subject token")

// TokenError says which token was refused and why. It is returned before
// anything reaches NATS.
type TokenError struct {
	Field  string // what the token names: "tenant", "order id", "status key", ...
	Value  string // the refused value (quoted when printed)
	Reason string
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidToken) true for every TokenError.
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

// ValidateToken checks that value may stand as one subject token:
// [A-Za-z0-9][A-Za-z0-9_-]*, at most MaxTokenLen bytes. field names the
// token in the error ("tenant", "order id").
func ValidateToken(field, value string) error {
	if validToken(value) {
		return nil
	}
	fail := func(reason string) error {
		return &TokenError{Field: field, Value: value, Reason: reason}
	}
	if value == "" {
		return fail("must not be empty")
	}
	if len(value) > MaxTokenLen {
		return fail(fmt.Sprintf("longer than %d bytes", MaxTokenLen))
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		case c == '_' || c == '-':
			return fail("must start with a letter or digit")
		case c == '.':
			return fail("must not contain '.' (subject separator)")
		case c == '*' || c == '>':
			return fail(fmt.Sprintf("must not contain wildcard %q", c))
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			return fail("must not contain whitespace")
		case c < 0x20 || c == 0x7f:
			return fail("must not contain control characters")
		case c >= utf8.RuneSelf:
			return fail("must be ASCII letters, digits, '_' or '-'")
		default:
			return fail(fmt.Sprintf("must not contain %q", c))
		}
	}
	return nil
}

// validToken reports whether value is a safe token, without saying why
// not: the fast path of ValidateToken and Aggregate.Validate (the fuzz
// target FuzzValidateToken checks that nothing unsafe passes it).
func validToken(value string) bool {
	if value == "" || len(value) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
