//go:build unix

package eventstoretest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// claimSlice takes the first of n slices that no other process holds,
// by an exclusive lock on a file of the system's temp dir for each,
// kept for as long as this process runs (the kernel lets it go however
// the process ends). It reports false when every slice is held.
func claimSlice(n int) (int, bool) {
	for i := range n {
		name := filepath.Join(os.TempDir(), fmt.Sprintf("orderflow-test-ports-%d.lock", i))
		// Read only, and created only when missing: another user's file
		// locks as well (Linux refuses O_CREAT on it in a sticky /tmp).
		// A bare descriptor, not an *os.File, whose cleanup would close
		// it, and the lock with it, once the file was collected.
		fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			fd, err = syscall.Open(name, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o644)
		}
		if err != nil {
			continue
		}
		if syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			_ = syscall.Close(fd)
			continue
		}
		return i, true // fd stays open: the lock lasts as long as the process
	}
	return 0, false
}
