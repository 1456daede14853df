package host

import (
	"fmt"
	"os"
)

// sockstat reads /proc/net/sockstat and /proc/net/sockstat6 as
// node_exporter's sockstat collector does: node_sockstat_<PROTO>_<state>
// for inuse, orphan, tw, alloc, mem and memory, mem_bytes (mem is in
// pages), and node_sockstat_sockets_used from the IPv4 file.

// sockStates are the keys node_exporter knows, in its order; inuse is
// always reported (0 when a line lacks it).
var sockStates = [...]string{"inuse", "orphan", "tw", "alloc", "mem", "memory"}

// sockEntry is one series of a sockstat file.
type sockEntry struct {
	name string
	v    float64
}

// sockstatState is the sockstat collector's paths and buffers.
type sockstatState struct {
	p4, p6   []byte
	names    interner
	entries  []sockEntry
	pageSize int
}

func (s *sockstatState) init(root string) {
	s.p4 = append([]byte(root+"/proc/net/sockstat"), 0)
	s.p6 = append([]byte(root+"/proc/net/sockstat6"), 0)
	s.pageSize = os.Getpagesize()
}

// parseSockstat parses a sockstat file ("TCP: inuse 4 orphan 0 tw 4 alloc
// 4 mem 310" per line) and appends its series to dst. names interns the
// series names; pageSize converts mem to mem_bytes. The "sockets: used N"
// line counts only in the IPv4 file (ipv6 false), as in node_exporter.
func parseSockstat(data []byte, dst []sockEntry, names *interner, pageSize int, ipv6 bool) ([]sockEntry, error) {
	var arr [16][]byte
	var nameBuf [64]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
			return dst, fmt.Errorf("parse sockstat line %q: want \"PROTO: key value ...\"", line)
		}
		if len(f)%2 == 0 {
			return dst, fmt.Errorf("parse sockstat line %q: odd number of keys and values", line)
		}
		proto := f[0][:len(f[0])-1]
		if !validNameBytes(proto) || len(proto) > 32 {
			return dst, fmt.Errorf("parse sockstat line %q: bad protocol name", line)
		}
		var vals [len(sockStates)]int64
		var has [len(sockStates)]bool
		used, hasUsed := int64(0), false
		for i := 1; i+1 < len(f); i += 2 {
			v, ok := parseInt(f[i+1])
			if !ok {
				return dst, fmt.Errorf("parse sockstat line %q: bad value %q", line, f[i+1])
			}
			if string(f[i]) == "used" {
				used, hasUsed = v, true
			}
			for k, st := range sockStates {
				if string(f[i]) == st {
					vals[k], has[k] = v, true
				}
			}
		}
		if string(proto) == "sockets" {
			if !ipv6 && hasUsed {
				dst = append(dst, sockEntry{name: "node_sockstat_sockets_used", v: float64(used)})
			}
			continue
		}
		has[0] = true // inuse
		name := func(state string) string {
			b := append(append(append(append(nameBuf[:0], "node_sockstat_"...), proto...), '_'), state...)
			return names.get(b)
		}
		for k, st := range sockStates {
			if has[k] {
				dst = append(dst, sockEntry{name: name(st), v: float64(vals[k])})
			}
		}
		if has[4] { // mem, in pages
			dst = append(dst, sockEntry{name: name("mem_bytes"), v: float64(vals[4] * int64(pageSize))})
		}
	}
	return dst, nil
}

func (c *Collector) collectSockstat() error {
	s := &c.sock
	s.entries = s.entries[:0]
	for _, f := range []struct {
		path []byte
		ipv6 bool
	}{{s.p4, false}, {s.p6, true}} {
		data, err := c.read(f.path)
		if err != nil {
			if isNotExist(err) { // IPv4 or IPv6 disabled
				continue
			}
			return err
		}
		if s.entries, err = parseSockstat(data, s.entries, &s.names, s.pageSize, f.ipv6); err != nil {
			return err
		}
	}
	for _, e := range s.entries {
		c.add(e.name, e.v)
	}
	return nil
}
