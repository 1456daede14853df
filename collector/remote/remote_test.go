package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/collector/enginetest"
	"github.com/telltale-dev/telltale/samples"
)

// t0 is where the test data starts: an hour ago, on a minute.
var t0 = time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()

// write remote-writes b to url.
func write(t *testing.T, url string, b *samples.Batch) {
	t.Helper()
	c, err := push.New(push.Options{URL: url, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	enc := push.Encoder{Version: push.V1, MaxSamples: 10000}
	if err := enc.Encode(b, func(body []byte, _ int) error { return c.Send(t.Context(), body) }); err != nil {
		t.Fatalf("remote write: %v", err)
	}
}

// series adds a series with labels (name, value pairs) and samples at
// t0 + i*15s of values vs.
func series(b *samples.Batch, vs []float64, lbls ...string) {
	b.StartSeries(nil)
	for i := 0; i+1 < len(lbls); i += 2 {
		b.AddLabel(lbls[i], lbls[i+1])
	}
	for i, v := range vs {
		b.AddSample(t0+int64(i)*15000, v)
	}
}

func ramp(n int, k float64) []float64 {
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = k * float64(i)
	}
	return vs
}

func open(t *testing.T, o Options) *Storage {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dump reads every series matching ms in [from, to] as "labels: t=v ...".
func dump(t *testing.T, q promstorage.Queryable, from, to int64, ms ...*labels.Matcher) []string {
	t.Helper()
	qr, err := q.Querier(from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	ss := qr.Select(t.Context(), true, &promstorage.SelectHints{Start: from, End: to}, ms...)
	var out []string
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		var pts []string
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if ts < from || ts > to {
				continue // a querier may return more; PromQL ignores it
			}
			if value.IsStaleNaN(v) {
				pts = append(pts, fmt.Sprintf("%d=stale", ts))
				continue
			}
			pts = append(pts, fmt.Sprintf("%d=%g", ts, v))
		}
		out = append(out, s.Labels().String()+": "+strings.Join(pts, " "))
	}
	if err := ss.Err(); err != nil {
		t.Fatalf("Select: %v", err)
	}
	return out
}

func TestReadModesReturnWhatPrometheusStores(t *testing.T) {
	prom := enginetest.StartPrometheus(t)
	var b samples.Batch
	series(&b, ramp(40, 1), "__name__", "req_total", "job", "api", "code", "200")
	series(&b, ramp(40, 0.5), "__name__", "req_total", "job", "api", "code", "500")
	series(&b, append(ramp(20, 2), math.Float64frombits(value.StaleNaN)), "__name__", "req_total", "job", "web", "code", "200")
	write(t, prom.Write, &b)

	from, to := t0, t0+40*15000
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "req_total")
	rr := open(t, Options{URL: prom.API, Read: ReadRemoteRead})
	qa := open(t, Options{URL: prom.API, Read: ReadQueryAPI})
	got, want := dump(t, qa, from, to, m), dump(t, rr, from, to, m)
	stale := fmt.Sprintf(" %d=stale", t0+20*15000)
	if len(want) != 3 || !strings.HasPrefix(want[1], `{__name__="req_total", code="200", job="web"}`) || !strings.HasSuffix(want[1], stale) {
		t.Fatalf("remote read returned %q; want 3 series, the web one ending in a staleness marker", want)
	}
	// The query API path has no staleness markers; otherwise the same.
	want[1] = strings.TrimSuffix(want[1], stale)
	if !slices.Equal(got, want) {
		t.Errorf("query API read\n%q\nremote read\n%q", got, want)
	}
	// A sub-range: both ends included.
	sub := dump(t, rr, t0+15000, t0+30000, m, labels.MustNewMatcher(labels.MatchEqual, "code", "500"))
	if w := []string{`{__name__="req_total", code="500", job="api"}: ` + fmt.Sprintf("%d=0.5 %d=1", t0+15000, t0+30000)}; !slices.Equal(sub, w) {
		t.Errorf("sub-range = %q; want %q", sub, w)
	}
}

// TestPromQLOverRemoteEqualsPrometheus runs range queries with
// Prometheus' engine over the remote storage and compares them with what
// the Prometheus server answers itself.
func TestPromQLOverRemoteEqualsPrometheus(t *testing.T) {
	prom := enginetest.StartPrometheus(t)
	var b samples.Batch
	for i := range 5 {
		series(&b, ramp(240, float64(i+1)), "__name__", "req_total", "job", "api", "instance", fmt.Sprint(i))
		series(&b, ramp(240, -0.25*float64(i)), "__name__", "temp", "job", "api", "instance", fmt.Sprint(i))
	}
	write(t, prom.Write, &b)
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, EnableAtModifier: true, EnableNegativeOffset: true})
	start, end := time.UnixMilli(t0+10*60000), time.UnixMilli(t0+55*60000)
	for _, mode := range []string{ReadRemoteRead, ReadQueryAPI} {
		st := open(t, Options{URL: prom.API, Read: mode})
		for _, qs := range []string{
			`sum by (job) (rate(req_total[5m]))`,
			`req_total{instance="3"} - ignoring(instance) group_left temp{instance="2"}`,
			`max_over_time(temp[10m:1m])`,
			`count(req_total > 100)`,
		} {
			q, err := eng.NewRangeQuery(t.Context(), st, nil, qs, start, end, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			res := q.Exec(t.Context())
			if res.Err != nil {
				t.Fatalf("%s over %s: %v", qs, mode, res.Err)
			}
			got := res.Value.String()
			q.Close()
			if want := promRange(t, prom.API, qs, start, end); got != want {
				t.Errorf("%s over %s:\n got %s\nwant %s", qs, mode, got, want)
			}
		}
	}
}

// promRange asks the Prometheus server for a range query and renders the
// matrix as promql.Matrix.String does.
func promRange(t *testing.T, base, qs string, start, end time.Time) string {
	t.Helper()
	s := open(t, Options{URL: base})
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	params := url.Values{"query": {qs}, "start": {formatTime(start.UnixMilli())}, "end": {formatTime(end.UnixMilli())}, "step": {"60"}}
	if _, err := s.get(t.Context(), "query", "/api/v1/query_range", params, &data); err != nil {
		t.Fatal(err)
	}
	var m promql.Matrix
	for _, r := range data.Result {
		ser := promql.Series{Metric: labels.FromMap(r.Metric)}
		for _, v := range r.Values {
			ts, _ := parseTime(v[0])
			var f float64
			fmt.Sscan(v[1].(string), &f)
			ser.Floats = append(ser.Floats, promql.FPoint{T: ts, F: f})
		}
		m = append(m, ser)
	}
	slices.SortFunc(m, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return m.String()
}

func TestLabelsAndSeries(t *testing.T) {
	prom := enginetest.StartPrometheus(t)
	var b samples.Batch
	series(&b, ramp(3, 1), "__name__", "up", "job", "api", "receive_cluster", "a")
	series(&b, ramp(3, 1), "__name__", "up", "job", "db", "receive_cluster", "a")
	series(&b, ramp(3, 1), "__name__", "temp", "zone", "eu", "receive_cluster", "a")
	write(t, prom.Write, &b)
	st := open(t, Options{URL: prom.API, DropLabels: []string{"receive_cluster"}})
	q, _ := st.Querier(t0-60000, t0+60000)
	names, _, err := q.LabelNames(t.Context(), nil)
	if want := []string{"__name__", "job", "zone"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("LabelNames = %q, %v; want %q (receive_cluster dropped)", names, err, want)
	}
	vals, _, err := q.LabelValues(t.Context(), "job", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if want := []string{"api", "db"}; err != nil || !slices.Equal(vals, want) {
		t.Errorf("LabelValues(job) = %q, %v; want %q", vals, err, want)
	}
	vals, _, _ = q.LabelValues(t.Context(), "receive_cluster", nil)
	if len(vals) != 0 {
		t.Errorf("LabelValues(receive_cluster) = %q; want none (dropped)", vals)
	}
	ss := q.Select(t.Context(), true, &promstorage.SelectHints{Start: t0 - 60000, End: t0 + 60000, Func: "series"}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	var got []string
	for ss.Next() {
		got = append(got, ss.At().Labels().String())
	}
	if want := []string{`{__name__="up", job="api"}`, `{__name__="up", job="db"}`}; !slices.Equal(got, want) {
		t.Errorf("series = %q; want %q", got, want)
	}
}

func TestDroppedLabelsMergeSeries(t *testing.T) {
	prom := enginetest.StartPrometheus(t)
	// The same series through two receivers: overlapping samples (a
	// replica wrote both) and samples only one of them has.
	var b samples.Batch
	b.StartSeries(nil)
	for _, l := range [][2]string{{"__name__", "x"}, {"job", "api"}, {"receive_cluster", "r1"}, {"tenant_id", "t"}} {
		b.AddLabel(l[0], l[1])
	}
	b.AddSample(t0, 1)
	b.AddSample(t0+15000, 2)
	b.StartSeries(nil)
	for _, l := range [][2]string{{"__name__", "x"}, {"job", "api"}, {"receive_cluster", "r2"}, {"tenant_id", "t"}} {
		b.AddLabel(l[0], l[1])
	}
	b.AddSample(t0+15000, 2)
	b.AddSample(t0+30000, 3)
	write(t, prom.Write, &b)
	for _, mode := range []string{ReadRemoteRead, ReadQueryAPI} {
		st := open(t, Options{URL: prom.API, Read: mode, DropLabels: []string{"receive_cluster", "tenant_id"}})
		got := dump(t, st, t0, t0+60000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
		want := []string{fmt.Sprintf(`{__name__="x", job="api"}: %d=1 %d=2 %d=3`, t0, t0+15000, t0+30000)}
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %q; want %q (one series, the sample both have once)", mode, got, want)
		}
	}
}

// withoutRemoteRead proxies to the engine but answers 404 to remote read,
// as Thanos Query does.
func withoutRemoteRead(t *testing.T, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/read" {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAutoModeProbes(t *testing.T) {
	prom := enginetest.StartPrometheus(t)
	var b samples.Batch
	series(&b, ramp(3, 1), "__name__", "up", "job", "api")
	write(t, prom.Write, &b)
	f := func(base, wantMode string) {
		t.Helper()
		st := open(t, Options{URL: base})
		got := dump(t, st, t0, t0+60000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
		if len(got) != 1 {
			t.Errorf("auto read from %s: %q; want one series", base, got)
		}
		if m, _ := st.mode.Load().(string); m != wantMode {
			t.Errorf("auto mode against %s chose %q; want %q", base, m, wantMode)
		}
	}
	f(prom.API, ReadRemoteRead)
	f(withoutRemoteRead(t, prom.API), ReadQueryAPI)
}

func TestStatsAndAdmin(t *testing.T) {
	prom := enginetest.StartPrometheus(t)
	var b samples.Batch
	series(&b, ramp(3, 1), "__name__", "up", "job", "api")
	series(&b, ramp(3, 1), "__name__", "up", "job", "db")
	write(t, prom.Write, &b)
	st := open(t, Options{URL: prom.API})
	s, err := st.Stats("__name__", 10)
	if err != nil {
		t.Fatal(err)
	}
	if s.NumSeries != 2 || len(s.IndexPostingStats.CardinalityMetricsStats) != 1 || s.IndexPostingStats.CardinalityMetricsStats[0].Name != "up" {
		t.Errorf("Stats = %+v, %+v; want 2 series, all named up", s, s.IndexPostingStats)
	}
	for name, err := range map[string]error{
		"Delete": st.Delete(t.Context(), 0, 1), "Snapshot": st.Snapshot("x", true), "CleanTombstones": st.CleanTombstones(),
	} {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s = %v; want ErrNotSupported", name, err)
		}
	}
	if st.MinTime() != math.MinInt64 {
		t.Errorf("MinTime without a retention = %d; want the earliest time", st.MinTime())
	}
	now := time.Unix(1_700_000_000, 0)
	st = open(t, Options{URL: prom.API, Retention: time.Hour, Now: func() time.Time { return now }})
	if got, want := st.MinTime(), now.Add(-time.Hour).UnixMilli(); got != want {
		t.Errorf("MinTime with a 1h retention = %d; want %d", got, want)
	}
}

func TestEngineErrorsSayWhere(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(422)
		io.WriteString(w, `{"status":"error","errorType":"execution","error":"query processing would load too many samples"}`)
	}))
	defer srv.Close()
	st := open(t, Options{URL: srv.URL, Read: ReadQueryAPI, Headers: map[string]string{"X-Scope-OrgID": "team-a"}})
	q, _ := st.Querier(0, 1000)
	ss := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	for ss.Next() {
	}
	if err := ss.Err(); err == nil || !strings.Contains(err.Error(), "too many samples") || !strings.Contains(err.Error(), "-storage.query-url") {
		t.Errorf("Select against a failing engine: %v; want the engine's message and the flag", err)
	}
	f := func(o Options, want string) {
		t.Helper()
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) = %v; want %q", o, err, want)
		}
	}
	f(Options{URL: "cortex:9009"}, "not an absolute")
	f(Options{URL: "http://cortex/prometheus/api/v1/query"}, "without /api/v1")
	f(Options{URL: "http://x", Read: "grpc"}, "want auto, remote-read or query-api")
	f(Options{URL: "http://x", TokenFile: "/nonexistent"}, "token file")
}

func TestHeadersReachEngine(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path+" "+r.Header.Get("X-Scope-OrgID"))
		io.WriteString(w, `{"status":"success","data":["a"]}`)
	}))
	defer srv.Close()
	st := open(t, Options{URL: srv.URL + "/prometheus", Headers: map[string]string{"X-Scope-OrgID": "team-a"}})
	q, _ := st.Querier(0, 1000)
	if _, _, err := q.LabelNames(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/prometheus/api/v1/labels team-a"}; !slices.Equal(got, want) {
		t.Errorf("requests = %q; want %q", got, want)
	}
}

// The parser is used only to check that selector renders what PromQL
// reads back.
func TestSelectorRoundTrip(t *testing.T) {
	ms := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
		labels.MustNewMatcher(labels.MatchRegexp, "job", `a|"b"\n`),
		labels.MustNewMatcher(labels.MatchNotEqual, "zone", "é"),
		labels.MustNewMatcher(labels.MatchEqual, "weird.name", "x"),
	}
	p := parser.NewParser(parser.Options{})
	got, err := p.ParseMetricSelector(selector(ms))
	if err != nil {
		t.Fatalf("selector %s does not parse: %v", selector(ms), err)
	}
	if fmt.Sprint(got) != fmt.Sprint(ms) {
		t.Errorf("selector %s parses to %v; want %v", selector(ms), got, ms)
	}
}
