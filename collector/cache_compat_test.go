package main

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestResultCacheUnderLateWrites interleaves cached range queries with
// writes of samples older than the cache's freshness (an agent replaying
// its spool, a delayed remote write), new series and deletes, and requires
// every answer to equal Prometheus' on the same data and the collector's
// own uncached answer. It also checks that the cache was used and that the
// late writes dropped what they changed.
func TestResultCacheUnderLateWrites(t *testing.T) {
	seed := *compatSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 31))
	coll := startInProcess(t, "-query.min-slice-steps=4", "-query.cache-freshness=1m")
	defer coll.Close()
	ref := newReference(t, t.TempDir(), 6*time.Hour, nil)
	defer ref.Close()

	now := time.Now().Truncate(time.Second).UnixMilli()
	start := now - 3*time.Hour.Milliseconds()
	var data []loadSeries
	for _, name := range []string{"late_requests_total", "late_gauge", "late_other_total"} {
		for inst := range 4 {
			s := generateSeries(labels.FromStrings("__name__", name, "instance", fmt.Sprint(inst)), now-10*time.Minute.Milliseconds(), rng)
			data = append(data, s)
		}
	}
	loadInChunks(t, coll.URL, ref, data)

	exprs := []string{
		`sum(rate(late_requests_total[5m]))`, `late_gauge`, `max_over_time(late_gauge[10m])`,
		`sum by (instance) (increase(late_requests_total[15m]))`, `count({__name__=~"late_.*"})`,
		`late_gauge offset 5m`, `rate(late_other_total[1m]) > 0`,
	}
	ask1 := func(r compatRequest) answer {
		t.Helper()
		a, err := ask(t.Context(), compatClient, coll.URL, r.path, r.params, false)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	compareAll := func(round int) {
		t.Helper()
		for _, e := range exprs {
			for _, step := range []string{"15", "60"} {
				r := compatRequest{where: fmt.Sprintf("round %d", round), path: "/api/v1/query_range",
					params: url.Values{"query": {e}, "start": {secs(start, 0)}, "end": {secs(now, 0)}, "step": {step}}}
				got := ask1(r)
				want, err := ask(t.Context(), compatClient, ref.URL, r.path, r.params, false)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("%s: cached answer differs from Prometheus':\n%s", r, diff(got, want))
				}
				r.params.Set("nocache", "1")
				if plain := ask1(r); plain != got {
					t.Fatalf("%s: cached answer differs from the uncached one:\n%s", r, diff(got, plain))
				}
			}
		}
	}
	compareAll(0)
	for round := 1; round <= 25; round++ {
		switch rng.IntN(6) {
		case 0: // a new series, hours back
			s := loadSeries{lset: labels.FromStrings("__name__", "late_requests_total", "instance", fmt.Sprintf("new-%d", round))}
			for ts := start + rng.Int64N(time.Hour.Milliseconds()); ts < now-2*time.Minute.Milliseconds(); ts += 15_000 {
				s.pts = append(s.pts, point{T: ts, V: float64(ts-start) / 1000})
			}
			loadBoth(t, t.Context(), "new series", coll.URL, ref, []loadSeries{s})
		case 1: // delete a series
			m := url.Values{"match[]": {fmt.Sprintf(`late_gauge{instance="%d"}`, rng.IntN(4))},
				"start": {secs(start+rng.Int64N(time.Hour.Milliseconds()), 0)}, "end": {secs(now, 0)}}
			for _, u := range []string{coll.URL, ref.URL} {
				a, err := ask(t.Context(), compatClient, u, "/api/v1/admin/tsdb/delete_series", m, true)
				if err != nil || a.Status != 204 {
					t.Fatalf("delete_series on %s: %v %v", u, a, err)
				}
			}
		default: // late samples into a gap of an existing series
			s := data[rng.IntN(len(data))]
			var pts []point
			at := start + rng.Int64N(now-start-2*time.Minute.Milliseconds())
			for k := range 1 + rng.IntN(3) {
				pts = append(pts, point{T: at + int64(k)*1000 + 7, V: rng.Float64() * 1000})
			}
			loadBoth(t, t.Context(), "late samples", coll.URL, ref, []loadSeries{{lset: s.lset, pts: pts}})
		}
		compareAll(round)
	}
	set := coll.app.set
	if got := collectortest.Metric(set, `telltale_query_cache_steps_total{source="cache"}`); got <= 0 {
		t.Errorf("no step was answered from the cache (%v); the test did not exercise it", got)
	}
	if got := collectortest.Metric(set, `telltale_query_cache_invalidations_total{reason="late_write"}`); got <= 0 {
		t.Errorf("no late write invalidated anything (%v); the test did not exercise invalidation", got)
	}
}
