package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

func TestMain(m *testing.M) { collectortest.Main(m) }

// remoteWrite posts b as remote write 1.0 or 2.0 and returns the status,
// the body and the response headers.
func remoteWrite(t *testing.T, url string, version int, b *samples.Batch) (int, string, http.Header) {
	t.Helper()
	ct := "application/x-protobuf"
	var raw []byte
	if version == 2 {
		ct += ";proto=io.prometheus.write.v2.Request"
		raw = remotewrite.AppendV2(nil, b)
	} else {
		raw = remotewrite.AppendV1(nil, b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func queryValue(t *testing.T, in *collectortest.Instance, q string) float64 {
	t.Helper()
	return in.Value(t.Context(), q)
}

// TestE2EPartialWrite: a request of 999 good series and 1 over the label
// limit stores the 999 and answers 400 naming the one (issue 15), in both
// remote write versions; 2.0's headers count what was stored.
func TestE2EPartialWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t, "-ingest.max-labels-per-series=5")
	now := time.Now().UnixMilli()
	for _, version := range []int{1, 2} {
		b := &samples.Batch{}
		name := fmt.Sprintf("partial_v%d", version)
		for i := range 1000 {
			b.StartSeries(nil)
			b.AddLabel("__name__", name)
			b.AddLabel("i", strconv.Itoa(i))
			if i == 500 {
				for j := range 5 {
					b.AddLabel(fmt.Sprintf("extra%d", j), "x")
				}
			}
			b.AddSample(now, float64(i))
		}
		status, body, h := remoteWrite(t, in.URL, version, b)
		if status != 400 || !strings.Contains(body, `i="500"`) || !strings.Contains(body, "-ingest.max-labels-per-series=5") ||
			!strings.Contains(body, "1 samples and 0 exemplars of 1 series rejected") {
			t.Fatalf("v%d: got %d %q; want 400 naming series i=500 and the flag", version, status, body)
		}
		if version == 2 && h.Get("X-Prometheus-Remote-Write-Samples-Written") != "999" {
			t.Fatalf("v2: got Samples-Written %q; want 999", h.Get("X-Prometheus-Remote-Write-Samples-Written"))
		}
		if got := queryValue(t, in, "count("+name+")"); got != 999 {
			t.Fatalf("v%d: got %v series stored; want 999", version, got)
		}
		if res := in.Query(t.Context(), name+`{i="500"}`, time.Time{}); len(res) != 0 {
			t.Fatalf("v%d: the rejected series was stored: %v", version, res)
		}
	}
	if got := in.Metric(t.Context(), `telltale_ingest_rejected_total{reason="too_many_labels"}`); got != 2 {
		t.Fatalf("got too_many_labels counted %v; want 2", got)
	}
}

// TestE2ENativeHistograms writes integer, float and custom-bucket native
// histograms with an exemplar over remote write 2.0, and an integer one
// over 1.0, and reads them back with PromQL's histogram functions.
func TestE2ENativeHistograms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t)
	now := time.Now().UnixMilli()
	for _, version := range []int{1, 2} {
		b := &samples.Batch{}
		p := fmt.Sprintf("v%d_", version)
		// Schema 0: buckets (0.5,1], (1,2], (2,4] with 2, 4, 4 observations.
		b.StartSeries(nil)
		b.AddLabel("__name__", p+"int_hist")
		b.AddHistogram(samples.Histogram{T: now, IntCount: 10, Sum: 20,
			PositiveSpans: []samples.Span{{Offset: 0, Length: 3}}, PositiveDeltas: []int64{2, 2, 0}})
		b.AddExemplar(now, 1.5, []samples.Label{{Name: "trace_id", Value: "t1"}})
		b.StartSeries(nil)
		b.AddLabel("__name__", p+"float_hist")
		b.AddHistogram(samples.Histogram{T: now, Float: true, Count: 4, Sum: 6,
			PositiveSpans: []samples.Span{{Offset: 1, Length: 1}}, PositiveCounts: []float64{4}})
		// NHCB: le 0.1, 0.5, +Inf with 1, 3, 0.
		b.StartSeries(nil)
		b.AddLabel("__name__", p+"nhcb")
		b.AddHistogram(samples.Histogram{T: now, Float: true, Schema: samples.CustomBucketsSchema, Count: 4, Sum: 1,
			PositiveSpans: []samples.Span{{Offset: 0, Length: 2}}, PositiveCounts: []float64{1, 3}, CustomValues: []float64{0.1, 0.5}})
		status, body, h := remoteWrite(t, in.URL, version, b)
		if status != 204 {
			t.Fatalf("v%d: got %d %q; want 204", version, status, body)
		}
		if version == 2 {
			for hdr, want := range map[string]string{"Samples": "0", "Histograms": "3", "Exemplars": "1"} {
				if got := h.Get("X-Prometheus-Remote-Write-" + hdr + "-Written"); got != want {
					t.Fatalf("v2: got %s-Written %q; want %s", hdr, got, want)
				}
			}
		}
		for q, want := range map[string]float64{
			"histogram_count(" + p + "int_hist)":          10,
			"histogram_sum(" + p + "int_hist)":            20,
			"histogram_count(" + p + "float_hist)":        4,
			"histogram_quantile(1, " + p + "float_hist)":  2, // all in (1,2]
			"histogram_count(" + p + "nhcb)":              4,
			"histogram_quantile(0.25, " + p + "nhcb)":     0.1,
			"histogram_fraction(0, 0.1, " + p + "nhcb)":   0.25,
			"histogram_fraction(0, 4, " + p + "int_hist)": 1,
			"histogram_fraction(0, 1, " + p + "int_hist)": 0.2,
		} {
			if got := queryValue(t, in, q); math.Abs(got-want) > 1e-9 {
				t.Fatalf("%s: got %v; want %v", q, got, want)
			}
		}
	}
	if got := in.Metric(t.Context(), "telltale_ingest_committed_exemplars_total"); got != 2 {
		t.Fatalf("got %v exemplars committed; want 2", got)
	}
	// The exemplars, as /api/v1/query_exemplars serves them.
	for _, p := range []string{"v1_", "v2_"} {
		got := queryExemplars(t, in.URL, p+"int_hist", now)
		want := fmt.Sprintf(`[{"seriesLabels":{"__name__":"%sint_hist"},"exemplars":[{"labels":{"trace_id":"t1"},"value":"1.5","timestamp":%s}]}]`,
			p, promTimestamp(now))
		if got != want {
			t.Fatalf("query_exemplars %sint_hist:\ngot  %s\nwant %s", p, got, want)
		}
	}
}

// queryExemplars returns the data of /api/v1/query_exemplars for q within
// a minute of ms, as JSON.
func queryExemplars(t *testing.T, base, q string, ms int64) string {
	t.Helper()
	return promGet(t, base, "/api/v1/query_exemplars", url.Values{"query": {q},
		"start": {strconv.FormatInt(ms/1000-60, 10)}, "end": {strconv.FormatInt(ms/1000+60, 10)}})
}

// promTimestamp renders a millisecond timestamp as Prometheus' API does
// (jsonutil.MarshalTimestamp): seconds, then three digits of milliseconds
// when there are any ("12.050", not "12.05").
func promTimestamp(ms int64) string {
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10)
	}
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}
