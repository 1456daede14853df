package tail

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/samples"
)

// histBatch is a batch of a native histogram series (two samples: an
// integer histogram of schema 0 and an NHCB float one), a float series
// beside it, and an exemplar, as a committed write hands them to Observe.
func histBatch() (*samples.Batch, []storage.SeriesRef) {
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", "latency")
	b.AddLabel("job", "api")
	// Schema 0: (0.5,1] 2, (1,2] 4, (2,4] 4; a zero bucket of 1.
	b.AddHistogram(samples.Histogram{T: 1000, IntCount: 11, IntZeroCount: 1, ZeroThreshold: 0.001, Sum: 20,
		PositiveSpans: []samples.Span{{Offset: 0, Length: 3}}, PositiveDeltas: []int64{2, 2, 0}})
	// NHCB: le 0.1 1, le 0.5 0 (left out), +Inf 3.
	b.AddHistogram(samples.Histogram{T: 2000, Float: true, Schema: samples.CustomBucketsSchema, Count: 4, Sum: 2.5,
		PositiveSpans: []samples.Span{{Offset: 0, Length: 3}}, PositiveCounts: []float64{1, 0, 3}, CustomValues: []float64{0.1, 0.5}})
	b.AddExemplar(1000, 1.5, []samples.Label{{Name: "trace_id", Value: "x"}})
	b.StartSeries(nil)
	b.AddLabel("__name__", "up")
	b.AddLabel("job", "api")
	b.AddSample(1000, 1)
	return &b, []storage.SeriesRef{1, 2}
}

// TestObserveHistograms: native histogram samples are streamed as "h",
// rendered as Prometheus' HTTP API renders histograms, beside the float
// samples of the same write, which are unchanged; the histograms are
// copied, so the batch may be reused at once.
func TestObserveHistograms(t *testing.T) {
	h := New(Options{Now: newFakeClock().Now})
	s := subscribe(t, h, 0, `{job="api"}`)
	b, refs := histBatch()
	h.Observe(b, refs)
	b.Histograms[0].PositiveDeltas[0] = 99 // the writer reuses its buffers
	b.Histograms[1].PositiveCounts[0] = 99
	items := drain(s)
	if len(items) != 1 {
		t.Fatalf("got %d queued messages; want 1", len(items))
	}
	got := string(appendSamples(nil, items[0]))
	want := `{"type":"samples","samples":[` +
		`{"labels":{"__name__":"latency","job":"api"},"t":1000,"h":{"count":"11","sum":"20","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"1","2","4"],[0,"2","4","4"]]}},` +
		`{"labels":{"__name__":"latency","job":"api"},"t":2000,"h":{"count":"4","sum":"2.5","buckets":[[3,"-Inf","0.1","1"],[0,"0.5","+Inf","3"]]}},` +
		`{"labels":{"__name__":"up","job":"api"},"t":1000,"v":"1"}],"time":1700000000000}`
	if got != want {
		t.Fatalf("samples message:\ngot  %s\nwant %s", got, want)
	}
	var m Message
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Samples) != 3 || m.Samples[0].H == nil || m.Samples[0].H.Count != 11 || len(m.Samples[0].H.Buckets) != 4 ||
		m.Samples[0].H.Buckets[0] != (Bucket{Boundaries: 3, Lower: -0.001, Upper: 0.001, Count: 1}) ||
		m.Samples[2].H != nil || m.Samples[2].V != 1 {
		t.Fatalf("decoded: got %+v", m.Samples)
	}
	// A Bucket encodes back to what it decoded from.
	enc, err := json.Marshal(m.Samples[1].H)
	if err != nil || string(enc) != `{"count":"4","sum":"2.5","buckets":[[3,"-Inf","0.1","1"],[0,"0.5","+Inf","3"]]}` {
		t.Fatalf("re-encoded histogram: got %s, %v", enc, err)
	}
}

// TestObserveHistogramCost: a native histogram weighs its size against
// MaxSamplesPerMessage, so big histograms fill messages sooner and a
// client's queued memory keeps its bound.
func TestObserveHistogramCost(t *testing.T) {
	h := New(Options{Now: newFakeClock().Now, MaxSamplesPerMessage: 8})
	s := subscribe(t, h, 0, `{job="api"}`)
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", "latency")
	b.AddLabel("job", "api")
	deltas := make([]int64, 100)
	deltas[0] = 1
	for i := range 3 {
		b.AddHistogram(samples.Histogram{T: int64(i+1) * 1000, IntCount: 100, Sum: 1,
			PositiveSpans: []samples.Span{{Length: 100}}, PositiveDeltas: deltas})
	}
	h.Observe(&b, []storage.SeriesRef{1})
	items := drain(s)
	if len(items) != 3 {
		t.Fatalf("got %d messages for 3 histograms of 100 buckets with MaxSamplesPerMessage 8; want 3 (one each)", len(items))
	}
	for _, it := range items {
		if it.cost < 8 || len(it.samples) != 1 {
			t.Fatalf("message of %d samples costs %d; want 1 sample costing at least 8", len(it.samples), it.cost)
		}
	}
	// Float samples still cost one each.
	b2, refs := mkBatch(testSeries{2, []string{"__name__", "up", "job", "api"}, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}})
	h.Observe(b2, refs)
	if got := strings.Join(seriesOf(drain(s)), ","); strings.Count(got, "up{") != 9 {
		t.Fatalf("float samples: got %s; want 9", got)
	}
}
