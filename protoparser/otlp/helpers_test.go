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

	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
	"github.com/telltale-dev/telltale/samples"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the request builders")

// testdataRequests are the fuzz seeds and golden requests in testdata/.
func testdataRequests() map[string]pmetric.Metrics {
	return map[string]pmetric.Metrics{
		"all_kinds":   otlptest.Metrics(otlptest.Time),
		"rejects":     otlptest.Rejects(otlptest.Time),
		"empty":       pmetric.NewMetrics(),
		"two_targets": twoResources(otlptest.Time),
		"native":      nativeMetrics(otlptest.Time),
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

// encode encodes md in format f.
func encode(t testing.TB, md pmetric.Metrics, f Format) []byte {
	t.Helper()
	return otlptest.Encode(t, md, f == JSON)
}
