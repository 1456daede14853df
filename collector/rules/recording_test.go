package rules

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
)

const recordingRules = `
groups:
  - name: shop
    interval: 15s
    rules:
      - record: service_route_code:http_requests:rate1m
        expr: sum by (service, route, code) (rate(http_requests_total[1m]))
      - record: service:http_errors:ratio_rate1m
        expr: |
          sum by (service) (service_route_code:http_requests:rate1m{code=~"5.."})
          / sum by (service) (service_route_code:http_requests:rate1m)
      - record: service_le:http_request_duration_seconds_bucket:rate1m
        expr: sum by (service, le) (rate(http_request_duration_seconds_bucket[1m]))
      - record: service:http_request_duration_seconds:p99
        expr: histogram_quantile(0.99, service_le:http_request_duration_seconds_bucket:rate1m)
`

// rawOf is each recorded series' expression with the recorded series it
// reads replaced by their own expressions: what a panel without rules asks.
var rawOf = map[string]string{
	"service_route_code:http_requests:rate1m": `sum by (service, route, code) (rate(http_requests_total[1m]))`,
	"service:http_errors:ratio_rate1m": `sum by (service) (sum by (service, route, code) (rate(http_requests_total{code=~"5.."}[1m])))
		/ sum by (service) (sum by (service, route, code) (rate(http_requests_total[1m])))`,
	"service_le:http_request_duration_seconds_bucket:rate1m": `sum by (service, le) (rate(http_request_duration_seconds_bucket[1m]))`,
	"service:http_request_duration_seconds:p99":              `histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket[1m])))`,
}

// writeShopTraffic writes 20 minutes of counters of two services, three
// routes and two codes, and their latency histogram, every 5s.
func writeShopTraffic(h *harness, start time.Time, d time.Duration) {
	buckets := []string{"0.05", "0.1", "0.25", "0.5", "1", "+Inf"}
	for ts := start; !ts.After(start.Add(d)); ts = ts.Add(5 * time.Second) {
		n := ts.Sub(start).Seconds()
		for si, svc := range []string{"shop", "cart"} {
			for ri, route := range []string{"/", "/api/checkout", "/api/search"} {
				base := float64(si*10+ri+1) * n
				h.write("http_requests_total", map[string]string{"service": svc, "route": route, "code": "200"}, ts, base*3)
				h.write("http_requests_total", map[string]string{"service": svc, "route": route, "code": "500"}, ts, math.Floor(base/7))
				for bi, le := range buckets {
					h.write("http_request_duration_seconds_bucket", map[string]string{"service": svc, "route": route, "le": le}, ts, base*float64(bi+1)*(1+0.1*float64(ri)))
				}
			}
		}
	}
}

// sameVector fails t unless the recorded series got and the raw query's
// result want hold the same label sets (without the name) with exactly
// the same values.
func sameVector(t *testing.T, name string, ts time.Time, got, want promql.Vector) {
	t.Helper()
	wantBy := map[string]float64{}
	for _, s := range want {
		wantBy[s.Metric.DropMetricName().String()] = s.F
	}
	for _, s := range got {
		k := s.Metric.DropMetricName().String()
		w, ok := wantBy[k]
		if !ok {
			t.Fatalf("%s at %s: recorded series %s not in the raw query's result", name, ts.Format(time.TimeOnly), k)
		}
		if s.F != w && !(math.IsNaN(s.F) && math.IsNaN(w)) {
			t.Errorf("%s%s at %s: got %v; want %v (raw query)", name, k, ts.Format(time.TimeOnly), s.F, w)
		}
	}
}

// TestRecordingRulesEqualRawQueries evaluates recording rules at 40
// timestamps and checks that every recorded sample sits at its evaluation
// time and equals the raw query at that time, and that the samples went
// through the write path.
func TestRecordingRulesEqualRawQueries(t *testing.T) {
	h := newHarness(t, t.TempDir(), recordingRules, nil)
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	writeShopTraffic(h, start, 20*time.Minute)

	var evals []time.Time
	for ts := start.Add(2 * time.Minute); len(evals) < 40; ts = ts.Add(15 * time.Second) {
		h.evalAt(ts)
		evals = append(evals, ts)
	}
	for _, g := range h.m.RuleGroups() {
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil {
				t.Fatalf("rule %s: %v", r.Name(), err)
			}
		}
	}
	for name, raw := range rawOf {
		for _, ts := range evals {
			got := h.query(name, ts)
			at := h.query(fmt.Sprintf("timestamp(%s)", name), ts)
			want := h.query(raw, ts)
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%s at %s: got %d series; want %d (raw query), more than 0", name, ts.Format(time.TimeOnly), len(got), len(want))
			}
			sameVector(t, name, ts, got, want)
			for _, s := range at {
				if s.F != float64(ts.UnixMilli())/1e3 {
					t.Fatalf("%s at %s: newest recorded sample at %v; want at the evaluation time %v", name, ts.Format(time.TimeOnly), s.F, float64(ts.UnixMilli())/1e3)
				}
			}
		}
		if n := h.seen.count(name); n == 0 {
			t.Errorf("%s: the write path committed no sample of it; want every recorded sample to go through ingest.Writer", name)
		}
	}
	if got := h.query(`count(service_route_code:http_requests:rate1m)`, evals[len(evals)-1]); len(got) != 1 || got[0].F != 12 {
		t.Errorf("recorded series: got %v; want 12 (2 services × 3 routes × 2 codes)", got)
	}
}

// TestBackfillEqualsRawQueries backfills the recording rules over ten
// minutes of past traffic: one sample per rule and series at each aligned
// evaluation time, equal to the raw query then; no alert is evaluated.
func TestBackfillEqualsRawQueries(t *testing.T) {
	h := newHarness(t, t.TempDir(), recordingRules+`
      - alert: NeverEvaluated
        expr: vector(1)
`, nil)
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	writeShopTraffic(h, start, 20*time.Minute)
	from, to := start.Add(2*time.Minute), start.Add(12*time.Minute)
	if err := h.m.Backfill(t.Context(), from, to); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ts := from; !ts.After(to); ts = ts.Add(15 * time.Second) {
		for name, raw := range rawOf {
			got, want := h.query(name, ts), h.query(raw, ts)
			if len(got) == 0 || len(got) != len(want) {
				t.Fatalf("%s at %s: got %d series; want %d", name, ts.Format(time.TimeOnly), len(got), len(want))
			}
			at := h.query("timestamp("+name+")", ts)
			if at[0].F != float64(ts.Unix()) {
				t.Fatalf("%s at %s: newest sample at %v; want at %d", name, ts.Format(time.TimeOnly), at[0].F, ts.Unix())
			}
			sameVector(t, name, ts, got, want)
			n++
		}
	}
	if n != 41*len(rawOf) {
		t.Fatalf("compared %d; want %d", n, 41*len(rawOf))
	}
	if got := h.query(`count_over_time(ALERTS[1h])`, to); len(got) != 0 {
		t.Errorf("ALERTS after a backfill: got %v; want none (alerts are not backfilled)", got)
	}
}
