//go:build !unix

package eventstore

import "os"

// lockDataDir locks nothing where flock(2) is missing: there, running two
// servers on one data dir is the operator's to avoid.
func lockDataDir(string) (*os.File, error) { return nil, nil }
