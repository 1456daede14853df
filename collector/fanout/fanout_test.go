package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/enginetest"
	"github.com/telltale-dev/telltale/samples"
)

// fakeTail records what a bus hands to the hub.
type fakeTail struct {
	mu        sync.Mutex
	selectors []string
	got       []string
	events    []string
	missed    int
}

func (f *fakeTail) Observe(b *samples.Batch, _ []promstorage.SeriesRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range b.Series {
		for _, s := range b.SeriesSamples(&b.Series[i]) {
			f.got = append(f.got, fmt.Sprintf("%s %d %g", b.Name(&b.Series[i]), s.T, s.V))
		}
		for _, h := range b.SeriesHistograms(&b.Series[i]) {
			f.got = append(f.got, fmt.Sprintf("%s %d histogram count=%d buckets=%v", b.Name(&b.Series[i]), h.T, h.IntCount, h.PositiveDeltas))
		}
	}
}

func (f *fakeTail) PublishDeploy(d any) { f.event("deploy", d) }
func (f *fakeTail) PublishChange(c any) { f.event("change", c) }

func (f *fakeTail) event(kind string, v any) {
	raw, _ := json.Marshal(v)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, kind+" "+string(raw))
}

func (f *fakeTail) Selectors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.selectors)
}

func (f *fakeTail) Missed(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.missed += n
}

func (f *fakeTail) snapshot() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got), slices.Clone(f.events)
}

func newBus(t *testing.T, o Options) *Bus {
	t.Helper()
	o.ParseSelector = parser.NewParser(parser.Options{}).ParseMetricSelector
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; b.Close() })
	return b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func batch(name string, t int64, v float64, lbls ...string) *samples.Batch {
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", name)
	for i := 0; i+1 < len(lbls); i += 2 {
		b.AddLabel(lbls[i], lbls[i+1])
	}
	b.AddSample(t, v)
	return &b
}

// TestTailAcrossReplicas: replica 1's tail clients want up{job="api"};
// replica 2 publishes only what matches; replica 1's hub gets it, and
// changes recorded on replica 2.
func TestTailAcrossReplicas(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	tail1, tail2 := &fakeTail{selectors: []string{`up{job="api"}`}}, &fakeTail{}
	set2 := metrics.NewSet()
	b1 := newBus(t, Options{Embed: &Embed{Listen: addr}, Replica: "r1", Tail: tail1, InterestInterval: time.Hour})
	b2 := newBus(t, Options{URL: b1.ClientURL(), Replica: "r2", Tail: tail2, InterestInterval: time.Hour, Metrics: set2})
	// r2 asked for interest when it connected; r1 answers with its
	// selectors.
	waitFor(t, "replica 2 to learn replica 1's selectors", b2.Active)
	if b1.Active() {
		t.Error("replica 1 is active although replica 2's clients want nothing")
	}
	b2.Observe(batch("up", 1000, 1, "job", "api"), []promstorage.SeriesRef{7})
	b2.Observe(batch("up", 1000, 0, "job", "db"), []promstorage.SeriesRef{8})
	b2.Observe(batch("up", 2000, 1, "job", "api"), []promstorage.SeriesRef{7}) // cached decision
	// A native histogram crosses too.
	hb := &samples.Batch{}
	hb.StartSeries(nil)
	hb.AddLabel("__name__", "up")
	hb.AddLabel("job", "api")
	hb.AddHistogram(samples.Histogram{T: 3000, IntCount: 3, Sum: 1, PositiveSpans: []samples.Span{{Length: 2}}, PositiveDeltas: []int64{1, 1}})
	b2.Observe(hb, []promstorage.SeriesRef{7})
	b2.PublishChange(true, map[string]string{"id": "d1", "service": "api"})
	b2.PublishChange(false, map[string]string{"id": "s1", "kind": "switch"})
	waitFor(t, "three samples and two changes at replica 1", func() bool {
		got, ev := tail1.snapshot()
		return len(got) == 3 && len(ev) == 2
	})
	got, ev := tail1.snapshot()
	if want := []string{"up 1000 1", "up 2000 1", "up 3000 histogram count=3 buckets=[1 1]"}; !slices.Equal(got, want) {
		t.Errorf("replica 1 got %q; want %q (the job=db series matches no selector)", got, want)
	}
	if want := []string{`deploy {"id":"d1","service":"api"}`, `change {"id":"s1","kind":"switch"}`}; !slices.Equal(ev, want) {
		t.Errorf("replica 1 got events %q; want %q", ev, want)
	}
	if n := set2.GetOrCreateCounter(`telltale_fanout_published_total{kind="samples"}`).Get(); n != 3 {
		t.Errorf("replica 2 published %d samples messages; want 3", n)
	}
	// Replica 1's clients leave: replica 2 stops publishing.
	tail1.mu.Lock()
	tail1.selectors = nil
	tail1.mu.Unlock()
	b1.SubscribersChanged()
	waitFor(t, "replica 2 to see no interest", func() bool { return !b2.Active() })
	if got, _ := tail2.snapshot(); len(got) != 0 {
		t.Errorf("replica 2's own hub got %q from the bus; want nothing (no echo)", got)
	}
}

// TestLateWindowsAndExpiry: late windows reach the other replica's cache,
// and an announcement that is not renewed expires.
func TestLateWindowsAndExpiry(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	var mu sync.Mutex
	var late []string
	now := time.Unix(1_700_000_000, 0)
	b1 := newBus(t, Options{Embed: &Embed{Listen: addr}, Replica: "r1", InterestInterval: time.Hour,
		Late: func(b *samples.Batch) {
			mu.Lock()
			defer mu.Unlock()
			for i := range b.Series {
				for _, s := range b.SeriesSamples(&b.Series[i]) {
					late = append(late, fmt.Sprintf("%s %d", b.Name(&b.Series[i]), s.T))
				}
			}
		},
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	b2 := newBus(t, Options{URL: b1.ClientURL(), Replica: "r2", Tail: &fakeTail{selectors: []string{"up"}}, InterestInterval: time.Hour})
	var b samples.Batch
	for i, name := range []string{"a", "b", "a"} {
		b.StartSeries(nil)
		b.AddLabel("__name__", name)
		b.AddLabel("i", fmt.Sprint(i))
		b.AddSample(int64(1000*(i+1)), 1)
		b.AddSample(int64(1000*(i+1)+500), 1)
	}
	b2.PublishLate(&b)
	waitFor(t, "the late windows", func() bool { mu.Lock(); defer mu.Unlock(); return len(late) == 4 })
	mu.Lock()
	slices.Sort(late)
	if want := []string{"a 1000", "a 3500", "b 2000", "b 2500"}; !slices.Equal(late, want) {
		t.Errorf("late windows %q; want %q (oldest and newest per name)", late, want)
	}
	mu.Unlock()
	waitFor(t, "replica 1 to learn replica 2's selectors", b1.Active)
	mu.Lock()
	now = now.Add(4 * time.Hour) // three intervals without a renewal
	mu.Unlock()
	b1.expire()
	if b1.Active() {
		t.Error("an announcement three intervals old still holds")
	}
	_ = b2
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a URL or an embedded server succeeded")
	}
	if _, err := New(Options{Embed: &Embed{Listen: "nonsense"}}); err == nil {
		t.Error("New with -nats.listen=nonsense succeeded")
	}
}
