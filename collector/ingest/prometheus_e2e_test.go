package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// promGet GETs path?query from base and returns the API's data as JSON.
func promGet(t *testing.T, base, path string, q url.Values) string {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("GET %s%s?%s: %d %s", base, path, q.Encode(), resp.StatusCode, body)
	}
	return string(env.Data)
}

// TestE2EPrometheusNativeHistogramsAndExemplars: a real Prometheus scrapes
// an app exposing native histograms and exemplars and remote-writes (2.0,
// send_native_histograms, send_exemplars) to the collector. What the
// collector stored reads back identical to Prometheus' own storage of the
// same scrapes: raw histogram samples, counters, and exemplars (issue 15).
func TestE2EPrometheusNativeHistogramsAndExemplars(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector and Prometheus")
	}
	bin := collectortest.Peer(t, "prometheus", "TELLTALE_PROMETHEUS", "GOBIN=~/.cache/telltale/bin go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0")
	in := collectortest.Start(t)

	// The app: a native histogram and a counter, both with exemplars,
	// observed continuously.
	reg := prometheus.NewRegistry()
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "app_latency_seconds", Help: "Request latency.",
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 100,
	})
	reqs := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_requests_total", Help: "Requests."})
	reg.MustRegister(lat, reqs)
	app := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer app.Close()
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			trace := prometheus.Labels{"trace_id": fmt.Sprintf("%032x", i)}
			lat.(prometheus.ExemplarObserver).ObserveWithExemplar(0.001*float64(i%500+1), trace)
			reqs.(prometheus.ExemplarAdder).AddWithExemplar(1, trace)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	defer func() { stop(); wg.Wait() }()

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: app
    scrape_native_histograms: true
    scrape_protocols: [PrometheusProto]
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/api/v1/write
    protobuf_message: io.prometheus.write.v2.Request
    send_native_histograms: true
    send_exemplars: true
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 100ms
`, app.Listener.Addr().String(), in.URL)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := collectortest.FreeAddr(t)
	promURL := "http://" + addr
	var promLog collectortest.SyncBuffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--enable-feature=exemplar-storage", "--log.level=debug")
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	}()

	// Wait until the collector has 5 histogram samples from Prometheus.
	latest := func() (float64, int) {
		res := in.Query(t.Context(), `timestamp(app_latency_seconds)`, time.Time{})
		if len(res) != 1 {
			return 0, 0
		}
		s, _ := res[0].Value[1].(string)
		ts, _ := strconv.ParseFloat(s, 64)
		n := 0
		if r := in.Query(t.Context(), `count_over_time(app_latency_seconds[1h])`, time.Time{}); len(r) == 1 {
			c, _ := r[0].Value[1].(string)
			n, _ = strconv.Atoi(c)
		}
		return ts, n
	}
	deadline := time.Now().Add(3 * time.Minute)
	var end float64
	for {
		ts, n := latest()
		if n >= 5 {
			end = ts
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector has %d histogram samples from Prometheus after 3 minutes; want 5", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Everything up to end is in both: remote write delivers a series'
	// samples in order, and Prometheus stored them before sending.
	at := strconv.FormatFloat(end, 'f', 3, 64)
	for _, q := range []string{`app_latency_seconds[10m]`, `app_requests_total[10m]`} {
		v := url.Values{"query": {q}, "time": {at}}
		ours, theirs := promGet(t, in.URL, "/api/v1/query", v), promGet(t, promURL, "/api/v1/query", v)
		if ours != theirs {
			t.Fatalf("%s at %s:\ncollector  %s\nprometheus %s", q, at, ours, theirs)
		}
		if len(ours) < 100 {
			t.Fatalf("%s at %s: suspiciously little data: %s", q, at, ours)
		}
		if q == `app_latency_seconds[10m]` && (!strings.Contains(ours, `"histograms":[[`) || strings.Contains(ours, `"values"`)) {
			t.Fatalf("%s: not native histograms: %.300s", q, ours)
		}
		t.Logf("%s: %d bytes of identical JSON", q, len(ours))
	}
	// Exemplars: Prometheus keeps the ones it scraped; it sent the same.
	for _, q := range []string{`app_latency_seconds`, `app_requests_total`} {
		v := url.Values{"query": {q}, "start": {strconv.FormatFloat(end-600, 'f', 3, 64)}, "end": {at}}
		ours, theirs := promGet(t, in.URL, "/api/v1/query_exemplars", v), promGet(t, promURL, "/api/v1/query_exemplars", v)
		if ours != theirs {
			t.Fatalf("exemplars of %s:\ncollector  %s\nprometheus %s", q, ours, theirs)
		}
		if ours == "[]" {
			t.Fatalf("no exemplars of %s in either", q)
		}
		t.Logf("exemplars of %s: %d identical", q, strings.Count(ours, `"trace_id"`))
	}
}
