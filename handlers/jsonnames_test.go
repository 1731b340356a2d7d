package handlers

import (
	"reflect"
	"testing"
)

func TestCaseOnlyName(t *testing.T) {
	type inner struct {
		Status string `json:"status"`
	}
	type embedded struct {
		Note string `json:"note"`
	}
	type body struct {
		embedded
		Trigger string            `json:"trigger"`
		Steps   []inner           `json:"steps"`
		One     *inner            `json:"one"`
		Grid    [][]inner         `json:"grid"`
		Labels  map[string]string `json:"labels"`
		Skipped string            `json:"-"`
	}
	for _, tc := range []struct {
		json      string
		got, want string
	}{
		{`{"trigger":"a","steps":[{"status":"x"}],"one":{"status":"y"},"note":"n"}`, "", ""},
		{`{"Trigger":"a"}`, "Trigger", "trigger"},
		{`{"TRIGGER":"a"}`, "TRIGGER", "trigger"},
		{`{"steps":[{"status":"x"},{"Status":"y"}]}`, "Status", "status"},
		{`{"one":{"STATUS":"y"}}`, "STATUS", "status"},
		{`{"grid":[[{"status":"a"}],[{"sTatus":"b"}]]}`, "sTatus", "status"},
		{`{"Note":"n"}`, "Note", "note"},                    // an embedded struct's field
		{`{"labels":{"Trigger":"x","STATUS":"y"}}`, "", ""}, // a map's keys are its own
		{`{"skipped":"x","nope":1}`, "", ""},                // unknown names are the decoder's to refuse
		{`{"trigger":{"Status":"x"}}`, "", ""},              // a string field given an object: the decoder's
		{`[{"Trigger":"a"}]`, "", ""},                       // not the object the type is: the decoder's
		{`{"Trigger":`, "Trigger", "trigger"},               // found before the text ends
		{`{"trigger":"a",`, "", ""},
	} {
		got, want, found := caseOnlyName([]byte(tc.json), reflect.TypeFor[*body]())
		if got != tc.got || want != tc.want || found != (tc.got != "") {
			t.Errorf("%s: %q %q %v, want %q %q", tc.json, got, want, found, tc.got, tc.want)
		}
	}
	// A value whose type decodes itself is not looked into.
	type outer struct {
		Self selfDecoding `json:"self"`
	}
	if got, _, found := caseOnlyName([]byte(`{"self":{"Status":"x"}}`), reflect.TypeFor[outer]()); found {
		t.Errorf("found %q inside a type that decodes itself", got)
	}
}

type selfDecoding struct {
	Status string `json:"status"`
}

func (s *selfDecoding) UnmarshalJSON([]byte) error { return nil }
