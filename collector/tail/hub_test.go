package tail

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/samples"
)

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testSeries is one series of a test batch: labels as name, value pairs
// and sample values at timestamps 1000, 2000, ...
type testSeries struct {
	ref    storage.SeriesRef
	labels []string
	values []float64
}

func mkBatch(ss ...testSeries) (*samples.Batch, []storage.SeriesRef) {
	var b samples.Batch
	var refs []storage.SeriesRef
	for _, s := range ss {
		b.StartSeries(nil)
		for i := 0; i+1 < len(s.labels); i += 2 {
			b.AddLabel(s.labels[i], s.labels[i+1])
		}
		for i, v := range s.values {
			b.AddSample(int64(i+1)*1000, v)
		}
		refs = append(refs, s.ref)
	}
	return &b, refs
}

// subscribe registers a subscriber without a connection, so tests can look
// at its queue.
func subscribe(t *testing.T, h *Hub, maxRate float64, sels ...string) *subscriber {
	t.Helper()
	var matchers [][]*labels.Matcher
	for _, sel := range sels {
		ms, err := h.opts.ParseSelector(sel)
		if err != nil {
			t.Fatalf("selector %s: %v", sel, err)
		}
		matchers = append(matchers, ms)
	}
	s := h.newSubscriber(sels, matchers, maxRate)
	if !h.register(s) {
		t.Fatalf("register: hub closed")
	}
	return s
}

// drain takes every queued item of s.
func drain(s *subscriber) []*item {
	var out []*item
	for {
		select {
		case it := <-s.queue:
			out = append(out, it)
		default:
			return out
		}
	}
}

// seriesOf renders the queued samples of items as "series t v" lines.
func seriesOf(items []*item) []string {
	var out []string
	for _, it := range items {
		for _, q := range it.samples {
			m := map[string]string{}
			for _, l := range q.s.labels {
				m[l.Name] = l.Value
			}
			out = append(out, SeriesString(m)+" "+time.UnixMilli(q.t).UTC().Format("05")+" "+formatFloat(q.v))
		}
	}
	return out
}

func formatFloat(f float64) string {
	b := appendValue(nil, f)
	return string(b[1 : len(b)-1])
}

func TestObserveMatchesSelectors(t *testing.T) {
	h := New(Options{Now: newFakeClock().Now})
	if h.Active() {
		t.Fatalf("Active() with no clients: got true; want false")
	}
	s := subscribe(t, h, 0, `up{job="api"}`, `http_requests_total`)
	if !h.Active() {
		t.Fatalf("Active() with a client: got false; want true")
	}
	b, refs := mkBatch(
		testSeries{1, []string{"__name__", "up", "job", "api"}, []float64{1}},
		testSeries{2, []string{"__name__", "up", "job", "db"}, []float64{0}},
		testSeries{3, []string{"job", "api", "__name__", "http_requests_total", "code", "200"}, []float64{5, 6}},
		testSeries{4, []string{"__name__", "other", "job", "api"}, []float64{7}},
		testSeries{0, []string{"__name__", "up", "job", "api", "instance", "x"}, nil}, // no samples
	)
	h.Observe(b, refs)
	items := drain(s)
	got := strings.Join(seriesOf(items), "\n")
	want := strings.Join([]string{
		`up{job="api"} 01 1`,
		`http_requests_total{code="200", job="api"} 01 5`,
		`http_requests_total{code="200", job="api"} 02 6`,
	}, "\n")
	if got != want {
		t.Fatalf("queued samples:\ngot\n%s\nwant\n%s", got, want)
	}
	if len(items) != 1 {
		t.Fatalf("messages for one write: got %d; want 1", len(items))
	}
}

func TestObserveNegativeAndRegexMatchers(t *testing.T) {
	f := func(sel string, labels []string, want bool) {
		t.Helper()
		h := New(Options{})
		s := subscribe(t, h, 0, sel)
		b, refs := mkBatch(testSeries{1, labels, []float64{1}})
		h.Observe(b, refs)
		if got := len(drain(s)) == 1; got != want {
			t.Fatalf("selector %s on %v: matched %v; want %v", sel, labels, got, want)
		}
	}
	f(`{job=~"a.*"}`, []string{"__name__", "x", "job", "api"}, true)
	f(`{job=~"a.*"}`, []string{"__name__", "x", "job", "db"}, false)
	f(`x{job!="api"}`, []string{"__name__", "x", "job", "db"}, true)
	f(`x{job!="api"}`, []string{"__name__", "x"}, true)
	f(`x{job=""}`, []string{"__name__", "x"}, true)
	f(`x{job=""}`, []string{"__name__", "x", "job", ""}, true) // empty value is an absent label
	f(`x{job=""}`, []string{"__name__", "x", "job", "a"}, false)
	f(`x{job!~"a.*"}`, []string{"__name__", "x", "job", "api"}, false)
}

func TestObserveCopiesLabelsOutOfTheRequestBuffer(t *testing.T) {
	h := New(Options{})
	s := subscribe(t, h, 0, `up`)
	buf := []byte("upjobapi")
	alias := func(i, j int) string { return unsafe.String(&buf[i], j-i) }
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", alias(0, 2))
	b.AddLabel(alias(2, 5), alias(5, 8))
	b.AddSample(1000, 1)
	h.Observe(&b, []storage.SeriesRef{1})
	copy(buf, "XXXXXXXX") // the request buffer is reused
	got := seriesOf(drain(s))
	if len(got) != 1 || got[0] != `up{job="api"} 01 1` {
		t.Fatalf("queued after buffer reuse: got %q; want [up{job=\"api\"} 01 1]", got)
	}
}

func TestObserveCachesMatchesPerRef(t *testing.T) {
	h := New(Options{})
	h.newRefTable = func() *refTable { return newRefTable(16, 4) } // refs from 16 on go to a map of at most 4
	s := subscribe(t, h, 0, `up`)
	for _, ref := range []storage.SeriesRef{7, 1000} {
		b, refs := mkBatch(testSeries{ref, []string{"__name__", "up"}, []float64{1}})
		h.Observe(b, refs)
		// Same ref, other labels: the cached result decides (a ref names
		// one label set in storage, so this cannot happen for real).
		b, refs = mkBatch(testSeries{ref, []string{"__name__", "down"}, []float64{2}})
		h.Observe(b, refs)
		if got := seriesOf(drain(s)); len(got) != 2 || got[1] != `up{} 01 2` {
			t.Fatalf("second write of cached ref %d: got %q; want the cached up{} series", ref, got)
		}
	}
	// Ref 0 is never cached.
	b, refs := mkBatch(testSeries{0, []string{"__name__", "down"}, []float64{3}})
	h.Observe(b, refs)
	if got := seriesOf(drain(s)); len(got) != 0 {
		t.Fatalf("ref 0 that does not match: got %q; want nothing", got)
	}
	// A new client makes cached entries stale: ref 7 is matched again.
	s2 := subscribe(t, h, 0, `down`)
	b, refs = mkBatch(testSeries{7, []string{"__name__", "down"}, []float64{4}})
	h.Observe(b, refs)
	if got1, got2 := seriesOf(drain(s)), seriesOf(drain(s2)); len(got1) != 0 || len(got2) != 1 || got2[0] != `down{} 01 4` {
		t.Fatalf("ref 7 after a client came: got %q for up, %q for down; want nothing, [down{} 01 4]", got1, got2)
	}
	// The map part stays bounded.
	for ref := storage.SeriesRef(100); ref < 120; ref++ {
		b, refs = mkBatch(testSeries{ref, []string{"__name__", "up"}, []float64{1}})
		h.Observe(b, refs)
	}
	if n := h.snap.Load().refs.overflowLen(); n > 4 {
		t.Fatalf("cache map entries with a bound of 4: got %d; want <= 4", n)
	}
	if got := len(seriesOf(drain(s))); got != 20 {
		t.Fatalf("samples of 20 matching series through a small cache: got %d; want 20", got)
	}
}

func TestObserveBatchesPerClient(t *testing.T) {
	h := New(Options{})
	a := subscribe(t, h, 0, `{job="a"}`)
	both := subscribe(t, h, 0, `{job=~"a|b"}`)
	none := subscribe(t, h, 0, `{job="c"}`)
	b, refs := mkBatch(
		testSeries{1, []string{"__name__", "x", "job", "a"}, []float64{1}},
		testSeries{2, []string{"__name__", "x", "job", "b"}, []float64{2}},
		testSeries{3, []string{"__name__", "y", "job", "a"}, []float64{3}},
	)
	h.Observe(b, refs)
	f := func(s *subscriber, want string) {
		t.Helper()
		items := drain(s)
		if got := strings.Join(seriesOf(items), ", "); got != want || (want != "" && len(items) != 1) {
			t.Fatalf("%v: got %d messages %q; want one message %q", s.selectors, len(items), got, want)
		}
	}
	f(a, `x{job="a"} 01 1, y{job="a"} 01 3`)
	f(both, `x{job="a"} 01 1, x{job="b"} 01 2, y{job="a"} 01 3`)
	f(none, ``)
}

func TestObserveSplitsLargeWrites(t *testing.T) {
	h := New(Options{MaxSamplesPerMessage: 3})
	s := subscribe(t, h, 0, `up`)
	b, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, []float64{1, 2, 3, 4, 5, 6, 7}})
	h.Observe(b, refs)
	items := drain(s)
	var sizes []int
	for _, it := range items {
		sizes = append(sizes, len(it.samples))
	}
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
		t.Fatalf("message sizes for 7 samples, at most 3 per message: got %v; want [3 3 1]", sizes)
	}
}

func TestOverflowCountsDropsForTheNextMessage(t *testing.T) {
	h := New(Options{QueueSize: 2})
	s := subscribe(t, h, 0, `up`)
	observe := func(n int) {
		vals := make([]float64, n)
		b, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, vals})
		h.Observe(b, refs)
	}
	observe(1)
	observe(1)
	observe(2) // dropped
	observe(3) // dropped
	if got := len(drain(s)); got != 2 {
		t.Fatalf("queued with QueueSize=2: got %d; want 2", got)
	}
	if m, smp := s.pendingMsgs.Load(), s.pendingSamples.Load(); m != 2 || smp != 5 {
		t.Fatalf("pending drops: got %d messages, %d samples; want 2, 5", m, smp)
	}
	h.PublishDeploy(map[string]string{"service": "api"}) // fits the deploy queue
	observe(1)
	items := drain(s)
	if len(items) != 1 || items[0].droppedMsgs != 2 || items[0].droppedSamples != 5 {
		t.Fatalf("first message after the gap: got %d items, dropped %d/%d; want 1 item, dropped 2/5", len(items), items[0].droppedMsgs, items[0].droppedSamples)
	}
	if m := s.pendingMsgs.Load(); m != 0 {
		t.Fatalf("pending drops after they were reported: got %d; want 0", m)
	}
	if got := h.droppedMsgs.Get(); got != 2 {
		t.Fatalf("telltale_tail_dropped_total: got %d; want 2", got)
	}
	if got := h.droppedSamples.Get(); got != 5 {
		t.Fatalf("telltale_tail_dropped_samples_total: got %d; want 5", got)
	}
}

func TestSlowClientIsDisconnectedAfterMaxLag(t *testing.T) {
	clk := newFakeClock()
	h := New(Options{QueueSize: 1, MaxLag: 10 * time.Second, Now: clk.Now})
	s := subscribe(t, h, 0, `up`)
	b, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, []float64{1}})
	h.Observe(b, refs) // fills the queue
	h.Observe(b, refs) // overflow: the lag starts
	clk.Advance(9 * time.Second)
	h.Observe(b, refs)
	if s.kicked.Load() {
		t.Fatalf("kicked after 9s behind with MaxLag=10s; want not yet")
	}
	clk.Advance(2 * time.Second)
	h.Observe(b, refs)
	if !s.kicked.Load() {
		t.Fatalf("not kicked after 11s behind with MaxLag=10s")
	}
	if s.reason != "slow_client" || s.closeCode != CloseSlowClient || !strings.Contains(s.closeText, "queue full for 11s") {
		t.Fatalf("disconnect: got %s %d %q; want slow_client %d \"too slow: queue full for 11s...\"", s.reason, s.closeCode, s.closeText, CloseSlowClient)
	}
	if len(s.closeText) > 123 {
		t.Fatalf("close reason is %d bytes; a close frame holds 123", len(s.closeText))
	}
	// A kicked client gets nothing more.
	drain(s)
	h.Observe(b, refs)
	if got := len(drain(s)); got != 0 {
		t.Fatalf("queued for a kicked client: got %d; want 0", got)
	}
}

func TestCatchingUpResetsTheLag(t *testing.T) {
	clk := newFakeClock()
	h := New(Options{QueueSize: 1, MaxLag: 10 * time.Second, Now: clk.Now})
	s := subscribe(t, h, 0, `up`)
	b, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, []float64{1}})
	for range 5 {
		h.Observe(b, refs) // fills the queue
		h.Observe(b, refs) // overflow
		clk.Advance(6 * time.Second)
		drain(s) // the client catches up
	}
	if s.kicked.Load() {
		t.Fatalf("kicked although it caught up every 6s with MaxLag=10s: %s", s.closeText)
	}
}

func TestSlowClientIsDisconnectedAfterMaxOverflows(t *testing.T) {
	h := New(Options{QueueSize: 1, MaxOverflows: 3})
	s := subscribe(t, h, 0, `up`)
	b, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, []float64{1}})
	h.Observe(b, refs)
	h.Observe(b, refs)
	h.Observe(b, refs)
	if s.kicked.Load() {
		t.Fatalf("kicked after 2 overflows with MaxOverflows=3")
	}
	h.Observe(b, refs)
	if !s.kicked.Load() || !strings.Contains(s.closeText, "3 messages dropped in a row") {
		t.Fatalf("after 3 overflows: kicked=%v %q; want kicked, \"too slow: 3 messages dropped in a row...\"", s.kicked.Load(), s.closeText)
	}
}

func TestMaxRateThinsWithATokenBucket(t *testing.T) {
	clk := newFakeClock()
	h := New(Options{Now: clk.Now})
	s := subscribe(t, h, 2, `up`)
	observe := func(n int) int {
		vals := make([]float64, n)
		b, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, vals})
		h.Observe(b, refs)
		return len(seriesOf(drain(s)))
	}
	f := func(advance time.Duration, n, want int) {
		t.Helper()
		clk.Advance(advance)
		if got := observe(n); got != want {
			t.Fatalf("after %s, %d samples at max_rate=2: got %d through; want %d", advance, n, got, want)
		}
	}
	f(0, 5, 2) // a full bucket holds one second's worth
	f(0, 5, 0)
	f(500*time.Millisecond, 5, 1)
	f(time.Second, 5, 2)
	f(time.Hour, 5, 2) // the bucket does not grow beyond its size
	if got := s.pendingThinned.Load(); got != 25-7 {
		t.Fatalf("thinned: got %d; want %d", got, 25-7)
	}
}

func TestSamplesMessageJSON(t *testing.T) {
	ser := &series{labels: []samples.Label{
		{Name: "__name__", Value: "up"}, {Name: "path", Value: "/a\"b\\c\n\u00e9\u2028"}, {Name: "job", Value: "<api>&"},
	}}
	it := &item{time: 1_700_000_000_123, samples: []queued{
		{s: ser, t: 1000, v: 1.5}, {s: ser, t: 2000, v: math.NaN()}, {s: ser, t: 3000, v: math.Inf(1)}, {s: ser, t: 4000, v: math.Inf(-1)}, {s: ser, t: 5000, v: -0.25e-300},
	}}
	raw := appendSamples(nil, it)
	var m Message
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("samples message is not JSON: %v\n%s", err, raw)
	}
	if m.Type != TypeSamples || m.Time != it.time || len(m.Samples) != len(it.samples) {
		t.Fatalf("decoded: got type %q time %d %d samples; want samples %d %d", m.Type, m.Time, len(m.Samples), it.time, len(it.samples))
	}
	for i, got := range m.Samples {
		want := it.samples[i]
		if got.T != want.t || !(float64(got.V) == want.v || math.IsNaN(want.v) && math.IsNaN(float64(got.V))) {
			t.Fatalf("sample %d: got t=%d v=%v; want t=%d v=%v", i, got.T, got.V, want.t, want.v)
		}
		for _, l := range ser.labels {
			if got.Labels[l.Name] != l.Value {
				t.Fatalf("sample %d label %s: got %q; want %q", i, l.Name, got.Labels[l.Name], l.Value)
			}
		}
	}
}

func TestValueJSON(t *testing.T) {
	f := func(in string, want float64) {
		t.Helper()
		var v Value
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Fatalf("Unmarshal(%s): %v", in, err)
		}
		if !(float64(v) == want || math.IsNaN(want) && math.IsNaN(float64(v))) {
			t.Fatalf("Unmarshal(%s): got %v; want %v", in, v, want)
		}
		// And back: the string form round-trips.
		b, _ := json.Marshal(v)
		var w Value
		if err := json.Unmarshal(b, &w); err != nil || !(w == v || math.IsNaN(float64(v)) && math.IsNaN(float64(w))) {
			t.Fatalf("round trip of %v via %s: got %v, %v", v, b, w, err)
		}
	}
	f(`"1.5"`, 1.5)
	f(`1.5`, 1.5)
	f(`"NaN"`, math.NaN())
	f(`"+Inf"`, math.Inf(1))
	f(`"-Inf"`, math.Inf(-1))
	f(`"-1e-300"`, -1e-300)
	var v Value
	if err := json.Unmarshal([]byte(`"abc"`), &v); err == nil {
		t.Fatalf(`Unmarshal("abc"): got no error; want one`)
	}
}

func TestSeriesString(t *testing.T) {
	f := func(ls map[string]string, want string) {
		t.Helper()
		if got := SeriesString(ls); got != want {
			t.Fatalf("SeriesString(%v): got %s; want %s", ls, got, want)
		}
	}
	f(map[string]string{"__name__": "up"}, `up{}`)
	f(map[string]string{"__name__": "up", "job": "api", "a": "x\"y"}, `up{a="x\"y", job="api"}`)
	f(map[string]string{"job": "api"}, `{job="api"}`)
}

func TestAppendQueuedMergesUntilAGap(t *testing.T) {
	h := New(Options{})
	s := h.newSubscriber([]string{"up"}, nil, 0)
	ser := &series{labels: []samples.Label{{Name: "__name__", Value: "up"}}}
	mk := func(tm int64, dropped int64, vals ...float64) *item {
		it := h.getItem()
		it.time, it.droppedMsgs = tm, dropped
		for _, v := range vals {
			it.samples = append(it.samples, queued{s: ser, t: tm, v: v})
		}
		return it
	}
	first := mk(1000, 0, 1, 2)
	s.queue <- mk(2000, 0, 3)
	s.queue <- mk(3000, 2, 4) // after a gap: starts the next message
	s.queue <- mk(4000, 0, 5)
	f := func(raw []byte, n int, wantN int, wantTime int64, wantVals string) {
		t.Helper()
		var m Message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, raw)
		}
		var vals []string
		for _, smp := range m.Samples {
			vals = append(vals, formatFloat(float64(smp.V)))
		}
		if n != wantN || m.Time != wantTime || strings.Join(vals, ",") != wantVals {
			t.Fatalf("merged message: got n=%d time=%d values %v; want n=%d time=%d values %s", n, m.Time, vals, wantN, wantTime, wantVals)
		}
	}
	raw, n, next := s.appendQueued(nil, first)
	f(raw, n, 3, 2000, "1,2,3")
	if next == nil || next.droppedMsgs != 2 {
		t.Fatalf("next item: got %+v; want the one after the gap", next)
	}
	raw, n, next = s.appendQueued(nil, next)
	f(raw, n, 2, 4000, "4,5")
	if next != nil {
		t.Fatalf("next item with an empty queue: got %+v; want nil", next)
	}
}

func TestClientsLeavingKeepTheCache(t *testing.T) {
	h := New(Options{})
	a := subscribe(t, h, 0, `up`)
	b := subscribe(t, h, 0, `up`)
	batch, refs := mkBatch(testSeries{1, []string{"__name__", "up"}, []float64{1}})
	h.Observe(batch, refs)
	drain(a)
	drain(b)
	gen := h.snap.Load().gen
	h.unregister(a)
	if got := h.snap.Load().gen; got != gen {
		t.Fatalf("generation after a client left: got %d; want %d (the cache stays valid)", got, gen)
	}
	// Ref 1 with other labels: still served from the cache, to b only.
	batch, refs = mkBatch(testSeries{1, []string{"__name__", "other"}, []float64{2}})
	h.Observe(batch, refs)
	if ga, gb := seriesOf(drain(a)), seriesOf(drain(b)); len(ga) != 0 || len(gb) != 1 || gb[0] != `up{} 01 2` {
		t.Fatalf("after a left: got %q for a, %q for b; want nothing, [up{} 01 2] from the cache", ga, gb)
	}
	h.unregister(b)
	if h.Active() || h.snap.Load().refs != nil {
		t.Fatalf("after the last client left: Active=%v, cache kept=%v; want false, false", h.Active(), h.snap.Load().refs != nil)
	}
	c := subscribe(t, h, 0, `other`)
	h.Observe(batch, refs)
	if got := seriesOf(drain(c)); len(got) != 1 || got[0] != `other{} 01 2` {
		t.Fatalf("new client after all left: got %q; want [other{} 01 2] (a fresh cache)", got)
	}
}
