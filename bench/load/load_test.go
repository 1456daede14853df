package load

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

var start = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

func seriesKey(b *samples.Batch, s *samples.Series) string {
	var sb strings.Builder
	for _, l := range b.SeriesLabels(s) {
		sb.WriteString(l.Name)
		sb.WriteByte('=')
		sb.WriteString(l.Value)
		sb.WriteByte(',')
	}
	return sb.String()
}

type point struct {
	t int64
	v float64
}

// decodeStreams decodes every body of streams and returns, per sender, the
// points of each series in the order they were sent.
func decodeStreams(t *testing.T, f Format, streams []Stream) []map[string][]point {
	t.Helper()
	out := make([]map[string][]point, len(streams))
	var b samples.Batch
	var p promtext.Parser
	for j, st := range streams {
		out[j] = map[string][]point{}
		for n, body := range st {
			b.Reset()
			switch f {
			case RemoteWrite:
				raw, err := remotewrite.DecodeSnappy(nil, body.Data, 64<<20)
				if err != nil {
					t.Fatalf("sender %d body %d: snappy: %v", j, n, err)
				}
				if _, err := remotewrite.DecodeV1(raw, &b); err != nil {
					t.Fatalf("sender %d body %d: DecodeV1: %v", j, n, err)
				}
			case Text:
				if err := p.Parse(body.Data, 0, &b); err != nil {
					t.Fatalf("sender %d body %d: promtext: %v", j, n, err)
				}
			}
			if b.Len() != body.Samples {
				t.Fatalf("sender %d body %d: decoded %d samples; Body.Samples says %d", j, n, b.Len(), body.Samples)
			}
			for si := range b.Series {
				s := &b.Series[si]
				k := seriesKey(&b, s)
				for _, x := range b.SeriesSamples(s) {
					out[j][k] = append(out[j][k], point{x.T, x.V})
				}
			}
		}
	}
	return out
}

func TestStreamsDecodeToTheSet(t *testing.T) {
	fleet := NewFleet(FleetSize{Services: 1, Instances: 2, Hosts: 2}, start, 0)
	f := func(set Source, format Format, senders, fromStep, steps, per int) {
		t.Helper()
		p := Plan{Set: set, Senders: senders, FromStep: fromStep, Steps: steps, PerRequest: per, Format: format}
		streams, err := p.Streams()
		if err != nil {
			t.Fatal(err)
		}
		if len(streams) != senders {
			t.Fatalf("%v: got %d streams; want %d", format, len(streams), senders)
		}
		total := 0
		for j, st := range streams {
			for n, b := range st[:len(st)-1] {
				if b.Samples != per {
					t.Fatalf("%v: sender %d body %d has %d samples; want %d (only the last may be short)", format, j, n, b.Samples, per)
				}
			}
			total += st.Samples()
		}
		if total != p.Samples() {
			t.Fatalf("%v: streams hold %d samples; want %d", format, total, p.Samples())
		}
		got := decodeStreams(t, format, streams)
		// What every series should hold, in order, and which sender owns it.
		var b samples.Batch
		seen := 0
		for i := 0; i < set.Len(); i++ {
			b.Reset()
			set.AppendSeries(&b, i)
			k := seriesKey(&b, &b.Series[0])
			owner := i % senders
			pts, ok := got[owner][k]
			if !ok {
				t.Fatalf("%v: series %d %s not in sender %d's stream", format, i, k, owner)
			}
			if len(pts) != steps {
				t.Fatalf("%v: series %d: got %d samples; want %d", format, i, len(pts), steps)
			}
			for n, pt := range pts {
				want := point{set.Time(fromStep + n), set.Value(i, fromStep+n)}
				if pt != want {
					t.Fatalf("%v: series %d sample %d: got %v; want %v", format, i, n, pt, want)
				}
			}
			seen++
		}
		n := 0
		for _, m := range got {
			n += len(m)
		}
		if n != seen {
			t.Fatalf("%v: streams hold %d distinct series; want %d (some sent by two senders?)", format, n, seen)
		}
	}
	set := Set{Instances: 3, Start: start}
	f(set, RemoteWrite, 4, 0, 5, 70)
	f(set, RemoteWrite, 1, 7, 3, 2000)
	f(set, Text, 4, 2, 4, 33)
	f(set, Text, 3, 0, 1, 1)
	f(fleet, RemoteWrite, 4, 0, 3, 500)
	f(fleet, Text, 2, 5, 2, 77)
}

func TestPlanErrors(t *testing.T) {
	f := func(p Plan, want string) {
		t.Helper()
		_, err := p.Streams()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v; want an error containing %q", err, want)
		}
	}
	f(Plan{Set: Set{Instances: 0}, Steps: 1}, "Instances")
	f(Plan{Set: Set{Instances: 1}, Steps: 0}, "Steps")
	f(Plan{Set: Set{Instances: 1}, Steps: 1, Senders: 101}, "fewer senders")
	f(Plan{Set: Set{Instances: 1}, Steps: 1, Format: Format(9)}, "unknown")
	f(Plan{Steps: 1}, "empty plan")
	f(Plan{Set: NewFleet(FleetSize{}, start, 0), Steps: 1}, "Services")
}

// TestFleetLooksLikeItsSources checks the fleet's series: unique, sorted
// label sets under the names the dashboards read; counters that never go
// down; histogram buckets that grow with le, with _count equal to the +Inf
// bucket; gauges that move; and selectors that count every series once.
func TestFleetLooksLikeItsSources(t *testing.T) {
	size := FleetSize{Services: 2, Instances: 3, Hosts: 4}
	fl := NewFleet(size, start, 0)
	if fl.Len() != size.Series() {
		t.Fatalf("Len %d, FleetSize.Series %d; want equal", fl.Len(), size.Series())
	}
	var b samples.Batch
	keys := map[string]bool{}
	names := map[string]int{}
	byKey := map[string]int{} // series without le -> the +Inf bucket's index
	buckets := map[string][]int{}
	for i := range fl.Len() {
		b.Reset()
		fl.AppendSeries(&b, i)
		s := &b.Series[0]
		labels := b.SeriesLabels(s)
		for n := 1; n < len(labels); n++ {
			if labels[n-1].Name >= labels[n].Name {
				t.Fatalf("series %d: labels not sorted: %v", i, labels)
			}
		}
		k := seriesKey(&b, s)
		if keys[k] {
			t.Fatalf("series %d repeats the label set %s", i, k)
		}
		keys[k] = true
		name := b.Name(s)
		names[name]++
		if strings.HasSuffix(name, "_total") || name == "http_request_duration_seconds_bucket" || name == "http_request_duration_seconds_count" {
			for step := 1; step < 50; step++ {
				if a, c := fl.Value(i, step-1), fl.Value(i, step); c < a {
					t.Fatalf("series %d (%s): counter fell from %v at step %d to %v", i, k, a, step-1, c)
				}
			}
		}
		var rest []string // the labels but name and le: the histogram
		for _, l := range labels {
			if l.Name != "__name__" && l.Name != "le" {
				rest = append(rest, l.Name+"="+l.Value)
			}
		}
		hk := strings.Join(rest, ",")
		switch name {
		case "http_request_duration_seconds_bucket":
			buckets[hk] = append(buckets[hk], i)
		case "http_request_duration_seconds_count":
			byKey[hk] = i
		}
	}
	want := map[string]int{
		"http_requests_total": 24 * 6, "http_request_duration_seconds_bucket": 24 * 12 * 6, "node_cpu_seconds_total": 32 * 4,
		"telltale_build_info": 6, "telltale_deploys_total": 2, "node_uname_info": 4, "node_load1": 4, "telltale_agent_spool_bytes": 4,
		"telltale_storage_head_series": 1,
	}
	for n, c := range want {
		if names[n] != c {
			t.Errorf("%s: got %d series; want %d", n, names[n], c)
		}
	}
	if len(buckets) != 24*6 {
		t.Fatalf("got %d histograms; want %d", len(buckets), 24*6)
	}
	for hk, idx := range buckets {
		if len(idx) != 12 {
			t.Fatalf("histogram %s: %d buckets; want 12", hk, len(idx))
		}
		monotonicHistogram(t, fl, idx, hk)
		for k := range 20 {
			if inf, count := fl.Value(idx[len(idx)-1], k), fl.Value(byKey[hk], k); inf != count {
				t.Fatalf("histogram %s step %d: +Inf bucket %v, _count %v; want equal", hk, k, inf, count)
			}
		}
	}
	// Every series is counted by exactly one selector.
	sels := fl.Selectors()
	if len(sels) != len(names) {
		t.Fatalf("got %d selectors for %d names", len(sels), len(names))
	}
	for n := range names {
		if !slices.Contains(sels, `{__name__="`+n+`"}`) {
			t.Errorf("no selector for %s", n)
		}
	}
	// Gauges move; the memory gauge stays below the total.
	moved := false
	for i := range fl.Len() {
		b.Reset()
		fl.AppendSeries(&b, i)
		if b.Name(&b.Series[0]) == "node_memory_MemAvailable_bytes" && fl.Value(i, 0) != fl.Value(i, 30) {
			moved = true
		}
	}
	if !moved {
		t.Errorf("node_memory_MemAvailable_bytes never moves")
	}
	if got := fl.Step(time.UnixMilli(fl.Time(7)).Add(9 * time.Second)); got != 7 {
		t.Errorf("Step(time of step 7 + 9 s): got %d; want 7", got)
	}
}

func TestSetLooksLikeExporters(t *testing.T) {
	set := Set{Instances: 4, Start: start}
	var b samples.Batch
	keys := map[string]bool{}
	names := map[string]int{}
	for i := 0; i < set.Len(); i++ {
		b.Reset()
		set.AppendSeries(&b, i)
		s := &b.Series[0]
		labels := b.SeriesLabels(s)
		for n := 1; n < len(labels); n++ {
			if labels[n-1].Name >= labels[n].Name {
				t.Fatalf("series %d: labels not sorted: %v", i, labels)
			}
		}
		k := seriesKey(&b, s)
		if keys[k] {
			t.Fatalf("series %d repeats the label set %s", i, k)
		}
		keys[k] = true
		names[b.Name(s)]++
		if !strings.HasPrefix(b.Name(s), MetricPrefix) {
			t.Fatalf("series %d: name %q lacks the prefix %q", i, b.Name(s), MetricPrefix)
		}
		// Counters never go down.
		for k := 1; k < 50; k++ {
			if a, c := set.Value(i, k-1), set.Value(i, k); c < a {
				t.Fatalf("series %d (%s): value fell from %v at step %d to %v", i, b.Name(s), a, k-1, c)
			}
		}
	}
	want := map[string]int{RequestsMetric: 20 * 4, DurationMetric: 60 * 4, CPUMetric: 20 * 4}
	for n, c := range want {
		if names[n] != c {
			t.Fatalf("%s: got %d series; want %d", n, names[n], c)
		}
	}
	// Histogram buckets grow with le at every step and over every interval
	// (histogram_quantile needs it, and a real histogram has it).
	for h := 0; h < 4*5; h++ {
		first := h/5*PerInstance + 20 + h%5*12
		idx := make([]int, 12)
		for j := range idx {
			idx[j] = first + j
		}
		monotonicHistogram(t, set, idx, fmt.Sprintf("histogram %d", h))
	}
	if got, want := set.Time(3)-set.Time(0), int64(30_000); got != want {
		t.Fatalf("3 steps: got %d ms; want %d (10 s default interval)", got, want)
	}
}

// monotonicHistogram fails unless the buckets idx (in le order) of src grow
// with le at every step and over every interval of up to 30 steps.
func monotonicHistogram(t *testing.T, src Source, idx []int, name string) {
	t.Helper()
	for k := range 60 {
		for j := 1; j < len(idx); j++ {
			if a, c := src.Value(idx[j-1], k), src.Value(idx[j], k); c < a {
				t.Fatalf("%s step %d: bucket %d has %v < bucket %d's %v", name, k, j, c, j-1, a)
			}
			for w := 1; w <= 30 && w <= k; w++ {
				lo := src.Value(idx[j-1], k) - src.Value(idx[j-1], k-w)
				hi := src.Value(idx[j], k) - src.Value(idx[j], k-w)
				if hi < lo {
					t.Fatalf("%s steps %d to %d: bucket %d grew by %v, more than bucket %d's %v", name, k-w, k, j-1, lo, j, hi)
				}
			}
		}
	}
}

func TestSendRetriesTransientAndStopsOnRefusal(t *testing.T) {
	var calls atomic.Int64
	var gotSamples atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Encoding") != "snappy" {
			http.Error(w, "want snappy", http.StatusUnsupportedMediaType)
			return
		}
		if string(body) == "bad" {
			http.Error(w, "label too long: raise -x", http.StatusBadRequest)
			return
		}
		if n%3 == 1 { // every third call is told to come back
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		gotSamples.Add(int64(len(body)))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	streams := []Stream{
		{{Data: []byte("aaaa"), Samples: 4}, {Data: []byte("bb"), Samples: 2}},
		{{Data: []byte("c"), Samples: 1}},
	}
	st, err := Send(t.Context(), Target{URL: srv.URL, Format: RemoteWrite}, streams)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 7 || gotSamples.Load() != 7 {
		t.Fatalf("got %d samples counted, %d received; want 7 and 7", st.Samples, gotSamples.Load())
	}
	if st.Requests != 3 || st.Retries == 0 || calls.Load() != st.Requests+st.Retries {
		t.Fatalf("got %d requests, %d retries, %d calls; want 3 requests and calls = requests + retries > 3", st.Requests, st.Retries, calls.Load())
	}

	_, err = Send(t.Context(), Target{URL: srv.URL, Format: RemoteWrite}, []Stream{{{Data: []byte("bad"), Samples: 9}}})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "raise -x") || !strings.Contains(err.Error(), "9-sample") {
		t.Fatalf("got %v; want the 400 and the receiver's message", err)
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	_, err = Send(t.Context(), Target{URL: down.URL, Format: Text, MaxRetries: 2}, []Stream{{{Data: []byte("x 1"), Samples: 1}}})
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 retries") {
		t.Fatalf("got %v; want giving up after 2 retries", err)
	}
}

func TestQueryClient(t *testing.T) {
	var lastQuery atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastQuery.Store(r.URL.RawQuery)
		switch r.URL.Query().Get("query") {
		case "vec":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2.5"]},{"metric":{"a":"b"},"value":[1,"4"]}]}}`)
		case "empty":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case "range":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]},{"metric":{"x":"y"},"values":[[1,"1"]]}]}}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error at char 3"}`)
		}
	}))
	defer srv.Close()
	c := &QueryClient{Base: srv.URL, Params: map[string][]string{"nocache": {"1"}}}
	at := time.UnixMilli(1_700_000_000_123)
	got, err := c.Sum(t.Context(), "vec", at)
	if err != nil || got != 6.5 {
		t.Fatalf("Sum(vec): got %v, %v; want 6.5", got, err)
	}
	if q := lastQuery.Load().(string); !strings.Contains(q, "nocache=1") || !strings.Contains(q, "time=1700000000.123") {
		t.Fatalf("query string %q: want nocache=1 and time=1700000000.123", q)
	}
	if got, err := c.Sum(t.Context(), "empty", at); err != nil || got != 0 {
		t.Fatalf("Sum(empty): got %v, %v; want 0", got, err)
	}
	if _, err := c.Sum(t.Context(), "range", at); err == nil || !strings.Contains(err.Error(), "matrix") {
		t.Fatalf("Sum(range): got %v; want a result-type error", err)
	}
	if _, err := c.Sum(t.Context(), "bad", at); err == nil || !strings.Contains(err.Error(), "parse error at char 3") {
		t.Fatalf("Sum(bad): got %v; want the server's message", err)
	}
	series, points, err := c.Range(t.Context(), "range", at, at.Add(time.Hour), 15*time.Second)
	if err != nil || series != 2 || points != 3 {
		t.Fatalf("Range: got %d series, %d points, %v; want 2, 3", series, points, err)
	}
	if q := lastQuery.Load().(string); !strings.Contains(q, "step=15") {
		t.Fatalf("query string %q: want step=15", q)
	}
}

func TestCountQuery(t *testing.T) {
	if got, want := CountQuery(Set{}.Selectors()[0], 90*time.Minute), `sum(count_over_time({__name__=~"bench_.*"}[5400s]))`; got != want {
		t.Fatalf("got %s; want %s", got, want)
	}
}

func BenchmarkStreams(b *testing.B) {
	f := func(name string, format Format) {
		b.Run(name, func(b *testing.B) {
			p := Plan{Set: Set{Instances: 100, Start: start}, Senders: 4, Steps: 2, PerRequest: 2000, Format: format}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Streams(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(p.Samples()*b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
	f("remote-write", RemoteWrite)
	f("text", Text)
}
