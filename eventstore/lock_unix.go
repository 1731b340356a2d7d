//go:build unix

package eventstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockDataDir takes an exclusive lock on the data dir's LockFile for as
// long as the returned file stays open. The kernel releases it when the
// process ends, however it ends, so a killed run leaves no stale lock.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock the data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock the data dir: %w", err)
		}
		holder := "another process"
		if b, err := os.ReadFile(filepath.Join(dir, RunningFile)); err == nil && len(b) > 0 {
			holder = "another process (" + strings.TrimSpace(string(b)) + ")"
		}
		return nil, fmt.Errorf("%w: %s runs a server on %s; stop it first, use another --data-dir, or reach that server over NATS (--nats-url)", ErrDataDirInUse, holder, dir)
	}
	return f, nil
}
