package otlp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
	"github.com/telltale-dev/telltale/samples"
)

func TestConvertAllKinds(t *testing.T) {
	for _, f := range []Format{Protobuf, JSON} {
		t.Run(f.ContentType(), func(t *testing.T) {
			md, err := Decode(encode(t, otlptest.Metrics(otlptest.Time), f), f, Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var b samples.Batch
			res, err := NewConverter(ConvertOptions{}).Convert(t.Context(), md, &b)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			if res.DataPoints != 5 || res.Rejected != 0 || res.Message() != "" {
				t.Fatalf("got DataPoints=%d Rejected=%d Message=%q; want 5, 0, \"\"", res.DataPoints, res.Rejected, res.Message())
			}
			if len(b.Exemplars) != 1 || b.Exemplars[0].V != 1 || b.Exemplars[0].T != otlptest.Time.UnixMilli() {
				t.Fatalf("got exemplars %+v; want the one of requests_total", b.Exemplars)
			}
			got := seriesOf(&b)
			want := otlptest.Series()
			for k, v := range want {
				ss, ok := got[k]
				if !ok {
					t.Errorf("missing series %s", k)
					continue
				}
				if len(ss) != 1 || ss[0].V != v || ss[0].T != otlptest.Time.UnixMilli() {
					t.Errorf("series %s: got %v; want one sample %v at %d", k, ss, v, otlptest.Time.UnixMilli())
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected series %s", k)
				}
			}
			checkMetadata(t, b.Metadata, map[string]string{
				"temperature_celsius":          "gauge",
				"requests_total":               "counter",
				"queue_depth":                  "gauge",
				"http_server_duration_seconds": "histogram",
				"rpc_latency_milliseconds":     "summary",
				"target_info":                  "gauge",
			})
			checkKeys(t, &b)
		})
	}
}

func checkMetadata(t *testing.T, md []samples.Metadata, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, m := range md {
		got[m.Name] = m.Type
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("metadata of %s: got type %q; want %q (all: %v)", name, got[name], typ, got)
		}
	}
}

// checkKeys verifies the series-key contract: equal keys iff equal labels.
func checkKeys(t *testing.T, b *samples.Batch) {
	t.Helper()
	seen := map[string]string{}
	for i := range b.Series {
		s := &b.Series[i]
		if len(s.Key) == 0 || s.Key[0] != keyPrefix {
			t.Fatalf("series %d: key %q does not start with the OTLP format byte", i, s.Key)
		}
		one := samples.Batch{Labels: b.SeriesLabels(s), Series: []samples.Series{{LabelsEnd: s.LabelsEnd - s.LabelsStart}}}
		ls := ""
		for k := range seriesOf(&one) {
			ls = k
		}
		if prev, ok := seen[string(s.Key)]; ok && prev != ls {
			t.Fatalf("key %q used by %s and %s", s.Key, prev, ls)
		}
		seen[string(s.Key)] = ls
	}
	byLabels := map[string]string{}
	for k, ls := range seen {
		if prev, ok := byLabels[ls]; ok && prev != k {
			t.Fatalf("labels %s have two keys", ls)
		}
		byLabels[ls] = k
	}
}

func TestConvertTwoResources(t *testing.T) {
	var b samples.Batch
	if _, err := NewConverter(ConvertOptions{}).Convert(t.Context(), twoResources(otlptest.Time), &b); err != nil {
		t.Fatal(err)
	}
	got := seriesOf(&b)
	f := func(series string, wantValues ...float64) {
		t.Helper()
		ss := got[series]
		if len(ss) != len(wantValues) {
			t.Fatalf("series %s: got %v; want values %v (all: %v)", series, ss, wantValues, got)
		}
		for i, v := range wantValues {
			if ss[i].V != v {
				t.Fatalf("series %s: got %v; want values %v", series, ss, wantValues)
			}
		}
	}
	f(`{__name__="up_time_seconds", instance="a", job="svc"}`, 0, 1, 2)
	f(`{__name__="up_time_seconds", instance="b", job="svc"}`, 0, 1, 2)
	// target_info: one sample at the first and one at the last point (20 s
	// apart, less than lookback/2).
	f(`{__name__="target_info", instance="a", job="svc", os_type="linux"}`, 1, 1)
	f(`{__name__="target_info", instance="b", job="svc", os_type="linux"}`, 1, 1)
	// Consecutive points of one series share one batch series.
	if len(b.Series) != 4 {
		t.Fatalf("got %d batch series; want 4", len(b.Series))
	}
	checkKeys(t, &b)
}

func TestConvertRejects(t *testing.T) {
	var b samples.Batch
	res, err := NewConverter(ConvertOptions{}).Convert(t.Context(), otlptest.Rejects(otlptest.Time), &b)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	got := seriesOf(&b)
	if len(got) != 2 || len(got[`{__name__="ok", job="mixed"}`]) != 1 || len(b.Histograms) != 1 {
		t.Fatalf("got series %v and %d histograms; want ok{job=\"mixed\"} and the exponential histogram latency_exp", got, len(b.Histograms))
	}
	if res.DataPoints != 5 || res.Rejected != 3 {
		t.Fatalf("got DataPoints=%d Rejected=%d; want 5, 3", res.DataPoints, res.Rejected)
	}
	reasons := map[string]int{}
	for _, rj := range res.Rejections {
		reasons[rj.Reason+"/"+rj.Metric] = rj.Points
	}
	want := map[string]int{
		ReasonDelta + "/delta.requests":   2,
		ReasonInvalidMetric + "/bad.attr": 1,
	}
	for k, n := range want {
		if reasons[k] != n {
			t.Errorf("rejection %s: got %d points; want %d (all: %v)", k, reasons[k], n, reasons)
		}
	}
	msg := res.Message()
	for _, s := range []string{"3 of 5 data points rejected", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative",
		"-otlp.delta-to-cumulative", `metric "bad.attr"`, "label name is empty"} {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q does not contain %q", msg, s)
		}
	}
}

func TestConvertMessageBounded(t *testing.T) {
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	for range 10 {
		m := ms.AppendEmpty()
		m.SetName("d")
		m.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		m.Sum().DataPoints().AppendEmpty().SetIntValue(1)
	}
	var b samples.Batch
	res, err := NewConverter(ConvertOptions{}).Convert(t.Context(), md, &b)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Message(); !strings.HasSuffix(got, "; and 7 more metrics") || strings.Count(got, "temporality;") != 3 {
		t.Fatalf("got message %q; want 3 details and \"; and 7 more metrics\"", got)
	}
}

func TestConvertTooManySamples(t *testing.T) {
	// Two points a day apart: target_info fills the day with a sample every
	// 2.5 minutes, 577 samples.
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "s")
	rm.Resource().Attributes().PutStr("host.name", "h")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("g")
	dps := g.SetEmptyGauge().DataPoints()
	for _, ts := range []time.Time{otlptest.Time.Add(-24 * time.Hour), otlptest.Time} {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommonTime(ts))
		dp.SetDoubleValue(1)
	}
	f := func(max int, wantErr bool) {
		t.Helper()
		var b samples.Batch
		_, err := NewConverter(ConvertOptions{MaxSamples: max}).Convert(t.Context(), md, &b)
		if gotErr := errors.Is(err, ErrTooManySamples); gotErr != wantErr {
			t.Fatalf("MaxSamples=%d: got error %v; want ErrTooManySamples: %v", max, err, wantErr)
		}
		if !wantErr && b.Len() != 579 {
			t.Fatalf("MaxSamples=%d: got %d samples; want 579", max, b.Len())
		}
	}
	f(0, false)
	f(1000, false)
	f(500, true)
}

func TestDecodeErrors(t *testing.T) {
	f := func(body string, format Format, want string) {
		t.Helper()
		_, err := Decode([]byte(body), format, Limits{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Decode(%q): got error %v; want it to contain %q", body, err, want)
		}
	}
	f("\x0a\xff\xff\xff\xff\x0f", Protobuf, "application/x-protobuf body")
	f("garbage", Protobuf, "ExportMetricsServiceRequest")
	f(`{"resourceMetrics": [`, JSON, "application/json body")
	f(`not json`, JSON, "cannot decode")
}

// TestBatchAppenderKeys checks the key encoding cannot confuse label sets
// whose concatenations are equal.
func TestBatchAppenderKeys(t *testing.T) {
	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("g")
	dps := g.SetEmptyGauge().DataPoints()
	for _, kv := range [][2]string{{"ab", "c"}, {"a", "bc"}} {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommonTime(otlptest.Time))
		dp.Attributes().PutStr(kv[0], kv[1])
	}
	var b samples.Batch
	if _, err := NewConverter(ConvertOptions{}).Convert(t.Context(), md, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Series) != 2 || bytes.Equal(b.Series[0].Key, b.Series[1].Key) {
		t.Fatalf("got %d series with keys %q; want 2 distinct", len(b.Series), b.Series)
	}
	checkKeys(t, &b)
}

// TestConvertHistogramsToNHCB: with HistogramsToNHCB an explicit-bucket
// histogram becomes one native histogram series with custom buckets
// instead of _bucket/_sum/_count series.
func TestConvertHistogramsToNHCB(t *testing.T) {
	var b samples.Batch
	if _, err := NewConverter(ConvertOptions{HistogramsToNHCB: true}).Convert(t.Context(), otlptest.Metrics(otlptest.Time), &b); err != nil {
		t.Fatal(err)
	}
	var got []samples.Histogram
	for i := range b.Series {
		s := &b.Series[i]
		if strings.HasPrefix(b.Name(s), "http_server_duration_seconds") {
			if b.Name(s) != "http_server_duration_seconds" {
				t.Fatalf("got classic series %s", b.Name(s))
			}
			got = append(got, b.SeriesHistograms(s)...)
		}
	}
	if len(got) != 1 {
		t.Fatalf("got %d histograms; want 1", len(got))
	}
	h := got[0]
	if h.Schema != samples.CustomBucketsSchema || fmt.Sprint(h.CustomValues) != "[0.1 0.5 1]" || h.IntCount != 10 || h.Sum != 4.25 {
		t.Fatalf("got %+v; want an NHCB with bounds [0.1 0.5 1], count 10, sum 4.25", h)
	}
}
