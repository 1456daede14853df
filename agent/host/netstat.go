package host

import (
	"bytes"
	"fmt"
	"regexp"
)

// netstat reads /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6 as
// node_exporter's netstat collector does and keeps its default field list:
// node_netstat_<Proto>_<Field>, e.g. node_netstat_Tcp_InSegs.

// defaultNetstatFields is node_exporter's --collector.netstat.fields default.
const defaultNetstatFields = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`

// netstatEntry is one kept field: its series name and value.
type netstatEntry struct {
	name string
	v    float64
}

// netstatFilter turns "Proto" and "Field" into the series name, or "" for
// a field the filter drops. It runs the regexp once per field and caches
// the answer, so a cycle costs map lookups.
type netstatFilter struct {
	re *regexp.Regexp
	m  map[string]string // "Proto_Field" -> name or ""
}

func (f *netstatFilter) name(proto, field []byte) string {
	var arr [96]byte
	key := append(append(append(arr[:0], proto...), '_'), field...)
	if s, ok := f.m[string(key)]; ok {
		return s
	}
	if f.m == nil || len(f.m) >= maxInterned {
		f.m = make(map[string]string)
	}
	k := string(key)
	s := ""
	if f.re.MatchString(k) && validNameBytes(key) {
		s = "node_netstat_" + k
	}
	f.m[k] = s
	return s
}

// validNameBytes reports whether b can follow "node_<subsystem>_" in a
// metric name (and is a legacy label name's tail: no colons).
func validNameBytes(b []byte) bool {
	for _, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return len(b) > 0
}

// parseNetstat parses /proc/net/netstat or /proc/net/snmp, which pair a
// line of field names with a line of values ("Tcp: RtoAlgorithm ..." then
// "Tcp: 1 ..."), and appends the fields f keeps to dst.
func parseNetstat(data []byte, dst []netstatEntry, f *netstatFilter) ([]netstatEntry, error) {
	var nameArr, valArr [160][]byte
	for len(data) > 0 {
		var hdr, vals []byte
		hdr, data = nextLine(data)
		if len(bytes.TrimSpace(hdr)) == 0 {
			continue
		}
		vals, data = nextLine(data)
		names := fields(hdr, nameArr[:0])
		values := fields(vals, valArr[:0])
		if len(names) < 1 || len(names[0]) < 2 || names[0][len(names[0])-1] != ':' {
			return dst, fmt.Errorf("parse netstat line %q: want \"Proto: Field ...\"", hdr)
		}
		if len(values) == 0 || !bytes.Equal(values[0], names[0]) {
			return dst, fmt.Errorf("parse netstat: line %q does not hold the values of %q", vals, names[0])
		}
		if len(names) != len(values) {
			return dst, fmt.Errorf("parse netstat: %s has %d fields but %d values", names[0], len(names)-1, len(values)-1)
		}
		proto := names[0][:len(names[0])-1]
		for i := 1; i < len(names); i++ {
			name := f.name(proto, names[i])
			if name == "" {
				continue
			}
			v, ok := parseNumber(values[i])
			if !ok {
				return dst, fmt.Errorf("parse netstat: %s %s: bad value %q", proto, names[i], values[i])
			}
			dst = append(dst, netstatEntry{name: name, v: v})
		}
	}
	return dst, nil
}

// parseSNMP6 parses /proc/net/snmp6 ("Ip6InReceives   123" per line; the
// protocol is the name up to its first "6") and appends the fields f keeps.
func parseSNMP6(data []byte, dst []netstatEntry, f *netstatFilter) ([]netstatEntry, error) {
	var arr [3][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		fs := fields(line, arr[:0])
		if len(fs) < 2 {
			continue
		}
		six := bytes.IndexByte(fs[0], '6')
		if six < 0 {
			continue
		}
		name := f.name(fs[0][:six+1], fs[0][six+1:])
		if name == "" {
			continue
		}
		v, ok := parseNumber(fs[1])
		if !ok {
			return dst, fmt.Errorf("parse /proc/net/snmp6 line %q: bad value", line)
		}
		dst = append(dst, netstatEntry{name: name, v: v})
	}
	return dst, nil
}

// parseNumber parses a kernel counter: an integer (signed, or unsigned up
// to 2^64-1) without going through strconv, else a float.
func parseNumber(b []byte) (float64, bool) {
	if u, ok := parseUint(b); ok {
		return float64(u), true
	}
	if i, ok := parseInt(b); ok {
		return float64(i), true
	}
	return parseFloat(b)
}

// parseInt parses a decimal integer with an optional minus sign.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok || u > 1<<63 || !neg && u == 1<<63 {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// netstatState is the netstat collector's paths and buffers.
type netstatState struct {
	pNetstat, pSNMP, pSNMP6 []byte
	filter                  netstatFilter
	entries                 []netstatEntry
}

func (s *netstatState) init(root string) {
	s.pNetstat = append([]byte(root+"/proc/net/netstat"), 0)
	s.pSNMP = append([]byte(root+"/proc/net/snmp"), 0)
	s.pSNMP6 = append([]byte(root+"/proc/net/snmp6"), 0)
	s.filter.re = regexp.MustCompile(defaultNetstatFields)
}

func (c *Collector) collectNetstat() error {
	s := &c.netstat
	s.entries = s.entries[:0]
	data, err := c.read(s.pNetstat)
	if err != nil {
		return err
	}
	if s.entries, err = parseNetstat(data, s.entries, &s.filter); err != nil {
		return fmt.Errorf("%s: %w", "/proc/net/netstat", err)
	}
	if data, err = c.read(s.pSNMP); err != nil {
		return err
	}
	if s.entries, err = parseNetstat(data, s.entries, &s.filter); err != nil {
		return fmt.Errorf("%s: %w", "/proc/net/snmp", err)
	}
	// Without IPv6 there is no snmp6; node_exporter carries on.
	if data, err = c.read(s.pSNMP6); err == nil {
		if s.entries, err = parseSNMP6(data, s.entries, &s.filter); err != nil {
			return fmt.Errorf("%s: %w", "/proc/net/snmp6", err)
		}
	} else if !isNotExist(err) {
		return err
	}
	for _, e := range s.entries {
		c.add(e.name, e.v)
	}
	return nil
}
