package main

import (
	"flag"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

var stormCacheSize = flag.Int64("storm.cache-size", 0, "TestResultCacheBoundUnderRefreshStorm's -query.cache-size; 0 is 32 MiB")

// TestResultCacheBoundUnderRefreshStorm: 100 panels, each a range query
// whose answer is about 4 MB, refreshed twice from 4 clients. Unbounded,
// the cache would hold about 400 MB; it must stay within
// -query.cache-size (evicting), and the collector's resident memory must
// not grow by anything like what an unbounded cache would hold.
func TestResultCacheBoundUnderRefreshStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of MB of query results; skipped with -short")
	}
	cacheSize := int64(32 << 20)
	if *stormCacheSize > 0 { // to see the test fail: -storm.cache-size=2000000000
		cacheSize = *stormCacheSize
	}
	in := collectortest.Start(t, fmt.Sprintf("-query.cache-size=%d", cacheSize))
	end := time.Now().Add(-5 * time.Minute).Truncate(time.Minute).UnixMilli()
	start := end - 4*time.Hour.Milliseconds()
	var batch []prompb.TimeSeries
	for i := range 250 {
		var pts []point
		for ts := start; ts <= end; ts += 15_000 {
			pts = append(pts, point{T: ts, V: float64(ts/1000 + int64(i))})
		}
		batch = append(batch, toPrompb(labels.FromStrings("__name__", "storm_metric", "series", fmt.Sprintf("s%03d", i)), pts))
		if len(batch) == 25 {
			if status, msg, err := remoteWrite(t.Context(), in.URL, batch); err != nil || status != 204 {
				t.Fatalf("load: %d %s %v", status, msg, err)
			}
			batch = batch[:0]
		}
	}
	before, _ := in.RSS()

	for round := range 2 {
		var wg sync.WaitGroup
		panels := make(chan int, 100)
		for p := range 100 {
			panels <- p
		}
		close(panels)
		for range 4 {
			wg.Go(func() {
				for p := range panels {
					v := url.Values{"query": {fmt.Sprintf("storm_metric * %d", p+1)},
						"start": {secs(start+int64(round)*15_000, 0)}, "end": {secs(end, 0)}, "step": {"15"}}
					a, err := ask(t.Context(), compatClient, in.URL, "/api/v1/query_range", v, false)
					if err != nil || a.Status != 200 {
						t.Errorf("panel %d: %v %v", p, a.Status, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := in.Metric(t.Context(), "telltale_query_cache_bytes"); got > float64(cacheSize) || got <= 0 {
			t.Errorf("round %d: telltale_query_cache_bytes = %v; want within (0, %d]", round, got, cacheSize)
		}
	}
	if got := in.Metric(t.Context(), "telltale_query_cache_evictions_total"); got <= 0 {
		t.Errorf("no eviction: the storm did not fill the cache (evictions %v)", got)
	}
	// A storm cycling through more than fits evicts before reuse (LRU);
	// one panel refreshed again is answered from the cache.
	for range 2 {
		v := url.Values{"query": {"storm_metric * 1"}, "start": {secs(start, 0)}, "end": {secs(end, 0)}, "step": {"15"}}
		if a, err := ask(t.Context(), compatClient, in.URL, "/api/v1/query_range", v, false); err != nil || a.Status != 200 {
			t.Fatalf("panel refresh: %v %v", a.Status, err)
		}
	}
	if got := in.Metric(t.Context(), `telltale_query_cache_steps_total{source="cache"}`); got <= 0 {
		t.Errorf("a refreshed panel was not answered from the cache (%v)", got)
	}
	_, peak := in.RSS()
	t.Logf("RSS before the storm %d MiB, peak %d MiB; the answers total about 400 MiB", before>>20, peak>>20)
	// 32 MiB of cache plus four answers in flight at a time, with Go's
	// garbage-collection headroom, stay far below what keeping every answer
	// would take (400 MiB of results held live, and twice that of heap).
	if growth := peak - before; growth > 400<<20 {
		t.Errorf("RSS grew by %d MiB during the storm; want well under the 400 MiB an unbounded cache would keep", growth>>20)
	}
}
