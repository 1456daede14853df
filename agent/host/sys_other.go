//go:build !linux

package host

import (
	"errors"
	"os"
)

// Host metrics come from Linux's /proc and /sys; elsewhere every reader
// fails with errNotLinux, so the package still builds for development.

var errNotLinux = errors.New("host metrics need Linux /proc and /sys")

func readFileInto(path []byte, buf []byte) ([]byte, error) { return buf[:0], errNotLinux }

type fsStat struct {
	size, free, avail float64
	files, filesFree  float64
}

func statfs(path []byte, st *fsStat) error { return errNotLinux }

func countPids(path []byte, buf []byte) (int, []byte, error) { return 0, buf, errNotLinux }

func unameMachine() string { return "" }

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
