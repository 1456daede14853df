package push

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

func testBatch(nSeries, samplesPer int) *samples.Batch {
	var b samples.Batch
	for i := range nSeries {
		b.StartSeries(nil)
		// Deliberately unsorted: extra labels appended after the rest.
		b.AddLabel("__name__", "m")
		b.AddLabel("series", fmt.Sprint(i))
		b.AddLabel("job", "app")
		b.AddLabel("instance", "h:1")
		for j := range samplesPer {
			b.AddSample(int64(1000*j), float64(i))
		}
	}
	b.Metadata = append(b.Metadata, samples.Metadata{Name: "m", Type: "gauge", Help: "a gauge"})
	return &b
}

func decode(t *testing.T, v Version, body []byte) *samples.Batch {
	t.Helper()
	pb, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	var b samples.Batch
	if v == V2 {
		_, err = remotewrite.DecodeV2(pb, &b)
	} else {
		_, err = remotewrite.DecodeV1(pb, &b)
	}
	if err != nil {
		t.Fatalf("decode v%d: %v", v, err)
	}
	return &b
}

func TestEncoderSplitsAndSorts(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		e := Encoder{Version: v, MaxSamples: 5}
		in := testBatch(7, 2) // 14 samples: bodies of 4, 4, 4, 2
		var sizes []int
		var gotSeries []string
		var metaPerBody []int
		err := e.Encode(in, func(body []byte, n int) error {
			sizes = append(sizes, n)
			b := decode(t, v, body)
			if b.Len() != n {
				t.Errorf("v%d: body says %d samples, decodes to %d", v, n, b.Len())
			}
			metaPerBody = append(metaPerBody, len(b.Metadata))
			for i := range b.Series {
				s := &b.Series[i]
				ls := b.SeriesLabels(s)
				if !slices.IsSortedFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) }) {
					t.Errorf("v%d: labels not sorted: %v", v, ls)
				}
				gotSeries = append(gotSeries, fmt.Sprint(ls))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sizes, []int{4, 4, 4, 2}) {
			t.Errorf("v%d: body sizes %v; want [4 4 4 2]", v, sizes)
		}
		if len(gotSeries) != 7 || gotSeries[6] != "[{__name__ m} {instance h:1} {job app} {series 6}]" {
			t.Errorf("v%d: series %v; want 7 in order with sorted labels", v, gotSeries)
		}
		if v == V1 && !slices.Equal(metaPerBody, []int{1, 0, 0, 0}) {
			t.Errorf("v1 metadata per body %v; want only in the first", metaPerBody)
		}
		if v == V2 && !slices.Equal(metaPerBody, []int{1, 1, 1, 1}) {
			t.Errorf("v2 metadata per body %v; want with every series", metaPerBody)
		}
	}
}

func TestEncoderBigSeries(t *testing.T) {
	e := Encoder{Version: V1, MaxSamples: 3}
	var sizes []int
	err := e.Encode(testBatch(2, 10), func(body []byte, n int) error { sizes = append(sizes, n); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{10, 10}) {
		t.Errorf("sizes %v; want one body per oversized series: [10 10]", sizes)
	}
	var empty samples.Batch
	calls := 0
	if err := e.Encode(&empty, func([]byte, int) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("empty batch: %d bodies, err %v; want none", calls, err)
	}
}

func TestEncoderStopsOnEmitError(t *testing.T) {
	e := Encoder{Version: V1, MaxSamples: 1}
	calls := 0
	err := e.Encode(testBatch(3, 1), func([]byte, int) error { calls++; return fmt.Errorf("disk full") })
	if err == nil || calls != 1 {
		t.Errorf("got %d calls, err %v; want 1 call and the error", calls, err)
	}
}

func BenchmarkEncode(b *testing.B) {
	in := testBatch(1000, 1)
	e := Encoder{Version: V1, MaxSamples: 2000}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		e.Encode(in, func(body []byte, _ int) error { n = len(body); return nil })
	}
	b.ReportMetric(float64(n)/1000, "bytes/sample")
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
}

func TestEncoderKeepsHistogramsAndExemplars(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		var b samples.Batch
		for i := range 3 {
			b.StartSeries(nil)
			b.AddLabel("__name__", "latency")
			b.AddLabel("i", fmt.Sprint(i))
			b.AddHistogram(samples.Histogram{T: 1000, Schema: 0, IntCount: 2, Sum: 3,
				PositiveSpans: []samples.Span{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 0}})
			b.AddSample(2000, 1)
			b.AddExemplar(2000, 0.5, []samples.Label{{Name: "trace_id", Value: fmt.Sprint("t", i)}})
		}
		enc := Encoder{Version: v, MaxSamples: 4}
		var got samples.Batch
		bodies, counts := 0, 0
		err := enc.Encode(&b, func(body []byte, n int) error {
			bodies++
			counts += n
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				return err
			}
			if v == V2 {
				_, err = remotewrite.DecodeV2(raw, &got)
			} else {
				_, err = remotewrite.DecodeV1(raw, &got)
			}
			return err
		})
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if bodies != 2 || counts != 6 || len(got.Histograms) != 3 || len(got.Samples) != 3 || len(got.Exemplars) != 3 {
			t.Errorf("v%d: %d bodies, %d counted, decoded %d histograms %d samples %d exemplars; want 2, 6, 3, 3, 3",
				v, bodies, counts, len(got.Histograms), len(got.Samples), len(got.Exemplars))
		}
		if len(got.Exemplars) == 3 && got.ExemplarLabelsOf(&got.Exemplars[2])[0].Value != "t2" {
			t.Errorf("v%d: exemplar labels %v; want trace_id=t2", v, got.ExemplarLabelsOf(&got.Exemplars[2]))
		}
	}
}
