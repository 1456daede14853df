package otlp

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/samples"
)

// benchMetrics is what an instrumented service's SDK exports each
// interval: one resource, 40 counters and 10 gauges with 20 attribute sets
// each, 5 request-duration histograms with 20 attribute sets and 14 bounds.
func benchMetrics(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("service.instance.id", "checkout-7d9f-abcde")
	ra.PutStr("host.name", "node-12")
	ra.PutStr("telemetry.sdk.language", "go")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	pts := pcommon.NewTimestampFromTime(ts)
	start := pcommon.NewTimestampFromTime(ts.Add(-time.Hour))
	attrs := func(m pcommon.Map, i int) {
		m.PutStr("http.route", fmt.Sprintf("/api/v1/item/%d", i%5))
		m.PutStr("http.method", [...]string{"GET", "POST"}[i%2])
		m.PutInt("http.status_code", int64(200+100*(i%2)))
	}
	for i := range 40 {
		m := ms.AppendEmpty()
		m.SetName(fmt.Sprintf("app.requests.%d", i))
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for j := range 20 {
			dp := s.DataPoints().AppendEmpty()
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(pts)
			dp.SetIntValue(int64(1000*i + j))
			attrs(dp.Attributes(), j)
		}
	}
	for i := range 10 {
		m := ms.AppendEmpty()
		m.SetName(fmt.Sprintf("app.queue.size.%d", i))
		m.SetUnit("By")
		g := m.SetEmptyGauge()
		for j := range 20 {
			dp := g.DataPoints().AppendEmpty()
			dp.SetTimestamp(pts)
			dp.SetDoubleValue(float64(i*j) + 0.5)
			attrs(dp.Attributes(), j)
		}
	}
	bounds := []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	for i := range 5 {
		m := ms.AppendEmpty()
		m.SetName(fmt.Sprintf("http.server.request.duration.%d", i))
		m.SetUnit("s")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for j := range 20 {
			dp := h.DataPoints().AppendEmpty()
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(pts)
			dp.ExplicitBounds().FromRaw(bounds)
			counts := make([]uint64, len(bounds)+1)
			var total uint64
			for k := range counts {
				counts[k] = uint64(k + j)
				total += counts[k]
			}
			dp.BucketCounts().FromRaw(counts)
			dp.SetCount(total)
			dp.SetSum(float64(total) * 0.1)
			attrs(dp.Attributes(), j)
		}
	}
	return md
}

// BenchmarkDecodeConvert measures decoding a request and translating it to
// a samples.Batch, the work the OTLP endpoint adds to the shared write path.
func BenchmarkDecodeConvert(b *testing.B) {
	for _, f := range []Format{Protobuf, JSON} {
		b.Run(f.ContentType()[len("application/"):], func(b *testing.B) {
			body := encode(b, benchMetrics(testTime), f)
			conv := NewConverter(ConvertOptions{})
			var batch samples.Batch
			n := 0
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				batch.Reset()
				md, err := Decode(body, f, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conv.Convert(b.Context(), md, &batch); err != nil {
					b.Fatal(err)
				}
				n += batch.Len()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(batch.Len()), "samples/req")
		})
	}
}

// BenchmarkHandler measures the whole endpoint short of the network and
// the TSDB: body reading, decoding, translation, validation and the
// series-ref cache of the shared Writer, appending to a storage that drops
// everything.
func BenchmarkHandler(b *testing.B) {
	body := encode(b, benchMetrics(testTime), Protobuf)
	w := ingest.NewWriter(collectortest.NopStore{}, ingest.Options{Limits: ingest.Limits{MaxLabelsPerSeries: 40}, Now: func() time.Time { return testTime }})
	h := NewHandler(ingest.NewHandlers(w, ingest.HTTPOptions{}), Options{})
	rw := &benchResponse{h: http.Header{}}
	serve := func() {
		req, _ := http.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		rw.status = 0
		h.ServeHTTP(rw, req)
		if rw.status != http.StatusOK {
			b.Fatalf("got status %d", rw.status)
		}
	}
	serve() // fill the series-ref cache, as a running collector has
	var batch samples.Batch
	md, _ := Decode(body, Protobuf, Limits{})
	if _, err := NewConverter(ConvertOptions{}).Convert(b.Context(), md, &batch); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
	b.ReportMetric(float64(batch.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

type benchResponse struct {
	h      http.Header
	status int
}

func (r *benchResponse) Header() http.Header         { return r.h }
func (r *benchResponse) Write(p []byte) (int, error) { return len(p), nil }
func (r *benchResponse) WriteHeader(s int)           { r.status = s }
