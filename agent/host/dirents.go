package host

import (
	"encoding/binary"
	"fmt"
)

// forEachDirent calls fn for every record of a getdents64 buffer with the
// entry's name (valid only during the call) and its d_type. Each record is
// a struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name
// NUL-terminated, padded to reclen.
func forEachDirent(buf []byte, fn func(name []byte, typ byte)) error {
	for len(buf) > 0 {
		if len(buf) < 19 {
			return fmt.Errorf("parse getdents64: truncated record header (%d bytes)", len(buf))
		}
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < 20 || reclen > len(buf) {
			return fmt.Errorf("parse getdents64: record length %d outside 20..%d", reclen, len(buf))
		}
		name := buf[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		fn(name, buf[18])
		buf = buf[reclen:]
	}
	return nil
}

// countPidDirents counts the entries of a getdents64 buffer whose names are
// all digits: the processes in a /proc directory listing.
func countPidDirents(buf []byte) (int, error) {
	n := 0
	err := forEachDirent(buf, func(name []byte, _ byte) {
		if _, ok := parseUint(name); ok {
			n++
		}
	})
	return n, err
}

// d_type values of getdents64 that the collectors tell apart.
const (
	dtUnknown = 0
	dtDir     = 4
	dtReg     = 8
	dtLnk     = 10
)
