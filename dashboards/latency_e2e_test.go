package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/dashboards/board"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// latencyDist is the request duration distribution every step adds:
// observations per bucket of upper bounds 2^(offset+i), so that the
// 50th, 90th and 99th percentiles fall exactly on bounds (where classic
// linear and native exponential interpolation agree).
var latencyDist = []int64{50, 40, 9, 1}

// latencyWant is the p50, p90 and p99 of latencyDist starting at bucket
// offset (schema 0: the bucket of index i is (2^(i-1), 2^i]).
func latencyWant(offset int) map[string]float64 {
	return map[string]float64{"p50": math.Exp2(float64(offset)), "p90": math.Exp2(float64(offset + 1)), "p99": math.Exp2(float64(offset + 2))}
}

// addLatencyNative adds a native histogram (schema 0, integer) holding k
// times latencyDist from bucket index offset on.
func addLatencyNative(b *samples.Batch, ms int64, k int64, offset int32, lbl ...string) {
	b.StartSeries(nil)
	b.AddLabel("__name__", "http_request_duration_seconds")
	for i := 0; i+1 < len(lbl); i += 2 {
		b.AddLabel(lbl[i], lbl[i+1])
	}
	var deltas []int64
	var prev, count int64
	for _, c := range latencyDist {
		deltas, prev, count = append(deltas, k*c-prev), k*c, count+k*c
	}
	b.AddHistogram(samples.Histogram{T: ms, IntCount: uint64(count), Sum: float64(count) * 0.2,
		PositiveSpans: []samples.Span{{Offset: offset, Length: uint32(len(latencyDist))}}, PositiveDeltas: deltas})
}

// addLatencyClassic adds the classic buckets (le) of the same histogram.
func addLatencyClassic(b *samples.Batch, ms int64, k int64, offset int, lbl ...string) {
	cum := int64(0)
	for i := 0; i <= len(latencyDist); i++ {
		le := "+Inf"
		if i < len(latencyDist) {
			cum += k * latencyDist[i]
			le = strconv.FormatFloat(math.Exp2(float64(offset+i)), 'g', -1, 64)
		}
		b.StartSeries(nil)
		b.AddLabel("__name__", "http_request_duration_seconds_bucket")
		for j := 0; j+1 < len(lbl); j += 2 {
			b.AddLabel(lbl[j], lbl[j+1])
		}
		b.AddLabel("le", le)
		b.AddSample(ms, float64(cum))
	}
}

// TestServiceLatencyClassicAndNative: the Service dashboard's latency
// panels, as generated for Grafana (recorded series) and as the console
// runs them (RawQueries), read against the real collector, give the
// quantiles of an app that sends classic le buckets, of one that sends
// native histograms over remote write 2.0, and, for one that sends both
// (the classic buckets win, by the panels' `or`), one line per route.
func TestServiceLatencyClassicAndNative(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the collector")
	}
	col := collectortest.Start(t, "-rules.dashboards-interval=1s")

	// Samples every 5 s from 2 minutes ago to 5 minutes ahead, so that the
	// 1m rates, raw and recorded, have data at any time the test queries.
	// Route /a's distribution starts at bound 0.125 (offset -3), /b's one
	// bucket higher. The service "both" sends its classic buckets as /a's
	// and /b's, and native histograms two buckets higher: the panels must
	// show the classic ones.
	var b samples.Batch
	start := time.Now().Add(-2 * time.Minute)
	for k := int64(1); k <= 7*12; k++ {
		ms := start.Add(time.Duration(k) * 5 * time.Second).UnixMilli()
		for _, route := range []struct {
			name   string
			offset int
		}{{"/a", -3}, {"/b", -2}} {
			addLatencyClassic(&b, ms, k, route.offset, "service", "classic", "env", "dev", "route", route.name, "instance", "i1")
			addLatencyNative(&b, ms, k, int32(route.offset), "service", "native", "env", "dev", "route", route.name, "instance", "i1")
			addLatencyClassic(&b, ms, k, route.offset, "service", "both", "env", "dev", "route", route.name, "instance", "i1")
			addLatencyNative(&b, ms, k, int32(route.offset+2), "service", "both", "env", "dev", "route", route.name, "instance", "i1")
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, col.URL+"/api/v1/write",
		bytes.NewReader(snappy.Encode(nil, remotewrite.AppendV2(nil, &b))))
	req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written") != strconv.Itoa(4*7*12) {
		t.Fatalf("remote write: got %d %q, %s histograms written; want 204 and %d", resp.StatusCode, body,
			resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"), 4*7*12)
	}

	// The latency queries of both forms of the Service dashboard.
	type latencyQuery struct {
		name, expr string
		quantile   string // p50, p90, p99
		byRoute    bool
	}
	var queries []latencyQuery
	// The duration heatmap's two queries, recorded and raw: A (classic,
	// one series per le) answers for the apps that send classic buckets,
	// B (one native histogram) only for the app that sends none.
	type heatmapQuery struct{ name, expr, refID string }
	var heatmaps []heatmapQuery
	for _, raw := range []bool{false, true} {
		boards, err := board.All(board.Options{RawQueries: raw})
		if err != nil {
			t.Fatal(err)
		}
		all, err := board.Queries(boards)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range all {
			if q.Dashboard != board.UIDService || q.Kind != board.KindPanel {
				continue
			}
			if q.PanelType == "heatmap" {
				heatmaps = append(heatmaps, heatmapQuery{fmt.Sprintf("%s (raw %v)", q, raw), q.Expr, q.RefID})
			}
			switch q.Panel {
			case "p99 latency":
				queries = append(queries, latencyQuery{fmt.Sprintf("%s (raw %v)", q, raw), q.Expr, "p99", false})
			case "Latency by route: p50, p90, p99":
				quantiles := map[string]string{"A": "p50", "B": "p90", "C": "p99"}
				queries = append(queries, latencyQuery{fmt.Sprintf("%s (raw %v)", q, raw), q.Expr, quantiles[q.RefID], true})
			}
		}
	}
	if len(queries) != 8 {
		t.Fatalf("got %d latency queries on the Service dashboards; want 8 (p99 stat and 3 quantiles by route, recorded and raw)", len(queries))
	}

	if len(heatmaps) != 4 {
		t.Fatalf("got %d heatmap queries on the Service dashboards; want 4 (classic and native, recorded and raw)", len(heatmaps))
	}
	checkHeatmap := func(q heatmapQuery, service string) string {
		vars := board.TestVars()
		vars["service"], vars["env"] = service, "dev"
		expr, err := board.Expand(q.expr, vars)
		if err != nil {
			t.Fatal(err)
		}
		// Routes /a and /b: bounds 2^-3 to 2^1, and +Inf.
		want := map[string]int{"A": 6, "B": 0}
		if service == "native" {
			want = map[string]int{"A": 0, "B": 1}
		}
		if n := len(col.Query(t.Context(), expr, time.Now())); n != want[q.refID] {
			return fmt.Sprintf("%s, service %s: %s: got %d series; want %d", q.name, service, expr, n, want[q.refID])
		}
		if q.refID == "B" && service == "native" {
			// The native histogram's buckets: a rate of 20/s per route
			// (100 observations per 5 s step), all at or below 2 s, 1 in
			// 200 above 1 s (/b's top bucket).
			one := func(e string) float64 {
				res := col.Query(t.Context(), e, time.Now())
				if len(res) != 1 {
					return math.NaN()
				}
				v, _ := strconv.ParseFloat(fmt.Sprint(res[0].Value[1]), 64)
				return v
			}
			got := [3]float64{one("histogram_count(" + expr + ")"), one("histogram_fraction(0, 2, " + expr + ")"), one("histogram_fraction(0, 1, " + expr + ")")}
			want := [3]float64{40, 1, 0.995}
			for i := range got {
				if !(math.Abs(got[i]-want[i]) <= 1e-9*want[i]) {
					return fmt.Sprintf("%s, service native: got count, fraction <= 2 s, fraction <= 1 s %v; want %v", q.name, got, want)
				}
			}
		}
		return ""
	}

	// The recorded series appear at the rules' first evaluation after the
	// write: poll until every query answers, then check the values.
	check := func(q latencyQuery, service string) string {
		vars := board.TestVars()
		vars["service"], vars["env"] = service, "dev"
		if !q.byRoute {
			vars["route"] = "/a" // one route: the stat's p99 over all routes falls between bounds
		}
		expr, err := board.Expand(q.expr, vars)
		if err != nil {
			t.Fatal(err)
		}
		res := col.Query(t.Context(), expr, time.Now())
		want := map[string]float64{"/a": latencyWant(-3)[q.quantile], "/b": latencyWant(-2)[q.quantile]}
		if !q.byRoute {
			want = map[string]float64{"": want["/a"]}
		}
		var got []string
		bad := len(res) != len(want)
		for _, r := range res {
			v, err := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
			w, ok := want[r.Metric["route"]]
			if err != nil || !ok || math.Abs(v-w) > 1e-9*w {
				bad = true
			}
			got = append(got, fmt.Sprintf("%v=%v", r.Metric, r.Value[1]))
		}
		if bad {
			slices.Sort(got)
			return fmt.Sprintf("%s, service %s: %s: got %v; want %v by route", q.name, service, expr, got, want)
		}
		return ""
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var wrong []string
		for _, q := range queries {
			for _, svc := range []string{"classic", "native", "both"} {
				if msg := check(q, svc); msg != "" {
					wrong = append(wrong, msg)
				}
			}
		}
		for _, q := range heatmaps {
			for _, svc := range []string{"classic", "native", "both"} {
				if msg := checkHeatmap(q, svc); msg != "" {
					wrong = append(wrong, msg)
				}
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, w := range wrong {
				t.Error(w)
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
