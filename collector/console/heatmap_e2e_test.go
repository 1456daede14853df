package console_test

import (
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// The Service dashboard's duration heatmap in the console, over an app
// that sends only native histograms (remote write 2.0) to the real
// collector: the panel draws the histogram's four buckets, the busiest
// (the lowest, 50 observations per 5 s: 10/s) as its highest cell.
func TestConsoleNativeHeatmap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collector and Chromium")
	}
	chromium(t)
	col := collectortest.Start(t)

	// Every 5 s from 10 minutes ago to 2 minutes ahead, k times the
	// distribution 50, 40, 9, 1 over the buckets (2^-4, 2^-3] ... (0.5, 1]
	// (schema 0, offset -3), with the series the dashboard's variables
	// list (telltale_build_info, http_requests_total).
	dist := []int64{50, 40, 9, 1}
	var b samples.Batch
	start := time.Now().Add(-10 * time.Minute)
	series := func(name string) {
		b.StartSeries(nil)
		b.AddLabel("__name__", name)
		for _, l := range [][2]string{{"service", "nat"}, {"env", "dev"}, {"route", "/a"}, {"instance", "i1"}} {
			b.AddLabel(l[0], l[1])
		}
	}
	const steps = 12 * 12
	for k := int64(1); k <= steps; k++ {
		ms := start.Add(time.Duration(k) * 5 * time.Second).UnixMilli()
		series("telltale_build_info")
		b.AddSample(ms, 1)
		series("http_requests_total")
		b.AddSample(ms, float64(k*100))
		series("http_request_duration_seconds")
		var deltas []int64
		var prev, count int64
		for _, c := range dist {
			deltas, prev, count = append(deltas, k*c-prev), k*c, count+k*c
		}
		b.AddHistogram(samples.Histogram{T: ms, IntCount: uint64(count), Sum: float64(count) * 0.1,
			PositiveSpans: []samples.Span{{Offset: -3, Length: uint32(len(dist))}}, PositiveDeltas: deltas})
	}
	code, body := col.Post(t.Context(), "/api/v1/write", snappy.Encode(nil, remotewrite.AppendV2(nil, &b)),
		map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy"})
	if code != http.StatusNoContent {
		t.Fatalf("remote write: got %d %q; want 204", code, body)
	}

	br := newBrowser(t)
	// The console reads the raw series (no recording rules needed).
	br.open(col.URL + "/#/d/telltale-service?range=15m&refresh=off&var-service=nat&var-env=dev")
	br.ready(0)
	type heatmap struct {
		State, Buckets, Cells, Max string
	}
	got := eval[[]heatmap](br, `[...document.querySelectorAll('.panel-heatmap')].map(p => ({State: p.dataset.state,
		Buckets: p.querySelector('.chart').dataset.buckets || '', Cells: p.querySelector('.chart').dataset.cells || '', Max: p.querySelector('.chart').dataset.max || ''}))`)
	if len(got) != 1 {
		t.Fatalf("got %d heatmap panels on the Service dashboard; want 1", len(got))
	}
	h := got[0]
	cells, _ := strconv.Atoi(h.Cells)
	maxRate, _ := strconv.ParseFloat(h.Max, 64)
	if h.State != "ok" || h.Buckets != "4" || cells < 4 || math.Abs(maxRate-10) > 1e-6 {
		t.Errorf("native heatmap: got state %s, %s buckets, %s cells, highest cell %s; want ok, 4 buckets, a cell in each, highest 10 (req/s in the lowest bucket)",
			h.State, h.Buckets, h.Cells, h.Max)
	}
	if problems := br.pageProblems(); len(problems) > 0 {
		t.Errorf("page problems: %q", problems)
	}
}
