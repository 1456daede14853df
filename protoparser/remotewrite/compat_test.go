package remotewrite

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/telltale-dev/telltale/samples"
)

// These tests use Prometheus' generated protobuf types (test-only imports:
// the package itself stays dependency-free) to prove byte compatibility in
// both directions.

func promV1(ss []series, md []samples.Metadata) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range ss {
		var ts prompb.TimeSeries
		for _, l := range s.labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		for _, x := range s.samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: x.T, Value: x.V})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	for _, m := range md {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{
			Type: prompb.MetricMetadata_MetricType(metricTypeEnum(m.Type)), MetricFamilyName: m.Name, Help: m.Help, Unit: m.Unit,
		})
	}
	return req
}

func promV2(ss []series, md []samples.Metadata) *writev2.Request {
	st := writev2.NewSymbolTable()
	mds := map[string]samples.Metadata{}
	for _, m := range md {
		mds[m.Name] = m
	}
	req := &writev2.Request{}
	for _, s := range ss {
		var ts writev2.TimeSeries
		name := ""
		for _, l := range s.labels {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			if l.Name == "__name__" {
				name = l.Value
			}
		}
		for _, x := range s.samples {
			ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: x.T, Value: x.V})
		}
		m, ok := mds[name]
		for _, suf := range familySuffixes {
			if !ok && len(name) > len(suf) && name[len(name)-len(suf):] == suf {
				m, ok = mds[name[:len(name)-len(suf)]]
			}
		}
		if ok {
			ts.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(metricTypeEnum(m.Type)), HelpRef: st.Symbolize(m.Help), UnitRef: st.Symbolize(m.Unit)}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

// sameAsPrometheus decodes data, Prometheus' encoding of testSeries and
// testMetadata, with Decode<version> and checks it gives them back; then it
// checks that Append<version> writes the very same bytes, and returns them.
func sameAsPrometheus(t *testing.T, version string, data []byte, decode func([]byte, *samples.Batch) (Stats, error), encode func([]byte, *samples.Batch) []byte) []byte {
	t.Helper()
	var b samples.Batch
	if _, err := decode(data, &b); err != nil {
		t.Fatalf("Decode%s of Prometheus' bytes: %v", version, err)
	}
	if d := diffSeries(fromBatch(&b), testSeries); d != "" {
		t.Fatal(d)
	}
	if fmt.Sprint(b.Metadata) != fmt.Sprint(testMetadata) {
		t.Fatalf("got metadata %q; want %q", b.Metadata, testMetadata)
	}
	ours := encode(nil, toBatch(testSeries, testMetadata))
	if !bytes.Equal(ours, data) {
		t.Fatalf("Append%s wrote\n%x\nPrometheus writes\n%x", version, ours, data)
	}
	return ours
}

// TestPrometheusCompatV1 decodes what Prometheus encodes, and checks that
// AppendV1 writes the very same bytes.
func TestPrometheusCompatV1(t *testing.T) {
	want := promV1(testSeries, testMetadata)
	data, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ours := sameAsPrometheus(t, "V1", data, DecodeV1, AppendV1)
	var got prompb.WriteRequest
	if err := got.Unmarshal(ours); err != nil {
		t.Fatalf("Prometheus cannot decode AppendV1's bytes: %v", err)
	}
	if len(got.Timeseries) != len(testSeries) || len(got.Metadata) != len(testMetadata) {
		t.Fatalf("Prometheus decoded %d series, %d metadata; want %d, %d", len(got.Timeseries), len(got.Metadata), len(testSeries), len(testMetadata))
	}
	writeTestdata(t, "series.v1.pb", data)
}

// TestPrometheusCompatV2 is TestPrometheusCompatV1 for 2.0.
func TestPrometheusCompatV2(t *testing.T) {
	want := promV2(testSeries, testMetadata)
	data, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ours := sameAsPrometheus(t, "V2", data, DecodeV2, AppendV2)
	var got writev2.Request
	if err := got.Unmarshal(ours); err != nil {
		t.Fatalf("Prometheus cannot decode AppendV2's bytes: %v", err)
	}
	if len(got.Timeseries) != len(testSeries) {
		t.Fatalf("Prometheus decoded %d series; want %d", len(got.Timeseries), len(testSeries))
	}
	for i, ts := range got.Timeseries {
		if len(ts.LabelsRefs) != 2*len(testSeries[i].labels) {
			t.Fatalf("series %d: Prometheus decoded %d label refs; want %d", i, len(ts.LabelsRefs), 2*len(testSeries[i].labels))
		}
		for j, ref := range ts.LabelsRefs {
			l := testSeries[i].labels[j/2]
			want := l.Name
			if j%2 == 1 {
				want = l.Value
			}
			if got.Symbols[ref] != want {
				t.Fatalf("series %d ref %d: got %q; want %q", i, j, got.Symbols[ref], want)
			}
		}
	}
	writeTestdata(t, "series.v2.pb", data)
}

// TestPrometheusHistogramsExemplars decodes requests with native histograms
// and exemplars as Prometheus writes them.
func TestPrometheusHistogramsExemplars(t *testing.T) {
	h := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 5}, Sum: 12.5, Schema: 3,
		PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{2, 1}, Timestamp: 1000}
	v1 := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "a"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: 1000}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{h, h}},
	}}
	data, err := v1.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var b samples.Batch
	st, err := DecodeV1(data, &b)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Samples: 1, Histograms: 2, Exemplars: 1}) || len(b.Series) != 2 {
		t.Fatalf("1.0: got %+v and %d series; want 1 sample, 2 histograms, 1 exemplar, 2 series", st, len(b.Series))
	}
	// Prometheus decodes AppendV1's bytes to the same histograms and exemplar
	// (not byte for byte: we always write the zero count, as Prometheus does
	// for histograms it converts itself, and h here has none).
	var again prompb.WriteRequest
	if err := again.Unmarshal(AppendV1(nil, &b)); err != nil || len(again.Timeseries) != 2 {
		t.Fatalf("1.0: Prometheus cannot decode AppendV1's bytes: %v", err)
	}
	for _, got := range again.Timeseries[1].Histograms {
		if got.GetCountInt() != 5 || got.Sum != 12.5 || got.Schema != 3 || got.Timestamp != 1000 ||
			fmt.Sprint(got.PositiveDeltas) != "[2 1]" || len(got.PositiveSpans) != 1 || got.PositiveSpans[0].Length != 2 {
			t.Fatalf("1.0: Prometheus decodes AppendV1's histogram as %+v; want %+v", got, h)
		}
	}
	if ex := again.Timeseries[0].Exemplars; len(ex) != 1 || ex[0].Labels[0].Value != "abc" || ex[0].Value != 1 || ex[0].Timestamp != 1000 {
		t.Fatalf("1.0: Prometheus decodes AppendV1's exemplars as %+v", ex)
	}
	writeTestdata(t, "histograms.v1.pb", data)

	sym := writev2.NewSymbolTable()
	h2 := writev2.Histogram{Count: &writev2.Histogram_CountInt{CountInt: 5}, Sum: 12.5, Schema: 3,
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{2, 1}, Timestamp: 1000}
	v2 := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{sym.Symbolize("__name__"), sym.Symbolize("a")}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1000, StartTimestamp: 500}},
			Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{sym.Symbolize("trace_id"), sym.Symbolize("abc")}, Value: 1, Timestamp: 1000}}},
		{LabelsRefs: []uint32{sym.Symbolize("__name__"), sym.Symbolize("h")}, Histograms: []writev2.Histogram{h2},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: sym.Symbolize("A histogram.")}},
	}}
	v2.Symbols = sym.Symbols()
	data, err = v2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	st, err = DecodeV2(data, &b)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Samples: 1, Histograms: 1, Exemplars: 1}) || len(b.Series) != 2 {
		t.Fatalf("2.0: got %+v and %d series; want 1 sample, 1 histogram, 1 exemplar, 2 series", st, len(b.Series))
	}
	hs := b.SeriesHistograms(&b.Series[1])
	if len(hs) != 1 || hs[0].IntCount != 5 || hs[0].Sum != 12.5 || hs[0].Schema != 3 || hs[0].T != 1000 ||
		fmt.Sprint(hs[0].PositiveSpans, hs[0].PositiveDeltas) != "[{0 2}] [2 1]" {
		t.Fatalf("2.0: got histograms %+v; want Prometheus' h2", hs)
	}
	ex := b.SeriesExemplars(&b.Series[0])
	if len(ex) != 1 || fmt.Sprint(b.ExemplarLabelsOf(&ex[0])) != "[{trace_id abc}]" || ex[0].V != 1 || ex[0].T != 1000 {
		t.Fatalf("2.0: got exemplars %+v; want trace_id=abc 1 @1000", ex)
	}
	// Prometheus decodes AppendV2's bytes to the same histogram and exemplar.
	var again2 writev2.Request
	if err := again2.Unmarshal(AppendV2(nil, &b)); err != nil {
		t.Fatal(err)
	}
	if got := again2.Timeseries[1].Histograms; len(got) != 1 || got[0].GetCountInt() != 5 || got[0].Sum != 12.5 || got[0].Schema != 3 ||
		got[0].Timestamp != 1000 || fmt.Sprint(got[0].PositiveDeltas, got[0].PositiveSpans[0].Length) != "[2 1] 2" {
		t.Fatalf("2.0: Prometheus decodes AppendV2's histogram as %+v; want %+v", got, h2)
	}
	if got := again2.Timeseries[0].Exemplars; len(got) != 1 || again2.Symbols[got[0].LabelsRefs[1]] != "abc" {
		t.Fatalf("2.0: Prometheus decodes AppendV2's exemplars as %+v", got)
	}
	wantMD := []samples.Metadata{{Name: "h", Type: "histogram", Help: "A histogram."}}
	if fmt.Sprint(b.Metadata) != fmt.Sprint(wantMD) {
		t.Fatalf("2.0: got metadata %q; want %q (metadata of a histogram-only series is kept)", b.Metadata, wantMD)
	}
	writeTestdata(t, "histograms.v2.pb", data)

	// Float histograms: custom buckets (NHCB) and negative buckets, the
	// fuzz seed of those paths.
	fh := writev2.Histogram{Count: &writev2.Histogram_CountFloat{CountFloat: 4}, Sum: 1, Schema: -53,
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveCounts: []float64{1, 3}, CustomValues: []float64{0.1, 0.5}, Timestamp: 2000}
	neg := writev2.Histogram{Count: &writev2.Histogram_CountFloat{CountFloat: 3}, Sum: -2, Schema: -1, ZeroThreshold: 1e-3,
		ZeroCount: &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: 1}, NegativeSpans: []writev2.BucketSpan{{Offset: -2, Length: 1}}, NegativeCounts: []float64{2},
		ResetHint: writev2.Histogram_RESET_HINT_GAUGE, Timestamp: 2000}
	sym = writev2.NewSymbolTable()
	v2 = &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{sym.Symbolize("__name__"), sym.Symbolize("nhcb")}, Histograms: []writev2.Histogram{fh}},
		{LabelsRefs: []uint32{sym.Symbolize("__name__"), sym.Symbolize("neg")}, Histograms: []writev2.Histogram{neg}},
	}}
	v2.Symbols = sym.Symbols()
	if data, err = v2.Marshal(); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if _, err := DecodeV2(data, &b); err != nil || len(b.Histograms) != 2 {
		t.Fatalf("got %d histograms, %v; want 2", len(b.Histograms), err)
	}
	got := fmt.Sprintf("%+v", b.Histograms)
	want := "[{T:2000 Float:true CounterResetHint:0 Schema:-53 ZeroThreshold:0 Sum:1 IntCount:0 IntZeroCount:0 Count:4 ZeroCount:0 PositiveSpans:[{Offset:0 Length:2}] NegativeSpans:[] PositiveDeltas:[] NegativeDeltas:[] PositiveCounts:[1 3] NegativeCounts:[] CustomValues:[0.1 0.5]} " +
		"{T:2000 Float:true CounterResetHint:3 Schema:-1 ZeroThreshold:0.001 Sum:-2 IntCount:0 IntZeroCount:0 Count:3 ZeroCount:1 PositiveSpans:[] NegativeSpans:[{Offset:-2 Length:1}] PositiveDeltas:[] NegativeDeltas:[] PositiveCounts:[] NegativeCounts:[2] CustomValues:[]}]"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Oneof fields are pointers: compare what they hold.
	show := func(h writev2.Histogram) string {
		return fmt.Sprintf("%v %v %v %v %v %v %v %v %v %v %v", h.GetCountFloat(), h.GetZeroCountFloat(), h.Sum, h.Schema, h.ZeroThreshold,
			h.PositiveSpans, h.PositiveCounts, h.NegativeSpans, h.NegativeCounts, h.ResetHint, h.CustomValues)
	}
	var back writev2.Request
	if err := back.Unmarshal(AppendV2(nil, &b)); err != nil || show(back.Timeseries[0].Histograms[0]) != show(fh) || show(back.Timeseries[1].Histograms[0]) != show(neg) {
		t.Fatalf("Prometheus decodes AppendV2's float histograms as %+v, %v; want %s and %s", back.Timeseries, err, show(fh), show(neg))
	}
	writeTestdata(t, "float_histograms.v2.pb", data)
}

// TestPrometheusDecodesBench checks the benchmark request, the realistic
// shape, through Prometheus' decoder.
func TestPrometheusDecodesBench(t *testing.T) {
	src := benchBatch(50)
	writeTestdata(t, "fleet.v1.pb", AppendV1(nil, benchBatch(20)))
	writeTestdata(t, "fleet.v2.pb", AppendV2(nil, benchBatch(20)))
	var r1 prompb.WriteRequest
	if err := r1.Unmarshal(AppendV1(nil, src)); err != nil || len(r1.Timeseries) != 50 {
		t.Fatalf("1.0: got %d series, %v; want 50", len(r1.Timeseries), err)
	}
	var r2 writev2.Request
	if err := r2.Unmarshal(AppendV2(nil, src)); err != nil || len(r2.Timeseries) != 50 {
		t.Fatalf("2.0: got %d series, %v; want 50", len(r2.Timeseries), err)
	}
	for i, ts := range r2.Timeseries {
		if got := ts.Samples[0].Value; got != src.Samples[i].V || math.IsNaN(got) {
			t.Fatalf("2.0 series %d: got value %v; want %v", i, got, src.Samples[i].V)
		}
	}
}

func writeTestdata(t *testing.T, name string, data []byte) {
	t.Helper()
	if !*update {
		return
	}
	if err := os.WriteFile("testdata/"+name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
