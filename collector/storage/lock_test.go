package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseLockLine(t *testing.T) {
	f := func(line string, ino uint64, want int) {
		t.Helper()
		if got := parseLockLine(line, ino); got != want {
			t.Fatalf("parseLockLine(%q, %d) = %d; want %d", line, ino, got, want)
		}
	}
	f("1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF", 1234, 4242)
	f("1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF", 1235, 0)
	f("2: POSIX  ADVISORY  WRITE 77 00:2e:1234 0 EOF", 1234, 0)
	f("3: FLOCK  ADVISORY  WRITE -1 00:2e:1234 0 EOF", 1234, -1) // pid -1 is not > 0 for the caller
	f("garbage", 1, 0)
	f("4: FLOCK  ADVISORY  WRITE x 00:2e:1234 0 EOF", 1234, 0)
}

// TestOpenLockedDir holds the lock file as a running collector does and
// checks that Open fails with the real reason, naming -data and this pid,
// and that tsdb's misleading "lockfile ... was replaced" is not logged.
func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	lock, err := os.Create(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	_, err = Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a locked dir: got %v; want ErrLocked", err)
	}
	want := fmt.Sprintf("another collector uses -data=%s (pid %d): stop it or pick another -data", dir, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("got %q; want it to contain %q", err, want)
	}
	if strings.Contains(logs.String(), "replaced") {
		t.Fatalf("logs carry tsdb's misleading lockfile line:\n%s", logs.String())
	}

	// Released: Open works, and a second Open of the same dir while the
	// first runs gets the same clear error.
	_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	logs.Reset()
	s, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open after the lock was released: %v", err)
	}
	// At info level the TSDB's routine start-up lines stay out of the log.
	if strings.Contains(logs.String(), "Replaying WAL") || !strings.Contains(logs.String(), "storage opened") {
		t.Fatalf("info-level log of Open: got\n%s\nwant \"storage opened\" and no TSDB replay lines", logs.String())
	}
	defer s.Close()
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of a dir in use: got %v; want ErrLocked", err)
	}
}
