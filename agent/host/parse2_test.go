package host

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// Tests of the parsers node_exporter parity brought (netstat, sockstat,
// softnet, pressure, conntrack, arp, udp queues, os-release, udev,
// clocksource, selinux, textfile).

func newNetstatFilter() *netstatFilter {
	return &netstatFilter{re: regexp.MustCompile(defaultNetstatFields)}
}

func TestParseNetstat(t *testing.T) {
	f := func(in string, want []netstatEntry) {
		t.Helper()
		got, err := parseNetstat([]byte(in), nil, newNetstatFilter())
		if err != nil {
			t.Fatalf("parseNetstat(%q): %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseNetstat(%q)\ngot  %v\nwant %v", in, got, want)
		}
	}
	f("Tcp: RtoAlgorithm ActiveOpens InSegs CurrEstab MaxConn\nTcp: 1 10 200 3 -1\n",
		[]netstatEntry{{"node_netstat_Tcp_ActiveOpens", 10}, {"node_netstat_Tcp_InSegs", 200}, {"node_netstat_Tcp_CurrEstab", 3}})
	f("IpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 18446744073709551615 5\n",
		[]netstatEntry{{"node_netstat_IpExt_InOctets", 18446744073709551615}, {"node_netstat_IpExt_OutOctets", 5}})
	// The default filter keeps *_InErrors of every protocol.
	f("Udp: InDatagrams InErrors\nUdp: 4 2\nUdpLite: InDatagrams InErrors\nUdpLite: 9 1\n",
		[]netstatEntry{{"node_netstat_Udp_InDatagrams", 4}, {"node_netstat_Udp_InErrors", 2}, {"node_netstat_UdpLite_InErrors", 1}})
	f("", nil)

	bad := func(in, want string) {
		t.Helper()
		_, err := parseNetstat([]byte(in), nil, newNetstatFilter())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseNetstat(%q) error = %v; want %q", in, err, want)
		}
	}
	bad("Tcp: A B\nTcp: 1\n", "2 fields but 1 values")
	bad("Tcp: InSegs\nUdp: 1\n", "does not hold the values")
	bad("Tcp: InSegs\nTcp: x\n", "bad value")
	bad("Tcp InSegs\nTcp 1\n", `want "Proto: Field`)

	got, err := parseSNMP6([]byte("Ip6InOctets    \t128\nIp6InReceives 1\nIcmp6InMsgs 7\nUdp6RcvbufErrors 2\nnonsense\n"), nil, newNetstatFilter())
	want := []netstatEntry{{"node_netstat_Ip6_InOctets", 128}, {"node_netstat_Icmp6_InMsgs", 7}, {"node_netstat_Udp6_RcvbufErrors", 2}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseSNMP6 = %v, %v; want %v", got, err, want)
	}
}

func TestParseSockstat(t *testing.T) {
	var names interner
	got, err := parseSockstat([]byte("sockets: used 15\nTCP: inuse 2 orphan 0 tw 14 alloc 2 mem 304\nFRAG: inuse 0 memory 8\nUDPLITE: inuse 1\n"), nil, &names, 4096, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []sockEntry{{"node_sockstat_sockets_used", 15},
		{"node_sockstat_TCP_inuse", 2}, {"node_sockstat_TCP_orphan", 0}, {"node_sockstat_TCP_tw", 14}, {"node_sockstat_TCP_alloc", 2},
		{"node_sockstat_TCP_mem", 304}, {"node_sockstat_TCP_mem_bytes", 304 * 4096},
		{"node_sockstat_FRAG_inuse", 0}, {"node_sockstat_FRAG_memory", 8}, {"node_sockstat_UDPLITE_inuse", 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSockstat\ngot  %v\nwant %v", got, want)
	}
	// IPv6: no sockets_used; inuse reported even when the line lacks it.
	got, err = parseSockstat([]byte("sockets: used 3\nTCP6: tw 1\n"), nil, &names, 4096, true)
	if want := []sockEntry{{"node_sockstat_TCP6_inuse", 0}, {"node_sockstat_TCP6_tw", 1}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseSockstat(IPv6) = %v, %v; want %v", got, err, want)
	}
	for _, in := range []string{"TCP: inuse\n", "TCP:\n", "TCP: inuse x\n", "TCP inuse 1\n", "T-P: inuse 1\n"} {
		if _, err := parseSockstat([]byte(in), nil, &names, 4096, false); err == nil {
			t.Errorf("parseSockstat(%q): got nil error; want one", in)
		}
	}
}

func TestParseSoftnet(t *testing.T) {
	var names interner
	// Linux 5.14+ (cpu number in column 13), and an old kernel with 9 columns.
	got, err := parseSoftnet([]byte("0000756f 00000002 00000001 0 0 0 0 0 00000004 00000005 00000006 00000007 00000003\n00000001 0 0 0 0 0 0 0 0\n"), nil, &names)
	want := []softnetStat{
		{cpu: "3", processed: 0x756f, dropped: 2, squeezed: 1, collision: 4, receivedRPS: 5, flowLimit: 6, backlogLen: 7},
		{cpu: "1", processed: 1},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseSoftnet = %+v, %v; want %+v", got, err, want)
	}
	for _, in := range []string{"1 2 3\n", "x 0 0 0 0 0 0 0 0\n", "100000000 0 0 0 0 0 0 0 0\n"} {
		if _, err := parseSoftnet([]byte(in), nil, &names); err == nil {
			t.Errorf("parseSoftnet(%q): got nil error; want one", in)
		}
	}
}

func TestParsePSI(t *testing.T) {
	var p psiLine
	if err := parsePSI(fixture(t, "proc/pressure/io"), &p); err != nil || !p.hasSome || !p.hasFull {
		t.Fatalf("parsePSI(io fixture) = %+v, %v", p, err)
	}
	if err := parsePSI([]byte("full avg10=0.00 avg60=0.00 avg300=0.00 total=8494"), &p); err != nil || p.hasSome || p.full != 8494 {
		t.Errorf("parsePSI(irq) = %+v, %v; want full 8494 only", p, err)
	}
	for _, in := range []string{"some avg10=1\n", "some total=x\n", "most total=1\n"} {
		if err := parsePSI([]byte(in), &p); err == nil {
			t.Errorf("parsePSI(%q): got nil error; want one", in)
		}
	}
}

func TestParseConntrackStat(t *testing.T) {
	var s conntrackStat
	if err := parseConntrackStat(fixture(t, "proc/net/stat/nf_conntrack"), &s); err != nil {
		t.Fatal(err)
	}
	if want := (conntrackStat{invalid: 53, ignore: 0x588a + 0x56a4 + 0x58d4 + 0x5688, searchRestart: 7}); s != want {
		t.Errorf("parseConntrackStat = %+v; want %+v", s, want)
	}
	for _, in := range []string{"hdr\n1 2 3\n", "hdr\n" + strings.Repeat("zz ", 16) + "\n"} {
		if err := parseConntrackStat([]byte(in), &s); err == nil {
			t.Errorf("parseConntrackStat(%q): got nil error; want one", in)
		}
	}
}

func TestParseARP(t *testing.T) {
	var names interner
	got, err := parseARP(fixture(t, "proc/net/arp"), nil, &names)
	if want := []arpCount{{"eth0", 3}, {"eth1", 3}, {"nope", 1}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseARP = %v, %v; want %v", got, err, want)
	}
	for _, in := range []string{"garbage\n", "IP address HW type Flags HW address Mask Device\n1 2 3\n"} {
		if _, err := parseARP([]byte(in), nil, &names); err == nil {
			t.Errorf("parseARP(%q): got nil error; want one", in)
		}
	}
}

func TestParseUDPQueues(t *testing.T) {
	tx, rx, err := parseUDPQueues([]byte("hdr\n 0: 0:0 0:0 07 00000015:00000002 0 0\n 1: 0:0 0:0 07 00000001:00000000 0 0\n"))
	if err != nil || tx != 0x16 || rx != 2 {
		t.Errorf("parseUDPQueues = %d, %d, %v; want 22, 2", tx, rx, err)
	}
	for _, in := range []string{"hdr\n 0: 1 2\n", "hdr\n 0: 0:0 0:0 07 0000001500000002 0\n", "hdr\n 0: 0:0 0:0 07 zz:00 0\n"} {
		if _, _, err := parseUDPQueues([]byte(in)); err == nil {
			t.Errorf("parseUDPQueues(%q): got nil error; want one", in)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	r, err := parseOSRelease([]byte("# comment\nNAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nPRETTY_NAME='Ubuntu 24.04.1 LTS'\nVERSION=\"24.04.1 LTS (Noble \\\"Numbat\\\")\"\nSUPPORT_END=2029-05-31\n\nUNKNOWN_KEY=x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.info[1] != "ubuntu" || r.info[2] != "debian" || r.info[5] != "Ubuntu" || r.info[6] != "Ubuntu 24.04.1 LTS" || r.info[9] != `24.04.1 LTS (Noble "Numbat")` {
		t.Errorf("parseOSRelease labels = %q", r.info)
	}
	if r.version != 24.04 || !r.hasSupportEnd || r.supportEnd != float64(time.Date(2029, 5, 31, 0, 0, 0, 0, time.UTC).Unix()) {
		t.Errorf("parseOSRelease version %v support end %v (%v)", r.version, r.supportEnd, r.hasSupportEnd)
	}
	if r, err := parseOSRelease([]byte("ID=arch\n")); err != nil || r.version != 0 {
		t.Errorf("rolling release: version %v, %v; want 0", r.version, err)
	}
	for _, in := range []string{"NAME=\"open\n", "=x\n", "NAME='x\n", "SUPPORT_END=soon\n", "NAME=a b\n"} {
		if _, err := parseOSRelease([]byte(in)); err == nil {
			t.Errorf("parseOSRelease(%q): got nil error; want one", in)
		}
	}
}

func TestParseUdevData(t *testing.T) {
	u := parseUdevData(fixture(t, "run/udev/data/b8:0"))
	if u.get(udevIDModel) != "TOSHIBA_KSDB4U86" || u.serial() != "2160A0D5FVGG" {
		t.Errorf("udev model %q serial %q", u.get(udevIDModel), u.serial())
	}
	if v, ok := u.float(udevIDATARotationRateRPM); !ok || v != 7200 {
		t.Errorf("rotation rate = %v, %v; want 7200", v, ok)
	}
	// ID_SERIAL when the short forms are missing (virtio).
	if s := parseUdevData([]byte("E:ID_SERIAL=virt-1\nS:link\n")).serial(); s != "virt-1" {
		t.Errorf("serial = %q; want virt-1", s)
	}
}

func TestParseSELinuxConfig(t *testing.T) {
	for in, want := range map[string]float64{"SELINUX=enforcing\n": 1, "# x\nSELINUX=permissive\nSELINUXTYPE=targeted\n": 0, "SELINUX=disabled": -1, "": -1} {
		if got := parseSELinuxConfig([]byte(in)); got != want {
			t.Errorf("parseSELinuxConfig(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestParseTextfile(t *testing.T) {
	var p promtext.Parser
	var b samples.Batch
	if err := parseTextfile(fixture(t, "../textfile/backup.prom"), &p, &b); err != nil || b.Len() != 5 {
		t.Errorf("backup.prom: %d samples, %v; want 5", b.Len(), err)
	}
	for in, want := range map[string]string{
		"m 1 1718000000000\n":    "has a timestamp",
		"m{a=\"1\",a=\"2\"} 1\n": `label "a" twice`,
		"m{ 1\n":                 "line 1",
	} {
		if err := parseTextfile([]byte(in), &p, &b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTextfile(%q) = %v; want %q", in, err, want)
		}
	}
}

func TestTextfileCollector(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.prom", "# HELP jobs_done Jobs done.\n# TYPE jobs_done counter\njobs_done{job=\"nightly\",instance=\"me\",exported_job=\"x\"} 3\n")
	write("b.prom", "jobs_done{job=\"weekly\"} 1\n")
	write("ignored.txt", "not_read 1\n")
	c := New(Options{Root: fixtureRoot, Instance: "h", TextfileDir: dir, TextfileMaxBytes: 200})
	got, err := collectMap(t, c, time.UnixMilli(7))
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	f := func(series string, want float64) {
		t.Helper()
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", series, v, ok, want)
		}
	}
	// The host's job and instance win; the file's become exported_*, and
	// exported_job was taken, so exported_exported_job.
	f(`jobs_done{exported_exported_job="nightly",exported_instance="me",exported_job="x",instance="h",job="node"}`, 3)
	f(`jobs_done{exported_job="weekly",instance="h",job="node"}`, 1)
	f(`node_textfile_scrape_error{instance="h",job="node"}`, 0)
	if n := countPrefix(got, "node_textfile_mtime_seconds{"); n != 2 {
		t.Errorf("%d node_textfile_mtime_seconds series; want 2", n)
	}
	if countPrefix(got, "not_read") != 0 {
		t.Error("a file without the .prom suffix was read")
	}
	var md samples.Batch
	c.Metadata(&md)
	i := slices.IndexFunc(md.Metadata, func(m samples.Metadata) bool { return m.Name == "jobs_done" })
	if i < 0 || md.Metadata[i].Help != "Jobs done." || md.Metadata[i].Type != "counter" {
		t.Errorf("metadata of jobs_done: %+v", md.Metadata)
	}

	// A bad file: scrape_error 1, the good file still counts, Collect says
	// which file, and the textfile collector itself still succeeded.
	write("b.prom", "jobs_done{job=\"weekly\"} 1 1718000000000\n")
	write("big.prom", "m "+strings.Repeat("1", 300)+"\n")
	got, err = collectMap(t, c, time.UnixMilli(8))
	if err == nil || !strings.Contains(err.Error(), "b.prom") || !strings.Contains(err.Error(), "larger than 200 bytes") {
		t.Errorf("Collect with bad files: error %v; want it to name b.prom and the size limit", err)
	}
	f(`node_textfile_scrape_error{instance="h",job="node"}`, 1)
	f(`node_scrape_collector_success{collector="textfile",instance="h",job="node"}`, 1)
	if countPrefix(got, `jobs_done{exported_job="weekly"`) != 0 || countPrefix(got, "jobs_done{") != 1 {
		t.Errorf("series of the bad file reported: %v", got)
	}
}

func TestMetadataMatchesFamilies(t *testing.T) {
	c := New(Options{Root: fixtureRoot, Instance: "h"})
	var b samples.Batch
	if err := c.Collect(time.UnixMilli(1), &b); err != nil {
		t.Fatal(err)
	}
	c.Metadata(&b)
	have := map[string]bool{}
	for _, m := range b.Metadata {
		if m.Help == "" || m.Type == "" {
			t.Errorf("metadata %+v lacks HELP or TYPE", m)
		}
		have[m.Name] = true
	}
	for i := range b.Series {
		if n := b.Name(&b.Series[i]); !have[n] {
			t.Errorf("family %s has no metadata", n)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	var names interner
	got := parseSchedstat(fixture(t, "proc/schedstat"), nil, &names)
	want := []schedCPU{{cpu: "0", running: 2045936778163039, waiting: 343796328169361, timeslices: 4767485306},
		{cpu: "1", running: 1904686152592476, waiting: 364107263788241, timeslices: 5145567945}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSchedstat = %+v; want %+v", got, want)
	}
	// Lines of another shape are skipped, as procfs skips them.
	if got := parseSchedstat([]byte("cpu0 1 2\ncpuX 1 2 3 4 5 6 7 8 9\ncpu2 1 2 3 4 5 6 7 8 x\n"), nil, &names); len(got) != 0 {
		t.Errorf("malformed lines: %+v; want none", got)
	}
}
