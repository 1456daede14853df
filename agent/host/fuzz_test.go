package host

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// Every parser has a fuzz target seeded from the fixture tree: no input may
// panic, and what a parser accepts must hold its invariants.

func seed(f *testing.F, rels ...string) {
	for _, rel := range rels {
		data, err := os.ReadFile(fixtureRoot + "/" + rel)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func FuzzParseStat(f *testing.F) {
	seed(f, "proc/stat")
	f.Add([]byte("cpu0 1 2 3 4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st statInfo
		var names interner
		if err := parseStat(data, &st, &names); err != nil {
			return
		}
		if len(st.cpus) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d cpus from %d lines", len(st.cpus), bytes.Count(data, []byte("\n"))+1)
		}
		for _, c := range st.cpus {
			if _, ok := parseUint([]byte(c.cpu)); !ok {
				t.Fatalf("cpu name %q is not a number", c.cpu)
			}
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	seed(f, "proc/loadavg")
	f.Fuzz(func(t *testing.T, data []byte) {
		var la loadavg
		_ = parseLoadavg(data, &la)
	})
}

func FuzzParseFileNr(f *testing.F) {
	seed(f, "proc/sys/fs/file-nr")
	f.Fuzz(func(t *testing.T, data []byte) {
		var fn fileNr
		if err := parseFileNr(data, &fn); err == nil && !bytes.Contains(data, []byte(fmt.Sprint(fn.allocated))) {
			t.Fatalf("allocated %d not in the input", fn.allocated)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	seed(f, "proc/meminfo")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		es, err := parseMeminfo(data, nil, &names)
		if err != nil {
			return
		}
		for _, e := range es {
			if !strings.HasPrefix(e.name, "node_memory_") || !validMetricName(e.name) {
				t.Fatalf("bad metric name %q", e.name)
			}
		}
	})
}

func FuzzParseVmstat(f *testing.F) {
	seed(f, "proc/vmstat")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		es, err := parseVmstat(data, nil, &names)
		if err != nil {
			return
		}
		for _, e := range es {
			if !strings.HasPrefix(e.name, "node_vmstat_") || !validMetricName(e.name) {
				t.Fatalf("bad metric name %q", e.name)
			}
		}
	})
}

func FuzzParseDiskstats(f *testing.F) {
	seed(f, "proc/diskstats")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		ds, err := parseDiskstats(data, nil, &names)
		if err != nil {
			return
		}
		for _, d := range ds {
			if d.device == "" || d.n < 11 || d.n > 17 {
				t.Fatalf("device %q with %d counters", d.device, d.n)
			}
		}
	})
}

func FuzzParseNetDev(f *testing.F) {
	seed(f, "proc/net/dev")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		ds, err := parseNetDev(data, nil, &names)
		if err != nil {
			return
		}
		for _, d := range ds {
			if d.device == "" || strings.ContainsAny(d.device, ":\n") {
				t.Fatalf("bad interface name %q", d.device)
			}
		}
	})
}

// escapeMount is the kernel's escaping of mountinfo paths.
func escapeMount(s string) string {
	r := strings.NewReplacer("\\", `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
	return r.Replace(s)
}

func FuzzParseMountinfo(f *testing.F) {
	seed(f, "proc/1/mountinfo")
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := parseMountinfo(data, nil)
		if err != nil {
			return
		}
		// Round trip: escape what was parsed the kernel's way and parse
		// it again.
		var sb strings.Builder
		for _, m := range ms {
			opts := "rw"
			if m.readOnly {
				opts = "ro"
			}
			fmt.Fprintf(&sb, "1 1 0:1 / %s %s - %s %s rw\n", escapeMount(m.mountPoint), opts, escapeMount(m.fsType), escapeMount(m.device))
		}
		again, err := parseMountinfo([]byte(sb.String()), nil)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", sb.String(), err)
		}
		for i := range ms {
			if i >= len(again) || again[i].mountPoint != ms[i].mountPoint || again[i].device != ms[i].device || again[i].readOnly != ms[i].readOnly {
				t.Fatalf("round trip of %+v gave %+v", ms, again)
			}
		}
	})
}

func FuzzCountPidDirents(f *testing.F) {
	var buf []byte
	for _, n := range []string{".", "..", "1", "42", "self"} {
		buf = append(buf, dirent(n)...)
	}
	f.Add(buf)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := countPidDirents(data)
		if err == nil && n > len(data)/20 {
			t.Fatalf("%d entries in %d bytes", n, len(data))
		}
	})
}

func abs(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

func FuzzParseSysfs(f *testing.F) {
	seed(f, "sys/class/net/eth0/mtu", "sys/class/net/eth0/operstate")
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, ok := parseSysfsUint(data); ok && !bytes.Contains(data, []byte(fmt.Sprint(v))) {
			t.Fatalf("value %d not in %q", v, data)
		}
		// Decimal, 0x hex, 0-prefixed octal, 0b binary, with _ between
		// digits, as node_exporter's value parser (strconv.ParseInt base 0)
		// reads them.
		if v, ok := parseSysfsInt(data); ok {
			data = bytes.ReplaceAll(data, []byte("_"), nil)
			low := bytes.ToLower(data)
			if !bytes.Contains(low, []byte(fmt.Sprintf("%x", abs(v)))) && !bytes.Contains(data, []byte(fmt.Sprint(abs(v)))) &&
				!bytes.Contains(data, []byte(fmt.Sprintf("%o", abs(v)))) && !bytes.Contains(low, []byte(fmt.Sprintf("%b", abs(v)))) {
				t.Fatalf("value %d not in %q", v, data)
			}
		}
	})
}

func FuzzParseNetstat(f *testing.F) {
	seed(f, "proc/net/netstat", "proc/net/snmp")
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := parseNetstat(data, nil, newNetstatFilter())
		if err != nil {
			return
		}
		for _, e := range es {
			if !strings.HasPrefix(e.name, "node_netstat_") || !validMetricName(e.name) {
				t.Fatalf("bad metric name %q", e.name)
			}
		}
	})
}

func FuzzParseSNMP6(f *testing.F) {
	seed(f, "proc/net/snmp6")
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := parseSNMP6(data, nil, newNetstatFilter())
		if err != nil {
			return
		}
		for _, e := range es {
			if !strings.HasPrefix(e.name, "node_netstat_") || !strings.Contains(e.name, "6_") || !validMetricName(e.name) {
				t.Fatalf("bad metric name %q", e.name)
			}
		}
	})
}

func FuzzParseSockstat(f *testing.F) {
	seed(f, "proc/net/sockstat", "proc/net/sockstat6")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		es, err := parseSockstat(data, nil, &names, 4096, false)
		if err != nil {
			return
		}
		for _, e := range es {
			if !strings.HasPrefix(e.name, "node_sockstat_") || !validMetricName(e.name) {
				t.Fatalf("bad metric name %q", e.name)
			}
		}
	})
}

func FuzzParseSoftnet(f *testing.F) {
	seed(f, "proc/net/softnet_stat")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		ss, err := parseSoftnet(data, nil, &names)
		if err != nil {
			return
		}
		for _, s := range ss {
			if _, ok := parseUint([]byte(s.cpu)); !ok {
				t.Fatalf("cpu %q is not a number", s.cpu)
			}
		}
	})
}

func FuzzParsePSI(f *testing.F) {
	seed(f, "proc/pressure/cpu", "proc/pressure/io", "proc/pressure/irq")
	f.Fuzz(func(t *testing.T, data []byte) {
		var p psiLine
		if err := parsePSI(data, &p); err == nil && (p.some > 0 && !p.hasSome || p.full > 0 && !p.hasFull) {
			t.Fatalf("values without their lines: %+v", p)
		}
	})
}

func FuzzParseConntrackStat(f *testing.F) {
	seed(f, "proc/net/stat/nf_conntrack")
	f.Fuzz(func(t *testing.T, data []byte) {
		var s conntrackStat
		_ = parseConntrackStat(data, &s)
	})
}

func FuzzParseARP(f *testing.F) {
	seed(f, "proc/net/arp")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		as, err := parseARP(data, nil, &names)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, a := range as {
			if a.n < 1 || a.device == "" || seen[a.device] {
				t.Fatalf("bad count %+v in %+v", a, as)
			}
			seen[a.device] = true
		}
	})
}

func FuzzParseUDPQueues(f *testing.F) {
	seed(f, "proc/net/udp", "proc/net/udp6")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = parseUDPQueues(data)
	})
}

func FuzzParseOSRelease(f *testing.F) {
	seed(f, "etc/os-release")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseOSRelease(data)
		if err == nil && r.version < 0 {
			t.Fatalf("negative version %v", r.version)
		}
	})
}

func FuzzParseUdevData(f *testing.F) {
	seed(f, "run/udev/data/b8:0", "run/udev/data/b259:0")
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range parseUdevData(data) {
			if strings.ContainsRune(k, '\n') {
				t.Fatalf("key %q holds a newline", k)
			}
		}
	})
}

func FuzzParseTextfile(f *testing.F) {
	seed(f, "../textfile/backup.prom", "../textfile/cron.prom", "../textfile/stale.prom")
	f.Fuzz(func(t *testing.T, data []byte) {
		var p promtext.Parser
		var b samples.Batch
		if err := parseTextfile(data, &p, &b); err != nil {
			return
		}
		for i := range b.Series {
			for _, x := range b.SeriesSamples(&b.Series[i]) {
				if x.T != noTimestamp {
					t.Fatalf("accepted a sample with timestamp %d", x.T)
				}
			}
		}
	})
}

func FuzzParseSchedstat(f *testing.F) {
	seed(f, "proc/schedstat")
	f.Fuzz(func(t *testing.T, data []byte) {
		var names interner
		for _, s := range parseSchedstat(data, nil, &names) {
			if _, ok := parseUint([]byte(s.cpu)); !ok {
				t.Fatalf("cpu %q is not a number", s.cpu)
			}
		}
	})
}
