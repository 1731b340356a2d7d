package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

// Every HTTP request body goes through decodeBody into one of these.
func FuzzDecodeBody(f *testing.F) {
	seeds := []string{
		`{"name":"Washing","category":"in_progress"}`,
		`{"name":"Intake","type":"intake","steps":[{"status":"a","trigger":"b"}]}`,
		`{"name":"D","type":"fulfillment","fulfillment_method":"home_delivery","steps":[]}`,
		`{"order_type_id":"wash_fold_delivery","id":"o-1"}`,
		`{"trigger":"picked_up","trigger_id":"t-1","worker":"ana"}`,
		`{"from":0,"to":2}`, `{"workflow_id":"w","step":1,"reason":"r","to_version":2}`,
		`{"steps":[{"status":"x","trigger":"y"}]}`, `{"name":"X","intake":null,"fulfillment":["a"]}`,
		``, `{`, `[]`, `null`, `{"category":"someday"}`, `{} {}`,
		`{"from":0,"to":1,"from":1}`, `{"steps":[{"status":"x","status":"y"}]}`,
		`{"name":"W","type":5}`, `{"category":["draft"]}`, `{"steps":[{"status":true}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return &statusBody{} }, func() any { return &statusPatch{} },
		func() any { return &triggerBody{} }, func() any { return &triggerPatch{} },
		func() any { return &workflowBody{} }, func() any { return &workflowPatch{} },
		func() any { return &stepsBody{} }, func() any { return &stepBody{} }, func() any { return &moveBody{} },
		func() any { return &orderTypeBody{} }, func() any { return &orderTypePatch{} },
		func() any { return &placeBody{} }, func() any { return &triggerRequest{} }, func() any { return &moveOrderBody{} }, func() any { return &migrateOrderBody{} },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range targets {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			err := (&API{}).decodeBody(httptest.NewRecorder(), r, mk())
			if err == nil {
				continue
			}
			if !errors.Is(err, errBadRequest) && !errors.Is(err, errTooLarge) && !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("unclassified error %v for %q", err, body)
			}
			if p := problemFor(err); p.Status != 400 && p.Status != 413 {
				t.Fatalf("error %v maps to %d", err, p.Status)
			}
			// In JSON's words, about the value that is wrong: never a Go
			// type, and an object is never told it is something else.
			msg := err.Error()
			if namesGoTypes(msg) {
				t.Fatalf("error %q for %q names Go's types", msg, body)
			}
			if trimmed := bytes.TrimSpace(body); json.Valid(body) && len(trimmed) > 0 && trimmed[0] == '{' && strings.Contains(msg, "the body is a JSON") {
				t.Fatalf("error %q for the object %q", msg, body)
			}
		}
	})
}

func FuzzMeta(f *testing.F) {
	f.Add("ana", "req-1", `"3"`)
	f.Add("", "", "*")
	f.Add("x", "y", `W/"18446744073709551616"`)
	f.Fuzz(func(t *testing.T, actor, reqID, ifMatch string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["X-Orderflow-Actor"] = []string{actor}
		r.Header["X-Request-Id"] = []string{reqID}
		r.Header["If-Match"] = []string{ifMatch}
		// Whatever is wrong with the headers is the caller's mistake: 400,
		// whether the HTTP layer (errBadRequest) or a domain rule (an
		// actor id that is not UTF-8, say) found it.
		if _, err := meta(r); err != nil && problemFor(err).Status != http.StatusBadRequest {
			t.Fatalf("%v answers %d, want 400", err, problemFor(err).Status)
		}
	})
}

// goTypeWords are how encoding/json names Go types ("cannot unmarshal
// number into Go struct field statusBody.name of type string").
var goTypeWords = regexp.MustCompile(`into Go |\b(handlers|domain|main)\.[A-Za-z]`)

// namesGoTypes reports whether an error message names Go types, leaving
// out what it quotes of the input (an unknown field "into Go x", say).
func namesGoTypes(msg string) bool {
	return goTypeWords.MatchString(quoted.ReplaceAllString(msg, `""`))
}

// quoted matches a Go-quoted string in a message.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
