package impact

import (
	"strconv"
	"strings"
	"time"
)

// Names of the default signals; a Config entry with one of these names
// retunes or disables that signal.
const (
	SignalRequestRate = "request rate"
	SignalErrorRatio  = "error ratio"
	SignalP50Latency  = "p50 latency"
	SignalP99Latency  = "p99 latency"
	SignalCPU         = "cpu"
	SignalMemory      = "memory"
)

// DefaultSignals returns the key signals of a service instrumented with the
// instrument library (labels service and env on every series; env "" means
// all envs of the service, summed), with rate
// windows of 1m that suit a 15–30s step:
//
//   - request rate (req/s, Bad Both, ±25% and ±0.1 req/s): a missing series
//     counts as 0 (`or vector(0)`), so a service that stops serving or
//     pushing shows as a drop rather than as missing data.
//   - error ratio (5xx share, Bad Up, ×2 and +0.1 point, or +1 point
//     whatever the ratio): no 5xx series yet means 0 errors.
//   - p50 and p99 latency (Bad Up, +20% and at least +2ms / +5ms) from
//     the http_request_duration_seconds histogram.
//   - cpu (cores, Bad Up, +25% and +0.01 cores) and memory (resident bytes,
//     Bad Up, +25% and +16MiB) summed over the service's processes.
//
// Memory right after a restart is often lower than before (cold caches,
// smaller heap) and so may read "improved"; that is the restart, not the
// code.
func DefaultSignals(service, env string) []Signal {
	return DefaultSignalsWith(service, env, DefaultRateWindow)
}

// DefaultRateWindow is the rate() window of DefaultSignals.
const DefaultRateWindow = time.Minute

// DefaultSignalsWith is DefaultSignals with rate windows of rateWindow
// instead of 1m (0 means 1m), for windows shorter than 15 minutes where a
// 1m rate would smear most of the window (see RateWindowFor). rateWindow
// should cover at least four scrape or push intervals.
func DefaultSignalsWith(service, env string, rateWindow time.Duration) []Signal {
	if rateWindow <= 0 {
		rateWindow = DefaultRateWindow
	}
	rw := "[" + promDuration(rateWindow) + "]"
	sel := "service=" + promQuote(service)
	if env != "" {
		sel += ",env=" + promQuote(env) // no env: every env of the service
	}
	reqs := "http_requests_total{" + sel + "}"
	errs := "http_requests_total{" + sel + `,code=~"5.."}`
	buckets := "http_request_duration_seconds_bucket{" + sel + "}"
	return []Signal{
		{
			Name:         SignalRequestRate,
			Query:        "sum(rate(" + reqs + rw + ")) or vector(0)",
			Bad:          Both,
			MinRelChange: 0.25, MinAbsChange: 0.1,
			Unit:    UnitReqPerSec,
			Traffic: true,
		},
		{
			Name:         SignalErrorRatio,
			Query:        "(sum(rate(" + errs + rw + ")) or vector(0)) / sum(rate(" + reqs + rw + "))",
			Bad:          Up,
			MinRelChange: 1, MinAbsChange: 0.001, BigAbsChange: 0.01,
			Unit:       UnitRatio,
			PerRequest: true,
		},
		{
			Name:         SignalP50Latency,
			Query:        "histogram_quantile(0.5, sum by (le) (rate(" + buckets + rw + ")))",
			Bad:          Up,
			MinRelChange: 0.2, MinAbsChange: 0.002,
			Unit:       UnitSeconds,
			PerRequest: true,
		},
		{
			Name:         SignalP99Latency,
			Query:        "histogram_quantile(0.99, sum by (le) (rate(" + buckets + rw + ")))",
			Bad:          Up,
			MinRelChange: 0.2, MinAbsChange: 0.005,
			Unit:       UnitSeconds,
			PerRequest: true,
		},
		{
			Name:         SignalCPU,
			Query:        "sum(rate(process_cpu_seconds_total{" + sel + "}" + rw + "))",
			Bad:          Up,
			MinRelChange: 0.25, MinAbsChange: 0.01,
			Unit: UnitCores,
		},
		{
			Name:         SignalMemory,
			Query:        "sum(process_resident_memory_bytes{" + sel + "})",
			Bad:          Up,
			MinRelChange: 0.25, MinAbsChange: 16 << 20,
			Unit: UnitBytes,
		},
	}
}

// promQuote quotes s as a PromQL string literal (PromQL strings use Go's
// escapes).
func promQuote(s string) string { return strconv.Quote(s) }

// expand substitutes $service and $env in a configured query with the
// escaped values, for use inside the query's own double quotes, and
// $rate_window with the rate window ("1m").
func expand(query, service, env string, rateWindow time.Duration) string {
	unq := func(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] }
	return strings.NewReplacer("$service", unq(service), "$env", unq(env), "$rate_window", promDuration(rateWindow)).Replace(query)
}

// promDuration renders d as a PromQL duration: whole minutes as "5m",
// else whole seconds ("90s"), else milliseconds.
func promDuration(d time.Duration) string {
	switch {
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
