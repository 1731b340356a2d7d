//go:build !unix

package eventstoretest

// claimSlice claims nothing where flock(2) is missing: portSlice then
// picks a slice by process id.
func claimSlice(int) (int, bool) { return 0, false }
