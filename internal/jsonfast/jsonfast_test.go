package jsonfast

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Numbers are read as encoding/json reads them into uint64 and int, or
// left to it.
func TestNumbers(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"0", "7", "42", "18446744073709551615", "18446744073709551616", "9223372036854775807",
		"9223372036854775808", "01", "-1", "-0", "1.5", "1e3", "", "x"} {
		var u uint64
		r := NewReader([]byte(in))
		if r.Uint(&u) && r.Done() {
			var want uint64
			if err := json.Unmarshal([]byte(in), &want); err != nil || want != u {
				t.Errorf("Uint(%q) = %d, encoding/json %d %v", in, u, want, err)
			}
		}
		var n int
		r = NewReader([]byte(in))
		if r.Int(&n) && r.Done() {
			var want int
			if err := json.Unmarshal([]byte(in), &want); err != nil || want != n {
				t.Errorf("Int(%q) = %d, encoding/json %d %v", in, n, want, err)
			}
		}
	}
}

func TestStrings(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{`"abc"`: true, `""`: true, `"a\"b"`: false, `"ü"`: false, "\"a\tb\"": false, `"abc`: false, `abc"`: false} {
		var s string
		r := NewReader([]byte(in))
		if got := r.Str(&s) && r.Done(); got != ok {
			t.Errorf("Str(%s) = %v, want %v", in, got, ok)
		} else if got && fmt.Sprintf("%q", s) != in {
			t.Errorf("Str(%s) read %q", in, s)
		}
	}
	var ss []string
	r := NewReader([]byte(`["a","b"]`))
	if !r.Strs(&ss, nil) || len(ss) != 2 || ss[1] != "b" {
		t.Fatalf("Strs read %q", ss)
	}
	r = NewReader([]byte(`["a",]`))
	if r.Strs(&ss, nil) {
		t.Fatal("Strs read a trailing comma")
	}
}
