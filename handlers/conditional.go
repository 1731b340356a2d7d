package handlers

import (
	"net/http"
	"strings"
)

// conditionalReads are the reads whose ETag (the version of what they
// answer) changes whenever their answer does: the libraries, and an
// order type. A workflow's answer shows the names of its steps' statuses
// and triggers, and an order's the names of its position, which the
// libraries change without a new version of the workflow or the order:
// their ETags are versions for If-Match, not validators of the answer,
// and a 304 there could hide a renamed status.
var conditionalReads = map[string]bool{
	"GET /v1/statuses":         true,
	"GET /v1/statuses/{key}":   true,
	"GET /v1/triggers":         true,
	"GET /v1/triggers/{key}":   true,
	"GET /v1/order-types/{id}": true,
}

// conditional answers a GET with 304 Not Modified, and no body, when the
// ETag its route sets matches the request's If-None-Match: an editor that
// keeps the libraries learns that they are unchanged without reading them
// again. RFC 9110 13.1.2: a list of entity tags, compared weakly, or "*"
// for any.
//
// The answer varies with Authorization: with API keys, another key may be
// another tenant's, whose library can be at the same version, so a
// browser's cache must not answer one with the other's.
func conditional(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Authorization")
		tags := r.Header.Values("If-None-Match")
		if len(tags) == 0 {
			h(w, r)
			return
		}
		h(&conditionalWriter{ResponseWriter: w, tags: tags}, r)
	}
}

// conditionalWriter turns a 200 whose ETag matches one of tags into a 304
// without a body.
type conditionalWriter struct {
	http.ResponseWriter
	tags        []string
	wrote       bool
	notModified bool
}

func (w *conditionalWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if code == http.StatusOK && etagMatches(w.tags, w.Header().Get("ETag")) {
			w.notModified = true
			w.Header().Del("Content-Type")
			w.Header().Del("Content-Length")
			code = http.StatusNotModified
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *conditionalWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.notModified {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *conditionalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// etagMatches reports whether etag (as a response carries it) is among
// the If-None-Match header values, compared weakly (W/ aside).
func etagMatches(values []string, etag string) bool {
	if etag == "" {
		return false
	}
	etag = strings.TrimPrefix(etag, "W/")
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}
