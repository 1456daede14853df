package host

import (
	"bytes"
	"fmt"
)

// loadavg is /proc/loadavg: "0.77 0.88 0.39 1/88 9665".
type loadavg struct {
	load1, load5, load15 float64
	// threads is the number of kernel scheduling entities (threads of all
	// processes, kernel threads included): the denominator of field 4.
	threads uint64
}

func parseLoadavg(data []byte, la *loadavg) error {
	line, _ := nextLine(data)
	var arr [5][]byte
	f := fields(line, arr[:0])
	if len(f) < 4 {
		return fmt.Errorf("parse /proc/loadavg %q: want at least 4 fields, got %d", line, len(f))
	}
	var ok1, ok5, ok15 bool
	la.load1, ok1 = parseFloat(f[0])
	la.load5, ok5 = parseFloat(f[1])
	la.load15, ok15 = parseFloat(f[2])
	if !ok1 || !ok5 || !ok15 {
		return fmt.Errorf("parse /proc/loadavg %q: bad load average", line)
	}
	i := bytes.IndexByte(f[3], '/')
	if i < 0 {
		return fmt.Errorf("parse /proc/loadavg %q: want running/total in field 4", line)
	}
	n, ok := parseUint(f[3][i+1:])
	if !ok {
		return fmt.Errorf("parse /proc/loadavg %q: bad thread count", line)
	}
	la.threads = n
	return nil
}

func (c *Collector) emitLoadavg(la *loadavg) {
	c.add("node_load1", la.load1)
	c.add("node_load5", la.load5)
	c.add("node_load15", la.load15)
}
