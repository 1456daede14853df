package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/samples"
)

// histBatch is a batch with series h holding an integer histogram with
// one exemplar, and series nhcb holding a float custom-bucket histogram.
func histBatch(now int64, buckets int) *samples.Batch {
	b := &samples.Batch{}
	b.StartSeries(nil)
	b.AddLabel("__name__", "h")
	deltas := make([]int64, buckets)
	deltas[0] = 2
	if buckets > 1 {
		deltas[1] = -2 // counts 2, 0, 0 ...: Count 2
	}
	b.AddHistogram(samples.Histogram{T: now, Schema: 0, IntCount: 2, Sum: 3,
		PositiveSpans: []samples.Span{{Offset: 0, Length: uint32(buckets)}}, PositiveDeltas: deltas})
	b.AddExemplar(now, 1.5, []samples.Label{{Name: "trace_id", Value: "abc"}})
	b.StartSeries(nil)
	b.AddLabel("__name__", "nhcb")
	b.AddHistogram(samples.Histogram{T: now, Float: true, Schema: samples.CustomBucketsSchema, Count: 3, Sum: 1.5,
		PositiveSpans: []samples.Span{{Offset: 0, Length: 2}}, PositiveCounts: []float64{1, 2}, CustomValues: []float64{0.5}})
	return b
}

func TestWriterHistogramsAndExemplars(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{Limits: Limits{MaxHistogramBuckets: 10}})
	now := time.Now().UnixMilli()
	written, err := w.Write(t.Context(), histBatch(now, 3))
	if err != nil || written != (Written{Histograms: 2, Exemplars: 1}) {
		t.Fatalf("got %+v, %v; want 2 histograms and 1 exemplar written", written, err)
	}
	q, err := st.Querier(0, now+1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for name, want := range map[string]string{
		"h":    "{count:2, sum:3, [-1,-0.5]:2}",
		"nhcb": "{count:3, sum:1.5, [-Inf,0.5]:1, (0.5,+Inf]:2}",
	} {
		set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
		if !set.Next() {
			t.Fatalf("%s: not stored", name)
		}
		it := set.At().Iterator(nil)
		switch it.Next() {
		case chunkenc.ValHistogram:
			_, h := it.AtHistogram(nil)
			if got := h.String(); !strings.HasPrefix(got, want[:len("{count:2")]) {
				t.Fatalf("%s: got %s; want %s", name, got, want)
			}
		case chunkenc.ValFloatHistogram:
			_, fh := it.AtFloatHistogram(nil)
			if got := fh.String(); got != want {
				t.Fatalf("%s: got %s; want %s", name, got, want)
			}
		default:
			t.Fatalf("%s: not a native histogram", name)
		}
	}
	// Exemplars, read as the query API does (storage.ExemplarQueryable).
	eq, err := st.ExemplarQuerier(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(0, now+1, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "h")})
	if err != nil || len(res) != 1 || len(res[0].Exemplars) != 1 {
		t.Fatalf("got %+v, %v; want one series with one exemplar", res, err)
	}
	if e := res[0].Exemplars[0]; e.Value != 1.5 || e.Ts != now || e.Labels.Get("trace_id") != "abc" {
		t.Fatalf("got exemplar %+v; want trace_id=abc 1.5 @%d", e, now)
	}
}

func TestWriterHistogramLimits(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{Limits: Limits{MaxHistogramBuckets: 10, MaxExemplarLabelBytes: 20}})
	now := time.Now().UnixMilli()
	b := histBatch(now, 11) // h over the bucket limit, nhcb fine
	written, err := w.Write(t.Context(), b)
	var perr *PartialError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "11 buckets, limit -ingest.max-histogram-buckets=10") || !strings.Contains(err.Error(), "h{}") {
		t.Fatalf("got %v; want a partial error naming h and the bucket limit", err)
	}
	if written.Histograms != 1 || perr.Rejected != 1 {
		t.Fatalf("got written %+v, rejected %d; want nhcb written and h rejected", written, perr.Rejected)
	}
	if n := collectorMetric(w, `telltale_ingest_rejected_total{reason="too_many_histogram_buckets"}`); n != 1 {
		t.Fatalf("got %v rejections counted; want 1", n)
	}
	// An exemplar over the label limit is rejected by name; its sample is stored.
	b = &samples.Batch{}
	b.StartSeries(nil)
	b.AddLabel("__name__", "x")
	b.AddSample(now, 1)
	b.AddExemplar(now, 1, []samples.Label{{Name: "trace_id", Value: strings.Repeat("a", 32)}})
	written, err = w.Write(t.Context(), b)
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "-ingest.max-exemplar-label-bytes=20") || written != (Written{Samples: 1}) {
		t.Fatalf("got %+v, %v; want the sample written and the exemplar rejected naming the flag", written, err)
	}
}

// TestWriterDuplicateTimestamp: a second, different value at a timestamp
// in one request was dropped by the head at commit while the answer was
// 204 (issue 22). It is a named rejection now; the same value twice is a
// harmless repeat.
func TestWriterDuplicateTimestamp(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{})
	now := time.Now().UnixMilli()
	b := &samples.Batch{}
	b.StartSeries(nil)
	b.AddLabel("__name__", "dup")
	b.AddSample(now, 1)
	b.AddSample(now, 1) // a repeat: fine
	b.AddSample(now, 2) // another value: rejected
	written, err := w.Write(t.Context(), b)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "two different values") || written.Samples != 1 {
		t.Fatalf("got %+v, %v; want 1 sample written and the second value rejected", written, err)
	}
	if n := count(t, st, "dup"); n != 1 {
		t.Fatalf("got %d samples stored; want 1", n)
	}
	// A different value at a stored timestamp, in a later request.
	b.Reset()
	b.StartSeries(nil)
	b.AddLabel("__name__", "dup")
	b.AddSample(now, 3)
	if _, err := w.Write(t.Context(), b); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "already stored") {
		t.Fatalf("got %v; want a rejection saying a different value is already stored", err)
	}
}

func collectorMetric(w *Writer, name string) float64 { return collectortest.Metric(w.set, name) }

// TestWriterDuplicateAcrossEntries: the same series twice in one request
// (two lines of a text body), with different values at one timestamp.
func TestWriterDuplicateAcrossEntries(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{})
	now := time.Now().UnixMilli()
	b := &samples.Batch{}
	for _, v := range []float64{1, 2} {
		b.StartSeries(nil)
		b.AddLabel("__name__", "twice")
		b.AddSample(now, v)
	}
	written, err := w.Write(t.Context(), b)
	if !errors.Is(err, ErrInvalid) || written.Samples != 1 {
		t.Fatalf("got %+v, %v; want 1 sample written and the other value rejected", written, err)
	}
}
