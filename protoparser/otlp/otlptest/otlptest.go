// Package otlptest builds the OTLP requests the tests of protoparser/otlp
// (decoding and translation) and collector/ingest (the OTLP endpoint) send:
// one metric of every kind, rejected kinds, an SDK's typical export, and
// issue 22's hostile requests (attributes nested or repeated past the
// limits, an unrepresentable timestamp).
//
// It does not import protoparser/otlp, so that package's own tests can use
// it.
package otlptest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// Time is the timestamp of every data point of the test requests.
var Time = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Metrics builds a request with one metric of every kind Telltale
// stores, from one resource, at ts.
func Metrics(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("service.namespace", "shop")
	ra.PutStr("service.instance.id", "pod-1")
	ra.PutStr("host.name", "h1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("telltale.test")
	pts := pcommon.NewTimestampFromTime(ts)
	start := pcommon.NewTimestampFromTime(ts.Add(-time.Minute))

	m := sm.Metrics().AppendEmpty()
	m.SetName("temperature")
	m.SetUnit("Cel")
	m.SetDescription("room temperature")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pts)
	dp.SetDoubleValue(21.5)
	dp.Attributes().PutStr("room", "lab")

	m = sm.Metrics().AppendEmpty()
	m.SetName("requests")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp = s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(start)
	dp.SetTimestamp(pts)
	dp.SetIntValue(42)
	dp.Attributes().PutStr("http.method", "GET")
	ex := dp.Exemplars().AppendEmpty()
	ex.SetDoubleValue(1)
	ex.SetTimestamp(pts)

	m = sm.Metrics().AppendEmpty()
	m.SetName("queue.depth")
	s = m.SetEmptySum()
	s.SetIsMonotonic(false)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp = s.DataPoints().AppendEmpty()
	dp.SetTimestamp(pts)
	dp.SetIntValue(7)

	m = sm.Metrics().AppendEmpty()
	m.SetName("http.server.duration")
	m.SetUnit("s")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(start)
	hp.SetTimestamp(pts)
	hp.ExplicitBounds().FromRaw([]float64{0.1, 0.5, 1})
	hp.BucketCounts().FromRaw([]uint64{3, 4, 2, 1})
	hp.SetCount(10)
	hp.SetSum(4.25)

	m = sm.Metrics().AppendEmpty()
	m.SetName("rpc.latency")
	m.SetUnit("ms")
	sp := m.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetTimestamp(pts)
	sp.SetCount(20)
	sp.SetSum(500)
	q := sp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(12)
	q = sp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.99)
	q.SetValue(40)
	return md
}

// Series is what Metrics(Time) translates to.
func Series() map[string]float64 {
	const res = `instance="pod-1", job="shop/checkout"`
	return map[string]float64{
		`{__name__="temperature_celsius", ` + res + `, room="lab"}`:                21.5,
		`{__name__="requests_total", http_method="GET", ` + res + `}`:              42,
		`{__name__="queue_depth", ` + res + `}`:                                    7,
		`{__name__="http_server_duration_seconds_bucket", ` + res + `, le="0.1"}`:  3,
		`{__name__="http_server_duration_seconds_bucket", ` + res + `, le="0.5"}`:  7,
		`{__name__="http_server_duration_seconds_bucket", ` + res + `, le="1"}`:    9,
		`{__name__="http_server_duration_seconds_bucket", ` + res + `, le="+Inf"}`: 10,
		`{__name__="http_server_duration_seconds_count", ` + res + `}`:             10,
		`{__name__="http_server_duration_seconds_sum", ` + res + `}`:               4.25,
		`{__name__="rpc_latency_milliseconds", ` + res + `, quantile="0.5"}`:       12,
		`{__name__="rpc_latency_milliseconds", ` + res + `, quantile="0.99"}`:      40,
		`{__name__="rpc_latency_milliseconds_count", ` + res + `}`:                 20,
		`{__name__="rpc_latency_milliseconds_sum", ` + res + `}`:                   500,
		`{__name__="target_info", host_name="h1", ` + res + `}`:                    1,
	}
}

// Rejects builds a request mixing one storable gauge with what
// Telltale drops: a delta sum (2 points), an exponential histogram (1
// point) and a gauge with an empty attribute name (1 point).
func Rejects(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "mixed")
	sm := rm.ScopeMetrics().AppendEmpty()
	pts := pcommon.NewTimestampFromTime(ts)

	m := sm.Metrics().AppendEmpty()
	m.SetName("ok")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pts)
	dp.SetDoubleValue(1)

	m = sm.Metrics().AppendEmpty()
	m.SetName("delta.requests")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range 2 {
		dp = s.DataPoints().AppendEmpty()
		dp.SetTimestamp(pts)
		dp.SetIntValue(int64(i))
		dp.Attributes().PutInt("i", int64(i))
	}

	m = sm.Metrics().AppendEmpty()
	m.SetName("latency.exp")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := eh.DataPoints().AppendEmpty()
	ep.SetTimestamp(pts)
	ep.SetScale(2)
	ep.SetCount(3)
	ep.SetSum(3)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 2})

	m = sm.Metrics().AppendEmpty()
	m.SetName("bad.attr")
	dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pts)
	dp.SetDoubleValue(2)
	dp.Attributes().PutStr("", "x")
	return md
}

// Encode encodes md as an ExportMetricsServiceRequest: OTLP JSON with
// asJSON, else protobuf.
func Encode(t testing.TB, md pmetric.Metrics, asJSON bool) []byte {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var b []byte
	var err error
	if asJSON {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deepAnyValue returns an AnyValue in protobuf wire format nesting depth
// levels: a string at the bottom, then alternately arrays and key-value
// lists around it. It takes time and memory linear in depth.
func deepAnyValue(depth int) []byte {
	uvlen := func(n int) int { return len(binary.AppendUvarint(nil, uint64(n))) }
	size := make([]int, depth+1)   // size[i]: bytes of the AnyValue at level i
	inner := make([]int, depth+1)  // ArrayValue or KeyValueList size at level i
	kvSize := make([]int, depth+1) // KeyValue size at level i (kvlist levels)
	size[1] = 3                    // {1: "x"}
	for i := 2; i <= depth; i++ {
		c := size[i-1]
		if i%2 == 0 { // AnyValue{5: ArrayValue{1: child}}
			inner[i] = 1 + uvlen(c) + c
		} else { // AnyValue{6: KeyValueList{1: KeyValue{1: "k", 2: child}}}
			kvSize[i] = 3 + 1 + uvlen(c) + c
			inner[i] = 1 + uvlen(kvSize[i]) + kvSize[i]
		}
		size[i] = 1 + uvlen(inner[i]) + inner[i]
	}
	b := make([]byte, 0, size[depth])
	for i := depth; i >= 2; i-- {
		if i%2 == 0 {
			b = append(b, 0x2a)
			b = binary.AppendUvarint(b, uint64(inner[i]))
			b = append(b, 0x0a)
		} else {
			b = append(b, 0x32)
			b = binary.AppendUvarint(b, uint64(inner[i]))
			b = append(b, 0x0a)
			b = binary.AppendUvarint(b, uint64(kvSize[i]))
			b = append(b, 0x0a, 1, 'k', 0x12)
		}
		b = binary.AppendUvarint(b, uint64(size[i-1]))
	}
	return append(b, 0x0a, 1, 'x')
}

// pbField appends field f, length-delimited, holding v.
func pbField(b []byte, f byte, v []byte) []byte {
	b = append(b, f<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// DeepProto is an ExportMetricsServiceRequest whose one resource
// attribute "deep" nests depth levels.
func DeepProto(depth int) []byte {
	kv := pbField(pbField(nil, 1, []byte("deep")), 2, deepAnyValue(depth))
	res := pbField(nil, 1, kv)
	rm := pbField(nil, 1, res)
	return pbField(nil, 1, rm)
}

// DeepJSON is DeepProto in OTLP JSON, arrays only.
func DeepJSON(depth int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"deep","value":`)
	for range depth - 1 {
		b.WriteString(`{"arrayValue":{"values":[`)
	}
	b.WriteString(`{"stringValue":"x"}`)
	for range depth - 1 {
		b.WriteString(`]}}`)
	}
	b.WriteString(`}]}}]}`)
	return b.Bytes()
}

// ManyAttributes is a request whose one gauge data point has n attributes.
func ManyAttributes(n int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "wide")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("wide.gauge")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetDoubleValue(1)
	attrs := dp.Attributes()
	if n > 1000 {
		// PutStr looks for the key first: quadratic. FromRaw is linear, in
		// random order.
		raw := make(map[string]any, n)
		for i := range n {
			raw["a"+strconv.Itoa(i)] = "v"
		}
		_ = attrs.FromRaw(raw)
		return md
	}
	for i := range n {
		attrs.PutStr("a"+strconv.Itoa(i), "v")
	}
	return md
}

// MaxTimestamp has a gauge with one point at time_unix_nano
// 2^64-1 and one at ts.
func MaxTimestamp(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "clock")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("clock.gauge")
	g := m.SetEmptyGauge()
	dp := g.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.Timestamp(math.MaxUint64))
	dp.SetDoubleValue(1)
	dp = g.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetDoubleValue(2)
	return md
}

// Bench is what an instrumented service's SDK exports each
// interval: one resource, 40 counters and 10 gauges with 20 attribute sets
// each, 5 request-duration histograms with 20 attribute sets and 14 bounds.
func Bench(ts time.Time) pmetric.Metrics {
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
