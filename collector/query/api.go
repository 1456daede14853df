// Package query serves the Prometheus HTTP API under /api/v1/ (query,
// query_range, series, labels, label values, query_exemplars, rules,
// alerts, status/*, admin/tsdb/*, format_query, parse_query, remote read)
// and the /-/healthy and /-/ready probes, on the collector's storage.
//
// Promise: for any request the answer (status, headers that matter, JSON
// body) is byte-for-byte what Prometheus v0.316.0 returns on the same data,
// because it is Prometheus' own API code (web/api/v1) and engine configured
// as Prometheus configures them by default. Telltale deliberately adds, and
// the README lists:
//   - /api/v1/metadata answers from the metadata that pushes and remote
//     writes carried (Prometheus answers from scrape targets, which the
//     collector has none of);
//   - admission control: at most MaxConcurrent queries run at once, at most
//     MaxQueued wait (each at most MaxQueueWait); past that the answer is
//     503 with Retry-After instead of unbounded memory;
//   - limits on a query's length and nesting depth, checked before parsing
//     (PromQL parsing is quadratic in nesting depth and not cancellable);
//   - a write deadline on every response, so a client that stops reading
//     cannot pin a large result in memory.
package query

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/telltale-dev/telltale/samples"
)

// MetadataSource lists metric metadata; the ingest writer's store is one.
type MetadataSource interface {
	List(metric string, limit int) []samples.Metadata
}

// Storage is what the API reads: samples, chunks (remote read), exemplars,
// and the TSDB statistics and admin operations.
type Storage interface {
	storage.SampleAndChunkQueryable
	storage.ExemplarQueryable
	v1.TSDBAdminStats
	// MinTime is the timestamp (ms) of the oldest sample held; retention
	// moves it forward.
	MinTime() int64
}

// BuildInfo is served by /api/v1/status/buildinfo.
type BuildInfo struct {
	Version, Revision, Branch, BuildDate string
}

// Options configure New. Zero values mean Prometheus' defaults.
type Options struct {
	// Timeout bounds one query; 0 means 2 minutes.
	Timeout time.Duration
	// MaxSamples bounds the samples one query may load into memory; 0 means 50M.
	MaxSamples int
	// LookbackDelta is how far back an instant selector looks; 0 means 5m.
	LookbackDelta time.Duration

	// MaxConcurrent is how many queries (query, query_range, series,
	// labels, label values, query_exemplars, remote read) run at once; 0
	// means 20, Prometheus' -query.max-concurrency.
	MaxConcurrent int
	// MaxQueued is how many more may wait for a slot; past that a request
	// is answered 503 at once. 0 means 4×MaxConcurrent; negative means none.
	MaxQueued int
	// MaxQueueWait is how long a request waits for a slot before 503; 0
	// means 30s.
	MaxQueueWait time.Duration
	// MaxQueryLength bounds the query text in bytes; 0 means 256 KiB.
	MaxQueryLength int
	// MaxQueryDepth bounds the nesting depth of the query (brackets and
	// operator chains); 0 means 1,000.
	MaxQueryDepth int
	// WriteTimeout bounds writing a response after the query finished; 0
	// means 1 minute.
	WriteTimeout time.Duration

	// CacheMaxBytes bounds the range-query result cache; 0 means 128 MiB,
	// negative turns the cache off.
	CacheMaxBytes int64
	// CacheFreshness is how old data must be before steps computed from it
	// are cached; a sample written later than this after its timestamp
	// drops what it changes from the cache. 0 means 1 minute.
	CacheFreshness time.Duration
	// Parallel is how many slices of one range query are evaluated at
	// once; 0 means GOMAXPROCS.
	Parallel int
	// MinSliceSteps is the fewest steps a slice of a range query has; 0
	// means 30.
	MinSliceSteps int
	// NoFastPath turns off the fast path for rate, increase and their sum
	// in range queries (fastpath.go), leaving every step to Prometheus'
	// engine.
	NoFastPath bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Features are Prometheus' --enable-feature names for PromQL that the
	// engine turns on: promql-experimental-functions,
	// promql-delayed-name-removal, promql-binop-fill-modifiers,
	// promql-unquoted-utf8-names, promql-per-step-stats. New rejects others
	// (see ParseFeatures).
	Features []string

	// DataDir is the TSDB directory; snapshots go to DataDir/snapshots.
	DataDir string
	// EnableAdmin turns on /api/v1/admin/tsdb/{snapshot,delete_series,
	// clean_tombstones}; the caller guards them with the admin scope.
	EnableAdmin bool
	// CORSOrigin is a regexp of origins whose browsers may read the API;
	// "" means none (Prometheus' default is ".*").
	CORSOrigin string
	// Rules lists recording and alerting rules; nil means none.
	Rules func(context.Context) v1.RulesRetriever
	// Alertmanagers lists the Alertmanagers alerts go to; nil means none.
	Alertmanagers func(context.Context) v1.AlertmanagerRetriever
	// Config returns the configuration /api/v1/status/config shows; nil
	// means Prometheus' defaults.
	Config func() config.Config
	// Flags is what /api/v1/status/flags shows: flag name to value.
	Flags map[string]string
	// Ready reports whether the collector serves requests; nil means
	// always. While false, the API answers 503 as Prometheus does.
	Ready func() bool
	// Gatherer holds the TSDB's prometheus_tsdb_* metrics (status/tsdb
	// reads the head chunk count from it).
	Gatherer  prometheus.Gatherer
	Metadata  MetadataSource
	BuildInfo BuildInfo
	Logger    *slog.Logger // nil means slog.Default()
	Metrics   *metrics.Set
}

// API serves the query endpoints. It is safe for concurrent use.
type API struct {
	st     Storage
	engine *promql.Engine
	ranges *rangeEngine
	cache  *resultCache // nil when off
	parser parser.Parser
	opts   Options
	log    *slog.Logger
	set    *metrics.Set
	gate   *admission
	prom   *v1.API
	router *route.Router
	start  time.Time
}

// New returns the query API over st.
func New(st Storage, opts Options) *API {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 50_000_000
	}
	if opts.LookbackDelta <= 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 20
	}
	if opts.MaxQueued == 0 {
		opts.MaxQueued = 4 * opts.MaxConcurrent
	}
	if opts.MaxQueued < 0 {
		opts.MaxQueued = 0
	}
	if opts.MaxQueueWait <= 0 {
		opts.MaxQueueWait = 30 * time.Second
	}
	if opts.MaxQueryLength <= 0 {
		opts.MaxQueryLength = 256 << 10
	}
	if opts.MaxQueryDepth <= 0 {
		opts.MaxQueryDepth = 1000
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.CacheMaxBytes == 0 {
		opts.CacheMaxBytes = 128 << 20
	}
	if opts.CacheFreshness <= 0 {
		opts.CacheFreshness = time.Minute
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.GOMAXPROCS(0)
	}
	if opts.MinSliceSteps <= 0 {
		opts.MinSliceSteps = 30
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	if opts.Config == nil {
		opts.Config = func() config.Config { return config.DefaultConfig }
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	popts, eopts, err := ParseFeatures(opts.Features)
	if err != nil {
		panic("BUG: query.New with unchecked features: " + err.Error())
	}
	p := parser.NewParser(popts)
	feats := features.NewRegistry()
	a := &API{
		st:     st,
		parser: p,
		opts:   opts,
		log:    opts.Logger,
		set:    opts.Metrics,
		start:  time.Now().UTC(),
		// Prometheus' defaults (cmd/prometheus): the @ modifier and
		// negative offsets on, delayed __name__ removal off, subqueries
		// without a step use the global evaluation interval (1m).
		engine: promql.NewEngine(promql.EngineOpts{
			Logger:                   opts.Logger.With("component", "promql"),
			MaxSamples:               opts.MaxSamples,
			Timeout:                  opts.Timeout,
			LookbackDelta:            opts.LookbackDelta,
			NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			EnableDelayedNameRemoval: eopts.EnableDelayedNameRemoval,
			EnablePerStepStats:       eopts.EnablePerStepStats,
			FeatureRegistry:          feats,
			Parser:                   p,
		}),
	}
	a.gate = newAdmission(opts, a.set)
	if opts.CacheMaxBytes > 0 {
		a.cache = newResultCache(opts.CacheMaxBytes, opts.CacheFreshness, opts.Now, st.MinTime, a.set)
	}
	a.ranges = &rangeEngine{eng: a.engine, cache: a.cache, parallel: opts.Parallel,
		minSliceSteps: opts.MinSliceSteps, lookback: opts.LookbackDelta,
		fast: !opts.NoFastPath && !eopts.EnableDelayedNameRemoval, maxSamples: opts.MaxSamples, timeout: opts.Timeout,
		fastTaken:  a.set.GetOrCreateCounter(`telltale_query_fast_path_total{outcome="taken"}`),
		fastEngine: a.set.GetOrCreateCounter(`telltale_query_fast_path_total{outcome="engine"}`)}
	a.prom = a.newPrometheusAPI(feats)
	a.router = route.New()
	a.prom.Register(a.router.WithPrefix("/api/v1"))
	return a
}

// ParseFeatures turns Prometheus' --enable-feature names for PromQL into
// parser and engine options; an unknown name is an error that lists the
// known ones.
func ParseFeatures(names []string) (parser.Options, promql.EngineOpts, error) {
	var (
		p parser.Options
		e promql.EngineOpts
	)
	for _, n := range names {
		switch strings.TrimSpace(n) {
		case "":
		case "promql-experimental-functions":
			p.EnableExperimentalFunctions = true
		case "promql-binop-fill-modifiers":
			p.EnableBinopFillModifiers = true
		case "promql-unquoted-utf8-names":
			p.EnableUnquotedUTF8Names = true
		case "promql-delayed-name-removal":
			e.EnableDelayedNameRemoval = true
		case "promql-per-step-stats":
			e.EnablePerStepStats = true
		default:
			return p, e, fmt.Errorf("unknown PromQL feature %q; known: promql-experimental-functions, promql-delayed-name-removal, promql-binop-fill-modifiers, promql-unquoted-utf8-names, promql-per-step-stats", n)
		}
	}
	return p, e, nil
}

func (a *API) newPrometheusAPI(feats features.Collector) *v1.API {
	opts := a.opts
	cors := regexp.MustCompile(`^$`)
	if opts.CORSOrigin != "" {
		cors = regexp.MustCompile("^(?s:" + opts.CORSOrigin + ")$")
	}
	rules := func(context.Context) v1.RulesRetriever { return noRules{} }
	if opts.Rules != nil {
		rules = opts.Rules
	}
	ams := func(context.Context) v1.AlertmanagerRetriever { return noAlertmanagers{} }
	if opts.Alertmanagers != nil {
		ams = opts.Alertmanagers
	}
	ready := func(f http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !opts.Ready() {
				w.Header().Set("X-Prometheus-Stopping", "false")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("Service Unavailable"))
				return
			}
			f(w, r)
		}
	}
	bi := opts.BuildInfo
	version := &v1.PrometheusVersion{
		Version: bi.Version, Revision: bi.Revision, Branch: bi.Branch,
		BuildUser: "telltale", BuildDate: bi.BuildDate, GoVersion: runtime.Version(),
	}
	u := &url.URL{Scheme: "http", Host: "localhost:9470"}
	return v1.NewAPI(a.ranges, a.st, nil, a.st,
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		ams,
		opts.Config,
		opts.Flags,
		v1.GlobalURLOptions{ListenAddress: u.Host, Host: u.Host, Scheme: u.Scheme},
		ready,
		adminHooks{a.st, a.cache},
		opts.DataDir,
		opts.EnableAdmin,
		false, // search API: experimental in Prometheus, off by default
		0,
		opts.Logger.With("component", "api"),
		rules,
		5e7, 10, 1048576, // remote read: Prometheus' default limits
		false,
		cors,
		a.runtimeInfo,
		version,
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		opts.Gatherer,
		prometheus.NewRegistry(), // remote read's metrics are not worth a second registry on /metrics
		nil,
		false, nil, false, false, false,
		opts.LookbackDelta,
		false, false,
		nil,
		feats,
		v1.OpenAPIOptions{ExternalURL: u.String(), Version: bi.Version},
		a.parser,
		false,
		opts.Timeout,
	)
}

func (a *API) runtimeInfo() (v1.RuntimeInfo, error) {
	cwd, _ := os.Getwd()
	host, err := os.Hostname()
	return v1.RuntimeInfo{
		StartTime:           a.start,
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          time.Now().UTC(),
		ReloadConfigSuccess: true,
		LastConfigTime:      a.start,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
	}, err
}

// Handler returns the handler for /api/v1/ and the /-/healthy and
// /-/ready probes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/metadata", a.instrument("metadata", http.HandlerFunc(a.metadata)))
	mux.Handle("/api/v1/", a.guard(fastGzip(a.router)))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("Prometheus Server is Healthy.\n"))
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !a.opts.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("Service Unavailable"))
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("Prometheus Server is Ready.\n"))
	})
	return mux
}

// WriteObserver is told about every committed write (ingest.Observer).
type WriteObserver interface {
	Active() bool
	Observe(b *samples.Batch, refs []storage.SeriesRef)
}

// Observer returns what must see every committed write for the result
// cache to stay exact, or nil when the cache is off.
func (a *API) Observer() WriteObserver {
	if a.cache == nil {
		return nil
	}
	return a.cache
}

// adminHooks empties the result cache when the admin API deletes data.
type adminHooks struct {
	Storage
	cache *resultCache
}

func (h adminHooks) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	err := h.Storage.Delete(ctx, mint, maxt, ms...)
	if h.cache != nil {
		h.cache.clear()
	}
	return err
}

// ClearCache drops everything the result cache holds, for when it may have
// missed a write it should have seen (forward mode: a replica that lost
// another replica's late-write notices).
func (a *API) ClearCache() {
	if a.cache != nil {
		a.cache.clear()
	}
}

// Parser returns the PromQL parser the API uses (the tail reuses it).
func (a *API) Parser() parser.Parser { return a.parser }

// Engine returns the PromQL engine, for in-process users such as the deploy
// impact analysis.
func (a *API) Engine() *promql.Engine { return a.engine }

// Queryable returns the storage the API queries.
func (a *API) Queryable() storage.Queryable { return a.st }

// handlerName is the handler label of a path's metrics: the path under
// /api/v1/ with slashes as underscores, label values as "label_values",
// anything unknown as "other" (bounded cardinality).
func handlerName(path string) string {
	p := strings.TrimPrefix(path, "/api/v1/")
	if strings.HasPrefix(p, "label/") && strings.HasSuffix(p, "/values") {
		return "label_values"
	}
	if _, ok := knownHandlers[p]; ok {
		return strings.ReplaceAll(p, "/", "_")
	}
	return "other"
}

var knownHandlers = map[string]struct{}{
	"query": {}, "query_range": {}, "query_exemplars": {}, "series": {}, "labels": {},
	"format_query": {}, "parse_query": {}, "metadata": {}, "rules": {}, "alerts": {},
	"read": {}, "targets": {}, "alertmanagers": {}, "status/buildinfo": {}, "status/config": {},
	"status/flags": {}, "status/runtimeinfo": {}, "status/tsdb": {}, "status/walreplay": {},
	"admin/tsdb/snapshot": {}, "admin/tsdb/delete_series": {}, "admin/tsdb/clean_tombstones": {},
}
