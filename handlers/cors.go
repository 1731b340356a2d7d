package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
)

// CORS lets web pages of the given origins (scheme://host[:port], or "*"
// for any) call the API from a browser: it answers preflight requests
// itself, before any key is asked for, and marks the answers of requests
// from those origins as readable by them. Requests from other origins get
// no CORS headers, so browsers keep their answers from the page. With no
// origins it is h itself.
func CORS(origins []string, h http.Handler) http.Handler {
	if len(origins) == 0 {
		return h
	}
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !(anyOrigin || slices.Contains(origins, origin)) {
			h.ServeHTTP(w, r)
			return
		}
		hd := w.Header()
		hd.Add("Vary", "Origin")
		hd.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			hd.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, If-Match, Last-Event-ID, X-Orderflow-Actor, X-Request-ID")
			hd.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		hd.Set("Access-Control-Expose-Headers", "ETag, Location, Idempotent-Replayed, X-Orderflow-Sequence, X-Request-ID, WWW-Authenticate, Retry-After")
		h.ServeHTTP(w, r)
	})
}

// NoSniff marks every answer of h with X-Content-Type-Options: nosniff,
// so that browsers take it for the media type it names and never for
// HTML or script: names and reasons in the answers are users' text.
func NoSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// RequestID gives every request an X-Request-ID and its answer the same:
// the caller's, when it is one a command takes (one value, at most 128
// bytes, no control characters; another is not echoed, and a command
// refuses it with 400), or a new UUID. A command records it as its
// events' correlation id (a trigger, its trigger id), so a caller can
// find what its request did, and the log line of a request that failed
// names it.
func RequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch ids := r.Header.Values("X-Request-ID"); {
		case len(ids) == 0:
			id := uuid.NewString()
			w.Header().Set("X-Request-ID", id)
			r = r.WithContext(context.WithValue(r.Context(), requestIDCtx{}, id)) // for meta: a handler leaves the request's headers as they came
		case len(ids) == 1 && domain.CheckActorID("X-Request-ID", ids[0]) == nil:
			w.Header().Set("X-Request-ID", ids[0])
		}
		h.ServeHTTP(w, r)
	})
}

// requestIDCtx holds the X-Request-ID RequestID made for a request that
// sent none.
type requestIDCtx struct{}

// ParseOrigins reads a comma-separated list of origins for CORS:
// "https://board.example.com,http://localhost:3000", or "*".
func ParseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return nil, fmt.Errorf("origin %q: want scheme://host[:port], such as https://board.example.com, or *", o)
			}
			o = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		out = append(out, o)
	}
	return out, nil
}
