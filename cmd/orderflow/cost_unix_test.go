//go:build unix

package main

import (
	"runtime"
	"syscall"
	"time"
)

// processCost is the process's CPU time so far and its allocation count.
func processCost() (time.Duration, uint64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ms.Mallocs
}
