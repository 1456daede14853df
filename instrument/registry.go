package instrument

import (
	"bytes"
	"net/http"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// DefaultMaxLabelValues is the number of distinct values a label of one
// metric admits when RegistryOptions.MaxLabelValues is 0.
const DefaultMaxLabelValues = 100

// RegistryOptions configure NewRegistry. The zero value is a registry with
// its own Set, no process metrics and DefaultMaxLabelValues.
type RegistryOptions struct {
	// Set holds the metrics; nil means a new, empty Set.
	Set *metrics.Set
	// ProcessMetrics adds the go_* and process_* metrics of this process
	// (including process_start_time_seconds) to every exposition.
	ProcessMetrics bool
	// MaxLabelValues bounds the distinct values of each label of each
	// metric; 0 means DefaultMaxLabelValues.
	MaxLabelValues int
}

// Registry is a set of app metrics plus the standard labels added to each
// of them when they are written. It is safe for concurrent use.
type Registry struct {
	set            *metrics.Set
	processMetrics bool
	maxValues      int

	mu      sync.Mutex
	guards  map[guardKey]*guard
	ident   *identity // set by Start; nil before
	pushing bool      // a pusher is running
	// switches holds the contingency switches; created on first use.
	switches *switchBoard
	bufPool  sync.Pool // *bytes.Buffer for expositions
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts RegistryOptions) *Registry {
	r := &Registry{
		set:            opts.Set,
		processMetrics: opts.ProcessMetrics,
		maxValues:      opts.MaxLabelValues,
		guards:         make(map[guardKey]*guard),
	}
	if r.set == nil {
		r.set = metrics.NewSet()
	}
	if r.maxValues <= 0 {
		r.maxValues = DefaultMaxLabelValues
	}
	return r
}

var defaultRegistry = NewRegistry(RegistryOptions{Set: metrics.GetDefaultSet(), ProcessMetrics: true})

// Default returns the registry the package-level functions use: it wraps
// VictoriaMetrics/metrics' default Set and exports process metrics.
func Default() *Registry { return defaultRegistry }

// Set returns the underlying VictoriaMetrics/metrics Set, for metric types
// the helpers do not cover. Metrics registered there directly get the
// standard labels when written but no label-value guard.
func (r *Registry) Set() *metrics.Set { return r.set }

func (r *Registry) guard(metric, label string) *guard {
	k := guardKey{metric, label}
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.guards[k]
	if g == nil {
		g = newGuard(r.set, k, r.maxValues)
		r.guards[k] = g
	}
	return g
}

// seriesName returns metric{labels...} with label values sanitized and
// bounded by their guards.
func (r *Registry) seriesName(metric string, labels []string) string {
	if len(labels) == 0 {
		return metric
	}
	b := make([]byte, 0, len(metric)+16*len(labels))
	b = append(b, metric...)
	b = append(b, '{')
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		v := r.guard(metric, labels[i]).admit(sanitizeLabelValue(labels[i+1]))
		b = appendLabelPair(b, labels[i], v)
	}
	b = append(b, '}')
	return string(b)
}

// Counter returns the counter metric{labels...}, creating it on first use.
// labels are name, value pairs. Each call builds the series name and looks
// it up: keep the result in hot loops.
func (r *Registry) Counter(metric string, labels ...string) *metrics.Counter {
	checkLabelArgs("Counter", metric, labels, "")
	return r.set.GetOrCreateCounter(r.seriesName(metric, labels))
}

// FloatCounter is Counter for float increments (e.g. seconds or bytes).
func (r *Registry) FloatCounter(metric string, labels ...string) *metrics.FloatCounter {
	checkLabelArgs("FloatCounter", metric, labels, "")
	return r.set.GetOrCreateFloatCounter(r.seriesName(metric, labels))
}

// Gauge returns the settable gauge metric{labels...} (Set, Inc, Dec, Add).
func (r *Registry) Gauge(metric string, labels ...string) *metrics.Gauge {
	checkLabelArgs("Gauge", metric, labels, "")
	return r.set.GetOrCreateGauge(r.seriesName(metric, labels), nil)
}

// GaugeFunc returns the gauge metric{labels...} whose value is f() at each
// exposition. f must be safe for concurrent calls and fast. If the gauge
// exists already, its first f stays.
func (r *Registry) GaugeFunc(metric string, f func() float64, labels ...string) *metrics.Gauge {
	checkLabelArgs("GaugeFunc", metric, labels, "")
	if f == nil {
		panic("instrument.GaugeFunc: f is nil: use Gauge for a settable gauge")
	}
	return r.set.GetOrCreateGauge(r.seriesName(metric, labels), f)
}

// Histogram returns the Prometheus histogram metric{labels...} with the
// given bucket upper bounds (nil means DefaultBuckets), exposed as
// metric_bucket{le=...}, metric_sum and metric_count so that Grafana's
// histogram_quantile works. Buckets are fixed by the first call for a series.
func (r *Registry) Histogram(metric string, buckets []float64, labels ...string) *metrics.PrometheusHistogram {
	checkLabelArgs("Histogram", metric, labels, "le")
	if buckets == nil {
		buckets = DefaultBuckets
	}
	return r.set.GetOrCreatePrometheusHistogramExt(r.seriesName(metric, labels), buckets)
}

// DefaultBuckets are latency buckets in seconds, from 5ms to 10s (the
// Prometheus client defaults).
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Counter is Default().Counter.
func Counter(metric string, labels ...string) *metrics.Counter {
	return defaultRegistry.Counter(metric, labels...)
}

// FloatCounter is Default().FloatCounter.
func FloatCounter(metric string, labels ...string) *metrics.FloatCounter {
	return defaultRegistry.FloatCounter(metric, labels...)
}

// Gauge is Default().Gauge.
func Gauge(metric string, labels ...string) *metrics.Gauge {
	return defaultRegistry.Gauge(metric, labels...)
}

// GaugeFunc is Default().GaugeFunc.
func GaugeFunc(metric string, f func() float64, labels ...string) *metrics.Gauge {
	return defaultRegistry.GaugeFunc(metric, f, labels...)
}

// Histogram is Default().Histogram.
func Histogram(metric string, buckets []float64, labels ...string) *metrics.PrometheusHistogram {
	return defaultRegistry.Histogram(metric, buckets, labels...)
}

// writeRaw writes the registry's metrics as VictoriaMetrics/metrics renders
// them, without the standard labels.
func (r *Registry) writeRaw(w *bytes.Buffer) {
	r.set.WritePrometheus(w)
	if r.processMetrics {
		metrics.WriteGoMetrics(w)
		metrics.WriteProcMetrics(w)
		metrics.WriteFDMetrics(w)
	}
}

func (r *Registry) identity() *identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ident
}

// AppendPrometheus appends the registry's metrics in the Prometheus text
// format 0.0.4 to dst, with the standard labels (service, env and
// Options.Labels, once Start has run) on every series and no timestamps.
func (r *Registry) AppendPrometheus(dst []byte) []byte {
	var labels []constLabel
	if id := r.identity(); id != nil {
		labels = id.labels
	}
	raw := r.getBuf()
	defer r.bufPool.Put(raw)
	r.writeRaw(raw)
	dst, _, _ = appendExposition(dst, raw.Bytes(), labels, -1)
	return dst
}

func (r *Registry) getBuf() *bytes.Buffer {
	b, _ := r.bufPool.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Reset()
	return b
}

// Handler serves the registry's metrics for pull setups (the agent or
// Prometheus scrapes it). The scraper assigns timestamps and the instance
// label.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := r.getBuf()
		defer r.bufPool.Put(out)
		out.Write(r.AppendPrometheus(out.AvailableBuffer()))
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(out.Bytes())
	})
}

// Handler is Default().Handler.
func Handler() http.Handler { return defaultRegistry.Handler() }
