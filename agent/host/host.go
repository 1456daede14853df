// Package host reads a Linux host's metrics from /proc and /sys under a
// configurable root and appends them to a samples.Batch under
// node_exporter's metric names, labels and units, so dashboards built for
// node_exporter (such as "Node Exporter Full") work unchanged.
//
// Both the agent and the collector (for its own host) use it. A Collector
// is cheap to run every few seconds: it reads each kernel file into a
// reused buffer with raw system calls, parses it in place, interns device,
// cpu and metric names, re-parses what rarely changes (the mount table,
// os-release, udev data) only when its bytes changed, and allocates almost
// nothing per cycle once its buffers and the destination batch have grown.
//
// Each kernel file has its own file here: parseX([]byte) is pure and has a
// fuzz target seeded from testdata/; the Collector reads the file under
// Options.Root and emits the series. Parsers take the bytes instead of an
// io.Reader so they can slice the read buffer instead of copying lines.
//
// What is collected, by node_exporter collector name (node_exporter
// v1.12.1's default collectors and default filters):
//
//	cpu         node_cpu_seconds_total{cpu,mode}, node_cpu_guest_seconds_total{cpu,mode}
//	stat        node_intr_total, node_context_switches_total, node_boot_time_seconds,
//	            node_forks_total, node_procs_running, node_procs_blocked
//	loadavg     node_load1, node_load5, node_load15
//	processes   node_processes_pids, node_processes_threads (not default in node_exporter)
//	meminfo     node_memory_<Key>[_bytes] for every /proc/meminfo line
//	vmstat      node_vmstat_<key> for oom_kill, pgpg*, pswp*, pg*fault*
//	diskstats   node_disk_*{device}, node_disk_info{device,major,minor,path,wwn,model,
//	            serial,revision,rotational}, node_disk_{filesystem,device_mapper}_info and
//	            node_disk_ata_* from udev data (partitions, loop and ram devices excluded)
//	filesystem  node_filesystem_{size,free,avail,purgeable}_bytes, _files, _files_free,
//	            _readonly, _device_error {device,device_error,fstype,mountpoint},
//	            node_filesystem_mount_info{device,major,minor,mountpoint}
//	netdev      node_network_{receive,transmit}_*_total{device} (receive_nohandler from
//	            /sys/class/net/<dev>/statistics, as node_exporter's netlink default has it)
//	netclass    node_network_up, node_network_info{address,adminstate,broadcast,duplex,
//	            ifalias,operstate} and every "Network device property" of /sys/class/net
//	arp         node_arp_entries{device}
//	conntrack   node_nf_conntrack_entries, _entries_limit, node_nf_conntrack_stat_*
//	entropy     node_entropy_available_bits, node_entropy_pool_size_bits
//	filefd      node_filefd_allocated, node_filefd_maximum
//	kernel_hung node_kernel_hung_tasks_total
//	netstat     node_netstat_<Proto>_<Field> (node_exporter's default field list)
//	os          node_os_info{...}, node_os_version{id,id_like,name}
//	pressure    node_pressure_{cpu,io,memory,irq}_*_seconds_total
//	schedstat   node_schedstat_{running,waiting}_seconds_total{cpu}, _timeslices_total
//	selinux     node_selinux_enabled (and _config_mode, _current_mode when enabled)
//	sockstat    node_sockstat_<PROTO>_<state>, node_sockstat_sockets_used
//	softnet     node_softnet_*{cpu}
//	textfile    the samples of *.prom files in Options.TextfileDir,
//	            node_textfile_mtime_seconds{file}, node_textfile_scrape_error
//	time        node_time_seconds, node_time_zone_offset_seconds{time_zone},
//	            node_time_clocksource_{available,current}_info{clocksource,device}
//	timex       node_timex_* (adjtimex(2))
//	udp_queues  node_udp_queues{ip,queue}
//	uname       node_uname_info{domainname,machine,nodename,release,sysname,version}
//
// plus node_scrape_collector_success{collector} and
// node_scrape_collector_duration_seconds{collector} for each of them. A
// collector whose kernel feature is absent (no conntrack module, no PSI, no
// SELinux) reports success 0 without an error, as node_exporter does.
// Every series also carries instance, job="node" and Options.Labels; the
// labels of every series are sorted by name and unique. Metadata returns
// node_exporter's HELP and TYPE of the families emitted.
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
	// TextfileDir is node_exporter's --collector.textfile.directory: the
	// *.prom files in it are read every Collect. "" reads none (and reports
	// node_textfile_scrape_error 0, as node_exporter does by default). The
	// path is not below Root.
	TextfileDir string
	// TextfileMaxBytes bounds one *.prom file; a bigger file is an error of
	// that file (node_textfile_scrape_error 1). Zero means 4 MiB.
	TextfileMaxBytes int
}

// errNoData marks a collector whose kernel feature is absent on this host:
// its node_scrape_collector_success is 0, but Collect does not report it as
// an error (node_exporter's ErrNoData).
var errNoData = errors.New("no data")

// collector is one node_exporter collector: its name and what runs it.
type collector struct {
	name string
	run  func() error
}

// Collector reads host metrics. It is safe for concurrent use; calls to
// Collect are serialized.
type Collector struct {
	mu   sync.Mutex
	opts Options

	inited     bool
	common     []samples.Label // instance, job, Options.Labels; sorted, unique
	collectors []collector
	root       string // Options.Root without a trailing slash

	// NUL-terminated paths, built once.
	pStat, pLoadavg, pMeminfo, pVmstat, pDiskstats, pNetDev, pFileNr, pProc []byte
	pMount1, pMountSelf                                                     []byte
	useMountSelf                                                            bool
	sysNet                                                                  []byte // Root + /sys/class/net/, NUL-terminated

	buf     []byte // read buffer
	buf2    []byte // second read buffer, for files read beside buf
	pathBuf []byte // scratch for per-device paths
	names   interner
	memN    interner
	vmN     interner

	st      statInfo
	statErr error
	la      loadavg
	fn      fileNr
	mem     []memEntry
	vm      []vmEntry
	disks   []diskStat
	nets    []netDev

	diskFilter deviceFilter
	mpExclude  *regexp.Regexp
	fsExclude  *regexp.Regexp

	mountRaw []byte // mountinfo as last parsed
	mounts   []fsMount
	stuckMu  sync.Mutex
	stuck    map[string]bool // mount points with a statfs still hanging

	uname unameInfo

	net       netState
	netstat   netstatState
	sock      sockstatState
	udev      udevCache
	osRel     osReleaseState
	clocks    clocksourceState
	conntrack conntrackStat
	psi       psiLine
	softnet   []softnetStat
	arp       []arpCount
	sched     []schedCPU
	textfile  textfileState

	// textfileMeta is the metadata the last Collect read from *.prom files.
	textfileMeta map[string]samples.Metadata

	// emitted holds the family names of the last Collect, for Metadata.
	emitted  map[string]struct{}
	lastName string

	// set during Collect
	dst *samples.Batch
	ts  int64
	now time.Time
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
	if opts.TextfileMaxBytes <= 0 {
		opts.TextfileMaxBytes = 4 << 20
	}
	opts.Labels = slices.Clone(opts.Labels)
	return &Collector{
		opts:       opts,
		diskFilter: deviceFilter{re: regexp.MustCompile(defaultDiskExclude)},
		mpExclude:  regexp.MustCompile(defaultMountPointsExclude),
		fsExclude:  regexp.MustCompile(defaultFSTypesExclude),
		stuck:      make(map[string]bool),
		emitted:    make(map[string]struct{}),
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
	c.dst, c.ts, c.now = dst, t.UnixMilli(), t
	defer func() { c.dst = nil }()
	clear(c.emitted)
	c.lastName = ""

	var errs []error
	for _, col := range c.collectors {
		start := time.Now()
		err := col.run()
		d := time.Since(start)
		v := 1.0
		switch {
		case err == nil:
		case errors.Is(err, errPartial):
			errs = append(errs, err)
		case errors.Is(err, errNoData):
			v = 0
		default:
			v = 0
			errs = append(errs, err)
		}
		c.add("node_scrape_collector_duration_seconds", d.Seconds(), l("collector", col.name))
		c.add("node_scrape_collector_success", v, l("collector", col.name))
	}
	return errors.Join(errs...)
}

// Instance returns the instance label every series of c carries
// (Options.Instance, else the host name, or an "instance" in
// Options.Labels). It reads the host name on first use.
func (c *Collector) Instance() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inited {
		c.init()
	}
	for _, l := range c.common {
		if l.Name == "instance" {
			return l.Value
		}
	}
	return ""
}

func (c *Collector) init() {
	root := strings.TrimSuffix(c.opts.Root, "/")
	c.root = root
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
	c.sysNet = p("/sys/class/net")
	c.netstat.init(root)
	c.sock.init(root)

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
	// node_exporter's order is alphabetical; so is this.
	c.collectors = []collector{
		{"arp", c.collectARP},
		{"conntrack", c.collectConntrack},
		{"cpu", c.collectCPU},
		{"diskstats", c.collectDiskstats},
		{"entropy", c.collectEntropy},
		{"filefd", c.collectFileNr},
		{"filesystem", c.collectFilesystems},
		{"kernel_hung", c.collectKernelHung},
		{"loadavg", c.collectLoadavg},
		{"meminfo", c.collectMeminfo},
		{"netclass", c.collectNetClass},
		{"netdev", c.collectNetDev},
		{"netstat", c.collectNetstat},
		{"os", c.collectOSRelease},
		{"pressure", c.collectPressure},
		{"processes", c.collectPids},
		{"schedstat", c.collectSchedstat},
		{"selinux", c.collectSELinux},
		{"sockstat", c.collectSockstat},
		{"softnet", c.collectSoftnet},
		{"stat", c.collectStat},
		{"textfile", c.collectTextfile},
		{"time", c.collectTime},
		{"timex", c.collectTimex},
		{"udp_queues", c.collectUDPQueues},
		{"uname", c.collectUname},
		{"vmstat", c.collectVmstat},
	}
	c.inited = true
}

// l makes a label; it keeps the add calls short.
func l(name, value string) samples.Label { return samples.Label{Name: name, Value: value} }

// add appends one series with one sample to c.dst. ls must be sorted by
// name and must not contain __name__. Its labels win over c.common; those
// with an empty value are left out.
func (c *Collector) add(name string, v float64, ls ...samples.Label) {
	if name != c.lastName {
		c.lastName = name
		c.emitted[name] = struct{}{}
	}
	b := c.dst
	b.StartSeries(nil)
	own, nOwn, j := 0, len(ls)+1, 0
	for own < nOwn || j < len(c.common) {
		if own < nOwn {
			ol := samples.Label{Name: "__name__", Value: name}
			if own > 0 {
				ol = ls[own-1]
				if ol.Value == "" {
					// Empty means absent, as in Prometheus (node_exporter's
					// empty info labels, such as ifalias="").
					own++
					continue
				}
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

// readOptional reads path; a missing file is errNoData (the kernel lacks
// the feature), other errors stay what they are.
func (c *Collector) readOptional(path []byte) ([]byte, error) {
	data, err := c.read(path)
	if err != nil && isNotExist(err) {
		return nil, errNoData
	}
	return data, err
}

// path returns Root + the concatenation of parts, NUL-terminated, in a
// scratch buffer valid until the next call.
func (c *Collector) path(parts ...string) []byte {
	b := append(c.pathBuf[:0], c.root...)
	for _, p := range parts {
		b = append(b, p...)
	}
	b = append(b, 0)
	c.pathBuf = b
	return b
}

// collectCPU parses /proc/stat and emits the per-cpu times; collectStat
// emits the rest of the same parse.
func (c *Collector) collectCPU() error {
	data, err := c.read(c.pStat)
	if err == nil {
		err = parseStat(data, &c.st, &c.names)
	}
	c.statErr = err
	if err != nil {
		return err
	}
	c.emitCPU(&c.st)
	return nil
}

func (c *Collector) collectStat() error {
	if c.statErr != nil {
		return c.statErr
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
	// The loadavg collector read the thread count just before.
	if c.la.threads > 0 {
		c.add("node_processes_threads", float64(c.la.threads))
	}
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

func (c *Collector) collectUname() error {
	u := &c.uname
	c.add("node_uname_info", 1,
		l("domainname", u.domainname), l("machine", u.machine), l("nodename", u.nodename),
		l("release", u.release), l("sysname", u.sysname), l("version", u.version))
	return nil
}
