package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Browsers of the allowed origins get CORS headers and preflight answers;
// other origins get neither, and requests without an Origin pass as they are.
func TestCORS(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := CORS([]string{"https://board.example.com"}, inner)
	for _, tc := range []struct {
		name, method, origin, preflight string
		status                          int
		allowed                         bool
	}{
		{"no origin", "GET", "", "", http.StatusTeapot, false},
		{"allowed origin", "GET", "https://board.example.com", "", http.StatusTeapot, true},
		{"other origin", "GET", "https://evil.example.com", "", http.StatusTeapot, false},
		{"preflight, allowed origin", "OPTIONS", "https://board.example.com", "POST", http.StatusNoContent, true},
		{"preflight, other origin", "OPTIONS", "https://evil.example.com", "POST", http.StatusTeapot, false},
		{"OPTIONS that is no preflight", "OPTIONS", "https://board.example.com", "", http.StatusTeapot, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/v1/orders", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.preflight != "" {
				r.Header.Set("Access-Control-Request-Method", tc.preflight)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); (got == tc.origin && got != "") != tc.allowed {
				t.Fatalf("Access-Control-Allow-Origin %q, allowed %v", got, tc.allowed)
			}
			if tc.allowed && tc.preflight != "" && !strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Fatalf("preflight allows headers %q", w.Header().Get("Access-Control-Allow-Headers"))
			}
		})
	}
	anyOrigin := CORS([]string{"*"}, inner)
	r := httptest.NewRequest("GET", "/v1/board", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	w := httptest.NewRecorder()
	anyOrigin.ServeHTTP(w, r)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" {
		t.Fatalf("* allows %q", got)
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" https://Board.Example.com/ , http://localhost:3000,")
	if err != nil || strings.Join(got, " ") != "https://board.example.com http://localhost:3000" {
		t.Fatalf("ParseOrigins = %q, %v", got, err)
	}
	if got, err := ParseOrigins(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q, %v", got, err)
	}
	for _, bad := range []string{"board.example.com", "ftp://x", "https://x/path", "https://x?q=1", "https://"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
