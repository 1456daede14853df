package host

import "bytes"

// schedCPU is one cpu line of /proc/schedstat: time running and waiting
// (nanoseconds) and timeslices run.
type schedCPU struct {
	cpu              string
	running, waiting uint64
	timeslices       uint64
}

// parseSchedstat parses the cpu<N> lines of /proc/schedstat ("cpu0" and
// nine numbers, of which the 7th to 9th are used) into dst[:0], as
// prometheus/procfs does: lines that do not have that shape are skipped.
func parseSchedstat(data []byte, dst []schedCPU, in *interner) []schedCPU {
	dst = dst[:0]
	var arr [12][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) < 10 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			continue
		}
		if _, ok := parseUint(f[0][3:]); !ok {
			continue
		}
		var v [9]uint64
		ok := true
		for i := range v {
			v[i], ok = parseUint(f[i+1])
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		dst = append(dst, schedCPU{cpu: in.get(f[0][3:]), running: v[6], waiting: v[7], timeslices: v[8]})
	}
	return dst
}

// collectSchedstat reports node_schedstat_* per cpu, as node_exporter's
// schedstat collector does. Kernels without CONFIG_SCHEDSTATS have no
// /proc/schedstat: no data.
func (c *Collector) collectSchedstat() error {
	data, err := c.readOptional(c.path("/proc/schedstat"))
	if err != nil {
		return err
	}
	c.sched = parseSchedstat(data, c.sched, &c.names)
	for _, s := range c.sched {
		cpu := l("cpu", s.cpu)
		c.add("node_schedstat_running_seconds_total", float64(s.running)/1e9, cpu)
		c.add("node_schedstat_waiting_seconds_total", float64(s.waiting)/1e9, cpu)
		c.add("node_schedstat_timeslices_total", float64(s.timeslices), cpu)
	}
	return nil
}
