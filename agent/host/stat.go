package host

import (
	"bytes"
	"fmt"
)

// userHZ is the unit of the cpu times in /proc/stat: the kernel reports
// them in USER_HZ, which is 100 on every architecture Linux runs on.
const userHZ = 100

// cpuTimes is one per-core line of /proc/stat, in USER_HZ ticks.
type cpuTimes struct {
	cpu string // "0", "1", ...
	// user nice system idle iowait irq softirq steal guest guest_nice
	v [10]uint64
}

// cpuModes are the node_cpu_seconds_total mode labels of cpuTimes.v[0:8].
var cpuModes = [8]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

// statInfo is what Telltale uses of /proc/stat.
type statInfo struct {
	cpus                    []cpuTimes
	intr, ctxt, btime       uint64
	forks, running, blocked uint64
	// has records which of the scalar lines were present (older kernels
	// and some sandboxes omit procs_*).
	hasIntr, hasCtxt, hasBtime, hasForks, hasRunning, hasBlocked bool
}

// parseStat parses /proc/stat into st, reusing its slices. cpu names are
// interned in in.
func parseStat(data []byte, st *statInfo, in *interner) error {
	cpus := st.cpus[:0]
	*st = statInfo{}
	var arr [12][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) < 2 {
			continue
		}
		key := f[0]
		switch {
		case len(key) > 3 && bytes.HasPrefix(key, []byte("cpu")):
			// cpuN; the aggregate "cpu" line is skipped: dashboards sum the cores.
			if len(f) < 5 {
				return fmt.Errorf("parse /proc/stat line %q: want at least 4 cpu times, got %d", line, len(f)-1)
			}
			if _, ok := parseUint(key[3:]); !ok {
				return fmt.Errorf("parse /proc/stat line %q: bad cpu number", line)
			}
			var ct cpuTimes
			ct.cpu = in.get(key[3:])
			for i, b := range f[1:min(len(f), 11)] {
				v, ok := parseUint(b)
				if !ok {
					return fmt.Errorf("parse /proc/stat line %q: bad cpu time %q", line, b)
				}
				ct.v[i] = v
			}
			cpus = append(cpus, ct)
		case string(key) == "intr":
			v, ok := parseUint(f[1])
			if !ok {
				return fmt.Errorf("parse /proc/stat line intr: bad total %q", f[1])
			}
			st.intr, st.hasIntr = v, true
		default:
			p, has := statScalar(st, key)
			if p == nil {
				continue
			}
			v, ok := parseUint(f[1])
			if !ok {
				return fmt.Errorf("parse /proc/stat line %q: bad value", line)
			}
			*p, *has = v, true
		}
	}
	st.cpus = cpus
	return nil
}

// statScalar returns where the value of a scalar /proc/stat line goes, or
// nil for lines Telltale does not use.
func statScalar(st *statInfo, key []byte) (*uint64, *bool) {
	switch string(key) {
	case "ctxt":
		return &st.ctxt, &st.hasCtxt
	case "btime":
		return &st.btime, &st.hasBtime
	case "processes":
		return &st.forks, &st.hasForks
	case "procs_running":
		return &st.running, &st.hasRunning
	case "procs_blocked":
		return &st.blocked, &st.hasBlocked
	}
	return nil, nil
}

// emitCPU appends the per-cpu series of /proc/stat (node_exporter's cpu
// collector).
func (c *Collector) emitCPU(st *statInfo) {
	for i := range st.cpus {
		ct := &st.cpus[i]
		for m, mode := range cpuModes {
			c.add("node_cpu_seconds_total", float64(ct.v[m])/userHZ, l("cpu", ct.cpu), l("mode", mode))
		}
		c.add("node_cpu_guest_seconds_total", float64(ct.v[8])/userHZ, l("cpu", ct.cpu), l("mode", "user"))
		c.add("node_cpu_guest_seconds_total", float64(ct.v[9])/userHZ, l("cpu", ct.cpu), l("mode", "nice"))
	}
}

// emitStat appends the other series of /proc/stat (node_exporter's stat
// collector).
func (c *Collector) emitStat(st *statInfo) {
	if st.hasIntr {
		c.add("node_intr_total", float64(st.intr))
	}
	if st.hasCtxt {
		c.add("node_context_switches_total", float64(st.ctxt))
	}
	if st.hasBtime {
		c.add("node_boot_time_seconds", float64(st.btime))
	}
	if st.hasForks {
		c.add("node_forks_total", float64(st.forks))
	}
	if st.hasRunning {
		c.add("node_procs_running", float64(st.running))
	}
	if st.hasBlocked {
		c.add("node_procs_blocked", float64(st.blocked))
	}
}
