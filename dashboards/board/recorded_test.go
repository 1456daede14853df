package board

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/collector/rules"
	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/samples"
)

// recordedQueries returns the panel queries that read recorded series,
// with their variables expanded (vars).
func recordedQueries(t *testing.T, vars map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, q := range mustQueries(t) {
		if q.Kind != KindPanel {
			continue
		}
		expr, err := Expand(q.Expr, vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range Recordings() {
			if slices.Contains(metricNames(t, expr), r.Record) {
				out[q.String()] = expr
			}
		}
	}
	return out
}

// Every recording is read by a panel, every recorded series a panel reads
// is a recording, and the rule file is what Recordings says and loads.
func TestRecordingsAndPanelsAgree(t *testing.T) {
	used := map[string]bool{}
	for _, expr := range recordedQueries(t, TestVars()) {
		for _, n := range metricNames(t, expr) {
			used[n] = true
		}
	}
	for _, r := range Recordings() {
		if !used[r.Record] {
			t.Errorf("recording %s is read by no panel: drop it", r.Record)
		}
	}
	for _, q := range mustQueries(t) {
		for _, n := range metricNames(t, mustExpand(t, q.Expr)) {
			if strings.Count(n, ":") == 2 && !slices.ContainsFunc(Recordings(), func(r Recording) bool { return r.Record == n }) {
				t.Errorf("%s reads %s, which no recording of the dashboards records", q, n)
			}
		}
	}
	data, err := RulesFile()
	if err != nil {
		t.Fatal(err)
	}
	res := rules.CheckBytes("dashboards.rules.yml", data, nil)
	if len(res.Problems) > 0 || res.Rules != len(Recordings()) {
		t.Fatalf("RulesFile: got %d rules, problems %v; want %d rules, none", res.Rules, res.Problems, len(Recordings()))
	}
}

func mustExpand(t *testing.T, expr string) string {
	t.Helper()
	e, err := Expand(expr, TestVars())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRecordedPanelsEqualRawQueries is the drift test: over generated
// traffic and host metrics, with the dashboards' rules backfilled through
// the collector's rules engine, every panel that reads a recorded series
// gives, at every evaluation time, what the same panel built with
// RawQueries computes from the raw series (with $__rate_interval at the
// rules' 1m). A rule that drops a label a panel uses, or reads another
// window or metric than the panel, fails it.
func TestRecordedPanelsEqualRawQueries(t *testing.T) {
	ctx := t.Context()
	store, err := storage.Open(storage.Options{Dir: filepath.Join(t.TempDir(), "tsdb"), OutOfOrderWindow: 6 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	w := ingest.NewWriter(store, ingest.Options{})
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, EnableDelayedNameRemoval: true})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	writeTraffic(t, w, start, 30*time.Minute)

	data, err := RulesFile()
	if err != nil {
		t.Fatal(err)
	}
	m, err := rules.New(rules.Options{Builtin: []rules.Builtin{{Name: "dashboards.rules.yml", Data: data}},
		Writer: w, Queryable: store, Engine: engine})
	if err != nil {
		t.Fatal(err)
	}
	from, to := start.Add(5*time.Minute), start.Add(25*time.Minute)
	if err := m.Backfill(ctx, from, to); err != nil {
		t.Fatal(err)
	}
	query := func(expr string, ts time.Time) promql.Vector {
		q, err := engine.NewInstantQuery(context.Background(), store, nil, expr, ts)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		defer q.Close()
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatalf("%s: %v", expr, res.Err)
		}
		switch v := res.Value.(type) {
		case promql.Vector:
			return v
		case promql.Scalar:
			return promql.Vector{{F: v.V, Metric: labels.EmptyLabels()}}
		}
		return nil
	}
	raw, err := All(Options{RawQueries: true})
	if err != nil {
		t.Fatal(err)
	}
	rawQueries, err := Queries(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Every service (the latency panels' classic half answers for every
	// route, the native half adds nothing), then the service that sends
	// only native histograms (the native half answers alone), then the one
	// that sends both (the classic half wins).
	answered := map[string]bool{}
	for _, svc := range []string{".+", "api", "cart"} {
		vars := TestVars() // $__rate_interval 1m: the rules' window
		vars["service"] = svc
		rawOf := map[string]string{}
		for _, q := range rawQueries {
			e, err := Expand(q.Expr, vars)
			if err != nil {
				t.Fatal(err)
			}
			rawOf[q.String()] = e
		}
		queries := recordedQueries(t, vars)
		if len(queries) < 10 {
			t.Fatalf("got %d panel queries over recorded series; want the service and hosts panels (10 or more)", len(queries))
		}
		for name, expr := range queries {
			raw, ok := rawOf[name]
			if !ok || raw == expr {
				t.Fatalf("%s: no raw form in the RawQueries dashboards (got %q)", name, raw)
			}
			for ts := from; !ts.After(to); ts = ts.Add(RulesInterval) {
				got, want := query(expr, ts), query(raw, ts)
				if len(got) != len(want) {
					t.Fatalf("%s at %s: got %d series; want %d from the raw query %s", name, ts.Format(time.TimeOnly), len(got), len(want), raw)
				}
				if len(got) > 0 {
					answered[name] = true
				}
				wantBy := map[string]promql.Sample{}
				for _, s := range want {
					wantBy[s.Metric.String()] = s
				}
				for _, s := range got {
					w, ok := wantBy[s.Metric.String()]
					if !ok || !close(s.F, w.F) || !closeHistograms(s.H, w.H) {
						t.Fatalf("%s%s at %s: got %v %v; want %v %v from the raw query %s", name, s.Metric, ts.Format(time.TimeOnly), s.F, s.H, w.F, w.H, raw)
					}
				}
			}
		}
	}
	// A query may answer nothing for one service (the heatmap's native
	// half where classic buckets exist), but every query answers for some.
	for name := range recordedQueries(t, TestVars()) {
		if !answered[name] {
			t.Errorf("%s answered nothing for any service: the comparison proves nothing", name)
		}
	}
}

// closeHistograms reports whether two native histogram samples (nil for a
// float sample) hold the same count, sum and bucket counts, but for
// rounding.
func closeHistograms(a, b *histogram.FloatHistogram) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if !close(a.Count, b.Count) || !close(a.Sum, b.Sum) {
		return false
	}
	type bucket struct{ lo, hi, n float64 }
	list := func(h *histogram.FloatHistogram) []bucket {
		var out []bucket
		for it := h.AllBucketIterator(); it.Next(); {
			if b := it.At(); b.Count != 0 {
				out = append(out, bucket{b.Lower, b.Upper, b.Count})
			}
		}
		return out
	}
	la, lb := list(a), list(b)
	if len(la) != len(lb) {
		return false
	}
	for i := range la {
		if la[i].lo != lb[i].lo || la[i].hi != lb[i].hi || !close(la[i].n, lb[i].n) {
			return false
		}
	}
	return true
}

// close reports whether a and b are equal but for the rounding of sums
// taken in another order (recorded: per route, then the panel's sum; raw:
// one sum), NaN equal to NaN.
func close(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// writeTraffic writes the instrument library's request metrics of three
// services (two envs, three routes, two methods, two codes, a latency
// histogram: classic le buckets from shop, a native histogram from api,
// both from cart) and the CPU counters of two hosts, every 10 s for d.
func writeTraffic(t *testing.T, w *ingest.Writer, start time.Time, d time.Duration) {
	t.Helper()
	les := []string{"0.05", "0.1", "0.25", "0.5", "1", "+Inf"}
	var b samples.Batch
	add := func(ts time.Time, v float64, kv ...string) {
		b.StartSeries(nil)
		for i := 0; i+1 < len(kv); i += 2 {
			b.AddLabel(kv[i], kv[i+1])
		}
		b.AddSample(ts.UnixMilli(), v)
	}
	// addNative adds a native histogram of schema 0 (bounds 0.125, 0.25,
	// 0.5, 1, 2) holding base observations spread 30/30/20/10/10%.
	addNative := func(ts time.Time, base float64, kv ...string) {
		b.StartSeries(nil)
		for i := 0; i+1 < len(kv); i += 2 {
			b.AddLabel(kv[i], kv[i+1])
		}
		var deltas []int64
		var count, prev int64
		for _, w := range []float64{0.3, 0.3, 0.2, 0.1, 0.1} {
			c := int64(math.Floor(base * w))
			deltas, prev, count = append(deltas, c-prev), c, count+c
		}
		b.AddHistogram(samples.Histogram{T: ts.UnixMilli(), IntCount: uint64(count), Sum: base * 0.4,
			PositiveSpans: []samples.Span{{Offset: -3, Length: 5}}, PositiveDeltas: deltas})
	}
	for ts := start; !ts.After(start.Add(d)); ts = ts.Add(10 * time.Second) {
		b.Reset()
		n := ts.Sub(start).Seconds()
		for si, svc := range []string{"shop", "cart", "api"} {
			for _, env := range []string{"prod", "dev"} {
				for ri, route := range []string{"/", "/api/checkout", "/api/search"} {
					for mi, method := range []string{"GET", "POST"} {
						base := float64(si*7+ri*3+mi+1) * n * (1 + 0.3*math.Sin(n/300+float64(ri)))
						lb := []string{"service", svc, "env", env, "route", route, "method", method, "instance", "i1"}
						add(ts, math.Floor(base), append([]string{"__name__", "http_requests_total", "code", "200"}, lb...)...)
						add(ts, math.Floor(base/(9+float64(ri))), append([]string{"__name__", "http_requests_total", "code", "500"}, lb...)...)
						if svc != "api" {
							for bi, le := range les {
								add(ts, math.Floor(base*float64(bi+1)/float64(len(les))), append([]string{"__name__", "http_request_duration_seconds_bucket", "le", le, "code", "200"}, lb...)...)
							}
						}
						if svc != "shop" {
							addNative(ts, base, append([]string{"__name__", "http_request_duration_seconds", "code", "200"}, lb...)...)
						}
					}
				}
			}
		}
		for hi, host := range []string{"h1", "h2"} {
			for cpu := range 2 + 2*hi {
				for mi, mode := range []string{"idle", "user", "system", "iowait"} {
					add(ts, n*float64(4-mi)/10*(1+0.1*float64(cpu)), "__name__", "node_cpu_seconds_total", "instance", host, "job", "node",
						"cpu", fmt.Sprint(cpu), "mode", mode)
				}
			}
		}
		if _, err := w.Write(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
}
