package host

import (
	"bytes"
	"fmt"
)

// memEntry is one line of /proc/meminfo with its node_exporter metric name:
// "Active(anon):  123 kB" is node_memory_Active_anon_bytes = 125952.
type memEntry struct {
	name string
	v    float64
}

// parseMeminfo parses /proc/meminfo into dst[:0] and returns it. names
// caches the metric name of each key.
func parseMeminfo(data []byte, dst []memEntry, names *interner) ([]memEntry, error) {
	dst = dst[:0]
	var arr [4][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 || len(f) > 3 || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
			return dst, fmt.Errorf("parse /proc/meminfo line %q: want \"Key: value [kB]\"", line)
		}
		v, ok := parseUint(f[1])
		if !ok {
			return dst, fmt.Errorf("parse /proc/meminfo line %q: bad value", line)
		}
		key := f[0][:len(f[0])-1]
		val := float64(v)
		bytesUnit := len(f) == 3
		if bytesUnit {
			if string(f[2]) != "kB" {
				return dst, fmt.Errorf("parse /proc/meminfo line %q: unknown unit %q", line, f[2])
			}
			val *= 1024
		}
		dst = append(dst, memEntry{name: memName(names, key, bytesUnit), v: val})
	}
	return dst, nil
}

// memName returns node_exporter's name for a meminfo key: "(x)" becomes
// "_x", other characters invalid in a metric name become "_", and values
// with a kB unit get the _bytes suffix.
func memName(names *interner, key []byte, bytesUnit bool) string {
	// Look up by the raw line key plus a unit marker without allocating.
	var buf [80]byte
	k := append(buf[:0], key...)
	if bytesUnit {
		k = append(k, '\x00')
	}
	if s, ok := names.m[string(k)]; ok {
		return s
	}
	name := make([]byte, 0, len("node_memory_")+len(key)+len("_bytes"))
	name = append(name, "node_memory_"...)
	for _, c := range key {
		switch {
		case c == '(':
			name = append(name, '_')
		case c == ')':
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			name = append(name, c)
		default:
			name = append(name, '_')
		}
	}
	if bytesUnit {
		name = append(name, "_bytes"...)
	}
	if names.m == nil || len(names.m) >= maxInterned {
		names.m = make(map[string]string)
	}
	s := string(name)
	names.m[string(k)] = s
	return s
}

// vmEntry is one line of /proc/vmstat that node_exporter exports by
// default: oom_kill, pgpg*, pswp* and pg*fault*.
type vmEntry = memEntry

// parseVmstat parses the default node_exporter subset of /proc/vmstat
// ("pgfault 123" becomes node_vmstat_pgfault) into dst[:0].
func parseVmstat(data []byte, dst []vmEntry, names *interner) ([]vmEntry, error) {
	dst = dst[:0]
	var arr [3][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return dst, fmt.Errorf("parse /proc/vmstat line %q: want \"key value\"", line)
		}
		if !vmstatWanted(f[0]) {
			continue
		}
		v, ok := parseUint(f[1])
		if !ok {
			return dst, fmt.Errorf("parse /proc/vmstat line %q: bad value", line)
		}
		dst = append(dst, vmEntry{name: vmName(names, f[0]), v: float64(v)})
	}
	return dst, nil
}

// vmstatWanted is node_exporter's default --collector.vmstat.fields,
// ^(oom_kill|pgpg|pswp|pg.*fault).*, without a regexp.
func vmstatWanted(k []byte) bool {
	return bytes.HasPrefix(k, []byte("oom_kill")) || bytes.HasPrefix(k, []byte("pgpg")) ||
		bytes.HasPrefix(k, []byte("pswp")) ||
		bytes.HasPrefix(k, []byte("pg")) && bytes.Contains(k[2:], []byte("fault"))
}

func vmName(names *interner, key []byte) string {
	if s, ok := names.m[string(key)]; ok {
		return s
	}
	if names.m == nil || len(names.m) >= maxInterned {
		names.m = make(map[string]string)
	}
	name := make([]byte, 0, len("node_vmstat_")+len(key))
	name = append(name, "node_vmstat_"...)
	for _, c := range key {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			name = append(name, c)
		} else {
			name = append(name, '_')
		}
	}
	s := string(name)
	names.m[string(key)] = s
	return s
}

func (c *Collector) emitMem(es []memEntry) {
	for _, e := range es {
		c.add(e.name, e.v)
	}
}
