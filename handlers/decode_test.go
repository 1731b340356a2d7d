package handlers

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A body over MaxBodyBytes is refused as too large whatever it holds, with
// or without a declared length; a small bad body is a bad request.
func TestDecodeBodyRefusesLargeBodiesBySize(t *testing.T) {
	huge := strings.Repeat("a", MaxBodyBytes+1)
	cases := []struct {
		name     string
		body     string
		chunked  bool // sent without a Content-Length
		tooLarge bool
	}{
		{"valid and small", `{"trigger":"picked_up"}`, false, false},
		{"malformed and small", `{"trigger":`, false, false},
		{"malformed and large", huge, false, true},
		{"malformed and large, no length", huge, true, true},
		{"valid object, large string", `{"trigger":"` + huge + `"}`, false, true},
		{"valid object, then large trailing data, no length", `{"trigger":"picked_up"}` + huge, true, true},
		{"valid object, then small trailing data", `{"trigger":"picked_up"} x`, false, false},
		{"at the limit", `{"trigger":"` + strings.Repeat("a", MaxBodyBytes-len(`{"trigger":""}`)) + `"}`, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *http.Request
			if tc.chunked {
				r = httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(tc.body)))
				r.ContentLength = -1
			} else {
				r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			}
			err := decodeBody(httptest.NewRecorder(), r, &triggerRequest{})
			if got := errors.Is(err, errTooLarge); got != tc.tooLarge {
				t.Fatalf("too large = %v (%v), want %v", got, err, tc.tooLarge)
			}
			if status := problemFor(err).Status; err != nil && !tc.tooLarge && status != http.StatusBadRequest {
				t.Fatalf("a small bad body maps to %d (%v), want 400", status, err)
			}
		})
	}
}
