package host

import (
	"encoding/binary"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func fixture(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(fixtureRoot + "/" + rel)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseStat(t *testing.T) {
	f := func(in string, want statInfo) {
		t.Helper()
		var got statInfo
		var names interner
		if err := parseStat([]byte(in), &got, &names); err != nil {
			t.Fatalf("parseStat(%q): %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseStat(%q)\ngot  %+v\nwant %+v", in, got, want)
		}
	}
	f("cpu  1 2 3 4\ncpu0 1 2 3 4\nctxt 7\n", statInfo{cpus: []cpuTimes{{cpu: "0", v: [10]uint64{1, 2, 3, 4}}}, ctxt: 7, hasCtxt: true})
	f("cpu3 1 2 3 4 5 6 7 8 9 10 11\nintr 9 1 2 3\nbtime 100\nprocesses 5\nprocs_running 1\nprocs_blocked 0\nsoftirq 1 2\n",
		statInfo{cpus: []cpuTimes{{cpu: "3", v: [10]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}}, intr: 9, hasIntr: true, btime: 100, hasBtime: true,
			forks: 5, hasForks: true, running: 1, hasRunning: true, blocked: 0, hasBlocked: true})
	f("", statInfo{})

	bad := func(in, wantErr string) {
		t.Helper()
		var st statInfo
		var names interner
		err := parseStat([]byte(in), &st, &names)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("parseStat(%q) error = %v; want it to contain %q", in, err, wantErr)
		}
	}
	bad("cpu0 1 2\n", "want at least 4 cpu times")
	bad("cpu0 1 2 x 4\n", "bad cpu time")
	bad("cpuX 1 2 3 4\n", "bad cpu number")
	bad("ctxt -1\n", "bad value")
	bad("intr x\n", "bad total")

	// The fixture: 4 cores, the aggregate line skipped.
	var st statInfo
	var names interner
	if err := parseStat(fixture(t, "proc/stat"), &st, &names); err != nil {
		t.Fatal(err)
	}
	if len(st.cpus) != 4 || st.cpus[2].cpu != "2" || st.cpus[2].v[0] != 304877 {
		t.Errorf("fixture cpus = %+v; want 4 with cpu2 user=304877", st.cpus)
	}
}

func TestParseLoadavg(t *testing.T) {
	var got loadavg
	if err := parseLoadavg([]byte("1.50 0.25 12.00 3/4096 999\n"), &got); err != nil {
		t.Fatal(err)
	}
	if want := (loadavg{1.5, 0.25, 12, 4096}); got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
	for _, in := range []string{"", "1 2 3", "1 2 x 3/4 5", "1 2 3 34 5", "1 2 3 3/x 5"} {
		if err := parseLoadavg([]byte(in), &got); err == nil {
			t.Errorf("parseLoadavg(%q): got nil error; want one", in)
		}
	}
}

func TestParseFileNr(t *testing.T) {
	var got fileNr
	if err := parseFileNr([]byte("1024\t0\t9000\n"), &got); err != nil {
		t.Fatal(err)
	}
	if want := (fileNr{1024, 9000}); got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
	for _, in := range []string{"", "1 2", "1 2 3 4", "a 0 3"} {
		if err := parseFileNr([]byte(in), &got); err == nil {
			t.Errorf("parseFileNr(%q): got nil error; want one", in)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	var names interner
	got, err := parseMeminfo([]byte("MemTotal: 100 kB\nActive(anon):   2 kB\nHugePages_Total:  7\nWeird-Key: 1 kB\n"), nil, &names)
	if err != nil {
		t.Fatal(err)
	}
	want := []memEntry{
		{"node_memory_MemTotal_bytes", 102400},
		{"node_memory_Active_anon_bytes", 2048},
		{"node_memory_HugePages_Total", 7},
		{"node_memory_Weird_Key_bytes", 1024},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v; want %+v", got, want)
	}
	for _, in := range []string{"MemTotal 100 kB", "MemTotal: x kB", "MemTotal: 1 MB", "MemTotal: 1 kB extra", ":  1"} {
		if _, err := parseMeminfo([]byte(in), nil, &names); err == nil {
			t.Errorf("parseMeminfo(%q): got nil error; want one", in)
		}
	}
}

func TestParseVmstat(t *testing.T) {
	var names interner
	got, err := parseVmstat([]byte("nr_free_pages 5\npgfault 10\npgmajfault 2\npswpin 3\npgpgout 4\noom_kill 1\npgsteal_direct 9\n"), nil, &names)
	if err != nil {
		t.Fatal(err)
	}
	want := []vmEntry{
		{"node_vmstat_pgfault", 10}, {"node_vmstat_pgmajfault", 2}, {"node_vmstat_pswpin", 3},
		{"node_vmstat_pgpgout", 4}, {"node_vmstat_oom_kill", 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v; want %+v", got, want)
	}
	if _, err := parseVmstat([]byte("pgfault x\n"), nil, &names); err == nil {
		t.Error("parseVmstat with a bad number: got nil error; want one")
	}
}

func TestParseDiskstats(t *testing.T) {
	var names interner
	got, err := parseDiskstats(fixture(t, "proc/diskstats"), nil, &names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("got %d devices; want 10", len(got))
	}
	f := func(i int, dev string, n int, first, last uint64) {
		t.Helper()
		d := got[i]
		if d.device != dev || d.n != n || d.v[0] != first || d.v[n-1] != last {
			t.Errorf("device %d = %s n=%d v[0]=%d v[n-1]=%d; want %s n=%d %d %d", i, d.device, d.n, d.v[0], d.v[n-1], dev, n, first, last)
		}
	}
	f(2, "nvme0n1", 17, 1281436, 82491)
	f(5, "sda", 15, 52413, 311)
	f(6, "sda1", 11, 52300, 115801)
	for _, in := range []string{"8 0 sda 1 2 3", "8 0 sda 1 2 3 4 5 6 7 8 9 10 x"} {
		if _, err := parseDiskstats([]byte(in), nil, &names); err == nil {
			t.Errorf("parseDiskstats(%q): got nil error; want one", in)
		}
	}
}

func TestDiskFilter(t *testing.T) {
	df := deviceFilter{re: regexp.MustCompile(defaultDiskExclude)}
	for dev, want := range map[string]bool{
		"sda": false, "sda1": true, "nvme0n1": false, "nvme0n1p3": true, "loop7": true, "ram0": true, "zram0": true,
		"dm-0": false, "md127": false, "vda": false, "vda2": true, "xvdb1": true, "sr0": false, "mmcblk0": false,
	} {
		if got := df.excluded(dev); got != want {
			t.Errorf("excluded(%q) = %v; want %v", dev, got, want)
		}
		if got := df.excluded(dev); got != want {
			t.Errorf("cached excluded(%q) = %v; want %v", dev, got, want)
		}
	}
}

func TestParseNetDev(t *testing.T) {
	var names interner
	got, err := parseNetDev(fixture(t, "proc/net/dev"), nil, &names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[1].device != "eth0" || got[1].v[0] != 9128371293 || got[1].v[8] != 1283718271 || got[2].device != "docker0" {
		t.Errorf("got %+v; want lo, eth0 (rx 9128371293, tx 1283718271), docker0, veth", got)
	}
	for _, in := range []string{"eth0: 1 2 3", "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
		"eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x"} {
		if _, err := parseNetDev([]byte(in), nil, &names); err == nil {
			t.Errorf("parseNetDev(%q): got nil error; want one", in)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	got, err := parseMountinfo([]byte(
		"29 1 253:0 / / rw,relatime shared:1 - ext4 /dev/root rw\n"+
			"66 29 8:1 / /home ro,relatime - xfs /dev/sda1 rw\n"+
			"67 29 8:2 / /var rw,relatime - ext4 /dev/sda2 rw,emergency_ro\n"+
			"68 29 8:3 / /srv rw,relatime - ext4 /dev/sda3 ro,errors=continue\n"+
			"901 29 0:61 / /mnt/a\\040b\\011c\\134 rw master:2 shared:3 - nfs4 srv:/x\\040y rw\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{device: "/dev/root", mountPoint: "/", fsType: "ext4", major: "253", minor: "0"},
		{device: "/dev/sda1", mountPoint: "/home", fsType: "xfs", major: "8", minor: "1", readOnly: true},
		// Read-only when the superblock says so, as node_exporter judges it.
		{device: "/dev/sda2", mountPoint: "/var", fsType: "ext4", major: "8", minor: "2", readOnly: true},
		{device: "/dev/sda3", mountPoint: "/srv", fsType: "ext4", major: "8", minor: "3", readOnly: true},
		{device: "srv:/x y", mountPoint: "/mnt/a b\tc\\", fsType: "nfs4", major: "0", minor: "61"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v; want %+v", got, want)
	}
	for _, in := range []string{"1 2 3 4 5 6 - ext4", "1 2 3 4 5 6 ext4 dev rw", "1 2 3 4 5 6 - ext4 dev rw", "1 2 8:x / /a rw - ext4 dev rw"} {
		if _, err := parseMountinfo([]byte(in), nil); err == nil {
			t.Errorf("parseMountinfo(%q): got nil error; want one", in)
		}
	}

	// Filtering the fixture keeps what node_exporter keeps.
	ms, err := parseMountinfo(fixture(t, "proc/1/mountinfo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ms = filterMounts(ms, regexp.MustCompile(defaultMountPointsExclude), regexp.MustCompile(defaultFSTypesExclude))
	var mps []string
	for _, m := range ms {
		mps = append(mps, m.mountPoint)
	}
	if want := []string{"/run", "/", "/boot/efi", "/boot", "/home", "/run/user/1000", "/mnt/backup disk"}; !reflect.DeepEqual(mps, want) {
		t.Errorf("filtered mount points = %q; want %q", mps, want)
	}

	// A mount point mounted over keeps only the top mount.
	ms = []mount{{mountPoint: "/data", fsType: "ext4", device: "a"}, {mountPoint: "/x", fsType: "xfs"}, {mountPoint: "/data", fsType: "xfs", device: "b"}}
	ms = filterMounts(ms, regexp.MustCompile(defaultMountPointsExclude), regexp.MustCompile(defaultFSTypesExclude))
	if len(ms) != 2 || ms[0].device != "b" {
		t.Errorf("over-mounted /data: got %+v; want the later mount only", ms)
	}
}

func TestParseSysfs(t *testing.T) {
	if v, ok := parseSysfsUint([]byte("1500\n")); !ok || v != 1500 {
		t.Errorf("parseSysfsUint(1500) = %d, %v; want 1500, true", v, ok)
	}
	if _, ok := parseSysfsUint([]byte("-1\n")); ok {
		t.Error("parseSysfsUint(-1) ok; want not ok")
	}
	fi := func(in string, want int64, wantOK bool) {
		t.Helper()
		if got, ok := parseSysfsInt([]byte(in)); got != want || ok != wantOK {
			t.Errorf("parseSysfsInt(%q) = %d, %v; want %d, %v", in, got, ok, want, wantOK)
		}
	}
	fi("0x1003\n", 4099, true)
	fi("-1\n", -1, true)
	fi("1500", 1500, true)
	fi("0x0\n", 0, true)
	fi("", 0, false)
	fi("up\n", 0, false)
}

// dirent builds one linux_dirent64 record.
func dirent(name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], 1)
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = 4
	copy(b[19:], name)
	return b
}

func TestCountPidDirents(t *testing.T) {
	var buf []byte
	for _, n := range []string{".", "..", "1", "42", "self", "sys", "1234", "12a"} {
		buf = append(buf, dirent(n)...)
	}
	n, err := countPidDirents(buf)
	if err != nil || n != 3 {
		t.Errorf("countPidDirents = %d, %v; want 3, nil", n, err)
	}
	if _, err := countPidDirents(buf[:len(buf)-3]); err == nil {
		t.Error("truncated buffer: got nil error; want one")
	}
	bad := dirent("1")
	binary.NativeEndian.PutUint16(bad[16:], 0)
	if _, err := countPidDirents(bad); err == nil {
		t.Error("zero record length: got nil error; want one")
	}
}

func TestParseUint(t *testing.T) {
	f := func(in string, want uint64, wantOK bool) {
		t.Helper()
		got, ok := parseUint([]byte(in))
		if got != want || ok != wantOK {
			t.Errorf("parseUint(%q) = %d, %v; want %d, %v", in, got, ok, want, wantOK)
		}
	}
	f("0", 0, true)
	f("18446744073709551615", 1<<64-1, true)
	f("18446744073709551616", 0, false)
	f("99999999999999999999", 0, false)
	f("", 0, false)
	f("1a", 0, false)
	f("-1", 0, false)
}

func TestFieldsCapped(t *testing.T) {
	var arr [3][]byte
	got := fields([]byte("  a\tbb  c d e"), arr[:0])
	if len(got) != 3 || string(got[0]) != "a" || string(got[1]) != "bb" || string(got[2]) != "c" {
		t.Errorf("fields = %q; want [a bb c]", got)
	}
}
