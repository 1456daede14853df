package host

import (
	"encoding/binary"
	"fmt"
)

// countPidDirents counts the entries of a getdents64 buffer whose names are
// all digits: the processes in a /proc directory listing. Each record is a
// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name
// NUL-terminated, padded to reclen.
func countPidDirents(buf []byte) (int, error) {
	n := 0
	for len(buf) > 0 {
		if len(buf) < 19 {
			return n, fmt.Errorf("parse getdents64: truncated record header (%d bytes)", len(buf))
		}
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < 20 || reclen > len(buf) {
			return n, fmt.Errorf("parse getdents64: record length %d outside 20..%d", reclen, len(buf))
		}
		name := buf[19:reclen]
		digits := 0
		for _, c := range name {
			if c == 0 {
				break
			}
			if c < '0' || c > '9' {
				digits = 0
				break
			}
			digits++
		}
		if digits > 0 {
			n++
		}
		buf = buf[reclen:]
	}
	return n, nil
}
