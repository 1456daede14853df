package discovery

import (
	"context"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// watchDirs watches dirs with inotify and signals changed (coalesced) when
// a file in one of them is written, created, removed or renamed. It never
// blocks the caller; without inotify (limits reached) it only logs, and
// the refresh interval still re-reads the files. stop ends the watch.
func watchDirs(ctx context.Context, dirs []string, logger *slog.Logger) (changed <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		logger.Warn("cannot watch target files; re-reading them every refresh_interval only", "err", os.NewSyscallError("inotify_init1", err))
		return ch, func() {}
	}
	const mask = unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_MODIFY | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	for _, d := range dirs {
		if _, err := unix.InotifyAddWatch(fd, d, mask); err != nil {
			logger.Warn("cannot watch a target file directory; re-reading it every refresh_interval only", "dir", d, "err", os.NewSyscallError("inotify_add_watch", err))
		}
	}
	// A non-blocking fd makes the File pollable: Close ends the Read below.
	f := os.NewFile(uintptr(fd), "inotify")
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	stopped := false
	return ch, func() {
		if !stopped {
			stopped = true
			f.Close()
			<-done
		}
	}
}
