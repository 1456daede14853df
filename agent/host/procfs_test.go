package host

import (
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
)

// The parsers here are checked against github.com/prometheus/procfs (what
// node_exporter uses) on the fixture tree, value by value, and on this
// machine's /proc for the shape (same cpus, devices, interfaces): values
// move between two reads of a live system.

func procfsRoots(t *testing.T) []string {
	roots := []string{fixtureRoot}
	if _, err := os.Stat("/proc/stat"); err == nil {
		roots = append(roots, "/")
	}
	return roots
}

func readRoot(t *testing.T, root, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(root + "/" + rel)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestStatMatchesProcfs(t *testing.T) {
	for _, root := range procfsRoots(t) {
		live := root == "/"
		fs, err := procfs.NewFS(root + "/proc")
		if err != nil {
			t.Fatal(err)
		}
		want, err := fs.Stat()
		if err != nil {
			t.Fatal(err)
		}
		var got statInfo
		var names interner
		if err := parseStat(readRoot(t, root, "proc/stat"), &got, &names); err != nil {
			t.Fatal(err)
		}
		if len(got.cpus) != len(want.CPU) {
			t.Fatalf("%s: got %d cpus; procfs %d", root, len(got.cpus), len(want.CPU))
		}
		if got.btime != want.BootTime {
			t.Errorf("%s: btime = %d; procfs %d", root, got.btime, want.BootTime)
		}
		for _, c := range got.cpus {
			n, _ := strconv.ParseInt(c.cpu, 10, 64)
			w, ok := want.CPU[n]
			if !ok {
				t.Errorf("%s: cpu %s not in procfs", root, c.cpu)
				continue
			}
			if live {
				continue
			}
			ws := [10]float64{w.User, w.Nice, w.System, w.Idle, w.Iowait, w.IRQ, w.SoftIRQ, w.Steal, w.Guest, w.GuestNice}
			for i := range ws {
				if g := float64(c.v[i]) / userHZ; g != ws[i] {
					t.Errorf("%s: cpu %s field %d = %v s; procfs %v s", root, c.cpu, i, g, ws[i])
				}
			}
		}
		if !live && (got.intr != want.IRQTotal || got.ctxt != want.ContextSwitches || got.forks != want.ProcessCreated ||
			got.running != want.ProcessesRunning || got.blocked != want.ProcessesBlocked) {
			t.Errorf("%s: got %+v; procfs %+v", root, got, want)
		}
	}
}

func TestMeminfoMatchesProcfs(t *testing.T) {
	fs, err := procfs.NewFS(fixtureRoot + "/proc")
	if err != nil {
		t.Fatal(err)
	}
	want, err := fs.Meminfo()
	if err != nil {
		t.Fatal(err)
	}
	var names interner
	got, err := parseMeminfo(fixture(t, "proc/meminfo"), nil, &names)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]float64{}
	for _, e := range got {
		byName[e.name] = e.v
	}
	f := func(name string, w *uint64) {
		t.Helper()
		if w == nil {
			t.Errorf("procfs has no value for %s", name)
			return
		}
		if byName[name] != float64(*w) {
			t.Errorf("%s = %v; procfs %d", name, byName[name], *w)
		}
	}
	f("node_memory_MemTotal_bytes", want.MemTotalBytes)
	f("node_memory_MemAvailable_bytes", want.MemAvailableBytes)
	f("node_memory_SwapFree_bytes", want.SwapFreeBytes)
	f("node_memory_Active_anon_bytes", want.ActiveAnonBytes)
	f("node_memory_HugePages_Total", want.HugePagesTotal)
}

func TestDiskstatsMatchProcfs(t *testing.T) {
	for _, root := range procfsRoots(t) {
		fs, err := blockdevice.NewFS(root+"/proc", root+"/sys")
		if err != nil {
			t.Fatal(err)
		}
		want, err := fs.ProcDiskstats()
		if err != nil {
			t.Fatal(err)
		}
		var names interner
		got, err := parseDiskstats(readRoot(t, root, "proc/diskstats"), nil, &names)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %d devices; procfs %d", root, len(got), len(want))
		}
		for i, d := range got {
			w := want[i]
			// procfs counts the major, minor and name fields too.
			if d.device != w.DeviceName || d.n+3 != w.IoStatsCount {
				t.Errorf("%s: device %d = %s with %d counters; procfs %s with %d", root, i, d.device, d.n, w.DeviceName, w.IoStatsCount)
			}
			if root != "/" {
				ws := [17]uint64{w.ReadIOs, w.ReadMerges, w.ReadSectors, w.ReadTicks, w.WriteIOs, w.WriteMerges, w.WriteSectors, w.WriteTicks,
					w.IOsInProgress, w.IOsTotalTicks, w.WeightedIOTicks, w.DiscardIOs, w.DiscardMerges, w.DiscardSectors, w.DiscardTicks,
					w.FlushRequestsCompleted, w.TimeSpentFlushing}
				if d.v != ws {
					t.Errorf("%s: %s counters = %v; procfs %v", root, d.device, d.v, ws)
				}
			}
		}
	}
}

func TestNetDevMatchesProcfs(t *testing.T) {
	for _, root := range procfsRoots(t) {
		fs, err := procfs.NewFS(root + "/proc")
		if err != nil {
			t.Fatal(err)
		}
		want, err := fs.NetDev()
		if err != nil {
			t.Fatal(err)
		}
		var names interner
		got, err := parseNetDev(readRoot(t, root, "proc/net/dev"), nil, &names)
		if err != nil {
			t.Fatal(err)
		}
		var gotNames, wantNames []string
		for _, d := range got {
			gotNames = append(gotNames, d.device)
			w := want[d.device]
			ws := [16]uint64{w.RxBytes, w.RxPackets, w.RxErrors, w.RxDropped, w.RxFIFO, w.RxFrame, w.RxCompressed, w.RxMulticast,
				w.TxBytes, w.TxPackets, w.TxErrors, w.TxDropped, w.TxFIFO, w.TxCollisions, w.TxCarrier, w.TxCompressed}
			if root != "/" && d.v != ws {
				t.Errorf("%s: %s = %v; procfs %v", root, d.device, d.v, ws)
			}
		}
		for n := range want {
			wantNames = append(wantNames, n)
		}
		slices.Sort(gotNames)
		slices.Sort(wantNames)
		if !slices.Equal(gotNames, wantNames) {
			t.Errorf("%s: interfaces %q; procfs %q", root, gotNames, wantNames)
		}
	}
}

func TestMountinfoMatchesProcfs(t *testing.T) {
	for _, root := range procfsRoots(t) {
		path := root + "/proc/1/mountinfo"
		data, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("%s: %v", path, err)
		}
		fs, err := procfs.NewFS(root + "/proc")
		if err != nil {
			t.Fatal(err)
		}
		p, err := fs.Proc(1)
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.MountInfo()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseMountinfo(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %d mounts; procfs %d", root, len(got), len(want))
		}
		for i, m := range got {
			w := want[i]
			// procfs keeps the \040 escapes; compare what it reports.
			if m.fsType != w.FSType || unescapeMount([]byte(w.MountPoint)) != m.mountPoint || unescapeMount([]byte(w.Source)) != m.device {
				t.Errorf("%s: mount %d = %+v; procfs %s %s %s", root, i, m, w.Source, w.MountPoint, w.FSType)
			}
			_, ro := w.Options["ro"]
			if ro != m.readOnly {
				t.Errorf("%s: %s readOnly = %v; procfs options %v", root, m.mountPoint, m.readOnly, w.Options)
			}
		}
	}
}
