package tail

import (
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/samples"
)

// TestObserveSkipsHistograms: native histogram samples and exemplars in a
// committed batch (issue 15) reach Observe; the tail streams float samples
// only, so a histogram-only series sends nothing and the float samples of
// a series beside it arrive unchanged.
func TestObserveSkipsHistograms(t *testing.T) {
	h := New(Options{Now: newFakeClock().Now})
	s := subscribe(t, h, 0, `{job="api"}`)
	b, refs := mkBatch(
		testSeries{1, []string{"__name__", "latency", "job", "api"}, nil},
		testSeries{2, []string{"__name__", "up", "job", "api"}, []float64{1}},
	)
	b.Series[0].HistogramsStart = int32(len(b.Histograms))
	b.Histograms = append(b.Histograms, samples.Histogram{T: 1000, IntCount: 3, Sum: 1.5,
		PositiveSpans: []samples.Span{{Length: 1}}, PositiveDeltas: []int64{3}})
	b.Series[0].HistogramsEnd = int32(len(b.Histograms))
	b.Series[1].HistogramsStart, b.Series[1].HistogramsEnd = b.Series[0].HistogramsEnd, b.Series[0].HistogramsEnd
	b.ExemplarLabels = append(b.ExemplarLabels, samples.Label{Name: "trace_id", Value: "x"})
	b.Exemplars = append(b.Exemplars, samples.Exemplar{T: 1000, V: 1, LabelsEnd: 1})
	b.Series[1].ExemplarsEnd = 1
	h.Observe(b, refs)
	if got, want := strings.Join(seriesOf(drain(s)), "\n"), `up{job="api"} 01 1`; got != want {
		t.Fatalf("queued samples:\ngot\n%s\nwant\n%s", got, want)
	}
}
