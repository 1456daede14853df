// Package query serves the Prometheus HTTP query API (the subset Grafana's
// stock Prometheus data source uses) on top of the promql engine and the
// collector's storage: /api/v1/query, query_range, series, labels,
// label/<name>/values, metadata, status/buildinfo, plus empty answers for
// rules, alerts and exemplars so Grafana's feature probes succeed.
//
// Responses follow Prometheus' JSON envelope and error types, so any
// Prometheus API client works unchanged.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/telltale-dev/telltale/samples"
)

// MetadataSource lists metric metadata; the ingest writer's store is one.
type MetadataSource interface {
	List(metric string, limit int) []samples.Metadata
}

// BuildInfo is served by /api/v1/status/buildinfo.
type BuildInfo struct {
	Version, Revision, Branch, BuildDate string
}

// Options configure New.
type Options struct {
	// Timeout bounds one query; 0 means 2 minutes.
	Timeout time.Duration
	// MaxSamples bounds the samples one query may load into memory; 0 means 50M.
	MaxSamples int
	// LookbackDelta is how far back an instant selector looks; 0 means 5m.
	LookbackDelta time.Duration
	// MaxPoints bounds the points per series of a range query; 0 means 11,000.
	MaxPoints int
	Metadata  MetadataSource
	BuildInfo BuildInfo
	Logger    *slog.Logger
	Metrics   *metrics.Set
}

// API serves the query endpoints. It is safe for concurrent use.
type API struct {
	q      storage.Queryable
	engine *promql.Engine
	parser parser.Parser
	opts   Options
	log    *slog.Logger
	set    *metrics.Set
	mux    *http.ServeMux
}

// New returns the query API over q.
func New(q storage.Queryable, opts Options) *API {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 50_000_000
	}
	if opts.LookbackDelta <= 0 {
		opts.LookbackDelta = 5 * time.Minute
	}
	if opts.MaxPoints <= 0 {
		opts.MaxPoints = 11_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	p := parser.NewParser(parser.Options{})
	a := &API{
		q:      q,
		parser: p,
		opts:   opts,
		log:    opts.Logger,
		set:    opts.Metrics,
		engine: promql.NewEngine(promql.EngineOpts{
			Logger:               opts.Logger.With("component", "promql"),
			MaxSamples:           opts.MaxSamples,
			Timeout:              opts.Timeout,
			LookbackDelta:        opts.LookbackDelta,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
			// Keep __name__ until the end of evaluation, so sum(count_over_time({__name__=~"a|b"}[1h]))
			// works instead of failing with "vector cannot contain metrics with the same labelset".
			EnableDelayedNameRemoval: true,
			NoStepSubqueryIntervalFn: func(int64) int64 {
				return time.Minute.Milliseconds()
			},
			Parser: p,
		}),
	}
	mux := http.NewServeMux()
	a.handle(mux, "/api/v1/query", a.query)
	a.handle(mux, "/api/v1/query_range", a.queryRange)
	a.handle(mux, "/api/v1/series", a.series)
	a.handle(mux, "/api/v1/labels", a.labelNames)
	a.handle(mux, "/api/v1/label/{name}/values", a.labelValues)
	a.handle(mux, "/api/v1/metadata", a.metadata)
	a.handle(mux, "/api/v1/status/buildinfo", a.buildInfo)
	a.handle(mux, "/api/v1/query_exemplars", a.emptyList)
	a.handle(mux, "/api/v1/rules", a.rules)
	a.handle(mux, "/api/v1/alerts", a.alerts)
	a.handle(mux, "/api/v1/format_query", a.formatQuery)
	a.handle(mux, "/api/v1/parse_query", a.parseQuery)
	a.mux = mux
	return a
}

// Handler returns the handler for all query paths (under /api/v1/).
func (a *API) Handler() http.Handler { return a.mux }

// Parser returns the PromQL parser the API uses (the tail reuses it).
func (a *API) Parser() parser.Parser { return a.parser }

// apiFunc computes a response's data or an error.
type apiFunc func(r *http.Request) (data any, warnings annotations.Annotations, err *apiError)

func (a *API) handle(mux *http.ServeMux, path string, f apiFunc) {
	name := strings.TrimPrefix(path, "/api/v1/")
	name = strings.ReplaceAll(strings.ReplaceAll(name, "{name}", "name"), "/", "_")
	dur := a.set.GetOrCreateSummary(`telltale_query_request_duration_seconds{handler="` + name + `"}`)
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { dur.UpdateDuration(start) }()
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			writeError(w, &apiError{typ: errBadData, err: fmt.Errorf("method %s not allowed; use GET or POST", r.Method)}, http.StatusMethodNotAllowed)
			return
		}
		if err := r.ParseForm(); err != nil {
			writeError(w, &apiError{typ: errBadData, err: fmt.Errorf("cannot parse form: %w", err)}, 0)
			return
		}
		data, warns, apiErr := f(r)
		if apiErr != nil {
			a.set.GetOrCreateCounter(`telltale_query_errors_total{handler="` + name + `",type="` + string(apiErr.typ) + `"}`).Inc()
			if apiErr.typ == errInternal {
				a.log.Error("query failed", "component", "query", "handler", name, "err", apiErr.err)
			}
			writeError(w, apiErr, 0)
			return
		}
		writeSuccess(w, data, warns)
	})
}

type errorType string

const (
	errTimeout   errorType = "timeout"
	errCanceled  errorType = "canceled"
	errExec      errorType = "execution"
	errBadData   errorType = "bad_data"
	errInternal  errorType = "internal"
	errNotFound  errorType = "not_found"
	errNotAccept errorType = "not_acceptable"
)

type apiError struct {
	typ errorType
	err error
}

func badData(format string, args ...any) *apiError {
	return &apiError{typ: errBadData, err: fmt.Errorf(format, args...)}
}

func (a *API) queryOpts() promql.QueryOpts {
	return promql.NewPrometheusQueryOpts(false, 0, nil)
}

func (a *API) query(r *http.Request) (any, annotations.Annotations, *apiError) {
	qs := r.FormValue("query")
	if qs == "" {
		return nil, nil, badData("missing parameter \"query\"; pass a PromQL expression, e.g. query=up")
	}
	ts := time.Now()
	if s := r.FormValue("time"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return nil, nil, badData("invalid parameter \"time\": %v", err)
		}
		ts = t
	}
	return a.exec(r, func(ctx context.Context) (promql.Query, error) {
		return a.engine.NewInstantQuery(ctx, a.q, a.queryOpts(), qs, ts)
	})
}

func (a *API) queryRange(r *http.Request) (any, annotations.Annotations, *apiError) {
	qs := r.FormValue("query")
	if qs == "" {
		return nil, nil, badData("missing parameter \"query\"; pass a PromQL expression, e.g. query=up")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"start\": %v", err)
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"end\": %v", err)
	}
	if end.Before(start) {
		return nil, nil, badData("invalid parameter \"end\": end timestamp must not be before start time")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"step\": %v", err)
	}
	if step <= 0 {
		return nil, nil, badData("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	if points := end.Sub(start) / step; int(points) > a.opts.MaxPoints {
		return nil, nil, badData("exceeded maximum resolution of %d points per timeseries. Try decreasing the query resolution (?step=XX)", a.opts.MaxPoints)
	}
	return a.exec(r, func(ctx context.Context) (promql.Query, error) {
		return a.engine.NewRangeQuery(ctx, a.q, a.queryOpts(), qs, start, end, step)
	})
}

// exec runs the query newQuery makes under the request's timeout and
// limit: the shared tail of /query and /query_range.
func (a *API) exec(r *http.Request, newQuery func(context.Context) (promql.Query, error)) (any, annotations.Annotations, *apiError) {
	limit, apiErr := parseLimit(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	ctx, cancel, apiErr := a.withTimeout(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	defer cancel()
	q, err := newQuery(ctx)
	if err != nil {
		return nil, nil, badData("invalid parameter \"query\": %v", err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Warnings, queryError(res.Err)
	}
	return truncateResult(res.Value, limit), res.Warnings, nil
}

func (a *API) withTimeout(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	ctx := r.Context()
	if s := r.FormValue("timeout"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, nil, badData("invalid parameter \"timeout\": %v", err)
		}
		c, cancel := context.WithTimeout(ctx, d)
		return c, cancel, nil
	}
	c, cancel := context.WithCancel(ctx)
	return c, cancel, nil
}

func queryError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc), errors.Is(err, context.Canceled):
		return &apiError{typ: errCanceled, err: err}
	case errors.As(err, &eqt), errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: errTimeout, err: fmt.Errorf("%w; narrow the time range or the selector, or raise -query.timeout", err)}
	case errors.As(err, &es):
		return &apiError{typ: errInternal, err: err}
	case errors.Is(err, promql.ErrTooManySamples("")):
		return &apiError{typ: errExec, err: fmt.Errorf("%w; narrow the query or raise -query.max-samples", err)}
	}
	if strings.Contains(err.Error(), "query processing would load too many samples") {
		return &apiError{typ: errExec, err: fmt.Errorf("%w; narrow the query or raise -query.max-samples", err)}
	}
	return &apiError{typ: errExec, err: err}
}

func truncateResult(v parser.Value, limit int) parser.Value {
	if limit <= 0 {
		return v
	}
	switch x := v.(type) {
	case promql.Vector:
		if len(x) > limit {
			return x[:limit]
		}
	case promql.Matrix:
		if len(x) > limit {
			return x[:limit]
		}
	}
	return v
}

func parseLimit(r *http.Request) (int, *apiError) {
	s := r.FormValue("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badData("invalid parameter \"limit\": %q; want a non-negative integer", s)
	}
	return n, nil
}

// parseTimeRange reads start and end for the metadata endpoints, defaulting
// to all time.
func parseTimeRange(r *http.Request) (int64, int64, *apiError) {
	mint, maxt := int64(math.MinInt64/2), int64(math.MaxInt64/2)
	if s := r.FormValue("start"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return 0, 0, badData("invalid parameter \"start\": %v", err)
		}
		mint = t.UnixMilli()
	}
	if s := r.FormValue("end"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return 0, 0, badData("invalid parameter \"end\": %v", err)
		}
		maxt = t.UnixMilli()
	}
	return mint, maxt, nil
}

func (a *API) matcherSets(r *http.Request) ([][]*labels.Matcher, *apiError) {
	vals := r.Form["match[]"]
	sets := make([][]*labels.Matcher, 0, len(vals))
	for _, v := range vals {
		ms, err := a.parser.ParseMetricSelector(v)
		if err != nil {
			return nil, badData("invalid parameter \"match[]\": %v", err)
		}
		sets = append(sets, ms)
	}
	return sets, nil
}

func (a *API) series(r *http.Request) (any, annotations.Annotations, *apiError) {
	sets, apiErr := a.matcherSets(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	if len(sets) == 0 {
		return nil, nil, badData("no match[] parameter provided; pass a series selector, e.g. match[]=up")
	}
	mint, maxt, apiErr := parseTimeRange(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	limit, apiErr := parseLimit(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	q, err := a.q.Querier(mint, maxt)
	if err != nil {
		return nil, nil, &apiError{typ: errExec, err: err}
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: limit}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = q.Select(r.Context(), false, hints, sets[0]...)
	} else {
		ss := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			ss = append(ss, q.Select(r.Context(), true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
	}
	out := []labels.Labels{}
	var warns annotations.Annotations
	for set.Next() {
		if limit > 0 && len(out) >= limit {
			warns.Add(errors.New("results truncated due to limit"))
			break
		}
		out = append(out, set.At().Labels())
	}
	if err := set.Err(); err != nil {
		return nil, nil, &apiError{typ: errExec, err: err}
	}
	warns.Merge(set.Warnings())
	return out, warns, nil
}

func (a *API) labelNames(r *http.Request) (any, annotations.Annotations, *apiError) {
	return a.labelStrings(r, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, hints, ms...)
	})
}

func (a *API) labelValues(r *http.Request) (any, annotations.Annotations, *apiError) {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if name == "" {
		return nil, nil, badData("invalid label name %q", name)
	}
	return a.labelStrings(r, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, hints, ms...)
	})
}

// labelStrings serves the label names and values endpoints: it reads
// match[], start, end and limit, and runs get once per matcher set.
func (a *API) labelStrings(r *http.Request, get func(context.Context, storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error)) (any, annotations.Annotations, *apiError) {
	sets, apiErr := a.matcherSets(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	mint, maxt, apiErr := parseTimeRange(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	limit, apiErr := parseLimit(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	q, err := a.q.Querier(mint, maxt)
	if err != nil {
		return nil, nil, &apiError{typ: errExec, err: err}
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: limit}
	vals, warns, err := collectStrings(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return get(r.Context(), q, hints, ms)
	})
	if err != nil {
		return nil, nil, &apiError{typ: errExec, err: err}
	}
	return limitStrings(vals, limit), warns, nil
}

// collectStrings runs f once with no matchers, or once per matcher set,
// and returns the sorted union.
func collectStrings(sets [][]*labels.Matcher, f func([]*labels.Matcher) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	if len(sets) == 0 {
		vals, warns, err := f(nil)
		if vals == nil {
			vals = []string{}
		}
		return vals, warns, err
	}
	seen := map[string]struct{}{}
	var warns annotations.Annotations
	for _, ms := range sets {
		vals, w, err := f(ms)
		if err != nil {
			return nil, nil, err
		}
		warns.Merge(w)
		for _, v := range vals {
			seen[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sortStrings(out)
	return out, warns, nil
}

func limitStrings(s []string, limit int) []string {
	if limit > 0 && len(s) > limit {
		return s[:limit]
	}
	return s
}

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

func (a *API) metadata(r *http.Request) (any, annotations.Annotations, *apiError) {
	limit, apiErr := parseLimit(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	out := map[string][]metadataEntry{}
	if a.opts.Metadata == nil {
		return out, nil, nil
	}
	for _, m := range a.opts.Metadata.List(r.FormValue("metric"), limit) {
		out[m.Name] = []metadataEntry{{Type: m.Type, Help: m.Help, Unit: m.Unit}}
	}
	return out, nil, nil
}

func (a *API) buildInfo(*http.Request) (any, annotations.Annotations, *apiError) {
	bi := a.opts.BuildInfo
	return map[string]string{
		"version":   bi.Version,
		"revision":  bi.Revision,
		"branch":    bi.Branch,
		"buildUser": "telltale",
		"buildDate": bi.BuildDate,
		"goVersion": runtime.Version(),
	}, nil, nil
}

func (a *API) emptyList(*http.Request) (any, annotations.Annotations, *apiError) {
	return []any{}, nil, nil
}

func (a *API) rules(*http.Request) (any, annotations.Annotations, *apiError) {
	return map[string]any{"groups": []any{}}, nil, nil
}

func (a *API) alerts(*http.Request) (any, annotations.Annotations, *apiError) {
	return map[string]any{"alerts": []any{}}, nil, nil
}

func (a *API) formatQuery(r *http.Request) (any, annotations.Annotations, *apiError) {
	expr, err := a.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"query\": %v", err)
	}
	return expr.Pretty(0), nil, nil
}

func (a *API) parseQuery(r *http.Request) (any, annotations.Annotations, *apiError) {
	_, err := a.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return nil, nil, badData("invalid parameter \"query\": %v", err)
	}
	return map[string]string{"query": r.FormValue("query")}, nil, nil
}

// parseTime parses an RFC 3339 time or a Unix timestamp in (fractional)
// seconds, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing; want a Unix timestamp in seconds or RFC 3339 time")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > 1e15 || f < -1e15 {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp; want Unix seconds (1700000000.5) or RFC 3339 (2024-01-02T15:04:05Z)", s)
}

// parseDuration parses float seconds or a Prometheus duration (5m, 1h30m).
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("missing; want seconds (15) or a duration (15s, 1m)")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		d := f * float64(time.Second)
		if d >= float64(math.MaxInt64) || d <= float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(d), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration; want seconds (15) or a duration (15s, 1m)", s)
}

// Engine returns the PromQL engine, for in-process users such as the deploy
// impact analysis.
func (a *API) Engine() *promql.Engine { return a.engine }

// Queryable returns the storage the API queries.
func (a *API) Queryable() storage.Queryable { return a.q }
