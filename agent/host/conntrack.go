package host

import "fmt"

// conntrackStat is /proc/net/stat/nf_conntrack summed over the cpus (one
// line each, hexadecimal columns after a header line), with the column
// positions prometheus/procfs gives them.
type conntrackStat struct {
	found, invalid, ignore, insert, insertFailed, drop, earlyDrop, searchRestart uint64
}

// parseConntrackStat parses /proc/net/stat/nf_conntrack into s.
func parseConntrackStat(data []byte, s *conntrackStat) error {
	*s = conntrackStat{}
	var arr [20][]byte
	_, data = nextLine(data) // header
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) < 16 || len(f) > 17 {
			return fmt.Errorf("parse /proc/net/stat/nf_conntrack line %q: %d columns; want 16 or 17", line, len(f))
		}
		var v [17]uint64
		for i, b := range f {
			x, ok := parseHex64(b)
			if !ok {
				return fmt.Errorf("parse /proc/net/stat/nf_conntrack line %q: bad hex number %q", line, b)
			}
			v[i] = x
		}
		s.found += v[2]
		s.invalid += v[4]
		s.ignore += v[5]
		s.insert += v[8]
		s.insertFailed += v[9]
		s.drop += v[10]
		s.earlyDrop += v[11]
		if len(f) == 17 {
			s.searchRestart += v[16]
		}
	}
	return nil
}

// parseHex64 parses a hexadecimal uint64, with or without 0x.
func parseHex64(b []byte) (uint64, bool) {
	if len(b) > 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') {
		b = b[2:]
	}
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// collectConntrack reads the conntrack table size, its limit and its
// statistics, as node_exporter's conntrack collector does. Without the
// nf_conntrack module the files are missing: no data.
func (c *Collector) collectConntrack() error {
	data, err := c.readOptional(c.path("/proc/sys/net/netfilter/nf_conntrack_count"))
	if err != nil {
		return err
	}
	count, ok := parseSysfsUint(data)
	if !ok {
		return fmt.Errorf("parse nf_conntrack_count %q: not a number", data)
	}
	c.add("node_nf_conntrack_entries", float64(count))
	if data, err = c.readOptional(c.path("/proc/sys/net/netfilter/nf_conntrack_max")); err != nil {
		return err
	}
	limit, ok := parseSysfsUint(data)
	if !ok {
		return fmt.Errorf("parse nf_conntrack_max %q: not a number", data)
	}
	c.add("node_nf_conntrack_entries_limit", float64(limit))
	if data, err = c.readOptional(c.path("/proc/net/stat/nf_conntrack")); err != nil {
		return err
	}
	s := &c.conntrack
	if err := parseConntrackStat(data, s); err != nil {
		return err
	}
	c.add("node_nf_conntrack_stat_found", float64(s.found))
	c.add("node_nf_conntrack_stat_invalid", float64(s.invalid))
	c.add("node_nf_conntrack_stat_ignore", float64(s.ignore))
	c.add("node_nf_conntrack_stat_insert", float64(s.insert))
	c.add("node_nf_conntrack_stat_insert_failed", float64(s.insertFailed))
	c.add("node_nf_conntrack_stat_drop", float64(s.drop))
	c.add("node_nf_conntrack_stat_early_drop", float64(s.earlyDrop))
	c.add("node_nf_conntrack_stat_search_restart", float64(s.searchRestart))
	return nil
}
