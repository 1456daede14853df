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
	return readFileAt(atFDCWD, path, buf, false)
}

// readFileAt is readFileInto for a path relative to the directory dirfd
// (see openDir): the kernel resolves the directory once, not per file.
// With sysfsAttr, a read that does not fill the buffer ends the file: a
// sysfs attribute hands over all its bytes (at most a page) in one read,
// which saves the read that would return 0.
func readFileAt(dirfd uintptr, path []byte, buf []byte, sysfsAttr bool) ([]byte, error) {
	fd, err := openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC)
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
		if sysfsAttr && len(buf) < cap(buf) {
			return buf, nil
		}
	}
}

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uintptr(99)

// openDir opens the directory at path (NUL-terminated) for readFileAt;
// close it with closeDir.
func openDir(path []byte) (uintptr, error) {
	fd, err := openat(atFDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return 0, pathError("open", path, err)
	}
	return uintptr(fd), nil
}

func closeDir(fd uintptr) { unix.Close(int(fd)) }

func openat(dirfd uintptr, path []byte, flags int) (int, error) {
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, dirfd, uintptr(unsafe.Pointer(&path[0])),
			uintptr(flags), 0, 0, 0)
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
	// node_exporter multiplies by f_bsize (equal to f_frsize on Linux's
	// common filesystems); so does this, for identical numbers.
	bs := float64(s.Bsize)
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
	total := 0
	var perr error
	buf, err := readDir(path, buf, func(records []byte) {
		n, err := countPidDirents(records)
		total += n
		if perr == nil {
			perr = err
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return 0, buf, err
	}
	return total, buf, nil
}

// readDir lists the directory at path (NUL-terminated) with getdents64 into
// buf, which it grows to 32 KiB, and calls fn with each filled chunk of
// records (see forEachDirent).
func readDir(path []byte, buf []byte, fn func(records []byte)) ([]byte, error) {
	if cap(buf) < 32<<10 {
		buf = make([]byte, 32<<10)
	}
	buf = buf[:cap(buf)]
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&path[0])),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return buf, pathError("open", path, errno)
	}
	defer unix.Close(int(fd))
	for {
		n, err := unix.Getdents(int(fd), buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, pathError("getdents", path, err)
		}
		if n <= 0 {
			return buf, nil
		}
		fn(buf[:n])
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

// ignorableSysfsErr reports whether reading a sysfs attribute failed only
// because the device does not have or cannot report it (node_exporter's
// procfs skips these the same way): missing, not permitted, not supported,
// or EINVAL (the speed of a link that is down).
func ignorableSysfsErr(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV)
}

// isNotSupported reports whether err is EOPNOTSUPP (a kernel interface
// compiled in but switched off, such as PSI with psi=0).
func isNotSupported(err error) bool { return errors.Is(err, unix.EOPNOTSUPP) }

// adjtimex queries the kernel clock (adjtimex(2) with modes 0).
func adjtimex(t *timexValues) error {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return os.NewSyscallError("adjtimex", err)
	}
	*t = timexValues{
		state: state, offset: int64(tx.Offset), freq: int64(tx.Freq), maxerror: int64(tx.Maxerror),
		esterror: int64(tx.Esterror), status: int64(tx.Status), constant: int64(tx.Constant), tick: int64(tx.Tick),
		ppsfreq: int64(tx.Ppsfreq), jitter: int64(tx.Jitter), shift: int64(tx.Shift), stabil: int64(tx.Stabil),
		jitcnt: int64(tx.Jitcnt), calcnt: int64(tx.Calcnt), errcnt: int64(tx.Errcnt), stbcnt: int64(tx.Stbcnt), tai: int64(tx.Tai),
	}
	return nil
}

// isPermission reports whether err is EPERM or EACCES.
func isPermission(err error) bool { return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) }
