package host

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/samples"
)

const fixtureRoot = "testdata/root"

// seriesString renders a series as name{a="b",...} in the batch's label
// order (which Collect promises is sorted).
func seriesString(b *samples.Batch, s *samples.Series) string {
	var sb strings.Builder
	sb.WriteString(b.Name(s))
	sb.WriteByte('{')
	first := true
	for _, lb := range b.SeriesLabels(s) {
		if lb.Name == "__name__" {
			continue
		}
		if !first {
			sb.WriteByte(',')
		}
		first = false
		sb.WriteString(lb.Name + "=" + strconv.Quote(lb.Value))
	}
	sb.WriteByte('}')
	return sb.String()
}

// collectMap runs one Collect and returns series -> value, failing the
// test on duplicate series, unsorted labels or wrong timestamps.
func collectMap(t testing.TB, c *Collector, now time.Time) (map[string]float64, error) {
	t.Helper()
	var b samples.Batch
	err := c.Collect(now, &b)
	m := make(map[string]float64, len(b.Series))
	for i := range b.Series {
		s := &b.Series[i]
		ls := b.SeriesLabels(s)
		if !slices.IsSortedFunc(ls, func(x, y samples.Label) int { return strings.Compare(x.Name, y.Name) }) {
			t.Fatalf("labels of %s are not sorted: %v", seriesString(&b, s), ls)
		}
		for j := 1; j < len(ls); j++ {
			if ls[j].Name == ls[j-1].Name {
				t.Fatalf("label %q twice in %s", ls[j].Name, seriesString(&b, s))
			}
		}
		ss := b.SeriesSamples(s)
		if len(ss) != 1 || ss[0].T != now.UnixMilli() {
			t.Fatalf("samples of %s = %v; want one at %d", seriesString(&b, s), ss, now.UnixMilli())
		}
		if s.Key != nil {
			t.Fatalf("Key of %s = %q; want nil", seriesString(&b, s), s.Key)
		}
		k := seriesString(&b, s)
		if _, dup := m[k]; dup {
			t.Fatalf("series %s appended twice", k)
		}
		m[k] = ss[0].V
	}
	return m, err
}

func TestCollectFixture(t *testing.T) {
	c := New(Options{Root: fixtureRoot, Labels: []samples.Label{{Name: "env", Value: "prod"}}})
	now := time.UnixMilli(1718000123456)
	got, err := collectMap(t, c, now)
	if err != nil {
		t.Fatalf("Collect on the fixture: %v", err)
	}
	const common = `env="prod",instance="web-01",job="node"`
	f := func(series string, want float64) {
		t.Helper()
		v, ok := got[series]
		if !ok {
			t.Errorf("series %s missing", series)
			return
		}
		if v != want {
			t.Errorf("%s = %v; want %v", series, v, want)
		}
	}
	// /proc/stat
	f(`node_cpu_seconds_total{cpu="0",`+common+`,mode="user"}`, 3052.31)
	f(`node_cpu_seconds_total{cpu="3",`+common+`,mode="idle"}`, 132231.89)
	f(`node_cpu_seconds_total{cpu="3",`+common+`,mode="steal"}`, 0.12)
	f(`node_cpu_guest_seconds_total{cpu="3",`+common+`,mode="user"}`, 0.31)
	f(`node_cpu_guest_seconds_total{cpu="3",`+common+`,mode="nice"}`, 0.02)
	f(`node_intr_total{`+common+`}`, 120381749)
	f(`node_context_switches_total{`+common+`}`, 289120554)
	f(`node_boot_time_seconds{`+common+`}`, 1718000000)
	f(`node_forks_total{`+common+`}`, 1480219)
	f(`node_procs_running{`+common+`}`, 2)
	f(`node_procs_blocked{`+common+`}`, 1)
	// /proc/loadavg and /proc
	f(`node_load1{`+common+`}`, 0.42)
	f(`node_load5{`+common+`}`, 0.35)
	f(`node_load15{`+common+`}`, 0.30)
	f(`node_processes_threads{`+common+`}`, 1013)
	f(`node_processes_pids{`+common+`}`, 3)
	// /proc/meminfo, /proc/vmstat
	f(`node_memory_MemTotal_bytes{`+common+`}`, 24684084*1024)
	f(`node_memory_MemAvailable_bytes{`+common+`}`, 24232956*1024)
	f(`node_memory_Active_anon_bytes{`+common+`}`, 1552*1024)
	f(`node_memory_SwapTotal_bytes{`+common+`}`, 2097148*1024)
	f(`node_memory_SwapFree_bytes{`+common+`}`, 2031612*1024)
	f(`node_memory_HugePages_Total{`+common+`}`, 0)
	f(`node_vmstat_pgfault{`+common+`}`, 13170501)
	f(`node_vmstat_pgmajfault{`+common+`}`, 961)
	f(`node_vmstat_pgpgin{`+common+`}`, 600993)
	f(`node_vmstat_oom_kill{`+common+`}`, 0)
	// /proc/diskstats
	f(`node_disk_read_bytes_total{device="nvme0n1",`+common+`}`, 74412536*512)
	f(`node_disk_written_bytes_total{device="nvme0n1",`+common+`}`, 238702162*512)
	f(`node_disk_reads_completed_total{device="nvme0n1",`+common+`}`, 1281436)
	f(`node_disk_io_time_seconds_total{device="nvme0n1",`+common+`}`, 2461.672)
	f(`node_disk_flush_requests_total{device="nvme0n1",`+common+`}`, 482177)
	f(`node_disk_discards_completed_total{device="sda",`+common+`}`, 1033)
	f(`node_disk_reads_completed_total{device="dm-0",`+common+`}`, 1582129)
	f(`node_disk_reads_completed_total{device="sr0",`+common+`}`, 0)
	// /proc/net/dev, /sys/class/net
	f(`node_network_receive_bytes_total{device="eth0",`+common+`}`, 9128371293)
	f(`node_network_receive_drop_total{device="eth0",`+common+`}`, 17)
	f(`node_network_receive_errs_total{device="eth0",`+common+`}`, 3)
	f(`node_network_receive_multicast_total{device="eth0",`+common+`}`, 41238)
	f(`node_network_transmit_packets_total{device="docker0",`+common+`}`, 32812)
	f(`node_network_transmit_drop_total{device="docker0",`+common+`}`, 2)
	f(`node_network_receive_bytes_total{device="veth3a1f2c9",`+common+`}`, 1382711)
	f(`node_network_up{device="eth0",`+common+`}`, 1)
	f(`node_network_up{device="docker0",`+common+`}`, 0)
	f(`node_network_up{device="lo",`+common+`}`, 0)
	f(`node_network_mtu_bytes{device="lo",`+common+`}`, 65536)
	// /proc/sys
	f(`node_filefd_allocated{`+common+`}`, 11872)
	f(`node_filefd_maximum{`+common+`}`, 9223372036854775807)
	f(`node_time_seconds{`+common+`}`, 1718000123.456)
	f(`node_uname_info{domainname="(none)",`+common+`,machine="x86_64",nodename="web-01",release="6.8.0-45-generic",sysname="Linux",version="#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024"}`, 1)
	// filesystems: the fixture directories exist, so statfs works on them.
	for _, fs := range []string{
		fsKey("/dev/mapper/ubuntu--vg-root", "ext4", "/"),
		fsKey("/dev/nvme0n1p2", "ext4", "/boot"),
		fsKey("/dev/nvme0n1p1", "vfat", "/boot/efi"),
		fsKey("tmpfs", "tmpfs", "/run"),
	} {
		f(`node_filesystem_device_error{`+fs+`}`, 0)
		f(`node_filesystem_readonly{`+fs+`}`, 0)
		if got[`node_filesystem_size_bytes{`+fs+`}`] <= 0 {
			t.Errorf("node_filesystem_size_bytes{%s} = %v; want > 0", fs, got[`node_filesystem_size_bytes{`+fs+`}`])
		}
		for _, m := range []string{"free_bytes", "avail_bytes", "files", "files_free"} {
			if _, ok := got[`node_filesystem_`+m+`{`+fs+`}`]; !ok {
				t.Errorf("node_filesystem_%s{%s} missing", m, fs)
			}
		}
	}
	f(`node_filesystem_readonly{`+fsKey("/dev/sda1", "xfs", "/home")+`}`, 1)
	// not in the fixture tree: statfs fails, and node_exporter's
	// device_error label says why.
	const enoent = `device_error="no such file or directory",`
	f(`node_filesystem_device_error{`+strings.Replace(fsKey("tmpfs", "tmpfs", "/run/user/1000"), `env=`, enoent+`env=`, 1)+`}`, 1)
	f(`node_filesystem_device_error{`+strings.Replace(fsKey("nas:/export/backup", "nfs4", "/mnt/backup disk"), `env=`, enoent+`env=`, 1)+`}`, 1)
	f(`node_filesystem_readonly{`+strings.Replace(fsKey("nas:/export/backup", "nfs4", "/mnt/backup disk"), `env=`, enoent+`env=`, 1)+`}`, 0)
	f(`node_filesystem_mount_info{device="/dev/nvme0n1p2",`+common+`,major="259",minor="2",mountpoint="/boot"}`, 1)
	f(`node_filesystem_purgeable_bytes{`+fsKey("/dev/nvme0n1p2", "ext4", "/boot")+`}`, 0)

	// The collectors node_exporter added since: one value each from the
	// fixture's real files.
	f(`node_netstat_Tcp_InSegs{`+common+`}`, 31905)
	f(`node_netstat_IpExt_InOctets{`+common+`}`, 575455737)
	f(`node_netstat_Ip6_InOctets{`+common+`}`, 128)
	f(`node_netstat_TcpExt_ListenDrops{`+common+`}`, 0)
	f(`node_sockstat_TCP_mem_bytes{`+common+`}`, 304*float64(os.Getpagesize()))
	f(`node_sockstat_sockets_used{`+common+`}`, 15)
	f(`node_sockstat_FRAG6_memory{`+common+`}`, 0)
	f(`node_softnet_processed_total{cpu="1",`+common+`}`, 0x7ae4)
	f(`node_softnet_times_squeezed_total{cpu="1",`+common+`}`, 1)
	f(`node_softnet_backlog_len{cpu="0",`+common+`}`, 0)
	f(`node_pressure_cpu_waiting_seconds_total{`+common+`}`, 429.256985)
	f(`node_pressure_irq_stalled_seconds_total{`+common+`}`, 0.008494)
	f(`node_nf_conntrack_entries{`+common+`}`, 123)
	f(`node_nf_conntrack_stat_invalid{`+common+`}`, 3+2+1+0x2f)
	f(`node_nf_conntrack_stat_ignore{`+common+`}`, 0x588a+0x56a4+0x58d4+0x5688)
	f(`node_nf_conntrack_stat_search_restart{`+common+`}`, 2+1+4)
	f(`node_arp_entries{device="eth0",`+common+`}`, 3)
	f(`node_arp_entries{device="eth1",`+common+`}`, 3)
	f(`node_udp_queues{env="prod",instance="web-01",ip="v4",job="node",queue="tx"}`, 0x15)
	f(`node_udp_queues{env="prod",instance="web-01",ip="v6",job="node",queue="rx"}`, 0)
	f(`node_entropy_available_bits{`+common+`}`, 256)
	f(`node_network_info{address="02:fc:00:00:00:01",adminstate="up",broadcast="ff:ff:ff:ff:ff:ff",device="eth0",duplex="unknown",`+common+`,operstate="up"}`, 1)
	f(`node_network_flags{device="eth0",`+common+`}`, 0x1003)
	f(`node_network_speed_bytes{device="eth0",`+common+`}`, -125000)
	f(`node_network_carrier_changes_total{device="eth0",`+common+`}`, 2)
	f(`node_network_receive_nohandler_total{device="eth0",`+common+`}`, 0)
	f(`node_disk_info{device="sda",`+common+`,major="8",minor="0",model="TOSHIBA_KSDB4U86",path="pci-0000:3b:00.0-sas-phy7-lun-0",revision="0102",rotational="1",serial="2160A0D5FVGG",wwn="0x7c72382b8de36a64"}`, 1)
	f(`node_disk_info{device="nvme0n1",`+common+`,major="259",minor="0",model="SAMSUNG EHFTF55LURSY-000Y9",path="pci-0000:02:00.0-nvme-1",revision="4NBTUY95",rotational="0",serial="S252B6CU1HG3M1",wwn="eui.p3vbbiejx5aae2r3"}`, 1)
	f(`node_disk_ata_rotation_rate_rpm{device="sda",`+common+`}`, 7200)
	f(`node_disk_filesystem_info{device="sda",`+common+`,type="LVM2_member",usage="raid",uuid="cVVv6j-HSA2-IY33-1Jmj-dO2H-YL7w-b4Oxqw",version="LVM2 001"}`, 1)
	f(`node_disk_device_mapper_info{device="dm-0",`+common+`,name="nvme0n1_crypt",uuid="CRYPT-LUKS2-jolaulot80fy9zsiobkxyxo7y2dqeho2-nvme0n1_crypt"}`, 1)
	f(`node_os_info{env="prod",id="debian",instance="web-01",job="node",name="Debian GNU/Linux",pretty_name="Debian GNU/Linux 12 (bookworm)",version="12 (bookworm)",version_codename="bookworm",version_id="12"}`, 1)
	f(`node_os_version{env="prod",id="debian",instance="web-01",job="node",name="Debian GNU/Linux"}`, 12)
	f(`node_time_clocksource_current_info{clocksource="tsc",device="0",`+common+`}`, 1)
	f(`node_time_clocksource_available_info{clocksource="kvm-clock",device="0",`+common+`}`, 1)
	f(`node_time_zone_offset_seconds{`+common+`,time_zone="UTC"}`, 0)
	f(`node_selinux_enabled{`+common+`}`, 0)
	f(`node_kernel_hung_tasks_total{`+common+`}`, 0)
	f(`node_schedstat_running_seconds_total{cpu="1",`+common+`}`, 1904686152592476/1e9)
	f(`node_schedstat_timeslices_total{cpu="0",`+common+`}`, 4767485306)
	f(`node_textfile_scrape_error{`+common+`}`, 0)
	if n := countPrefix(got, "node_timex_"); n != 17 {
		t.Errorf("got %d node_timex_ series; want 17", n)
	}
	for _, coll := range []string{"arp", "conntrack", "cpu", "diskstats", "entropy", "filefd", "filesystem", "kernel_hung", "loadavg",
		"meminfo", "netclass", "netdev", "netstat", "os", "pressure", "processes", "schedstat", "selinux", "sockstat", "softnet", "stat",
		"textfile", "time", "timex", "udp_queues", "uname", "vmstat"} {
		f(`node_scrape_collector_success{collector="`+coll+`",`+common+`}`, 1)
		if _, ok := got[`node_scrape_collector_duration_seconds{collector="`+coll+`",`+common+`}`]; !ok {
			t.Errorf("no node_scrape_collector_duration_seconds for %s", coll)
		}
	}

	// What node_exporter leaves out by default must stay out.
	for k := range got {
		for _, bad := range []string{
			`device="nvme0n1p1",` + common + `}`, `device="sda1",` + common + `}`, `device="loop0"`, `device="zram0"`,
			`cpu="",`, `mountpoint="/sys"`, `mountpoint="/proc"`, `mountpoint="/dev`, `mountpoint="/snap`,
			`mountpoint="/var/lib/docker`, `mountpoint="/run/docker`, `mountpoint="/run/credentials`, `fstype="overlay"`,
		} {
			if strings.HasPrefix(k, "node_disk_") || strings.HasPrefix(k, "node_filesystem_") || strings.HasPrefix(k, "node_cpu") {
				if strings.Contains(k, bad) {
					t.Errorf("series %s should be excluded (matches %s)", k, bad)
				}
			}
		}
		if !strings.Contains(k, `instance="web-01",`) || !strings.Contains(k, `job="node"`) || !strings.Contains(k, `env="prod"`) {
			t.Errorf("series %s lacks the common labels", k)
		}
	}
	if n := countPrefix(got, "node_cpu_seconds_total{"); n != 4*8 {
		t.Errorf("got %d node_cpu_seconds_total series; want 4 cpus * 8 modes", n)
	}
	if n := countPrefix(got, "node_disk_reads_completed_total{"); n != 4 {
		t.Errorf("got %d disks; want 4 (nvme0n1 sda dm-0 sr0)", n)
	}
	if n := countPrefix(got, "node_filesystem_device_error{"); n != 7 {
		t.Errorf("got %d filesystems; want 7", n)
	}
}

func fsKey(device, fstype, mountpoint string) string {
	return `device=` + strconv.Quote(device) + `,env="prod",fstype=` + strconv.Quote(fstype) + `,instance="web-01",job="node",mountpoint=` + strconv.Quote(mountpoint)
}

func countPrefix(m map[string]float64, p string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, p) {
			n++
		}
	}
	return n
}

func TestCollectLabelPrecedence(t *testing.T) {
	c := New(Options{Root: fixtureRoot, Instance: "db-7:9100", Labels: []samples.Label{
		{Name: "job", Value: "hosts"}, {Name: "device", Value: "ignored-where-series-has-one"}, {Name: "Zone", Value: "A"},
	}})
	now := time.UnixMilli(1)
	got, err := collectMap(t, c, now)
	if err != nil {
		t.Fatal(err)
	}
	f := func(series string, want float64) {
		t.Helper()
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", series, v, ok, want)
		}
	}
	// Upper-case names sort before __name__, which seriesString skips.
	f(`node_load1{Zone="A",device="ignored-where-series-has-one",instance="db-7:9100",job="hosts"}`, 0.42)
	f(`node_network_up{Zone="A",device="eth0",instance="db-7:9100",job="hosts"}`, 1)
}

func TestCollectMissingFiles(t *testing.T) {
	c := New(Options{Root: t.TempDir(), Instance: "x"})
	got, err := collectMap(t, c, time.UnixMilli(5))
	if err == nil {
		t.Fatal("Collect on an empty root: got nil error; want the files it could not read")
	}
	if !strings.Contains(err.Error(), "proc/stat") || !strings.Contains(err.Error(), "proc/meminfo") {
		t.Errorf("error %q does not name the missing files", err)
	}
	if v, ok := got[`node_scrape_collector_success{collector="stat",instance="x",job="node"}`]; !ok || v != 0 {
		t.Errorf(`node_scrape_collector_success{collector="stat"} = %v (present %v); want 0`, v, ok)
	}
	if _, ok := got[`node_time_seconds{instance="x",job="node"}`]; !ok {
		t.Errorf("node_time_seconds missing; the collectors that can work must still report")
	}
}

// copyTree copies the fixture so a test can change it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS(src))
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCollectMountTableChanges(t *testing.T) {
	root := copyTree(t, fixtureRoot)
	c := New(Options{Root: root, Instance: "x"})
	mp := `node_filesystem_device_error{device="/dev/sdb1",device_error="no such file or directory",fstype="ext4",instance="x",job="node",mountpoint="/data"}`
	got, err := collectMap(t, c, time.UnixMilli(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[mp]; ok {
		t.Fatalf("%s present before the mount", mp)
	}
	info := filepath.Join(root, "proc/1/mountinfo")
	data, err := os.ReadFile(info)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "950 29 8:17 / /data rw,relatime shared:600 - ext4 /dev/sdb1 rw\n"...)
	if err := os.WriteFile(info, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = collectMap(t, c, time.UnixMilli(2))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got[mp]; !ok || v != 1 {
		t.Errorf("after mounting /data: %s = %v (present %v); want 1 (no /data in the tree)", mp, v, ok)
	}

	// Without /proc/1/mountinfo (hidepid, no host PID namespace) the
	// collector falls back to /proc/self/mountinfo.
	if err := os.Remove(info); err != nil {
		t.Fatal(err)
	}
	got, err = collectMap(t, c, time.UnixMilli(3))
	if err != nil {
		t.Fatalf("Collect without /proc/1/mountinfo: %v", err)
	}
	if _, ok := got[mp]; ok {
		t.Errorf("%s present though /proc/self/mountinfo lacks it", mp)
	}
	if _, ok := got[`node_filesystem_device_error{device="/dev/nvme0n1p2",fstype="ext4",instance="x",job="node",mountpoint="/boot"}`]; !ok {
		t.Errorf("/boot missing after falling back to /proc/self/mountinfo")
	}
}

func TestCollectRealHost(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	c := New(Options{})
	got, err := collectMap(t, c, time.Now())
	if err != nil {
		t.Fatalf("Collect on this host: %v", err)
	}
	for _, name := range []string{"node_load1{", "node_memory_MemTotal_bytes{", "node_context_switches_total{", "node_boot_time_seconds{", "node_cpu_seconds_total{", "node_network_receive_bytes_total{", "node_uname_info{"} {
		if countPrefix(got, name) == 0 {
			t.Errorf("no %s...} series on this host", name)
		}
	}
}

func TestStatfsTimeout(t *testing.T) {
	// A network filesystem whose statfs never answers: simulate with a
	// mount point whose stuck flag is set, as after a timeout.
	c := New(Options{Root: fixtureRoot})
	m := &fsMount{mount: mount{mountPoint: "/mnt/nfs", fsType: "nfs4"}, path: []byte("/nonexistent\x00"), network: true}
	c.stuck["/mnt/nfs"] = true
	var st fsStat
	if err := c.statfs(m, &st); err == nil || !strings.Contains(err.Error(), "still hanging") {
		t.Errorf("statfs on a stuck mount: got %v; want an error saying it still hangs", err)
	}
	delete(c.stuck, "/mnt/nfs")
	err := c.statfs(m, &st)
	if err == nil || !isNotExist(err) {
		t.Errorf("statfs on a missing network mount: got %v; want ENOENT", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not match os.ErrNotExist", err)
	}
}
