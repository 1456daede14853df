package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestE2EOpenTelemetrySDK pushes a counter, a gauge and a histogram with
// the OpenTelemetry Go SDK's OTLP/HTTP exporter to the real collector
// binary and reads them back through PromQL.
func TestE2EOpenTelemetrySDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t)
	ctx := t.Context()

	f := func(path string, compression otlpmetrichttp.Compression, service string) {
		t.Helper()
		exp, err := otlpmetrichttp.New(ctx,
			otlpmetrichttp.WithEndpointURL(in.URL+path),
			otlpmetrichttp.WithCompression(compression),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewSchemaless(
			attribute.String("service.name", service),
			attribute.String("service.instance.id", "i-1"),
			attribute.String("deployment.environment", "test"))
		mp := sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(res),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
		meter := mp.Meter("telltale/e2e")

		jobs, err := meter.Int64Counter("jobs.done")
		if err != nil {
			t.Fatal(err)
		}
		jobs.Add(ctx, 5, metric.WithAttributes(attribute.String("queue", "fast")))
		jobs.Add(ctx, 2, metric.WithAttributes(attribute.String("queue", "slow")))
		temp, err := meter.Float64Gauge("room.temperature", metric.WithUnit("Cel"))
		if err != nil {
			t.Fatal(err)
		}
		temp.Record(ctx, 21.25)
		dur, err := meter.Float64Histogram("request.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(0.1, 0.5, 1, 5))
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, v := range []float64{0.05, 0.05, 0.05, 0.05, 0.3, 0.3, 0.3, 0.3, 0.7, 0.7} {
			dur.Record(ctx, v)
			sum += v
		}
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("export to %s: %v", path, err)
		}
		if err := mp.Shutdown(context.WithoutCancel(ctx)); err != nil {
			t.Fatal(err)
		}

		sel := `{job="` + service + `",instance="i-1"`
		want := func(q string, want float64) {
			t.Helper()
			res := in.Query(ctx, q, time.Time{})
			if len(res) != 1 {
				t.Fatalf("%s: got %d series %v; want 1", q, len(res), res)
			}
			s, _ := res[0].Value[1].(string)
			got, err := strconv.ParseFloat(s, 64)
			if err != nil || got != want {
				t.Fatalf("%s: got %q; want %v", q, s, want)
			}
		}
		want(`jobs_done_total`+sel+`,queue="fast"}`, 5)
		want(`jobs_done_total`+sel+`,queue="slow"}`, 2)
		want(`room_temperature_celsius`+sel+`}`, 21.25)
		want(`request_duration_seconds_count`+sel+`}`, 10)
		want(`request_duration_seconds_sum`+sel+`}`, sum)
		want(`request_duration_seconds_bucket`+sel+`,le="0.1"}`, 4)
		want(`request_duration_seconds_bucket`+sel+`,le="0.5"}`, 8)
		want(`request_duration_seconds_bucket`+sel+`,le="+Inf"}`, 10)
		want(`target_info`+sel+`,deployment_environment="test"}`, 1)

		// The median falls in (0.1, 0.5]: 0.1 + 0.4 * (5-4)/(8-4).
		q := `histogram_quantile(0.5, request_duration_seconds_bucket` + sel + `})`
		res1 := in.Query(ctx, q, time.Time{})
		if len(res1) != 1 {
			t.Fatalf("%s: got %v; want one series", q, res1)
		}
		s, _ := res1[0].Value[1].(string)
		if got, err := strconv.ParseFloat(s, 64); err != nil || math.Abs(got-0.2) > 1e-9 {
			t.Fatalf("%s: got %q; want 0.2", q, s)
		}
	}
	f("/v1/metrics", otlpmetrichttp.NoCompression, "e2e-plain")
	f("/v1/metrics", otlpmetrichttp.GzipCompression, "e2e-gzip")
	f("/api/v1/otlp/v1/metrics", otlpmetrichttp.GzipCompression, "e2e-prompath")

	// Metadata from OTLP reaches /api/v1/metadata.
	resp, err := http.Get(in.URL + "/api/v1/metadata?metric=request_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var md struct {
		Data map[string][]struct {
			Type string `json:"type"`
			Unit string `json:"unit"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		t.Fatalf("cannot decode metadata %s: %v", body, err)
	}
	if m := md.Data["request_duration_seconds"]; len(m) != 1 || m[0].Type != "histogram" || m[0].Unit != "seconds" {
		t.Fatalf("got metadata %s; want request_duration_seconds as a histogram in seconds", body)
	}
}

// TestE2EOTLPErrors checks that a sender gets the OTLP error body and
// status from the real binary, and that bad requests write nothing.
func TestE2EOTLPErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t, "-ingest.max-body-bytes=1000")
	ctx := t.Context()
	f := func(contentType string, body string, wantStatus int, wantMsg string) {
		t.Helper()
		status, resp := in.Post(ctx, "/v1/metrics", []byte(body), map[string]string{"Content-Type": contentType})
		if status != wantStatus || !strings.Contains(resp, wantMsg) {
			t.Fatalf("%s %q: got %d %q; want %d containing %q", contentType, body, status, resp, wantStatus, wantMsg)
		}
	}
	f("application/json", `{"resourceMetrics":[{`, 400, "cannot decode")
	f("text/plain", "x", 415, "application/x-protobuf or application/json")
	f("application/json", strings.Repeat(" ", 2000), 413, "-ingest.max-body-bytes=1000")
	f("application/x-protobuf", "\x0a\x05\x0a\x03\x0a\x01", 400, "cannot decode")
	// A JSON request as curl would send it.
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	f("application/json", `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"curl"}}]},`+
		`"scopeMetrics":[{"metrics":[{"name":"curl.value","gauge":{"dataPoints":[{"timeUnixNano":"`+now+`","asDouble":3.5}]}}]}]}]}`, 200, "{")
	res := in.Query(ctx, `curl_value{job="curl"}`, time.Time{})
	if len(res) != 1 || res[0].Value[1] != "3.5" {
		t.Fatalf("got %v; want curl_value{job=\"curl\"} 3.5", res)
	}
}

// TestE2EOTLPHistogramsAndDelta exports, with the OpenTelemetry Go SDK, an
// exponential histogram (stored as a native histogram) and a delta counter
// (turned cumulative) to the real collector, and reads them back with
// histogram_quantile, histogram_count/sum, irate and idelta (issue 15).
func TestE2EOTLPHistogramsAndDelta(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t)
	ctx := t.Context()
	exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(in.URL+"/v1/metrics"),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		otlpmetrichttp.WithTemporalitySelector(func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			if k == sdkmetric.InstrumentKindCounter {
				return metricdata.DeltaTemporality
			}
			return metricdata.CumulativeTemporality
		}))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "native"))),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "latency"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	meter := mp.Meter("telltale/e2e")
	lat, _ := meter.Float64Histogram("latency", metric.WithUnit("s"))
	var sum float64
	for i := 1; i <= 100; i++ {
		v := float64(i) / 100
		lat.Record(ctx, v)
		sum += v
	}
	jobs, _ := meter.Int64Counter("jobs")
	jobs.Add(ctx, 5)
	if err := mp.ForceFlush(ctx); err != nil {
		t.Fatalf("first export: %v", err)
	}
	value := func(q string) float64 { t.Helper(); return in.Value(ctx, q) }
	ts1 := value(`timestamp(jobs_total{job="native"})`)
	// Make the second export's timestamp later than the first's: wait for
	// the clock to move, not for a duration.
	for time.Now().UnixMilli() <= int64(ts1*1000) {
		time.Sleep(time.Millisecond)
	}
	jobs.Add(ctx, 3)
	if err := mp.ForceFlush(ctx); err != nil {
		t.Fatalf("second export: %v", err)
	}
	_ = mp.Shutdown(context.WithoutCancel(ctx))

	// The delta counter is cumulative in storage: 5, then 5+3.
	if got := value(`jobs_total{job="native"}`); got != 8 {
		t.Fatalf("jobs_total: got %v; want 8 (5 then 3, as deltas)", got)
	}
	if got := value(`idelta(jobs_total{job="native"}[1h])`); got != 3 {
		t.Fatalf("idelta: got %v; want 3", got)
	}
	ts2 := value(`timestamp(jobs_total{job="native"})`)
	// Sample times are whole milliseconds; the JSON float is not exact.
	elapsed := math.Round(ts2*1000-ts1*1000) / 1000
	if got, want := value(`irate(jobs_total{job="native"}[1h])`), 3/elapsed; math.Abs(got-want) > 1e-9*want {
		t.Fatalf("irate: got %v; want %v (3 over %v s)", got, want, elapsed)
	}
	if got := value(`resets(jobs_total{job="native"}[1h])`); got != 0 {
		t.Fatalf("resets: got %v; want 0", got)
	}
	// The exponential histogram is one native histogram series.
	if got := value(`histogram_count(latency_seconds{job="native"})`); got != 100 {
		t.Fatalf("histogram_count: got %v; want 100", got)
	}
	if got := value(`histogram_sum(latency_seconds{job="native"})`); math.Abs(got-sum) > 1e-9 {
		t.Fatalf("histogram_sum: got %v; want %v", got, sum)
	}
	// 100 observations 0.01..1: the median is 0.5, within the bucket width
	// at the scale the SDK chose (160 buckets over 0.01..1: under 3%).
	if got := value(`histogram_quantile(0.5, latency_seconds{job="native"})`); math.Abs(got-0.5) > 0.5*0.03 {
		t.Fatalf("histogram_quantile(0.5): got %v; want 0.5 within 3%%", got)
	}
	if got := value(`histogram_fraction(0, 0.25, latency_seconds{job="native"})`); math.Abs(got-0.25) > 0.25*0.05 {
		t.Fatalf("histogram_fraction(0, 0.25): got %v; want 0.25 within 5%%", got)
	}
	if res := in.Query(ctx, `{__name__=~"latency_seconds_(bucket|count|sum)"}`, time.Time{}); len(res) != 0 {
		t.Fatalf("the exponential histogram was written as classic series too: %v", res)
	}
}
