package forward

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// receiver is a remote write receiver that decodes what it gets and
// answers with status(series of the request) (204 when nil).
type receiver struct {
	mu                    sync.Mutex
	requests              int
	versions              []string
	tenants               []string
	got                   []string // "series t v" in arrival order
	status                func(series []string) int
	histograms, exemplars int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var b samples.Batch
	v := req.Header.Get("X-Prometheus-Remote-Write-Version")
	if v == "2.0.0" {
		_, err = remotewrite.DecodeV2(raw, &b)
	} else {
		_, err = remotewrite.DecodeV1(raw, &b)
	}
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var lines, series []string
	for i := range b.Series {
		s := &b.Series[i]
		var ls []string
		for _, l := range b.SeriesLabels(s) {
			ls = append(ls, l.Name+"="+l.Value)
		}
		name := strings.Join(ls, ",")
		series = append(series, name)
		for _, smp := range b.SeriesSamples(s) {
			lines = append(lines, fmt.Sprintf("%s %d %g", name, smp.T, smp.V))
		}
	}
	r.mu.Lock()
	r.requests++
	r.versions = append(r.versions, v)
	r.tenants = append(r.tenants, req.Header.Get("X-Scope-OrgID"))
	status := 204
	if r.status != nil {
		status = r.status(series)
	}
	if status/100 == 2 {
		r.got = append(r.got, lines...)
		r.histograms += len(b.Histograms)
		r.exemplars += len(b.Exemplars)
	}
	r.mu.Unlock()
	if status/100 != 2 {
		http.Error(w, "refused by the test", status)
		return
	}
	w.WriteHeader(status)
}

func (r *receiver) setStatus(f func([]string) int) {
	r.mu.Lock()
	r.status = f
	r.mu.Unlock()
}

func (r *receiver) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) count() (requests, lines int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, len(r.got)
}

// env is a forwarder behind a real ingest.Writer.
type env struct {
	t   *testing.T
	f   *Forwarder
	w   *ingest.Writer
	set *metrics.Set
}

func newEnv(t *testing.T, targets []Target, mod func(*Options)) *env {
	t.Helper()
	set := metrics.NewSet()
	o := Options{Dir: t.TempDir(), Targets: targets, SyncInterval: -1, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler), Metrics: set}
	if mod != nil {
		mod(&o)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &env{t: t, f: f, w: ingest.NewWriter(f, ingest.Options{Metrics: set}), set: set}
}

// run drains until the test ends.
func (e *env) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.f.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// write writes one sample of series name{i="<i>"} per i in [from, to) at t.
func (e *env) write(name string, from, to int, t int64, v float64) {
	e.t.Helper()
	var b samples.Batch
	for i := from; i < to; i++ {
		b.StartSeries(fmt.Appendf(nil, "%s/%d", name, i))
		b.AddLabel("__name__", name)
		b.AddLabel("i", fmt.Sprint(i))
		b.AddSample(t, v)
	}
	if _, err := e.w.Write(context.Background(), &b); err != nil {
		e.t.Fatalf("Write: %v", err)
	}
}

func (e *env) counter(name string) uint64 { return e.set.GetOrCreateCounter(name).Get() }

// waitFor polls cond until it holds (the drainer works asynchronously).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func target(name, url string) Target { return Target{Name: name, URL: url} }

func TestForwardsInOrderWithLabels(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	e := newEnv(t, []Target{target("a", srv.URL)}, nil)
	e.run()
	// The second write of each series goes by reference (the writer's
	// cache) with empty labels: the forwarder knows them.
	e.write("m", 0, 3, 1000, 1)
	e.write("m", 0, 3, 2000, 2)
	want := []string{
		"__name__=m,i=0 1000 1", "__name__=m,i=1 1000 1", "__name__=m,i=2 1000 1",
		"__name__=m,i=0 2000 2", "__name__=m,i=1 2000 2", "__name__=m,i=2 2000 2",
	}
	waitFor(t, "6 samples", func() bool { _, n := rcv.count(); return n == 6 })
	if got := rcv.lines(); !slices.Equal(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
	if got := e.counter(`telltale_forward_samples_sent_total{target="a"}`); got != 6 {
		t.Errorf("samples sent = %d; want 6", got)
	}
	waitFor(t, "empty queue", func() bool { n, _ := e.f.Backlog(); return n == 0 })
}

func TestOutageKeepsEverythingInOrder(t *testing.T) {
	rcv := &receiver{}
	rcv.setStatus(func([]string) int { return 503 })
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	now := time.UnixMilli(1_700_000_000_000)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) { o.Now = clock; o.MaxSamplesPerSend = 7 })
	e.run()
	for i := range 20 {
		e.write("m", 0, 2, int64(1000*(i+1)), float64(i))
	}
	waitFor(t, "a failed attempt", func() bool { n, _ := rcv.count(); return n > 0 })
	mu.Lock()
	now = now.Add(90 * time.Second)
	mu.Unlock()
	if age := collectortest.Metric(e.set, `telltale_forward_oldest_age_seconds{target="a"}`); age != 90 {
		t.Errorf("oldest age during the outage = %v; want 90", age)
	}
	if recs, _ := e.f.Backlog(); recs != 20 {
		t.Errorf("backlog = %d records; want 20", recs)
	}
	rcv.setStatus(nil)
	waitFor(t, "40 samples", func() bool { _, n := rcv.count(); return n == 40 })
	var want []string
	for i := range 20 {
		for s := range 2 {
			want = append(want, fmt.Sprintf("__name__=m,i=%d %d %d", s, 1000*(i+1), i))
		}
	}
	if got := rcv.lines(); !slices.Equal(got, want) {
		t.Errorf("after the outage got %q; want %q", got, want)
	}
	waitFor(t, "idle drainer", func() bool {
		return collectortest.Metric(e.set, `telltale_forward_oldest_age_seconds{target="a"}`) == 0
	})
}

func TestMergesSmallRecords(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	e := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) { o.MaxSamplesPerSend = 100 })
	// Queue 50 writes of 3 samples before draining starts.
	for i := range 50 {
		e.write("m", 0, 3, int64(1000*(i+1)), 1)
	}
	e.run()
	waitFor(t, "150 samples", func() bool { _, n := rcv.count(); return n == 150 })
	reqs, _ := rcv.count()
	// 150 samples in requests of at most 100 samples (33 records of 3).
	if reqs != 2 {
		t.Errorf("requests = %d; want 2 (records merged up to -forward.max-samples-per-send)", reqs)
	}
	got := rcv.lines()
	for i := 1; i < len(got); i++ {
		var a, b int64
		fmt.Sscanf(strings.Fields(got[i-1])[1], "%d", &a)
		fmt.Sscanf(strings.Fields(got[i])[1], "%d", &b)
		if b < a {
			t.Fatalf("sample %d (%s) arrived after %s: out of order", i, got[i], got[i-1])
		}
	}
}

func TestRefusedRecordDroppedAlone(t *testing.T) {
	rcv := &receiver{}
	// The engine refuses every request holding series "bad".
	rcv.setStatus(func(series []string) int {
		for _, s := range series {
			if strings.Contains(s, "__name__=bad") {
				return 400
			}
		}
		return 204
	})
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	e := newEnv(t, []Target{target("a", srv.URL)}, nil)
	e.write("good", 0, 2, 1000, 1)
	e.write("bad", 0, 3, 1000, 1)
	e.write("good", 0, 2, 2000, 2)
	e.run()
	waitFor(t, "4 good samples", func() bool { _, n := rcv.count(); return n == 4 })
	waitFor(t, "empty queue", func() bool { n, _ := e.f.Backlog(); return n == 0 })
	if got := e.counter(`telltale_forward_dropped_samples_total{target="a",reason="rejected"}`); got != 3 {
		t.Errorf("rejected samples = %d; want 3 (only the refused record)", got)
	}
	if got := e.counter(`telltale_forward_samples_sent_total{target="a"}`); got != 4 {
		t.Errorf("sent samples = %d; want 4", got)
	}
}

func TestForgottenReferenceRebuiltByWriter(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	// Room for about 64 references: writing 500 series twice makes the
	// writer's cached references unknown to the forwarder.
	e := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) { o.MaxSeries = 64 })
	e.run()
	e.write("m", 0, 500, 1000, 1)
	e.write("m", 0, 500, 2000, 2)
	waitFor(t, "1000 samples", func() bool { _, n := rcv.count(); return n == 1000 })
	seen := map[string]int{}
	for _, l := range rcv.lines() {
		seen[strings.Fields(l)[0]]++
	}
	if len(seen) != 500 {
		t.Errorf("%d distinct series arrived; want 500", len(seen))
	}
	for s, n := range seen {
		if n != 2 {
			t.Errorf("series %s arrived %d times; want 2", s, n)
		}
	}
	if e.f.series.len() > 2*64+seriesShards {
		t.Errorf("series table holds %d references; want it bounded near 2*64", e.f.series.len())
	}
}

func TestTargetsVersionsAndTenants(t *testing.T) {
	r1, r2 := &receiver{}, &receiver{}
	s1, s2 := httptest.NewServer(r1), httptest.NewServer(r2)
	defer s1.Close()
	defer s2.Close()
	e := newEnv(t, []Target{
		{Name: "cortex", URL: s1.URL, Headers: map[string]string{"X-Scope-OrgID": "team-a"}},
		{Name: "v2", URL: s2.URL, Version: push.V2},
	}, nil)
	e.run()
	e.write("m", 0, 4, 1000, 1)
	waitFor(t, "both targets", func() bool { _, a := r1.count(); _, b := r2.count(); return a == 4 && b == 4 })
	if !slices.Equal(r1.lines(), r2.lines()) {
		t.Errorf("targets got different samples: %q vs %q", r1.lines(), r2.lines())
	}
	if r1.versions[0] != "0.1.0" || r2.versions[0] != "2.0.0" || r1.tenants[0] != "team-a" || r2.tenants[0] != "" {
		t.Errorf("versions %q %q, tenants %q %q; want 0.1.0 with team-a, 2.0.0 without", r1.versions[0], r2.versions[0], r1.tenants[0], r2.tenants[0])
	}
}

func TestQueueSurvivesRestart(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dir := t.TempDir()
	e := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) { o.Dir = dir })
	e.write("m", 0, 5, 1000, 1) // acknowledged, never drained
	if err := e.f.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) { o.Dir = dir })
	e2.run()
	waitFor(t, "5 samples after the restart", func() bool { _, n := rcv.count(); return n == 5 })
}

func TestShutdownDrains(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	e := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) { o.ShutdownDrain = time.Minute })
	for i := range 30 {
		e.write("m", 0, 10, int64(1000*(i+1)), 1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already stopping: Run sends what is queued, then returns
	e.f.Run(ctx)
	if _, n := rcv.count(); n != 300 {
		t.Errorf("after Run with a cancelled ctx the engine has %d samples; want all 300", n)
	}
	if recs, _ := e.f.Backlog(); recs != 0 {
		t.Errorf("backlog after the shutdown drain: %d records; want 0", recs)
	}
}

func TestLateSamplesReportedAfterDelivery(t *testing.T) {
	rcv := &receiver{}
	rcv.setStatus(func([]string) int { return 503 })
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	now := time.UnixMilli(1_700_000_000_000)
	var mu sync.Mutex
	var late []string
	e := newEnv(t, []Target{target("a", srv.URL)}, func(o *Options) {
		o.Now = func() time.Time { return now }
		o.LateAge = time.Minute
		o.Late = func(b *samples.Batch) {
			mu.Lock()
			defer mu.Unlock()
			for i := range b.Series {
				for _, s := range b.SeriesSamples(&b.Series[i]) {
					late = append(late, fmt.Sprintf("%s %d", b.Name(&b.Series[i]), s.T))
				}
			}
		}
	})
	e.run()
	fresh, old := now.UnixMilli()-1000, now.UnixMilli()-10*60*1000
	e.write("fresh", 0, 1, fresh, 1)
	e.write("old", 0, 1, old, 1)
	waitFor(t, "failed attempts", func() bool { n, _ := rcv.count(); return n > 1 })
	mu.Lock()
	if len(late) != 0 {
		t.Errorf("late samples reported before the engine had them: %q", late)
	}
	mu.Unlock()
	rcv.setStatus(nil)
	waitFor(t, "delivery", func() bool { _, n := rcv.count(); return n == 2 })
	waitFor(t, "the late report", func() bool { mu.Lock(); defer mu.Unlock(); return len(late) > 0 })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{fmt.Sprintf("old %d", old)}; !slices.Equal(late, want) {
		t.Errorf("late = %q; want %q (the fresh record is not late)", late, want)
	}
}

func TestNewErrors(t *testing.T) {
	f := func(targets []Target, want string) {
		t.Helper()
		_, err := New(Options{Dir: t.TempDir(), Targets: targets})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%v) = %v; want an error containing %q", targets, err, want)
		}
	}
	f(nil, "-storage.remote-write-url")
	f([]Target{{Name: "a b", URL: "http://x"}}, "letters, digits")
	f([]Target{{Name: "a", URL: "http://x"}, {Name: "a", URL: "http://y"}}, "used twice")
	f([]Target{{Name: "a", URL: "x:9009"}}, "not an absolute http")
}

var update = flag.Bool("update", false, "rewrite testdata/record.bin")

func TestHistogramsAndExemplarsForwarded(t *testing.T) {
	for _, v := range []push.Version{push.V1, push.V2} {
		rcv := &receiver{}
		srv := httptest.NewServer(rcv)
		e := newEnv(t, []Target{{Name: "a", URL: srv.URL, Version: v}}, nil)
		e.run()
		var b samples.Batch
		b.StartSeries([]byte("h"))
		b.AddLabel("__name__", "latency_seconds")
		b.AddHistogram(samples.Histogram{T: 1000, IntCount: 3, Sum: 1.5, Schema: 1,
			PositiveSpans: []samples.Span{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 1}})
		b.AddHistogram(samples.Histogram{T: 2000, Float: true, Count: 4, Sum: 2, Schema: 1,
			PositiveSpans: []samples.Span{{Offset: 0, Length: 2}}, PositiveCounts: []float64{2, 2}})
		b.StartSeries([]byte("c"))
		b.AddLabel("__name__", "requests_total")
		b.AddSample(1000, 7)
		b.AddExemplar(1000, 0.2, []samples.Label{{Name: "trace_id", Value: "abc"}})
		if _, err := e.w.Write(context.Background(), &b); err != nil {
			t.Fatalf("v%d: Write: %v", v, err)
		}
		waitFor(t, "the batch", func() bool { _, n := rcv.count(); return n == 1 })
		rcv.mu.Lock()
		h, x := rcv.histograms, rcv.exemplars
		rcv.mu.Unlock()
		if h != 2 || x != 1 {
			t.Errorf("v%d: engine got %d histograms and %d exemplars; want 2 and 1", v, h, x)
		}
		srv.Close()
	}
}
