// Package remote is the collector's read side in forward mode: a storage
// that answers the query API (collector/query) from the distributed
// engine the collector forwards to, so PromQL, the range slicing and
// result cache, rules and deploy impact analysis run on the collector,
// which becomes the engine's query front-end.
//
// Samples are read with Prometheus' remote read protocol (Prometheus'
// own client, storage/remote), which returns raw samples exactly as
// stored, staleness markers and native histograms included. Engines that
// do not serve remote read (Thanos Query) are read through their
// Prometheus query API instead: a selector over a range, evaluated as an
// instant query, returns the raw float samples in it. That path loses
// staleness markers (PromQL drops them from range selections, so a series
// that ended stays visible for the lookback delta) and native histograms
// (the JSON form is not exact); Options.Read chooses, "auto" probes.
// Label names and values come from the engine's query API (remote read
// has none); exemplars from its query_exemplars; the TSDB statistics from
// its status/tsdb when it has one.
//
// Labels the engine adds to every series (Thanos receive's
// receive_cluster, tenant_id) are removed when listed in
// Options.DropLabels, so dashboards written for one collector work
// unchanged; series that then have the same labels are merged, samples at
// the same time counted once.
//
// The admin operations (delete, snapshot, clean tombstones) and the WAL
// replay status belong to the engine: they fail with ErrNotSupported.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	promremote "github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/telltale-dev/telltale/secret"
)

// Read modes of Options.Read.
const (
	ReadAuto       = "auto"        // remote read if the engine serves it, else the query API
	ReadRemoteRead = "remote-read" // Prometheus remote read (Cortex, Prometheus, VictoriaMetrics)
	ReadQueryAPI   = "query-api"   // the Prometheus query API (Thanos Query)
)

// ErrNotSupported is returned for what only the engine can do.
var ErrNotSupported = errors.New("not supported in forward mode: the data lives in the engine; use the engine's own API")

// Options configure New.
type Options struct {
	// URL is the base of the engine's Prometheus API, the part before
	// /api/v1/query: http://cortex:9009/prometheus for Cortex,
	// http://thanos-query:10902 for Thanos Query.
	URL string
	// Read is ReadAuto, ReadRemoteRead or ReadQueryAPI; "" means auto.
	Read string
	// Headers go with every request, e.g. X-Scope-OrgID for a tenant.
	Headers map[string]string
	// TokenFile holds a bearer token for the engine.
	TokenFile string
	// TLS configures https (a CA file, a client certificate); the zero
	// value means Go's defaults.
	TLS config_util.TLSConfig
	// Timeout bounds one request to the engine. Default 2m.
	Timeout time.Duration
	// DropLabels are label names the engine adds that queries must not
	// see (receive_cluster, tenant_id for Thanos receive).
	DropLabels []string
	// Retention is how long the engine keeps data, if known; the result
	// cache then drops what was computed from data the engine has since
	// deleted. 0 means unknown (the cache assumes nothing is deleted).
	Retention time.Duration
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	Logger  *slog.Logger // nil means slog.Default()
	Metrics *metrics.Set
}

// Storage reads from the engine. It implements collector/query's Storage
// interface and is safe for concurrent use.
type Storage struct {
	opts   Options
	base   string
	log    *slog.Logger
	http   *http.Client
	reader promremote.ReadClient
	drop   map[string]bool

	mode     atomic.Value // string: the read mode in use (auto resolved)
	probeMu  sync.Mutex
	requests map[string]*metrics.Counter
	errs     map[string]*metrics.Counter
}

// New checks opts and returns the storage; it does not contact the engine
// yet (the engine may start after the collector).
func New(opts Options) (*Storage, error) {
	u, err := url.Parse(strings.TrimRight(opts.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-storage.query-url=%q is not an absolute http:// or https:// URL: give the base of the engine's Prometheus API, e.g. http://cortex:9009/prometheus", opts.URL)
	}
	if strings.HasSuffix(u.Path, "/api/v1/query") || strings.HasSuffix(u.Path, "/api/v1/read") {
		return nil, fmt.Errorf("-storage.query-url=%q: give the base of the Prometheus API, without /api/v1/...", opts.URL)
	}
	switch opts.Read {
	case "":
		opts.Read = ReadAuto
	case ReadAuto, ReadRemoteRead, ReadQueryAPI:
	default:
		return nil, fmt.Errorf("-storage.query-read=%q: want auto, remote-read or query-api", opts.Read)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	s := &Storage{opts: opts, base: u.String(), log: opts.Logger.With("component", "remote"), drop: map[string]bool{}}
	for _, l := range opts.DropLabels {
		if l = strings.TrimSpace(l); l != "" {
			s.drop[l] = true
		}
	}
	hc := config_util.DefaultHTTPClientConfig
	hc.TLSConfig = opts.TLS
	if opts.TokenFile != "" {
		if _, err := secret.Read(opts.TokenFile, "the engine's token file", "the bearer token"); err != nil {
			return nil, err
		}
		hc.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: opts.TokenFile}
	}
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("engine connection settings: %w", err)
	}
	client, err := config_util.NewClientFromConfig(hc, "telltale_engine")
	if err != nil {
		return nil, fmt.Errorf("engine connection settings: %w", err)
	}
	s.http = &http.Client{Transport: headerTransport{next: client.Transport, headers: opts.Headers}, Timeout: opts.Timeout}
	ru, _ := url.Parse(s.base + "/api/v1/read")
	s.reader, err = promremote.NewReadClient("engine", &promremote.ClientConfig{
		URL:              &config_util.URL{URL: ru},
		Timeout:          model.Duration(opts.Timeout),
		HTTPClientConfig: hc,
		Headers:          opts.Headers,
		ChunkedReadLimit: promconfig.DefaultChunkedReadLimit,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot make the remote read client: %w", err)
	}
	if opts.Read != ReadAuto {
		s.mode.Store(opts.Read)
	}
	s.requests, s.errs = map[string]*metrics.Counter{}, map[string]*metrics.Counter{}
	for _, ep := range []string{"read", "query", "labels", "label_values", "exemplars", "status_tsdb"} {
		s.requests[ep] = opts.Metrics.NewCounter(`telltale_remote_requests_total{endpoint="` + ep + `"}`)
		s.errs[ep] = opts.Metrics.NewCounter(`telltale_remote_errors_total{endpoint="` + ep + `"}`)
	}
	return s, nil
}

// headerTransport adds the configured headers (a tenant's X-Scope-OrgID).
type headerTransport struct {
	next    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	return t.next.RoundTrip(r)
}

// readMode returns the read mode, probing the engine once when it is auto.
func (s *Storage) readMode(ctx context.Context) (string, error) {
	if m, ok := s.mode.Load().(string); ok {
		return m, nil
	}
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if m, ok := s.mode.Load().(string); ok {
		return m, nil
	}
	// A query for a series that does not exist, over one millisecond.
	q, err := promremote.ToQuery(0, 1, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "telltale_remote_read_probe")}, nil)
	if err != nil {
		return "", err
	}
	ss, err := s.reader.Read(ctx, q, false)
	if err == nil {
		for ss.Next() {
		}
		err = ss.Err()
	}
	mode := ReadRemoteRead
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "http status 404") || strings.Contains(err.Error(), "http status 405"):
		mode = ReadQueryAPI
		s.log.Info("the engine serves no remote read; reading raw samples through its query API (no staleness markers, no native histograms)", "url", s.base)
	default:
		return "", fmt.Errorf("cannot tell whether the engine at -storage.query-url=%s serves remote read: %w", s.base, err)
	}
	s.mode.Store(mode)
	return mode, nil
}

// Querier returns a querier over [mint, maxt] (ms).
func (s *Storage) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

// ChunkQuerier serves the collector's own remote read endpoint.
func (s *Storage) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	return &chunkQuerier{querier{s: s, mint: mint, maxt: maxt}}, nil
}

type chunkQuerier struct{ querier }

func (q *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return promstorage.NewSeriesSetToChunkSet(q.querier.Select(ctx, sortSeries, hints, ms...))
}

// MinTime is now minus Options.Retention, or the earliest time when the
// retention is unknown.
func (s *Storage) MinTime() int64 {
	if s.opts.Retention <= 0 {
		return math.MinInt64
	}
	return s.opts.Now().Add(-s.opts.Retention).UnixMilli()
}

// CleanTombstones, Delete and Snapshot belong to the engine.
func (s *Storage) CleanTombstones() error { return ErrNotSupported }

func (s *Storage) Delete(context.Context, int64, int64, ...*labels.Matcher) error {
	return ErrNotSupported
}

func (s *Storage) Snapshot(string, bool) error { return ErrNotSupported }

// WALReplayStatus reports a finished replay: the collector has no WAL.
func (s *Storage) WALReplayStatus() (tsdb.WALReplayStatus, error) { return tsdb.WALReplayStatus{}, nil }

// BlockMetas lists no blocks: they are the engine's.
func (s *Storage) BlockMetas() ([]tsdb.BlockMeta, error) { return nil, nil }

// Stats answers /api/v1/status/tsdb from the engine's, when it has one.
func (s *Storage) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	var st struct {
		HeadStats struct {
			NumSeries     uint64 `json:"numSeries"`
			NumLabelPairs int    `json:"numLabelPairs"`
			MinTime       int64  `json:"minTime"`
			MaxTime       int64  `json:"maxTime"`
		} `json:"headStats"`
		SeriesCountByMetricName     []index.Stat `json:"seriesCountByMetricName"`
		LabelValueCountByLabelName  []index.Stat `json:"labelValueCountByLabelName"`
		MemoryInBytesByLabelName    []index.Stat `json:"memoryInBytesByLabelName"`
		SeriesCountByLabelValuePair []index.Stat `json:"seriesCountByLabelValuePair"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	if _, err := s.get(ctx, "status_tsdb", "/api/v1/status/tsdb", url.Values{"limit": {fmt.Sprint(limit)}}, &st); err != nil {
		return nil, fmt.Errorf("the engine's TSDB statistics: %w", err)
	}
	return &tsdb.Stats{
		NumSeries: st.HeadStats.NumSeries, MinTime: st.HeadStats.MinTime, MaxTime: st.HeadStats.MaxTime,
		IndexPostingStats: &index.PostingsStats{
			CardinalityMetricsStats: st.SeriesCountByMetricName, CardinalityLabelStats: st.LabelValueCountByLabelName,
			LabelValueStats: st.MemoryInBytesByLabelName, LabelValuePairsStats: st.SeriesCountByLabelValuePair,
			NumLabelPairs: st.HeadStats.NumLabelPairs,
		},
	}, nil
}

// apiError is an error answer of the engine's query API.
type apiError struct {
	status    int
	errorType string
	msg       string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("the engine answered %d (%s): %s", e.status, e.errorType, e.msg)
}

// get calls the engine's query API at path and decodes its data into
// out; it returns the answer's warnings.
func (s *Storage) get(ctx context.Context, endpoint, path string, params url.Values, out any) ([]string, error) {
	s.requests[endpoint].Inc()
	warns, err := s.call(ctx, path, params, out)
	if err != nil {
		s.errs[endpoint].Inc()
	}
	return warns, err
}

func (s *Storage) call(ctx context.Context, path string, params url.Values, out any) ([]string, error) {
	// GET as Grafana does; a long query goes as a form (label values and
	// the status endpoints take GET only, and their parameters are short).
	enc := params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path+"?"+enc, nil)
	if len(enc) > 4096 {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, strings.NewReader(enc))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the engine at -storage.query-url=%s: %w", s.base, err)
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
		Infos     []string        `json:"infos"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("cannot read the engine's answer: %w", err)
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status == "" {
		return nil, &apiError{status: resp.StatusCode, errorType: "bad_answer", msg: truncate(string(body), 300)}
	}
	if env.Status != "success" {
		return nil, &apiError{status: resp.StatusCode, errorType: env.ErrorType, msg: env.Error}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return nil, fmt.Errorf("cannot decode the engine's answer to %s: %w", path, err)
		}
	}
	return slices.Concat(env.Warnings, env.Infos), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
