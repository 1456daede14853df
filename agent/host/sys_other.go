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

func readFileAt(dirfd uintptr, path []byte, buf []byte, sysfsAttr bool) ([]byte, error) {
	return buf[:0], errNotLinux
}

func openDir(path []byte) (uintptr, error) { return 0, errNotLinux }

func closeDir(fd uintptr) {}

type fsStat struct {
	size, free, avail float64
	files, filesFree  float64
}

func statfs(path []byte, st *fsStat) error { return errNotLinux }

func countPids(path []byte, buf []byte) (int, []byte, error) { return 0, buf, errNotLinux }

func readDir(path []byte, buf []byte, fn func(records []byte)) ([]byte, error) {
	return buf, errNotLinux
}

func unameMachine() string { return "" }

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

func ignorableSysfsErr(err error) bool { return true }

func isNotSupported(err error) bool { return false }

func adjtimex(t *timexValues) error { return errNotLinux }

func isPermission(err error) bool { return errors.Is(err, os.ErrPermission) }
