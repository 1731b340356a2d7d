package eventstore_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

func TestValidateToken(t *testing.T) {
	t.Parallel()
	good := []string{"default", "a", "A1", "order-1", "wash_done", "0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b", strings.Repeat("x", eventstore.MaxTokenLen)}
	for _, s := range good {
		if err := eventstore.ValidateToken("id", s); err != nil {
			t.Errorf("ValidateToken(%q) = %v, want nil", s, err)
		}
	}
	bad := []struct {
		name, value, reason string
	}{
		{"empty", "", "empty"},
		{"too long", strings.Repeat("x", eventstore.MaxTokenLen+1), "longer"},
		{"dot", "a.b", "'.'"},
		{"only dot", ".", "'.'"},
		{"star", "a*", "wildcard"},
		{"gt", ">", "wildcard"},
		{"space", "a b", "whitespace"},
		{"tab", "a\tb", "whitespace"},
		{"newline", "a\n", "whitespace"},
		{"carriage return", "a\r", "whitespace"},
		{"nul", "a\x00", "control"},
		{"escape", "a\x1b", "control"},
		{"del", "a\x7f", "control"},
		{"leading dash", "-a", "start"},
		{"leading underscore", "_a", "start"},
		{"slash", "a/b", "'/'"},
		{"dollar", "$JS", "'$'"},
		{"unicode", "café", "ASCII"},
		{"unicode space", "a\u00a0b", "ASCII"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := eventstore.ValidateToken("order id", tc.value)
			if !errors.Is(err, eventstore.ErrInvalidToken) {
				t.Fatalf("ValidateToken(%q) = %v, want ErrInvalidToken", tc.value, err)
			}
			var te *eventstore.TokenError
			if !errors.As(err, &te) || te.Field != "order id" || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not name the field and %q", err, tc.reason)
			}
		})
	}
}

func FuzzValidateToken(f *testing.F) {
	for _, s := range []string{"default", "order-1", "a.b", "*", ">", " ", "", "é", "a\x00", "-x", strings.Repeat("z", 200)} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(eventstore.TokenPattern)
	f.Fuzz(func(t *testing.T, s string) {
		err := eventstore.ValidateToken("id", s)
		if described := pattern.MatchString(s) && len(s) <= eventstore.MaxTokenLen; described != (err == nil) {
			t.Fatalf("%q: TokenPattern and MaxTokenLen say %v, ValidateToken %v", s, described, err)
		}
		if err != nil {
			if !errors.Is(err, eventstore.ErrInvalidToken) {
				t.Fatalf("error %v does not match ErrInvalidToken", err)
			}
			return
		}
		// Anything accepted must be one safe subject token.
		if s == "" || len(s) > eventstore.MaxTokenLen || strings.ContainsAny(s, ".*> \t\r\n") {
			t.Fatalf("accepted unsafe token %q", s)
		}
		for _, r := range s {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
			if !ok {
				t.Fatalf("accepted %q with %q", s, r)
			}
		}
		if s[0] == '_' || s[0] == '-' {
			t.Fatalf("accepted %q starting with %q", s, s[0])
		}
	})
}

func TestParseTriggerSubject(t *testing.T) {
	tenant, order, key, err := eventstore.ParseTriggerSubject(eventstore.TriggerSubject("acme", "o-1", "picked_up"))
	if err != nil || tenant != "acme" || order != "o-1" || key != "picked_up" {
		t.Fatalf("got %q %q %q %v", tenant, order, key, err)
	}
	for _, bad := range []string{"orderflow.acme.order.o-1.picked_up", "orderflow.acme.trigger.o-1", "other.acme.trigger.o-1.k", ""} {
		if _, _, _, err := eventstore.ParseTriggerSubject(bad); !errors.Is(err, eventstore.ErrInvalidToken) {
			t.Errorf("ParseTriggerSubject(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}
}
