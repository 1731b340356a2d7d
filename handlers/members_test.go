package handlers

import (
	"reflect"
	"testing"
)

func TestParseLanes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"3", []int{3}},
		{"0,2,10", []int{0, 2, 10}},
		{"1,,x,-2,4 ,5", []int{1, 5}},
	} {
		if got := parseLanes(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseLanes(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
