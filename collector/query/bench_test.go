package query

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/telltale-dev/telltale/collector/storage"
)

// benchData fills a storage with series of a counter http_requests_total
// (path × status × instance), a histogram latency_seconds_bucket and a gauge
// cpu, scraped every 15 s for span up to end.
func benchData(b *testing.B, st *storage.Storage, series int, span time.Duration, end time.Time) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	type s struct {
		l labels.Labels
		v float64
	}
	var all []s
	les := []string{"0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"}
	for i := 0; len(all) < series; i++ {
		inst := "host-" + strconv.Itoa(i%100)
		path, status := "/p"+strconv.Itoa(i%20), strconv.Itoa(200+100*(i%4))
		all = append(all, s{l: labels.FromStrings("__name__", "http_requests_total", "instance", inst, "path", path, "status", status, "job", "app", "series", strconv.Itoa(i))})
		if i%10 == 0 {
			for _, le := range les {
				all = append(all, s{l: labels.FromStrings("__name__", "latency_seconds_bucket", "instance", inst, "le", le, "job", "app", "series", strconv.Itoa(i))})
			}
		}
		all = append(all, s{l: labels.FromStrings("__name__", "cpu", "instance", inst, "mode", "user", "job", "node", "series", strconv.Itoa(i))})
	}
	start := end.Add(-span).UnixMilli()
	for t := start; t <= end.UnixMilli(); t += 15_000 {
		app := st.Appender(context.Background())
		for i := range all {
			all[i].v += rng.Float64() * 10
			if _, err := app.Append(0, all[i].l, t, all[i].v); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueryRange measures dashboard-like range queries over 10k
// series and one hour at a 15 s step: cold (every step computed, as with
// nocache=1) and as a dashboard refresh (the same hour asked again a step
// later, so a result cache has all but the newest steps); cold also
// with the fast path off (Prometheus' engine for every step).
//
//	go test -run XXX -bench QueryRange -benchtime 20x ./collector/query/
func BenchmarkQueryRange(b *testing.B) {
	st, err := storage.Open(storage.Options{Dir: b.TempDir(), OutOfOrderWindow: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	end := time.Now().Truncate(time.Minute)
	benchData(b, st, 10_000, 75*time.Minute, end)
	srv := httptest.NewServer(New(st, Options{}).Handler())
	defer srv.Close()
	engineOnly := httptest.NewServer(New(st, Options{NoFastPath: true}).Handler())
	defer engineOnly.Close()
	queries := map[string]string{
		"sum_rate":       `sum by (path, status) (rate(http_requests_total[1m]))`,
		"hist_quantile":  `histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[5m])))`,
		"topk_cpu":       `topk(5, sum by (instance) (rate(cpu[5m])))`,
		"sum_rate_total": `sum(rate(http_requests_total[1m]))`,
	}
	for name, q := range queries {
		for _, mode := range []string{"cold", "cold-nofastpath", "refresh"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				srv := srv
				if mode == "cold-nofastpath" {
					srv = engineOnly
				}
				ask := func(endT time.Time, nocache bool) {
					v := url.Values{"query": {q}, "start": {fmt.Sprint(endT.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(endT.Unix())}, "step": {"15"}}
					if nocache {
						v.Set("nocache", "1")
					}
					resp, err := http.Get(srv.URL + "/api/v1/query_range?" + v.Encode())
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
				if mode == "refresh" {
					ask(end.Add(-15*time.Second), false) // the previous refresh
				}
				b.ResetTimer()
				for range b.N {
					ask(end, mode != "refresh")
				}
			})
		}
	}
}
