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
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			f, err = os.OpenFile(name, os.O_RDONLY|os.O_CREATE, 0o644)
		}
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			_ = f.Close()
			continue
		}
		claimed = f // held open: the lock lasts as long as the process
		return i, true
	}
	return 0, false
}

// claimed is the file whose lock holds this process's slice.
var claimed *os.File
