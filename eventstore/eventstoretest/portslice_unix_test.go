//go:build unix

package eventstoretest

import (
	"runtime"
	"testing"
)

// A claimed slice stays held for as long as the process runs, garbage
// collections included: a later claim takes the next slice, and claims
// stop when every slice is held.
func TestClaimSliceHoldsItsSlice(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // lock files of this test's own
	for want := range 3 {
		runtime.GC() // a lock that went with a collected file would free slice 0 again
		runtime.GC()
		if got, ok := claimSlice(3); !ok || got != want {
			t.Fatalf("claim %d took slice %d (claimed %v), want %d", want+1, got, ok, want)
		}
	}
	if got, ok := claimSlice(3); ok {
		t.Fatalf("a fourth claim took slice %d of 3 held", got)
	}
}
