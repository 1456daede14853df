package host

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The functions below call the kernel directly with NUL-terminated paths
// prepared once, so reading a /proc file costs three system calls and no
// allocation (os.ReadFile allocates the path, the File and the buffer).

// readFileInto reads the whole file at path (NUL-terminated) into buf[:0],
// growing it when the file does not fit, and returns the filled buffer.
func readFileInto(path []byte, buf []byte) ([]byte, error) {
	fd, err := openat(path)
	if err != nil {
		return buf[:0], pathError("open", path, err)
	}
	defer unix.Close(fd)
	buf = buf[:0]
	if cap(buf) < 4096 {
		buf = make([]byte, 0, 4096)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf[:0], pathError("read", path, err)
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uintptr(99)

func openat(path []byte) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&path[0])),
			uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(fd), nil
	}
}

// fsStat is what statfs(2) tells about a mounted filesystem, in bytes and
// inodes.
type fsStat struct {
	size, free, avail float64
	files, filesFree  float64
}

// statfs calls statfs(2) on path (NUL-terminated).
func statfs(path []byte, st *fsStat) error {
	var s unix.Statfs_t
	for {
		_, _, errno := unix.Syscall(unix.SYS_STATFS, uintptr(unsafe.Pointer(&path[0])), uintptr(unsafe.Pointer(&s)), 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return pathError("statfs", path, errno)
		}
		break
	}
	bs := float64(s.Frsize)
	if bs == 0 {
		bs = float64(s.Bsize)
	}
	*st = fsStat{
		size:      float64(s.Blocks) * bs,
		free:      float64(s.Bfree) * bs,
		avail:     float64(s.Bavail) * bs,
		files:     float64(s.Files),
		filesFree: float64(s.Ffree),
	}
	return nil
}

// countPids counts the numeric entries of the directory at path (a /proc
// mount), reading it with getdents64 into buf, which it grows to 32 KiB.
func countPids(path []byte, buf []byte) (int, []byte, error) {
	if cap(buf) < 32<<10 {
		buf = make([]byte, 32<<10)
	}
	buf = buf[:cap(buf)]
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&path[0])),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return 0, buf, pathError("open", path, errno)
	}
	defer unix.Close(int(fd))
	total := 0
	for {
		n, err := unix.Getdents(int(fd), buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, buf, pathError("getdents", path, err)
		}
		if n <= 0 {
			return total, buf, nil
		}
		k, err := countPidDirents(buf[:n])
		if err != nil {
			return 0, buf, err
		}
		total += k
	}
}

// unameMachine is the hardware name of uname(2), for kernels without
// /proc/sys/kernel/arch.
func unameMachine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func pathError(op string, path []byte, err error) error {
	if len(path) > 0 && path[len(path)-1] == 0 {
		path = path[:len(path)-1]
	}
	return &os.PathError{Op: op, Path: string(path), Err: err}
}

// isNotExist reports whether err means the file is not there.
func isNotExist(err error) bool { return errors.Is(err, unix.ENOENT) }
