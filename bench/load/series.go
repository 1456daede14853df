// Package load generates the data bench/ sends to Telltale and its peers and
// sends it: a deterministic set of dashboard-like series (request counters,
// latency histogram buckets, CPU seconds), encoded as Prometheus remote
// write 1.0 bodies or text exposition bodies, posted by concurrent senders
// that each own a share of the series (as Prometheus' remote-write shards
// do), and a small client for the Prometheus query API that counts back what
// was stored and times query_range calls.
//
// Promises: the same Set, step range and request size always produce the
// same bytes, so every system under test gets identical data; within one
// sender's stream every series' samples are in time order; Send reports an
// error for any request the receiver refused (4xx) or kept refusing (5xx
// after retries), so a run that returns nil delivered every body.
package load

import (
	"math"
	"strconv"
	"time"

	"github.com/telltale-dev/telltale/samples"
)

// PerInstance is the number of series each simulated instance has:
// 20 request counters (2 methods × 5 paths × 2 statuses), 60 latency
// histogram buckets (5 paths × 12 le) and 20 CPU counters (4 CPUs × 5 modes).
const PerInstance = 100

// MetricPrefix begins every generated metric name, so a selector
// {__name__=~"bench_.*"} finds exactly the generated series.
const MetricPrefix = "bench_"

// Metric names of the generated series.
const (
	RequestsMetric = "bench_http_requests_total"
	DurationMetric = "bench_http_request_duration_seconds_bucket"
	CPUMetric      = "bench_node_cpu_seconds_total"
)

var (
	methods  = [...]string{"GET", "POST"}
	paths    = [...]string{"/", "/api/cart", "/api/checkout", "/api/items", "/login"}
	statuses = [...]string{"200", "500"}
	les      = [...]string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	leVals   = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.Inf(1)}
	modes    = [...]string{"idle", "iowait", "irq", "system", "user"}
)

// Set is a deterministic set of Instances×PerInstance series sampled every
// Interval from Start on. Series i at step k has the labels Labels(i) and the
// value Value(i, k) at time Time(k). Values are what real exporters produce:
// integer request counters, cumulative histogram buckets, CPU seconds with
// two decimals; every series is a monotonic counter. The zero Interval means
// 10 s. A Set is a value and safe for concurrent use.
type Set struct {
	Instances int
	Start     time.Time
	Interval  time.Duration
}

// Len returns the number of series.
func (s Set) Len() int { return s.Instances * PerInstance }

func (s Set) interval() time.Duration {
	if s.Interval <= 0 {
		return 10 * time.Second
	}
	return s.Interval
}

// Selectors match every series of every Set: {__name__=~"bench_.*"}.
func (s Set) Selectors() []string { return []string{`{__name__=~"` + MetricPrefix + `.*"}`} }

// Time returns the timestamp of step k in milliseconds since the epoch.
func (s Set) Time(k int) int64 {
	return s.Start.UnixMilli() + int64(k)*s.interval().Milliseconds()
}

// Instance returns the instance label value of instance n.
func Instance(n int) string {
	return "host-" + pad4(n) + ":9100"
}

func pad4(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}

// AppendSeries starts series i in b (with a nil key) and adds its labels,
// sorted by name as remote write requires.
func (s Set) AppendSeries(b *samples.Batch, i int) {
	inst, k := i/PerInstance, i%PerInstance
	b.StartSeries(nil)
	switch {
	case k < 20: // requests: method × path × status
		b.AddLabel("__name__", RequestsMetric)
		b.AddLabel("instance", Instance(inst))
		b.AddLabel("job", "api")
		b.AddLabel("method", methods[k/10])
		b.AddLabel("path", paths[k/2%5])
		b.AddLabel("region", region(inst))
		b.AddLabel("status", statuses[k%2])
	case k < 80: // latency buckets: path × le
		k -= 20
		b.AddLabel("__name__", DurationMetric)
		b.AddLabel("instance", Instance(inst))
		b.AddLabel("job", "api")
		b.AddLabel("le", les[k%12])
		b.AddLabel("path", paths[k/12])
		b.AddLabel("region", region(inst))
	default: // CPU: cpu × mode
		k -= 80
		b.AddLabel("__name__", CPUMetric)
		b.AddLabel("cpu", strconv.Itoa(k/5))
		b.AddLabel("instance", Instance(inst))
		b.AddLabel("job", "node")
		b.AddLabel("mode", modes[k%5])
		b.AddLabel("region", region(inst))
	}
}

func region(inst int) string {
	return [...]string{"eu-west-1", "us-east-1", "ap-south-1"}[inst%3]
}

// warm is how many steps every counter has already run before step 0, so
// counters look like those of long-running processes.
const warm = 8640

// Value returns the value of series i at step k (k >= 0).
func (s Set) Value(i, k int) float64 {
	inst, j := i/PerInstance, i%PerInstance
	t := float64(k + warm)
	switch {
	case j < 20:
		// a requests per step on average; 5xx are rare.
		a := 5 + 45*unit(hash(uint64(i), 0))
		if j%2 == 1 {
			a = unit(hash(uint64(i), 0))
		}
		return math.Floor(a * (t + unit(hash(uint64(i), uint64(k)+1))))
	case j < 80:
		j -= 20
		path := j / 12
		group := uint64(inst*8 + path) // one histogram per instance and path
		a := 5 + 45*unit(hash(group, 1<<40))
		scale := 0.02 + 0.3*unit(hash(uint64(path), 1<<41)) // typical latency of the path
		cdf := 1.0
		if le := leVals[j%12]; !math.IsInf(le, 1) {
			cdf = 1 - math.Exp(-le/scale)
		}
		return bucket(cdf, a, t, unit(hash(group, uint64(k)+1<<42)))
	default:
		j -= 80
		busy := 0.05 + 0.5*unit(hash(uint64(inst), 1<<43))
		frac := [...]float64{1 - busy - 0.04, 0.03, 0.01, busy * 0.3, busy * 0.7}[j%5]
		secs := frac * s.interval().Seconds() * (t + unit(hash(uint64(i), uint64(k)+1<<44)))
		return math.Floor(secs*100) / 100
	}
}

// histSlots is how finely a generated histogram spreads its requests over
// its buckets: each bucket counts a whole number of tenths of them.
const histSlots = 10

// bucket returns the value of a histogram bucket whose share of the
// requests is cdf (1 for +Inf), for a histogram that has had about rate
// requests per step for t steps (noise in [0, 1) shared by all its
// buckets). As in a real histogram, where every request counts in its own
// bucket and all above, a bucket grows by no more than any bucket above it
// in every interval, so bucket rates stay monotonic in le and
// histogram_quantile needs no fixing: the request count grows in whole
// multiples of histSlots and each bucket takes a fixed whole number of
// them.
func bucket(cdf, rate, t, noise float64) float64 {
	return math.Round(cdf*histSlots) * math.Floor(rate/histSlots*(t+noise))
}

// hash mixes two numbers into a pseudo-random one (splitmix64's finalizer).
func hash(a, b uint64) uint64 {
	x := a*0x9e3779b97f4a7c15 ^ b
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }
