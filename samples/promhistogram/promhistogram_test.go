package promhistogram

import (
	"reflect"
	"testing"

	"github.com/telltale-dev/telltale/samples"
)

// A histogram survives the trip to Prometheus' model and back, and the
// model's copy shares no memory with the batch's.
func TestRoundTrip(t *testing.T) {
	f := func(h samples.Histogram) {
		t.Helper()
		ih, fh := ToPrometheus(&h)
		if (fh != nil) != h.Float || (ih != nil) == h.Float {
			t.Fatalf("got integer %v, float %v; want the one of Float=%v", ih, fh, h.Float)
		}
		if got := FromPrometheus(h.T, ih, fh); !reflect.DeepEqual(got, h) {
			t.Fatalf("got %+v; want %+v", got, h)
		}
		if h.Float {
			fh.PositiveBuckets[0]++
			if h.PositiveCounts[0] == fh.PositiveBuckets[0] {
				t.Fatal("the float histogram's buckets alias the batch's; want a copy")
			}
		} else {
			ih.PositiveBuckets[0]++
			if h.PositiveDeltas[0] == ih.PositiveBuckets[0] {
				t.Fatal("the histogram's buckets alias the batch's; want a copy")
			}
		}
	}
	f(samples.Histogram{T: 1000, CounterResetHint: 1, Schema: 3, ZeroThreshold: 1e-128, Sum: 2.5, IntCount: 7, IntZeroCount: 1,
		PositiveSpans: []samples.Span{{Offset: -2, Length: 3}}, PositiveDeltas: []int64{1, -1, 3},
		NegativeSpans: []samples.Span{{Offset: 1, Length: 1}}, NegativeDeltas: []int64{2}})
	f(samples.Histogram{T: 2000, Float: true, Schema: -53, Sum: 4.25, Count: 10,
		PositiveSpans: []samples.Span{{Offset: 0, Length: 4}}, PositiveCounts: []float64{3, 4, 2, 1}, CustomValues: []float64{0.1, 0.5, 1}})
}
