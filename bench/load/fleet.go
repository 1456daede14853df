package load

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/samples"
)

// Fleet is a deterministic set of the series Telltale's provisioned
// dashboards read, under the names and labels their sources give them:
//
//   - per service instance, the instrument library's request counters and
//     latency histogram (route × method × code, 12 buckets, with _sum and
//     _count), in-flight gauge, process and Go runtime metrics, build info
//     and two feature switches (labels service, env, instance);
//   - per service, telltale_deploys_total (deploys so far);
//   - per host, the agent's node_exporter names with job="node" (CPU by cpu
//     and mode, memory, swap, load, processes, context switches, boot time,
//     uname, two disks, three filesystems, two network interfaces) and the
//     agent's own spool and send counters;
//   - one collector's self metrics (ingest, query latency, head series,
//     tail clients, change deliveries).
//
// Values are what those sources produce: integer counters growing at a
// per-series rate, cumulative histogram buckets (monotonic in le at every
// step and in every interval, as one request counts in its bucket and all
// above), CPU seconds with two decimals, gauges wandering around a
// per-series level, constants for sizes and info series. Like Set, series
// i at step k has a fixed value, so every system gets the same data, and a
// Fleet is safe for concurrent use once built.
//
// What it leaves out: telltale_deploy_info (the collector writes one sample
// per deploy, not one per step; the deploy markers and the deploy panels
// read it and find none here) and ALERTS (no alerting rules run).
type Fleet struct {
	start    time.Time
	interval time.Duration
	series   []fleetSeries
	names    []string // metric names, sorted
}

// FleetSize says how large a Fleet is.
type FleetSize struct {
	Services  int // services, each with Instances instances (5 routes ...)
	Instances int
	Hosts     int // hosts running the agent
}

// Series returns the number of series a Fleet of this size has.
func (s FleetSize) Series() int { return NewFleet(s, time.Time{}, 0).Len() }

type fleetKind uint8

const (
	kCounter fleetKind = iota // integer counter: floor(a × (t + noise))
	kSeconds                  // counter with two decimals: CPU seconds
	kBucket                   // histogram bucket, _count: floor(cdf × a × (t + group noise))
	kSum                      // histogram _sum: mean latency × _count
	kGauge                    // level × (1 + b × sin(...)), rounded to integers when level ≥ 1000
	kConst                    // level
	kSwitch                   // 0 or 1, flipping every 30 min of steps
	kLoadAvg                  // load average: level × (1 + b × sin(...)) with two decimals
)

type fleetSeries struct {
	labels []samples.Label // sorted by name, __name__ included
	kind   fleetKind
	group  uint64  // noise source: the histogram for buckets, else the series
	a, b   float64 // rate per step, or level; cdf of the bucket, or amplitude
}

// Routes, methods and codes of the generated request metrics.
var (
	fleetRoutes   = [...]string{"/", "/api/cart", "/api/checkout", "/api/items", "/api/items/{id}", "/login"}
	fleetMethods  = [...]string{"GET", "POST"}
	fleetCodes    = [...]string{"200", "500"}
	fleetServices = [...]string{"cart", "checkout", "search", "catalog", "users", "payments", "shipping", "reviews"}
	fleetModes    = [...]string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
)

// fleetInterval is the step of a Fleet when NewFleet is given none: the
// agent's and the data source's 10 s.
const fleetInterval = 10 * time.Second

// NewFleet builds the series of a fleet of the given size, sampled every
// interval (0 means 10 s) from start on.
func NewFleet(size FleetSize, start time.Time, interval time.Duration) *Fleet {
	if interval <= 0 {
		interval = fleetInterval
	}
	f := &Fleet{start: start, interval: interval}
	add := func(kind fleetKind, group uint64, a, b float64, name string, kv ...string) {
		ls := []samples.Label{{Name: "__name__", Value: name}}
		for i := 0; i+1 < len(kv); i += 2 {
			ls = append(ls, samples.Label{Name: kv[i], Value: kv[i+1]})
		}
		slices.SortFunc(ls, func(x, y samples.Label) int { return strings.Compare(x.Name, y.Name) })
		if group == 0 {
			group = uint64(len(f.series)) + 1
		}
		f.series = append(f.series, fleetSeries{labels: ls, kind: kind, group: group, a: a, b: b})
	}
	u := func(parts ...uint64) float64 { // a per-entity number in [0, 1)
		h := uint64(0x51ed)
		for _, p := range parts {
			h = hash(h, p)
		}
		return unit(h)
	}
	for s := range size.Services {
		svc := serviceName(s)
		env := "prod"
		for in := range size.Instances {
			inst := fmt.Sprintf("%s-%d:8080", svc, in)
			id := []string{"env", env, "instance", inst, "service", svc}
			with := func(kv ...string) []string { return append(slices.Clone(id), kv...) }
			for ri, route := range fleetRoutes {
				latency := 0.01 + 0.25*u(uint64(s), uint64(ri), 1) // typical latency of the route
				for mi, method := range fleetMethods {
					for ci, code := range fleetCodes {
						rate := (2 + 20*u(uint64(s), uint64(in), uint64(ri), uint64(mi))) / float64(mi+1)
						if ci == 1 {
							rate /= 50 // 5xx are rare
						}
						lbl := with("code", code, "method", method, "route", route)
						add(kCounter, 0, rate, 0, "http_requests_total", lbl...)
						group := uint64(len(f.series))<<20 | 0xb // one histogram: its buckets share the noise
						for li, le := range les {
							cdf := 1.0
							if !math.IsInf(leVals[li], 1) {
								cdf = 1 - math.Exp(-leVals[li]/latency)
							}
							add(kBucket, group, rate, cdf, "http_request_duration_seconds_bucket", append(slices.Clone(lbl), "le", le)...)
						}
						add(kBucket, group, rate, 1, "http_request_duration_seconds_count", lbl...)
						add(kSum, group, rate, latency, "http_request_duration_seconds_sum", lbl...)
					}
				}
			}
			add(kGauge, 0, 3+20*u(uint64(s), uint64(in), 2), 0.8, "http_requests_in_flight", id...)
			add(kSeconds, 0, 0.5+4*u(uint64(s), uint64(in), 3), 0, "process_cpu_seconds_total", id...)
			add(kGauge, 0, 80e6+400e6*u(uint64(s), uint64(in), 4), 0.1, "process_resident_memory_bytes", id...)
			add(kGauge, 0, 30e6+200e6*u(uint64(s), uint64(in), 5), 0.2, "go_memstats_heap_inuse_bytes", id...)
			add(kGauge, 0, 50+400*u(uint64(s), uint64(in), 6), 0.3, "go_goroutines", id...)
			add(kCounter, 0, 0.05+0.5*u(uint64(s), uint64(in), 7), 0, "go_gc_duration_seconds_count", id...)
			add(kConst, 0, 1, 0, "telltale_build_info", with("commit", fmt.Sprintf("%07x", hash(uint64(s), 8)&0xfffffff), "version", fmt.Sprintf("v1.%d.0", s+3))...)
			for _, sw := range []string{"new_checkout", "search_v2"} {
				add(kSwitch, 0, 0, 0, "telltale_switch_on", with("switch", sw)...)
			}
		}
		add(kCounter, 0, 0.002, 0, "telltale_deploys_total", "env", env, "service", svc)
	}
	for h := range size.Hosts {
		host := fmt.Sprintf("host-%04d", h)
		node := []string{"instance", host, "job", "node"}
		with := func(kv ...string) []string { return append(slices.Clone(node), kv...) }
		busy := 0.05 + 0.6*u(uint64(h), 10)
		for cpu := range 4 {
			for _, mode := range fleetModes {
				frac := map[string]float64{"idle": 1 - busy, "iowait": 0.02 * busy, "irq": 0.01 * busy, "nice": 0.01 * busy,
					"softirq": 0.03 * busy, "steal": 0.03 * busy, "system": 0.25 * busy, "user": 0.65 * busy}[mode]
				add(kSeconds, 0, frac*interval.Seconds(), 0, "node_cpu_seconds_total", with("cpu", strconv.Itoa(cpu), "mode", mode)...)
			}
		}
		total := float64(int64(8+24*u(uint64(h), 11)) << 30)
		add(kConst, 0, total, 0, "node_memory_MemTotal_bytes", node...)
		add(kGauge, 0, total*(0.3+0.5*u(uint64(h), 12)), 0.1, "node_memory_MemAvailable_bytes", node...)
		add(kConst, 0, 2<<30, 0, "node_memory_SwapTotal_bytes", node...)
		add(kGauge, 0, (2<<30)*(0.7+0.2*u(uint64(h), 13)), 0.05, "node_memory_SwapFree_bytes", node...)
		for i, name := range []string{"node_load1", "node_load5", "node_load15"} {
			add(kLoadAvg, 0, 4*busy+0.1, 0.4/float64(i+1), name, node...)
		}
		add(kGauge, 0, 1+4*busy, 0.5, "node_procs_running", node...)
		add(kCounter, 0, 20000+50000*busy, 0, "node_context_switches_total", node...)
		add(kConst, 0, float64(1_760_000_000+int64(h)*3607), 0, "node_boot_time_seconds", node...)
		add(kConst, 0, 1, 0, "node_uname_info", with("domainname", "(none)", "machine", "x86_64", "nodename", host,
			"release", "6.8.0-48-generic", "sysname", "Linux", "version", "#48-Ubuntu SMP")...)
		for d, dev := range []string{"nvme0n1", "sda"} {
			io := 0.5 + 20*u(uint64(h), uint64(d), 14)
			add(kCounter, 0, io*4096*10, 0, "node_disk_read_bytes_total", with("device", dev)...)
			add(kCounter, 0, io*4096*30, 0, "node_disk_written_bytes_total", with("device", dev)...)
			add(kSeconds, 0, io/100, 0, "node_disk_io_time_seconds_total", with("device", dev)...)
		}
		for m, fs := range [][3]string{{"/", "ext4", "/dev/nvme0n1p2"}, {"/boot", "ext4", "/dev/nvme0n1p1"}, {"/run", "tmpfs", "tmpfs"}} {
			size := float64(int64(1+200*u(uint64(h), uint64(m), 15)) << 30)
			fsl := with("device", fs[2], "fstype", fs[1], "mountpoint", fs[0])
			add(kConst, 0, size, 0, "node_filesystem_size_bytes", fsl...)
			add(kGauge, 0, size*(0.2+0.6*u(uint64(h), uint64(m), 16)), 0.01, "node_filesystem_avail_bytes", fsl...)
		}
		for d, dev := range []string{"eth0", "lo"} {
			rate := (1e4 + 1e6*u(uint64(h), uint64(d), 17)) * 10
			add(kCounter, 0, rate, 0, "node_network_receive_bytes_total", with("device", dev)...)
			add(kCounter, 0, rate/3, 0, "node_network_transmit_bytes_total", with("device", dev)...)
		}
		agent := []string{"instance", host, "job", "telltale-agent"}
		add(kGauge, 0, 1000+5000*u(uint64(h), 18), 0.5, "telltale_agent_spool_bytes", agent...)
		add(kCounter, 0, 700, 0, "telltale_agent_samples_sent_total", agent...)
		add(kCounter, 0, 0.001, 0, "telltale_agent_send_retries_total", agent...)
		add(kConst, 0, 0, 0, "telltale_agent_spool_dropped_total", agent...)
	}
	if size.Services+size.Hosts > 0 {
		self := []string{"instance", "collector:9470", "job", "telltale-collector"}
		with := func(kv ...string) []string { return append(slices.Clone(self), kv...) }
		n := float64(len(f.series))
		for i, ep := range []string{"import", "influx", "otlp", "remote_write"} {
			share := [...]float64{0.2, 0.05, 0.05, 0.7}[i]
			add(kCounter, 0, n*share, 0, "telltale_ingest_samples_total", with("endpoint", ep)...)
			add(kCounter, 0, math.Max(n*share/2000, 0.1), 0, "telltale_ingest_requests_total", with("endpoint", ep)...)
		}
		for _, reason := range []string{"out_of_bounds", "too_many_labels"} {
			add(kCounter, 0, 0.01, 0, "telltale_ingest_rejected_total", with("reason", reason)...)
		}
		add(kCounter, 0, 0.01, 0, "telltale_ingest_failed_requests_total", with("endpoint", "remote_write", "reason", "bad_request")...)
		for _, hd := range []string{"query", "query_range", "series"} {
			for _, q := range []string{"0.5", "0.99"} {
				add(kGauge, 0, 0.005+0.2*u(uint64(len(hd)), uint64(len(q)), 19), 0.5, "telltale_query_request_duration_seconds", with("handler", hd, "quantile", q)...)
			}
		}
		add(kGauge, 0, n, 0.01, "telltale_storage_head_series", self...)
		add(kGauge, 0, 3, 0.5, "telltale_tail_clients", self...)
		for _, t := range []string{"grafana", "series"} {
			add(kCounter, 0, 0.002, 0, "telltale_change_deliveries_total", with("outcome", "ok", "target", t)...)
		}
		add(kConst, 0, 0, 0, "telltale_changes_outbox_pending", self...)
	}
	seen := map[string]bool{}
	for _, s := range f.series {
		if n := s.labels[0].Value; !seen[n] {
			seen[n] = true
			f.names = append(f.names, n)
		}
	}
	slices.Sort(f.names)
	return f
}

// serviceName names service s: cart, checkout ... then svc8, svc9 ...
func serviceName(s int) string {
	if s < len(fleetServices) {
		return fleetServices[s]
	}
	return "svc" + strconv.Itoa(s)
}

// Len returns the number of series.
func (f *Fleet) Len() int { return len(f.series) }

// Time returns the timestamp of step k in milliseconds since the epoch.
func (f *Fleet) Time(k int) int64 { return f.start.UnixMilli() + int64(k)*f.interval.Milliseconds() }

// Step returns the index of the last step at or before t.
func (f *Fleet) Step(t time.Time) int {
	return int(math.Floor(float64(t.UnixMilli()-f.start.UnixMilli()) / float64(f.interval.Milliseconds())))
}

// Interval returns the time between steps.
func (f *Fleet) Interval() time.Duration { return f.interval }

// Selectors match exactly the fleet's series, one metric name each
// (node_load1 and node_load5 differ only by name); the dashboards'
// recorded series (level:metric:operations) have names of their own.
func (f *Fleet) Selectors() []string {
	out := make([]string, len(f.names))
	for i, n := range f.names {
		out[i] = `{__name__="` + n + `"}`
	}
	return out
}

// AppendSeries starts series i in b (with a nil key) and adds its labels.
func (f *Fleet) AppendSeries(b *samples.Batch, i int) {
	b.StartSeries(nil)
	for _, l := range f.series[i].labels {
		b.AddLabel(l.Name, l.Value)
	}
}

// Value returns the value of series i at step k (k >= 0).
func (f *Fleet) Value(i, k int) float64 {
	s := &f.series[i]
	t := float64(k + warm)
	switch s.kind {
	case kCounter:
		return math.Floor(s.a * (t + unit(hash(s.group, uint64(k)+1))))
	case kSeconds:
		return math.Floor(s.a*(t+unit(hash(s.group, uint64(k)+1)))*100) / 100
	case kBucket:
		return bucket(s.b, s.a, t, unit(hash(s.group, uint64(k)+1)))
	case kSum:
		count := bucket(1, s.a, t, unit(hash(s.group, uint64(k)+1)))
		return math.Round(count*s.b*1000) / 1000
	case kGauge, kLoadAvg:
		phase := 2 * math.Pi * unit(hash(s.group, 1<<50))
		v := s.a * (1 + s.b*math.Sin(float64(k)/60+phase)*(0.8+0.2*unit(hash(s.group, uint64(k)+1))))
		if s.kind == kLoadAvg {
			return math.Round(v*100) / 100
		}
		if s.a >= 1000 {
			return math.Round(v)
		}
		return math.Round(v*100) / 100
	case kSwitch:
		return float64((k/180 + int(s.group%2)) % 2)
	}
	return s.a
}
