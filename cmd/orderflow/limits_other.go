//go:build !unix

package main

// openFileLimit: no limit is known on this system.
func openFileLimit() (uint64, bool) { return 0, false }
