//go:build !linux

package spool

import (
	"os"
	"path/filepath"
)

// lockDir only creates the lock file: the agent runs on Linux, where the
// directory is flocked.
func lockDir(dir, _ string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
}

func syncDir(dir string) error { return nil }
