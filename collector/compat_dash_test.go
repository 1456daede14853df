package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// dashboardRequests expands every query of the provisioned dashboards
// (panels, annotations, variables) into the API requests Grafana makes for
// them over the hour before end: range queries at the panel's step,
// instant queries, and for variables series and label values lookups.
// Times carry a random sub-millisecond part.
func dashboardRequests(t *testing.T, end int64, rng *rand.Rand) ([]compatRequest, []string) {
	t.Helper()
	boards, err := board.All(board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := board.Queries(boards)
	if err != nil {
		t.Fatal(err)
	}
	vars := board.TestVars()
	var reqs []compatRequest
	var exprs []string
	start := end - time.Hour.Milliseconds()
	for _, q := range qs {
		e, err := board.Expand(q.Expr, vars)
		if err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, e)
		where := q.String()
		switch {
		case q.Kind == board.KindVariable:
			reqs = append(reqs,
				compatRequest{where: where, path: "/api/v1/series", params: url.Values{"match[]": {e},
					"start": {secs(start, rng.Float64())}, "end": {secs(end, rng.Float64())}}},
				compatRequest{where: where, path: "/api/v1/label/" + q.Label + "/values", params: url.Values{"match[]": {e},
					"start": {secs(start, rng.Float64())}, "end": {secs(end, rng.Float64())}}})
		case q.Instant:
			at := start + rng.Int64N(end-start)
			reqs = append(reqs, compatRequest{where: where, path: "/api/v1/query", params: url.Values{"query": {e}, "time": {secs(at, rng.Float64())}}})
		default:
			for _, step := range []string{"15", "60"} {
				reqs = append(reqs, compatRequest{where: where, path: "/api/v1/query_range", params: url.Values{"query": {e},
					"start": {secs(start, rng.Float64())}, "end": {secs(end, rng.Float64())}, "step": {step}}})
			}
		}
	}
	return reqs, exprs
}

// dims are the values the generated data gives each label the dashboards
// filter or group by.
var dims = map[string][]string{
	"instance": {"h1:9100", "h2:9100"}, "mode": {"idle", "user", "system"}, "cpu": {"0", "1"},
	"route": {"/checkout", "/cart"}, "code": {"200", "500"}, "device": {"eth0", "lo"},
	"fstype": {"ext4", "tmpfs"}, "endpoint": {"remote_write", "otlp"}, "reason": {"too_old", "bad_label"},
	"handler": {"query", "query_range"}, "quantile": {"0.5", "0.99"}, "target": {"grafana"},
	"outcome": {"ok", "error"}, "switch": {"slow_checkout"}, "version": {"v1.0.0", "v1.1.0"},
	"status": {"success", "failure"}, "commit": {"abc123"},
}

var buckets = []string{"0.005", "0.05", "0.1", "0.5", "1", "+Inf"}

// generateData builds, from the selectors of exprs, series for every
// metric they name over [end-2h, end] at 15 s: the labels each selector
// fixes, the dims it filters or groups by, le buckets for _bucket
// families; counters rise, gauges wander, info metrics are 1. A few series
// end early with a staleness marker and some samples are missing, as in
// real data.
func generateData(t *testing.T, exprs []string, end int64, rng *rand.Rand) []loadSeries {
	t.Helper()
	type family struct {
		fixed labels.Labels
		used  map[string]bool
	}
	fams := map[string]*family{}
	p := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		expr, err := p.ParseExpr(e)
		if err != nil {
			t.Fatalf("dashboard query %q: %v", e, err)
		}
		grouping := map[string]bool{}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch x := n.(type) {
			case *parser.AggregateExpr:
				for _, g := range x.Grouping {
					grouping[g] = true
				}
			case *parser.BinaryExpr:
				if x.VectorMatching != nil {
					for _, g := range x.VectorMatching.MatchingLabels {
						grouping[g] = true
					}
				}
			}
			return nil
		})
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok || vs.Name == "" {
				return nil
			}
			f := fams[vs.Name]
			if f == nil {
				f = &family{used: map[string]bool{"instance": true}}
				fams[vs.Name] = f
			}
			b := labels.NewBuilder(f.fixed)
			b.Set("__name__", vs.Name)
			b.Set("job", "app")
			b.Set("service", "demo")
			b.Set("env", "dev")
			for _, m := range vs.LabelMatchers {
				if _, ok := dims[m.Name]; ok {
					f.used[m.Name] = true
				}
			}
			for g := range grouping {
				if _, ok := dims[g]; ok {
					f.used[g] = true
				}
			}
			f.fixed = b.Labels()
			return nil
		})
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []loadSeries
	for _, name := range names {
		f := fams[name]
		used := make([]string, 0, len(f.used))
		for d := range f.used {
			used = append(used, d)
		}
		sort.Strings(used)
		combos := []labels.Labels{f.fixed}
		for _, d := range used {
			var next []labels.Labels
			for _, c := range combos {
				for _, v := range dims[d] {
					next = append(next, labels.NewBuilder(c).Set(d, v).Labels())
				}
			}
			combos = next
		}
		if strings.HasSuffix(name, "_bucket") {
			var next []labels.Labels
			for _, c := range combos {
				for _, le := range buckets {
					next = append(next, labels.NewBuilder(c).Set("le", le).Labels())
				}
			}
			combos = next
		}
		for _, c := range combos {
			out = append(out, generateSeries(c, end, rng))
		}
	}
	return out
}

func generateSeries(lset labels.Labels, end int64, rng *rand.Rand) loadSeries {
	name := lset.Get("__name__")
	counter := strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_count") ||
		strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_bucket")
	info := strings.HasSuffix(name, "_info")
	frac := 1.0
	if le := lset.Get("le"); le != "" && le != "+Inf" {
		v, _ := strconv.ParseFloat(le, 64)
		frac = math.Min(1, 0.3+v) // cumulative: higher buckets count more
	}
	s := loadSeries{lset: lset}
	start := end - 2*time.Hour.Milliseconds()
	stopAt := end
	if rng.IntN(10) == 0 { // some series stop early, with a staleness marker
		stopAt = start + rng.Int64N(end-start)
	}
	v := rng.Float64() * 100
	rate := rng.Float64() * 10
	for ts := start; ts <= end; ts += 15_000 {
		if ts > stopAt {
			s.pts = append(s.pts, point{T: ts, V: math.Float64frombits(value.StaleNaN)})
			break
		}
		if rng.IntN(50) == 0 {
			continue // a missed scrape
		}
		switch {
		case info:
			v = 1
		case counter:
			v += rate * 15 * frac * (0.5 + rng.Float64())
			if rng.IntN(400) == 0 {
				v = 0 // a counter reset
			}
		default:
			v += rng.NormFloat64() * 5
		}
		s.pts = append(s.pts, point{T: ts, V: v})
	}
	return s
}

// TestDashboardQueriesCompat runs every query of the provisioned
// dashboards, as Grafana asks for them, against the real collector binary
// and against Prometheus' own API on the same data (generated from the
// queries' selectors, sent to the collector by remote write), serially
// and then from 32 concurrent clients, and requires identical answers.
func TestDashboardQueriesCompat(t *testing.T) {
	seed := *compatSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -compat.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 17))
	end := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	reqs, exprs := dashboardRequests(t, end, rng)
	data := generateData(t, exprs, end, rng)

	coll := collectortest.Start(t)
	ref := newReference(t, t.TempDir(), 6*time.Hour, nil)
	loadInChunks(t, coll.URL, ref, data)

	ctx := t.Context()
	want := make([]answer, len(reqs))
	mismatches := 0
	for i, r := range reqs {
		w, err := ask(ctx, compatClient, ref.URL, r.path, r.params, r.post)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = w
		got, err := ask(ctx, compatClient, coll.URL, r.path, r.params, r.post)
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			mismatches++
			t.Errorf("%s:\n got  %s\n want %s", r, got, w)
		}
		if w.Status != 200 {
			t.Errorf("%s: the reference answered %s; a dashboard query should succeed", r, w)
		}
	}
	bad := hammer(t, coll.URL, reqs, want, 32, 8*len(reqs), nil)
	t.Logf("dashboard queries: %d requests over %d series, compared serially and %d more from 32 clients; %d + %d mismatches",
		len(reqs), len(data), 8*len(reqs), mismatches, bad)
}

// loadInChunks writes data into the collector and the reference in
// requests of about 200 series, as a sender batches them.
func loadInChunks(t *testing.T, collURL string, ref *reference, data []loadSeries) {
	t.Helper()
	for chunk := range slices.Chunk(data, 200) {
		if skipped := loadBoth(t, t.Context(), "generated data", collURL, ref, chunk); skipped > 0 {
			t.Fatalf("the collector refused %d generated series", skipped)
		}
	}
}

// hammer asks the collector n requests (reqs round robin) from clients
// goroutines at once, each answer checked against want. If during is set
// it runs in its own goroutine for the whole time, and the requests start
// once it called started (or returned). hammer returns the number of
// wrong answers (the first few are reported).
func hammer(t *testing.T, url string, reqs []compatRequest, want []answer, clients, n int, during func(ctx context.Context, started func())) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var bg sync.WaitGroup
	if during != nil {
		ready := make(chan struct{})
		var once sync.Once
		started := func() { once.Do(func() { close(ready) }) }
		bg.Go(func() { defer started(); during(ctx, started) })
		<-ready
	}
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				r := reqs[k%len(reqs)]
				got, err := ask(ctx, compatClient, url, r.path, r.params, r.post)
				if err != nil {
					t.Errorf("%s: %v", r, err)
					return
				}
				if got != want[k%len(reqs)] {
					if bad.Add(1) <= 5 {
						t.Errorf("%s under %d concurrent clients:\n got  %s\n want %s", r, clients, got, want[k%len(reqs)])
					}
				}
			}
		})
	}
	wg.Wait()
	cancel()
	bg.Wait()
	return int(bad.Load())
}

// TestQueryRangeStress hammers query_range with 20,000 requests from 32
// goroutines while remote writes keep landing (newer samples of the same
// series, and new series), and checks every answer against the one the
// collector gave serially before: results computed for one request must
// never leak into another's (the bug this guards against handed a query's
// buffers back to the engine's pool before its answer was written).
func TestQueryRangeStress(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 requests; skipped with -short")
	}
	seed := *compatSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 23))
	end := time.Now().Add(-5 * time.Minute).Truncate(time.Second).UnixMilli()
	exprs := []string{
		`stdvar_over_time(load_gauge[5m])`, `exp(-load_gauge / 100)`, `rate(req_total[1m])`,
		`sum by (route) (rate(req_total[5m]))`, `avg_over_time(load_gauge[2m])`, `topk(3, load_gauge)`,
		`histogram_quantile(0.9, sum by (le) (rate(lat_bucket[5m])))`, `quantile_over_time(0.5, load_gauge[10m])`,
		`deriv(load_gauge[5m])`, `predict_linear(load_gauge[10m], 3600)`, `count by (instance) (load_gauge > 50)`,
		`abs(load_gauge) * 2 - 1`, `increase(req_total[10m])`, `max_over_time(load_gauge[1m]) - min_over_time(load_gauge[1m])`,
		`sort_desc(sum by (instance) (req_total))`, `label_replace(load_gauge, "x", "$1", "instance", "(.*):.*")`,
		`clamp(load_gauge, 0, 10)`, `resets(req_total[30m])`, `changes(load_gauge[15m])`, `sum(rate(req_total[1m])) / sum(rate(req_total[5m]))`,
	}
	var data []loadSeries
	for _, inst := range []string{"a:1", "b:1", "c:1", "d:1"} {
		for _, route := range []string{"/x", "/y", "/z"} {
			data = append(data, generateSeries(labels.FromStrings("__name__", "req_total", "instance", inst, "route", route), end, rng))
			for _, le := range buckets {
				data = append(data, generateSeries(labels.FromStrings("__name__", "lat_bucket", "instance", inst, "route", route, "le", le), end, rng))
			}
		}
		data = append(data, generateSeries(labels.FromStrings("__name__", "load_gauge", "instance", inst), end, rng))
	}
	coll := collectortest.Start(t)
	ref := newReference(t, t.TempDir(), 6*time.Hour, nil)
	loadInChunks(t, coll.URL, ref, data)

	var reqs []compatRequest
	for _, e := range exprs {
		for _, step := range []string{"15", "60", "7.5"} {
			reqs = append(reqs, compatRequest{where: "stress", path: "/api/v1/query_range", params: url.Values{"query": {e},
				"start": {secs(end-time.Hour.Milliseconds(), rng.Float64())}, "end": {secs(end, rng.Float64())}, "step": {step}}})
		}
	}
	ctx := t.Context()
	want := make([]answer, len(reqs))
	for i, r := range reqs {
		got, err := ask(ctx, compatClient, coll.URL, r.path, r.params, r.post)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := ask(ctx, compatClient, ref.URL, r.path, r.params, r.post)
		if err != nil {
			t.Fatal(err)
		}
		if got != ref || got.Status != 200 {
			t.Fatalf("%s: serial answer differs from Prometheus' or failed:\n got  %s\n want %s", r, got, ref)
		}
		want[i] = got
	}
	// Ingest keeps running: newer samples of every series (after end, so
	// no answer may change) and series of a metric no query reads.
	var written atomic.Int64
	ingest := func(ctx context.Context, started func()) {
		for k := int64(1); ctx.Err() == nil; k++ {
			ts := end + k*100
			batch := make([]prompb.TimeSeries, 0, len(data)+10)
			for _, s := range data {
				batch = append(batch, toPrompb(s.lset, []point{{T: ts, V: float64(k)}}))
			}
			for i := range 10 {
				batch = append(batch, toPrompb(labels.FromStrings("__name__", "other_metric", "n", fmt.Sprint(k*10+int64(i))), []point{{T: ts, V: 1}}))
			}
			status, msg, err := remoteWrite(ctx, coll.URL, batch)
			if ctx.Err() != nil {
				return
			}
			if err != nil || status != 204 {
				t.Errorf("remote write during the stress run: %d %s %v", status, msg, err)
				return
			}
			written.Add(int64(len(batch)))
			started()
		}
	}
	const n = 20_000
	bad := hammer(t, coll.URL, reqs, want, 32, n, ingest)
	t.Logf("query_range stress: %d requests from 32 goroutines while %d samples were ingested; %d corrupted answers", n, written.Load(), bad)
}
