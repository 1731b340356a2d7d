package main

import (
	"bytes"
	"regexp"
	"testing"
)

// A definitions document that apply cannot read is refused in JSON's
// words: never a Go type (main.process, processWorkflow), whatever the
// document holds.
func FuzzParseProcess(f *testing.F) {
	for _, s := range []string{
		`{"statuses":[{"key":"washing","name":"Washing","category":"in_progress"}],"triggers":[{"key":"wash_done","name":"Wash done"}],` +
			`"workflows":[{"id":"p","name":"P","type":"production","steps":[{"status":"washing","trigger":"wash_done"}]}],` +
			`"order_types":[{"name":"T","production":"p","fulfillment":[]}]}`,
		`{"workflows":[{"name":5}]}`, `{"statuses":"x"}`, `[1]`, `{"order_types":[{"fulfillment":"x"}]}`,
		`{"workflows":[{"type":"fulfillment","fulfillment_method":true}]}`, `{"statuses":[{"category":{}}]}`,
		`{"workflows":[{"steps":[{"status":[]}]}]}`, `{} {}`, `{"x":1}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseProcess(b)
		if err == nil {
			return
		}
		if namesGoTypes(err.Error()) {
			t.Fatalf("%q: error %q names Go's types", b, err)
		}
	})
}

// An export that import cannot read is refused in JSON's words too.
func FuzzCheckExport(f *testing.F) {
	for _, s := range []string{
		`{"stream":"ORDERFLOW_DEFINITIONS","seq":1,"subject":"a","headers":{"Nats-Msg-Id":["x"]},"envelope":{}}` + "\n",
		`{"stream":"ORDERFLOW_TRIGGERS","seq":1,"subject":"a","data":"e30="}`,
		`{"seq":"1"}`, `{"headers":{"a":"b"}}`, `{"data":"***"}`, `{"data":5}`, `[]`, `{"stream":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkExport(bytes.NewReader(b))
		if err == nil {
			return
		}
		if namesGoTypes(err.Error()) {
			t.Fatalf("%q: error %q names Go's types", b, err)
		}
	})
}

// namesGoTypes reports whether an error message names Go types as
// encoding/json does ("into Go struct field processWorkflow.name of type
// string", "main.process"), leaving out what it quotes of the input.
func namesGoTypes(msg string) bool {
	return goTypeWords.MatchString(quotedInput.ReplaceAllString(msg, `""`))
}

var (
	goTypeWords = regexp.MustCompile(`into Go |\b(handlers|domain|main)\.[A-Za-z]|\bprocess[A-Z]|exportLine`)
	quotedInput = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)
