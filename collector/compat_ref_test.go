package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/telltale-dev/telltale/retry"
)

// This file holds the reference side of the differential tests: Prometheus'
// own TSDB, engine and HTTP API (web/api/v1), configured the way
// cmd/prometheus configures them by default, so that "identical to
// Prometheus" is checked against Prometheus' code and not against a copy of
// the collector's wiring.

// reference is an in-process Prometheus: its TSDB and its /api/v1 served over
// real HTTP.
type reference struct {
	db  *tsdb.DB
	srv *httptest.Server
	URL string
}

// newReference opens a Prometheus TSDB in dir with the options the
// collector's storage uses (out-of-order window oooWindow) and serves
// Prometheus' API on it, with the PromQL features given by their
// --enable-feature names.
func newReference(t testing.TB, dir string, oooWindow time.Duration, featureNames []string) *reference {
	return newReferenceWith(t, dir, oooWindow, featureNames, 50_000_000)
}

// newReferenceWith is newReference with --query.max-samples.
func newReferenceWith(t testing.TB, dir string, oooWindow time.Duration, featureNames []string, maxSamples int) *reference {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = (15 * 24 * time.Hour).Milliseconds()
	opts.OutOfOrderTimeWindow = oooWindow.Milliseconds()
	dbStats := tsdb.NewDBStats()
	reg := prometheus.NewRegistry()
	db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), reg, opts, dbStats)
	if err != nil {
		t.Fatalf("open reference TSDB: %v", err)
	}
	var popts parser.Options
	eopts := promql.EngineOpts{
		Logger:                   slog.New(slog.DiscardHandler),
		MaxSamples:               maxSamples,
		Timeout:                  2 * time.Minute,
		LookbackDelta:            5 * time.Minute,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	}
	for _, f := range featureNames { // as cmd/prometheus maps --enable-feature
		switch f {
		case "promql-experimental-functions":
			popts.EnableExperimentalFunctions = true
		case "promql-binop-fill-modifiers":
			popts.EnableBinopFillModifiers = true
		case "promql-unquoted-utf8-names":
			popts.EnableUnquotedUTF8Names = true
		case "promql-delayed-name-removal":
			eopts.EnableDelayedNameRemoval = true
		case "promql-per-step-stats":
			eopts.EnablePerStepStats = true
		default:
			t.Fatalf("reference: unknown feature %q", f)
		}
	}
	p := parser.NewParser(popts)
	eopts.Parser = p
	feats := features.NewRegistry()
	eopts.FeatureRegistry = feats
	engine := promql.NewEngine(eopts)
	u := &url.URL{Scheme: "http", Host: "localhost:9090"}
	api := v1.NewAPI(engine, db, nil, db,
		func(context.Context) v1.ScrapePoolsRetriever { return refTargets{} },
		func(context.Context) v1.TargetRetriever { return refTargets{} },
		func(context.Context) v1.AlertmanagerRetriever { return refAlertmanagers{} },
		func() promconfig.Config { return promconfig.DefaultConfig },
		map[string]string{},
		v1.GlobalURLOptions{ListenAddress: u.Host, Host: u.Host, Scheme: u.Scheme},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		refStats{db, dbStats},
		dir,
		true, false, 0,
		slog.New(slog.DiscardHandler),
		func(context.Context) v1.RulesRetriever { return refRules{} },
		5e7, 10, 1048576,
		false,
		regexp.MustCompile(`^(?:.*)$`),
		func() (v1.RuntimeInfo, error) { return v1.RuntimeInfo{}, nil },
		&v1.PrometheusVersion{},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		reg, prometheus.NewRegistry(),
		nil,
		false, nil, false, false, false,
		5*time.Minute,
		false, false,
		nil,
		feats,
		// Rendering the whole OpenAPI spec costs ~50 ms per API; the reference
		// serves no spec.
		v1.OpenAPIOptions{ExternalURL: u.String(), IncludePaths: []string{"/none"}},
		p,
		false,
		2*time.Minute,
	)
	r := route.New()
	api.Register(r.WithPrefix("/api/v1"))
	ref := &reference{db: db, srv: httptest.NewServer(r)}
	ref.URL = ref.srv.URL
	t.Cleanup(ref.Close)
	return ref
}

// Close stops serving and closes the TSDB; it may be called twice.
func (r *reference) Close() {
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
		_ = r.db.Close()
	}
}

// Append writes series into the reference in one transaction, as one
// remote-write request is one transaction in the collector.
func (r *reference) Append(series []prompb.TimeSeries) error {
	app := r.db.Appender(context.Background())
	for _, ts := range series {
		var b labels.ScratchBuilder
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		lset := b.Labels()
		for _, s := range ts.Samples {
			if _, err := app.Append(0, lset, s.Timestamp, s.Value); err != nil {
				_ = app.Rollback()
				return fmt.Errorf("reference append %s: %w", lset, err)
			}
		}
		for _, h := range ts.Histograms {
			var err error
			if h.IsFloatHistogram() {
				_, err = app.AppendHistogram(0, lset, h.Timestamp, nil, h.ToFloatHistogram())
			} else {
				_, err = app.AppendHistogram(0, lset, h.Timestamp, h.ToIntHistogram(), nil)
			}
			if err != nil {
				_ = app.Rollback()
				return fmt.Errorf("reference append histogram %s: %w", lset, err)
			}
		}
	}
	return app.Commit()
}

// remoteWrite sends series to a collector as one remote write 1.0
// request, encoded by Prometheus' own prompb, and returns the status and
// the answer's text.
func remoteWrite(ctx context.Context, baseURL string, series []prompb.TimeSeries) (int, string, error) {
	req := &prompb.WriteRequest{Timeseries: series}
	pb, err := req.Marshal()
	if err != nil {
		return 0, "", err
	}
	body := snappy.Encode(nil, pb)
	// A busy collector may answer 503 or 429 with Retry-After (its insert
	// slots or in-flight budget are taken, as on a loaded CI machine): a
	// sender comes back when told, as Prometheus does, for up to 2 minutes.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/write", bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		hr.Header.Set("Content-Type", "application/x-protobuf")
		hr.Header.Set("Content-Encoding", "snappy")
		hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			return 0, "", err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		busy := resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests
		if !busy || time.Now().After(deadline) {
			return resp.StatusCode, strings.TrimSpace(string(msg)), nil
		}
		wait, ok := retry.After(resp.Header.Get("Retry-After"), time.Now(), 5*time.Second)
		if !ok {
			wait = 100 * time.Millisecond
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return 0, "", err
		}
	}
}

// toPrompb turns a series description (labels and float or histogram
// points) into a remote-write series.
func toPrompb(lset labels.Labels, pts []point) prompb.TimeSeries {
	ts := prompb.TimeSeries{}
	lset.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
	for _, p := range pts {
		if p.H != nil {
			ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(p.T, p.H))
			continue
		}
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: p.T, Value: p.V})
	}
	return ts
}

// point is one sample of a loaded series: a float, or a histogram when H
// is set.
type point struct {
	T int64
	V float64
	H *histogram.FloatHistogram
}

// answer is one HTTP answer, compared as Prometheus' clients see it.
type answer struct {
	Status      int
	ContentType string
	Body        string
}

func (a answer) String() string {
	b := a.Body
	if len(b) > 600 {
		b = b[:600] + "…"
	}
	return fmt.Sprintf("%d %s %s", a.Status, a.ContentType, b)
}

// diff shows where two answers' bodies first differ.
func diff(got, want answer) string {
	g, w := got.Body, want.Body
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	from := max(0, i-200)
	return fmt.Sprintf("first difference at byte %d (%d vs %d bytes):\n got  …%s\n want …%s", i, len(g), len(w), g[from:min(len(g), i+200)], w[from:min(len(w), i+200)])
}

// ask sends one API request (GET with the parameters in the URL, or POST
// as a form) and returns the answer with the timing fields of stats=all
// removed, the one part of an answer that differs between two runs of
// the same query.
func ask(ctx context.Context, client *http.Client, baseURL, path string, params url.Values, post bool) (answer, error) {
	var req *http.Request
	var err error
	if post {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, strings.NewReader(params.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path+"?"+params.Encode(), nil)
	}
	if err != nil {
		return answer{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if params.Get("stats") != "" {
		body = dropTimings(body)
	}
	if path == "/api/v1/query" && !orderedQuery(params.Get("query")) {
		body = sortVector(body)
	}
	body = sortAnnotations(body)
	return answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(body)}, nil
}

// sortAnnotations sorts the warnings and infos of an API answer: PromQL
// collects them in a map, so their order differs between two evaluations
// of the same query (it shows with native histograms, whose mixes warn
// twice at once).
func sortAnnotations(body []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	changed := false
	for _, k := range []string{"warnings", "infos"} {
		var list []string
		if raw, ok := m[k]; !ok || json.Unmarshal(raw, &list) != nil || slices.IsSorted(list) {
			continue
		}
		slices.Sort(list)
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(list)
		m[k] = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		changed = true
	}
	if !changed {
		return body
	}
	// Keys sorted, as Prometheus writes them; no HTML escaping, as
	// Prometheus does not escape.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if enc.Encode(m) != nil {
		return body
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// orderedQuery reports whether an instant query's result order is part of
// its answer: only the sort functions define one. Any other vector comes
// out in the order the storage yields series, which in Prometheus itself
// changes when the head is compacted into a block (creation order becomes
// label order), so the differential tests compare those as sets, as
// Prometheus' own promqltest does (eval_ordered is for the sort functions).
func orderedQuery(q string) bool {
	e, err := parser.NewParser(parser.Options{EnableExperimentalFunctions: true, EnableBinopFillModifiers: true, EnableUnquotedUTF8Names: true}).ParseExpr(q)
	if err != nil {
		return true
	}
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	if c, ok := e.(*parser.Call); ok {
		return strings.HasPrefix(c.Func.Name, "sort")
	}
	return false
}

// sortVector puts the samples of an instant vector answer in label order,
// keeping each sample's bytes; any other answer is returned as it is.
func sortVector(body []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return body
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(top["data"], &data) != nil || string(data["resultType"]) != `"vector"` {
		return body
	}
	var res []json.RawMessage
	if json.Unmarshal(data["result"], &res) != nil {
		return body
	}
	key := func(m json.RawMessage) string {
		var s struct{ Metric json.RawMessage }
		_ = json.Unmarshal(m, &s)
		return string(s.Metric)
	}
	sort.SliceStable(res, func(i, j int) bool { return key(res[i]) < key(res[j]) })
	data["result"], _ = json.Marshal(res)
	top["data"], _ = json.Marshal(data)
	out, err := json.Marshal(top)
	if err != nil {
		return body
	}
	return out
}

// dropTimings removes data.stats.timings from a query answer.
func dropTimings(body []byte) []byte {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return body
	}
	if d, ok := v["data"].(map[string]any); ok {
		if s, ok := d["stats"].(map[string]any); ok {
			delete(s, "timings")
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

type refTargets struct{}

func (refTargets) ScrapePools() []string                                     { return []string{} }
func (refTargets) TargetsActive() map[string][]*scrape.Target                { return map[string][]*scrape.Target{} }
func (refTargets) TargetsDropped() map[string][]*scrape.Target               { return map[string][]*scrape.Target{} }
func (refTargets) TargetsDroppedCounts() map[string]int                      { return map[string]int{} }
func (refTargets) ScrapePoolConfig(string) (*promconfig.ScrapeConfig, error) { return nil, nil }

type refRules struct{}

func (refRules) RuleGroups() []*rules.Group           { return nil }
func (refRules) AlertingRules() []*rules.AlertingRule { return nil }

type refAlertmanagers struct{}

func (refAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (refAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

// refStats is what cmd/prometheus' readyStorage does for the API.
type refStats struct {
	db    *tsdb.DB
	stats *tsdb.DBStats
}

func (s refStats) CleanTombstones() error { return s.db.CleanTombstones() }
func (s refStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return s.db.Delete(ctx, mint, maxt, ms...)
}
func (s refStats) Snapshot(dir string, withHead bool) error { return s.db.Snapshot(dir, withHead) }
func (s refStats) Stats(name string, limit int) (*tsdb.Stats, error) {
	return s.db.Head().Stats(name, limit), nil
}
func (s refStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return s.stats.Head.WALReplayStatus.GetWALReplayStatus(), nil
}
func (s refStats) BlockMetas() ([]tsdb.BlockMeta, error) { return s.db.BlockMetas(), nil }
