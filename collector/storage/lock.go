package storage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked is returned by Open when another process holds the data
// directory's lock: another collector runs on the same -data.
var ErrLocked = errors.New("data directory in use")

// checkLock tells whether another process holds the TSDB's lock file
// (<dir>/lock, flock'ed by tsdb.Open) before tsdb.Open tries: tsdb would
// first log that a lock file "from a previous execution" was replaced and
// then fail with "resource temporarily unavailable", which sends the reader
// the wrong way. The probe lock is released at once; tsdb.Open takes its
// own.
func checkLock(dir string) error {
	path := filepath.Join(dir, "lock")
	f, err := os.Open(path)
	if err != nil {
		return nil // no lock file: nobody holds it (tsdb creates it)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return nil // cannot tell; let tsdb.Open decide
	}
	holder := ""
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if pid := lockHolder(st.Ino); pid > 0 {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
	}
	return fmt.Errorf("%w: another collector uses -data=%s%s: stop it or pick another -data", ErrLocked, dir, holder)
}

// lockHolder finds the pid holding a flock on the file with inode ino in
// /proc/locks (Linux); 0 when it cannot tell.
func lockHolder(ino uint64) int {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid := parseLockLine(sc.Text(), ino); pid > 0 {
			return pid
		}
	}
	return 0
}

// parseLockLine returns the pid of a /proc/locks line such as
// "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF" when it is a flock on
// inode ino, else 0.
func parseLockLine(line string, ino uint64) int {
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[1] != "FLOCK" {
		return 0
	}
	dev := strings.Split(fields[5], ":")
	if len(dev) != 3 {
		return 0
	}
	if n, err := strconv.ParseUint(dev[2], 10, 64); err != nil || n != ino {
		return 0
	}
	pid, err := strconv.Atoi(fields[4])
	if err != nil {
		return 0
	}
	return pid
}
