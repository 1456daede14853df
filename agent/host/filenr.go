package host

import "fmt"

// fileNr is /proc/sys/fs/file-nr: allocated, unused (always 0 since 2.6),
// maximum file handles.
type fileNr struct {
	allocated, maximum uint64
}

func parseFileNr(data []byte, fn *fileNr) error {
	line, _ := nextLine(data)
	var arr [4][]byte
	f := fields(line, arr[:0])
	if len(f) != 3 {
		return fmt.Errorf("parse /proc/sys/fs/file-nr %q: want 3 fields, got %d", line, len(f))
	}
	a, ok1 := parseUint(f[0])
	m, ok2 := parseUint(f[2])
	if !ok1 || !ok2 {
		return fmt.Errorf("parse /proc/sys/fs/file-nr %q: bad number", line)
	}
	fn.allocated, fn.maximum = a, m
	return nil
}

func (c *Collector) emitFileNr(fn *fileNr) {
	c.add("node_filefd_allocated", float64(fn.allocated))
	c.add("node_filefd_maximum", float64(fn.maximum))
}
