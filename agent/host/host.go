// Package host reads a Linux host's metrics from /proc and /sys under a
// configurable root and appends them to a samples.Batch under
// node_exporter's metric names and labels, so dashboards built for
// node_exporter work unchanged.
//
// Both the agent and the collector (for its own host) use it. A Collector
// is cheap to run every few seconds: it reads each kernel file into a
// reused buffer with raw system calls, parses it in place, interns device
// and cpu names, re-parses the mount table only when it changed, and
// allocates nothing per cycle once its buffers and the destination batch
// have grown.
//
// Each kernel file has its own file here: parseX([]byte) is pure and has a
// fuzz target; the Collector reads the file under Options.Root and emits
// the series. Parsers take the bytes instead of an io.Reader so they can
// slice the buffer instead of copying lines.
//
// What is collected, by node_exporter collector name:
//
//	stat        node_cpu_seconds_total{cpu,mode}, node_cpu_guest_seconds_total,
//	            node_intr_total, node_context_switches_total, node_boot_time_seconds,
//	            node_forks_total, node_procs_running, node_procs_blocked
//	loadavg     node_load1, node_load5, node_load15, node_processes_threads
//	processes   node_processes_pids (numeric entries of /proc)
//	meminfo     node_memory_<Key>[_bytes] for every /proc/meminfo line (swap included)
//	vmstat      node_vmstat_<key> for oom_kill, pgpg*, pswp*, pg*fault*
//	diskstats   node_disk_*{device} (partitions, loop and ram devices excluded)
//	filesystem  node_filesystem_{size,free,avail}_bytes, _files, _files_free,
//	            _readonly, _device_error {device,fstype,mountpoint}
//	netdev      node_network_{receive,transmit}_*_total{device}
//	netclass    node_network_up{device}, node_network_mtu_bytes{device}
//	filefd      node_filefd_allocated, node_filefd_maximum
//	time        node_time_seconds
//	uname       node_uname_info{domainname,machine,nodename,release,sysname,version}
//
// plus node_scrape_collector_success{collector} for each of them. Every
// series also carries instance, job="node" and Options.Labels; the labels of
// every series are sorted by name and unique.
package host

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/samples"
)

// Options configures a Collector. The zero value reads the running system
// with the hostname as instance.
type Options struct {
	// Root is the host's root directory: /proc and /sys are read below it
	// and filesystems are statfs'ed below it. "" means "/". A container
	// mounts the host's / (or /proc and /sys) and passes it here.
	Root string
	// Instance is the value of the instance label. "" means the host name
	// (Root's /proc/sys/kernel/hostname, else os.Hostname).
	Instance string
	// Labels are added to every series; they override instance and job,
	// and a series' own labels (cpu, device ...) override them. Names must
	// be valid label names; the caller validates them.
	Labels []samples.Label
	// StatfsTimeout bounds statfs on network filesystems (NFS, CIFS, FUSE
	// ...), which hang when their server is gone. Zero means 5s. A mount
	// that timed out is reported with device_error=1 and not asked again
	// until the hung call returns.
	StatfsTimeout time.Duration
}

// Collector reads host metrics. It is safe for concurrent use; calls to
// Collect are serialized.
type Collector struct {
	mu   sync.Mutex
	opts Options

	inited bool
	common []samples.Label // instance, job, Options.Labels; sorted, unique

	// NUL-terminated paths, built once.
	pStat, pLoadavg, pMeminfo, pVmstat, pDiskstats, pNetDev, pFileNr, pProc []byte
	pMount1, pMountSelf                                                     []byte
	useMountSelf                                                            bool
	sysNet                                                                  string // Root + /sys/class/net/

	buf     []byte // read buffer
	pathBuf []byte // scratch for per-device paths
	names   interner
	memN    interner
	vmN     interner

	st    statInfo
	la    loadavg
	fn    fileNr
	mem   []memEntry
	vm    []vmEntry
	disks []diskStat
	nets  []netDev

	diskFilter deviceFilter
	mpExclude  *regexp.Regexp
	fsExclude  *regexp.Regexp

	mountRaw []byte // mountinfo as last parsed
	mounts   []fsMount
	stuckMu  sync.Mutex
	stuck    map[string]bool // mount points with a statfs still hanging

	uname unameInfo

	// set during Collect
	dst *samples.Batch
	ts  int64
}

// New returns a Collector for opts. It does no I/O; the first Collect reads
// what never changes (uname, host name).
func New(opts Options) *Collector {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.StatfsTimeout <= 0 {
		opts.StatfsTimeout = 5 * time.Second
	}
	opts.Labels = slices.Clone(opts.Labels)
	return &Collector{
		opts:       opts,
		diskFilter: deviceFilter{re: regexp.MustCompile(defaultDiskExclude)},
		mpExclude:  regexp.MustCompile(defaultMountPointsExclude),
		fsExclude:  regexp.MustCompile(defaultFSTypesExclude),
		stuck:      make(map[string]bool),
	}
}

// Collect appends every host series with timestamp t (in milliseconds) to
// dst. Series.Key is nil. A kernel file that cannot be read or parsed is
// skipped (its node_scrape_collector_success is 0) and its error is part of
// the returned error; the other series are appended all the same.
func (c *Collector) Collect(t time.Time, dst *samples.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inited {
		c.init()
	}
	c.dst, c.ts = dst, t.UnixMilli()
	defer func() { c.dst = nil }()

	var errs []error
	check := func(collector string, err error) {
		v := 1.0
		if err != nil {
			v = 0
			errs = append(errs, err)
		}
		c.add("node_scrape_collector_success", v, l("collector", collector))
	}
	check("stat", c.collectStat())
	check("loadavg", c.collectLoadavg())
	check("processes", c.collectPids())
	check("meminfo", c.collectMeminfo())
	check("vmstat", c.collectVmstat())
	check("diskstats", c.collectDiskstats())
	check("filesystem", c.collectFilesystems())
	check("netdev", c.collectNetDev())
	check("netclass", c.collectNetClass())
	check("filefd", c.collectFileNr())
	c.add("node_time_seconds", float64(t.UnixNano())/1e9)
	check("time", nil)
	c.emitUname()
	check("uname", nil)
	return errors.Join(errs...)
}

func (c *Collector) init() {
	root := strings.TrimSuffix(c.opts.Root, "/")
	p := func(rel string) []byte { return append([]byte(root+rel), 0) }
	c.pStat = p("/proc/stat")
	c.pLoadavg = p("/proc/loadavg")
	c.pMeminfo = p("/proc/meminfo")
	c.pVmstat = p("/proc/vmstat")
	c.pDiskstats = p("/proc/diskstats")
	c.pNetDev = p("/proc/net/dev")
	c.pFileNr = p("/proc/sys/fs/file-nr")
	c.pProc = p("/proc")
	c.pMount1 = p("/proc/1/mountinfo")
	c.pMountSelf = p("/proc/self/mountinfo")
	c.sysNet = root + "/sys/class/net/"

	c.uname = c.readUname(root)
	instance := c.opts.Instance
	if instance == "" {
		instance = c.uname.nodename
	}
	if instance == "" {
		instance, _ = os.Hostname()
	}
	common := []samples.Label{{Name: "instance", Value: instance}, {Name: "job", Value: "node"}}
	for _, lb := range c.opts.Labels {
		if i := slices.IndexFunc(common, func(x samples.Label) bool { return x.Name == lb.Name }); i >= 0 {
			common[i] = lb
		} else {
			common = append(common, lb)
		}
	}
	slices.SortFunc(common, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	c.common = common
	c.inited = true
}

// l makes a label; it keeps the add calls short.
func l(name, value string) samples.Label { return samples.Label{Name: name, Value: value} }

// add appends one series with one sample to c.dst. ls must be sorted by
// name and must not contain __name__. Its labels win over c.common.
func (c *Collector) add(name string, v float64, ls ...samples.Label) {
	b := c.dst
	b.StartSeries(nil)
	own, nOwn, j := 0, len(ls)+1, 0
	for own < nOwn || j < len(c.common) {
		if own < nOwn {
			ol := samples.Label{Name: "__name__", Value: name}
			if own > 0 {
				ol = ls[own-1]
			}
			if j >= len(c.common) || ol.Name <= c.common[j].Name {
				if j < len(c.common) && ol.Name == c.common[j].Name {
					j++
				}
				b.AddLabel(ol.Name, ol.Value)
				own++
				continue
			}
		}
		b.AddLabel(c.common[j].Name, c.common[j].Value)
		j++
	}
	b.AddSample(c.ts, v)
}

func (c *Collector) read(path []byte) ([]byte, error) {
	var err error
	c.buf, err = readFileInto(path, c.buf)
	return c.buf, err
}

func (c *Collector) collectStat() error {
	data, err := c.read(c.pStat)
	if err != nil {
		return err
	}
	if err := parseStat(data, &c.st, &c.names); err != nil {
		return err
	}
	c.emitStat(&c.st)
	return nil
}

func (c *Collector) collectLoadavg() error {
	data, err := c.read(c.pLoadavg)
	if err != nil {
		return err
	}
	if err := parseLoadavg(data, &c.la); err != nil {
		return err
	}
	c.emitLoadavg(&c.la)
	return nil
}

func (c *Collector) collectPids() error {
	n, buf, err := countPids(c.pProc, c.buf)
	c.buf = buf
	if err != nil {
		return err
	}
	c.add("node_processes_pids", float64(n))
	return nil
}

func (c *Collector) collectMeminfo() error {
	data, err := c.read(c.pMeminfo)
	if err != nil {
		return err
	}
	c.mem, err = parseMeminfo(data, c.mem, &c.memN)
	if err != nil {
		return err
	}
	c.emitMem(c.mem)
	return nil
}

func (c *Collector) collectVmstat() error {
	data, err := c.read(c.pVmstat)
	if err != nil {
		return err
	}
	c.vm, err = parseVmstat(data, c.vm, &c.vmN)
	if err != nil {
		return err
	}
	c.emitMem(c.vm)
	return nil
}

func (c *Collector) collectDiskstats() error {
	data, err := c.read(c.pDiskstats)
	if err != nil {
		return err
	}
	c.disks, err = parseDiskstats(data, c.disks, &c.names)
	if err != nil {
		return err
	}
	c.emitDiskstats(c.disks)
	return nil
}

func (c *Collector) collectNetDev() error {
	data, err := c.read(c.pNetDev)
	if err != nil {
		c.nets = c.nets[:0]
		return err
	}
	c.nets, err = parseNetDev(data, c.nets, &c.names)
	if err != nil {
		return err
	}
	c.emitNetDev(c.nets)
	return nil
}

// collectNetClass reads operstate and mtu of the interfaces netdev found.
// An interface that vanished in between is skipped.
func (c *Collector) collectNetClass() error {
	var firstErr error
	for i := range c.nets {
		dev := c.nets[i].device
		data, err := c.read(c.devPath(dev, "/operstate"))
		if err != nil {
			if !isNotExist(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		up := 0.0
		if parseOperstate(data) {
			up = 1
		}
		c.add("node_network_up", up, l("device", dev))
		data, err = c.read(c.devPath(dev, "/mtu"))
		if err != nil {
			continue
		}
		if mtu, ok := parseSysfsUint(data); ok {
			c.add("node_network_mtu_bytes", float64(mtu), l("device", dev))
		}
	}
	return firstErr
}

func (c *Collector) devPath(dev, file string) []byte {
	b := append(c.pathBuf[:0], c.sysNet...)
	b = append(b, dev...)
	b = append(b, file...)
	b = append(b, 0)
	c.pathBuf = b
	return b
}

func (c *Collector) collectFileNr() error {
	data, err := c.read(c.pFileNr)
	if err != nil {
		return err
	}
	if err := parseFileNr(data, &c.fn); err != nil {
		return err
	}
	c.emitFileNr(&c.fn)
	return nil
}

// unameInfo holds the node_uname_info labels.
type unameInfo struct {
	domainname, machine, nodename, release, sysname, version string
}

// readUname reads the uname fields from Root's /proc/sys/kernel once:
// they change only with a reboot (or a host rename, which the agent's
// restart picks up).
func (c *Collector) readUname(root string) unameInfo {
	get := func(name string) string {
		data, err := readFileInto(append([]byte(root+"/proc/sys/kernel/"+name), 0), nil)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(data))
	}
	u := unameInfo{
		domainname: get("domainname"),
		machine:    get("arch"),
		nodename:   get("hostname"),
		release:    get("osrelease"),
		sysname:    get("ostype"),
		version:    get("version"),
	}
	if u.machine == "" {
		u.machine = unameMachine()
	}
	return u
}

func (c *Collector) emitUname() {
	u := &c.uname
	c.add("node_uname_info", 1,
		l("domainname", u.domainname), l("machine", u.machine), l("nodename", u.nodename),
		l("release", u.release), l("sysname", u.sysname), l("version", u.version))
}
