package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCheckJSONText(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		refused    string // "" when taken
	}{
		{"plain", `{"worker":"ana"}`, ""},
		{"UTF-8", `{"worker":"Zoë 洗濯 😀"}`, ""},
		{"escapes", `{"worker":"a\"b\\c\/d\n\t\u00e9\u6d17"}`, ""},
		{"a surrogate pair", `{"worker":"\ud83d\ude00"}`, ""},
		{"a surrogate pair in upper case hex", `{"worker":"\uD83D\uDE00"}`, ""},
		{"U+FFFD sent as such", `{"worker":"\ufffd �"}`, ""},
		{"an escaped backslash before u", `{"worker":"\\ud800"}`, ""},
		{"a surrogate escape in a name", `{"\ud800":1}`, "surrogate"},
		{"a lone high surrogate", `{"worker":"\ud800"}`, "half of a UTF-16 surrogate pair"},
		{"a lone high surrogate at the end", `"\ud800"`, "surrogate"},
		{"a high surrogate then a letter", `{"worker":"\ud800x"}`, "surrogate"},
		{"two high surrogates", `{"worker":"\ud800\ud800"}`, "surrogate"},
		{"a lone low surrogate", `{"worker":"\udc00"}`, "surrogate"},
		{"a high surrogate then another escape", `{"worker":"\ud800\n"}`, "surrogate"},
		{"a byte that is not UTF-8", "{\"worker\":\"caf\xe9\"}", "not valid UTF-8 (byte 14)"},
		{"a truncated sequence", "{\"worker\":\"\xe6\xb4\"}", "not valid UTF-8"},
		{"an encoded surrogate", "{\"worker\":\"\xed\xa0\x80\"}", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.json)) {
				t.Fatalf("%s is not valid JSON", tc.json)
			}
			err := checkJSONText([]byte(tc.json))
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want an error with %q", err, tc.refused)
			}
		})
	}
}

// checkJSONText refuses a valid JSON text exactly when encoding/json would
// read one of its strings altered: with more U+FFFD than were sent.
func FuzzCheckJSONText(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `"\ud83d\ude00"`, `"\ud800"`, `"\\ud800"`, `["\udc00\ud800"]`, "\"\xff\"", `{"\ufffd":"\uFFFD"}`, `"\ud800\udbff\udc00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		altered := decodedReplacements(t, b) > sentReplacements(b)
		if err := checkJSONText(b); (err != nil) != altered {
			t.Fatalf("%q: checkJSONText says %v, but encoding/json alters it: %v", b, err, altered)
		}
	})
}

// decodedReplacements counts U+FFFD in every string (names too) as
// encoding/json reads them.
func decodedReplacements(t *testing.T, b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // a number too large for a float64 is still valid JSON
	n := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if s, ok := tok.(string); ok {
			n += strings.Count(s, "\ufffd")
		}
	}
}

// sentReplacements counts the U+FFFD a valid JSON text sends: as UTF-8,
// or as the escape \ufffd (backslashes appear only in strings).
func sentReplacements(b []byte) int {
	n := bytes.Count(b, []byte("\ufffd"))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] == 'u' && strings.EqualFold(string(b[i+2:i+6]), "fffd") {
			n++
		}
		i++ // the escaped character
	}
	return n
}
