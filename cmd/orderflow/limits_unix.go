//go:build unix

package main

import "syscall"

// openFileLimit is how many files (sockets included) the process may have
// open at once (RLIMIT_NOFILE; Go raises the soft limit to the hard one at
// start), and false when there is no limit or it cannot be read.
func openFileLimit() (uint64, bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, false
	}
	n := uint64(l.Cur) // int64 on some systems, where -1 (no limit) becomes huge
	return n, n < 1<<40
}
