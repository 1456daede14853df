package otlp

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/telltale-dev/telltale/samples"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the request builders")

// testTime is the timestamp of every data point of the test requests.
var testTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testMetrics builds a request with one metric of every kind Telltale
// stores, from one resource, at ts.
func testMetrics(ts time.Time) pmetric.Metrics {
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

// testSeries is what testMetrics(testTime) translates to.
func testSeries() map[string]float64 {
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

// rejectMetrics builds a request mixing one storable gauge with what
// Telltale drops: a delta sum (2 points), an exponential histogram (1
// point) and a gauge with an empty attribute name (1 point).
func rejectMetrics(ts time.Time) pmetric.Metrics {
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

func encode(t testing.TB, md pmetric.Metrics, f Format) []byte {
	t.Helper()
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var b []byte
	var err error
	if f == JSON {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testdataRequests are the fuzz seeds and golden requests in testdata/.
func testdataRequests() map[string]pmetric.Metrics {
	return map[string]pmetric.Metrics{
		"all_kinds":   testMetrics(testTime),
		"rejects":     rejectMetrics(testTime),
		"empty":       pmetric.NewMetrics(),
		"two_targets": twoResources(testTime),
		"native":      nativeMetrics(testTime),
	}
}

// nativeMetrics has what turns into native histograms and exemplars, and a
// delta sum: an exponential histogram with negative, zero and positive
// buckets and an exemplar, and a delta counter of two points.
func nativeMetrics(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "native")
	sm := rm.ScopeMetrics().AppendEmpty()
	pts := pcommon.NewTimestampFromTime(ts)
	m := sm.Metrics().AppendEmpty()
	m.SetName("latency")
	m.SetUnit("s")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	p := eh.DataPoints().AppendEmpty()
	p.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Minute)))
	p.SetTimestamp(pts)
	p.SetScale(3)
	p.SetZeroCount(1)
	p.SetCount(7)
	p.SetSum(2.5)
	p.Positive().SetOffset(-2)
	p.Positive().BucketCounts().FromRaw([]uint64{1, 0, 3})
	p.Negative().SetOffset(1)
	p.Negative().BucketCounts().FromRaw([]uint64{2})
	ex := p.Exemplars().AppendEmpty()
	ex.SetDoubleValue(0.9)
	ex.SetTimestamp(pts)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	m = sm.Metrics().AppendEmpty()
	m.SetName("jobs")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range 2 {
		dp := s.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts.Add(time.Duration(i) * time.Second)))
		dp.SetIntValue(int64(i + 2))
	}
	return md
}

// twoResources has two resources with the same metric, each with several
// data points, so series keys and target_info of both must stay apart.
func twoResources(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for _, inst := range []string{"a", "b"} {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "svc")
		rm.Resource().Attributes().PutStr("service.instance.id", inst)
		rm.Resource().Attributes().PutStr("os.type", "linux")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("up.time")
		m.SetUnit("s")
		g := m.SetEmptyGauge()
		for i := range 3 {
			dp := g.DataPoints().AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts.Add(time.Duration(i) * 10 * time.Second)))
			dp.SetDoubleValue(float64(i))
		}
	}
	return md
}

// readTestdata returns the testdata/ files, rewriting them first with
// -update.
func readTestdata(t testing.TB) map[string][]byte {
	t.Helper()
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		for name, md := range testdataRequests() {
			if err := os.WriteFile(filepath.Join("testdata", name+".pb"), encode(t, md, Protobuf), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", name+".json"), encode(t, md, JSON), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for name, data := range hostileSeeds(t) {
			if err := os.WriteFile(filepath.Join("testdata", name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// seriesOf renders a batch as label-set strings (sorted, in Prometheus'
// notation) to their samples.
func seriesOf(b *samples.Batch) map[string][]samples.Sample {
	out := map[string][]samples.Sample{}
	for i := range b.Series {
		s := &b.Series[i]
		var sb labels.ScratchBuilder
		for _, l := range b.SeriesLabels(s) {
			sb.Add(l.Name, l.Value)
		}
		sb.Sort()
		k := sb.Labels().String()
		out[k] = append(out[k], b.SeriesSamples(s)...)
	}
	return out
}

func pcommonTime(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }
