package ingest_test

import (
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/samples"
)

// BenchmarkAgentWriteWithStalledUploads measures what TestE2EStalledUploads
// asserts only as success: the latency of an agent's remote writes (100
// samples each, the real push client) to the real collector with its
// default limits, with no stalled upload and with 8 uploads stalled
// mid-body on the four write endpoints (issue 22: four stalled uploads
// used to stop all ingest). Reported: median and p99 ms per write.
//
//	go test -run XXX -bench AgentWriteWithStalledUploads -benchtime 500x ./collector/ingest/
func BenchmarkAgentWriteWithStalledUploads(b *testing.B) {
	for _, stalled := range []int{0, 8} {
		b.Run("stalled="+strconv.Itoa(stalled), func(b *testing.B) {
			in := collectortest.Start(b, "-ingest.body-read-timeout=1h", "-host-metrics=false", "-self-metrics=false")
			for i := range stalled {
				path, ct := [...]string{"/api/v1/write", "/api/v1/import/prometheus", "/v1/metrics", "/write"}[i%4],
					[...]string{"application/x-protobuf", "text/plain", "application/x-protobuf", "text/plain"}[i%4]
				stall(b, in.Addr, path, ct)
			}
			for { // the collector has every stalled request
				n := 0.0
				for _, ep := range []string{"remote_write", "prometheus_text", "otlp", "influx"} {
					n += in.Metric(b.Context(), `telltale_ingest_requests_total{endpoint="`+ep+`"}`)
				}
				if n >= float64(stalled) {
					break
				}
				time.Sleep(10 * time.Millisecond) // a poll interval
			}
			client, err := push.New(push.Options{URL: in.URL + "/api/v1/write", MaxAttempts: 1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			enc := push.Encoder{Version: push.V1, MaxSamples: 1000}
			t0 := time.Now().Add(-time.Hour)
			lat := make([]float64, 0, b.N)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				batch := &samples.Batch{}
				for s := range 100 {
					batch.StartSeries(nil)
					batch.AddLabel("__name__", "bench_agent_metric")
					batch.AddLabel("series", string(rune('a'+s%26))+string(rune('a'+s/26)))
					batch.AddSample(t0.Add(time.Duration(i)*time.Millisecond).UnixMilli(), float64(i))
				}
				start := time.Now()
				if err := enc.Encode(batch, func(body []byte, _ int) error { return client.Send(b.Context(), body) }); err != nil {
					b.Fatalf("write %d with %d stalled uploads open: %v", i, stalled, err)
				}
				lat = append(lat, float64(time.Since(start).Microseconds())/1e3)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(lat[len(lat)/2], "p50-ms/write")
			b.ReportMetric(lat[len(lat)*99/100], "p99-ms/write")
		})
	}
}
