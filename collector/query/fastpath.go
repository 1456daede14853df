package query

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/schema"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/kahansum"
)

// The fast path evaluates the commonest dashboard shapes of a range query
// — rate(m_total[w]) and increase(m_total[w]) over a plain selector, alone
// or under sum [by|without] — itself, once per series for all steps, and
// hands the result to Prometheus' engine in place of that part of the
// query, which evaluates the rest as always.
//
// Why it is faster: Prometheus' engine calls rate for every step with the
// window's samples and walks them all to find counter resets, so a 5m
// window at a 20s step looks at each sample about 15 times; sum then
// builds a vector per step. Here each series is decoded once, a count of
// the resets inside the window, kept as the window slides, answers "no
// reset in this window" in O(1) (the common case, where rate is
// last-first, extrapolated), and sum adds each
// series' values into its group's per-step sums directly.
//
// Why it is exact: every step's value is computed by Prometheus' own
// arithmetic in Prometheus' order. The window is (t-w-offset, t-offset],
// stale markers dropped, as matrixIterSlice reads it; the rate is
// extrapolatedRate's float branch term for term (the reset loop runs as
// written whenever the window has a reset); sum adds with
// kahansum.Inc in the order of the selected series, into groups created
// in the order Prometheus creates them (rangeEvalAgg), and adds the
// compensation at the end. The series are selected with the querier
// Prometheus' engine would open for the query (same time range: the
// TSDB's series order depends on how many blocks it spans) and the same
// hints. The result is given back as a selector whose series carry a
// sample at every step where the part has a value and a stale marker
// where it has none, so the engine reads exactly those values at exactly
// those steps, whatever its lookback. A part is taken only where nothing
// around it treats a selector differently from other expressions
// (absent, timestamp, info and subqueries are left alone), and the query
// keeps its own text and positions, so annotations read as Prometheus'.
//
// What it does not take: native histogram samples (a series with one
// makes the whole query go to the engine), @ modifiers, anchored and
// smoothed selectors, metric names without a counter suffix (Prometheus
// adds an info annotation for those), and queries whose rate matrix would
// come near -query.max-samples (the engine then fails as Prometheus does).
// With delayed name removal, type-and-unit labels or start timestamps on,
// it is off.

// fastSafeFuncs are the functions whose argument may be a fast part:
// they read the argument's samples and labels only, never its selector.
var fastSafeFuncs = map[string]bool{
	"abs": true, "ceil": true, "floor": true, "round": true, "exp": true, "ln": true,
	"log2": true, "log10": true, "sqrt": true, "sgn": true, "clamp": true,
	"clamp_min": true, "clamp_max": true, "scalar": true, "sort": true, "sort_desc": true,
	"sort_by_label": true, "sort_by_label_desc": true, "label_replace": true,
	"label_join": true, "histogram_quantile": true, "histogram_fraction": true,
	"deg": true, "rad": true,
}

// fastLabel names the matcher of a selector that stands in for a fast
// part. The matcher is never used to select (the selector's series are
// set); the engine's populateSeries still asks the querier once, which
// pinnedQueryable answers itself (no round trip to a remote engine).
const fastLabel = "__telltale_fast_part__"

// fastPart is one part of a query the fast path evaluates.
type fastPart struct {
	agg  *parser.AggregateExpr // nil: the call alone
	call *parser.Call
	ms   *parser.MatrixSelector
	vs   *parser.VectorSelector
	node parser.Expr       // agg or call: what is replaced
	set  func(parser.Expr) // replaces node in its parent
}

// findFastParts returns the parts of e that the fast path may evaluate.
func findFastParts(stmt *parser.EvalStmt) []fastPart {
	var out []fastPart
	walkFast(stmt.Expr, func(n parser.Expr) { stmt.Expr = n }, true, &out)
	return out
}

func walkFast(e parser.Expr, set func(parser.Expr), safe bool, out *[]fastPart) {
	switch x := e.(type) {
	case *parser.ParenExpr:
		walkFast(x.Expr, func(n parser.Expr) { x.Expr = n }, safe, out)
	case *parser.UnaryExpr:
		walkFast(x.Expr, func(n parser.Expr) { x.Expr = n }, safe, out)
	case *parser.BinaryExpr:
		walkFast(x.LHS, func(n parser.Expr) { x.LHS = n }, safe, out)
		walkFast(x.RHS, func(n parser.Expr) { x.RHS = n }, safe, out)
	case *parser.AggregateExpr:
		if safe {
			if p, ok := fastAggregate(x); ok {
				p.set = set
				*out = append(*out, p)
				return
			}
		}
		if x.Param != nil {
			walkFast(x.Param, func(n parser.Expr) { x.Param = n }, safe, out)
		}
		walkFast(x.Expr, func(n parser.Expr) { x.Expr = n }, safe, out)
	case *parser.Call:
		if safe {
			if p, ok := fastCall(x); ok {
				p.node, p.set = x, set
				*out = append(*out, p)
				return
			}
		}
		inner := safe && fastSafeFuncs[x.Func.Name]
		for i := range x.Args {
			walkFast(x.Args[i], func(n parser.Expr) { x.Args[i] = n }, inner, out)
		}
	}
	// Selectors, literals, subqueries (their steps are their own) and
	// step-invariant parts (@ is in play) hold no fast part.
}

// fastAggregate reports whether a is sum [by|without] (fast call).
func fastAggregate(a *parser.AggregateExpr) (fastPart, bool) {
	if a.Op != parser.SUM || a.Param != nil {
		return fastPart{}, false
	}
	inner := a.Expr
	for {
		p, ok := inner.(*parser.ParenExpr)
		if !ok {
			break
		}
		inner = p.Expr
	}
	c, ok := inner.(*parser.Call)
	if !ok {
		return fastPart{}, false
	}
	p, ok := fastCall(c)
	if !ok {
		return fastPart{}, false
	}
	p.agg, p.node = a, a
	return p, true
}

// fastCall reports whether c is rate or increase of a plain selector of
// one counter-named metric.
func fastCall(c *parser.Call) (fastPart, bool) {
	if c.Func.Name != "rate" && c.Func.Name != "increase" || len(c.Args) != 1 {
		return fastPart{}, false
	}
	ms, ok := c.Args[0].(*parser.MatrixSelector)
	if !ok || ms.Range <= 0 {
		return fastPart{}, false
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok || vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed ||
		vs.Series != nil || vs.SkipHistogramBuckets {
		return fastPart{}, false
	}
	names := 0
	for _, m := range vs.LabelMatchers {
		if m.Name != labels.MetricName {
			continue
		}
		names++
		if m.Type != labels.MatchEqual || !counterName(m.Value) {
			return fastPart{}, false
		}
	}
	if names != 1 {
		return fastPart{}, false
	}
	return fastPart{call: c, ms: ms, vs: vs}, true
}

// counterName reports whether rate and increase of a metric so named add
// no "possible non-counter" annotation (promql/engine.go).
func counterName(n string) bool {
	return strings.HasSuffix(n, "_total") || strings.HasSuffix(n, "_sum") ||
		strings.HasSuffix(n, "_count") || strings.HasSuffix(n, "_bucket")
}

// pinnedQueryable opens its queriers over a fixed time range once pinned:
// the range the engine would have opened for the query as written, which
// a fast part's stand-in selector would otherwise narrow.
type pinnedQueryable struct {
	storage.Queryable
	mu         sync.Mutex
	pinned     bool
	mint, maxt int64
}

func (p *pinnedQueryable) pin(mint, maxt int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinned, p.mint, p.maxt = true, mint, maxt
}

func (p *pinnedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	p.mu.Lock()
	pinned := p.pinned
	if pinned {
		mint, maxt = p.mint, p.maxt
	}
	p.mu.Unlock()
	q, err := p.Queryable.Querier(mint, maxt)
	if err != nil || !pinned {
		return q, err
	}
	return standInQuerier{q}, nil
}

// standInQuerier answers the selectors that stand in for fast parts with
// nothing (their series are set) and passes the others on.
type standInQuerier struct{ storage.Querier }

func (q standInQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if len(ms) == 1 && ms[0].Name == fastLabel {
		return storage.EmptySeriesSet()
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

// fastQuery is a range query of Prometheus' engine whose fast parts are
// evaluated when it runs.
type fastQuery struct {
	promql.Query
	pq         *pinnedQueryable
	maxSamples int
	timeout    time.Duration    // the engine's -query.timeout: bounds both parts
	used       *metrics.Counter // queries with at least one part taken
	declined   *metrics.Counter // queries whose parts went back to the engine
}

func (f *fastQuery) Exec(ctx context.Context) *promql.Result {
	stmt, ok := f.Statement().(*parser.EvalStmt)
	if !ok || f.timeout <= 0 || ctx.Err() != nil || len(findFastParts(stmt)) == 0 {
		return f.Query.Exec(ctx)
	}
	// One -query.timeout for the fast parts and the engine's evaluation
	// after them; the engine reports a deadline as its own timeout.
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	f.prepare(ctx, stmt)
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &promql.Result{Err: promql.ErrQueryTimeout("expression evaluation")}
		}
		return &promql.Result{Err: promql.ErrQueryCanceled("expression evaluation")}
	}
	return f.Query.Exec(ctx)
}

// prepare evaluates stmt's fast parts and puts their results in place;
// if any part cannot be taken, stmt is left as it is.
func (f *fastQuery) prepare(ctx context.Context, stmt *parser.EvalStmt) {
	defer func() {
		// A panic of the storage's (tombstones.Intervals.Add panics on
		// some ranges over deleted samples) must not end the process:
		// the part goes to the engine, which recovers and reports it as
		// Prometheus does.
		if r := recover(); r != nil {
			f.declined.Inc()
		}
	}()
	parts := findFastParts(stmt)
	if len(parts) == 0 || stmt.Interval <= 0 {
		return
	}
	mint, maxt := promql.FindMinMaxTime(stmt)
	src, err := openFastSource(f.pq.Queryable, mint, maxt)
	if err != nil {
		return // the engine meets the same error and reports it
	}
	defer src.Close()
	results := make([][]storage.Series, len(parts))
	budget := f.maxSamples
	for i, p := range parts {
		res, used, ok := evalFastPart(ctx, src, stmt, p, budget)
		if !ok {
			f.declined.Inc()
			return
		}
		budget -= used
		results[i] = res
	}
	f.pq.pin(mint, maxt)
	for i, p := range parts {
		p.set(&parser.VectorSelector{
			LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, fastLabel, strconv.Itoa(i))},
			Series:        results[i],
			PosRange:      p.node.PositionRange(),
		})
	}
	f.used.Inc()
}

// durationMs is promql's durationMilliseconds.
func durationMs(d time.Duration) int64 { return int64(d / (time.Millisecond / time.Nanosecond)) }

// fastSeries is one selected series' samples in the part's time range.
type fastSeries struct {
	ts   []int64
	fs   []float64
	memo rateMemo
}

// evalFastPart evaluates p over stmt's steps from q. It returns the
// stand-in series, how many samples Prometheus' engine would have held
// for the part's rate matrix, and false if the part must go to the engine.
func evalFastPart(ctx context.Context, src fastSource, stmt *parser.EvalStmt, p fastPart, budget int) ([]storage.Series, int, bool) {
	start, end, step := timestamp.FromTime(stmt.Start), timestamp.FromTime(stmt.End), durationMs(stmt.Interval)
	steps := int((end-start)/step) + 1
	rangeMs := durationMs(p.ms.Range)
	// Without @, the engine's offset is the selector's own
	// (setOffsetForAtModifier, when the query runs).
	offMs := durationMs(p.vs.OriginalOffset)
	// The hints getTimeRangesForSelector and populateSeries give.
	hints := &storage.SelectHints{
		Start: start - (rangeMs - 1) - durationMs(p.vs.OriginalOffset),
		End:   end - durationMs(p.vs.OriginalOffset),
		Step:  step,
		Range: rangeMs,
		Func:  p.call.Func.Name,
	}
	if p.agg != nil {
		hints.By, hints.Grouping = !p.agg.Without, p.agg.Grouping
	}
	isRate := p.call.Func.Name == "rate"
	rangeSeconds := p.ms.Range.Seconds()
	rangeStartOff := durationMs(p.ms.Range + p.vs.OriginalOffset)

	// The series are summed in the order the storage returns them, which
	// is the order Prometheus' engine sums them in (Kahan summation is
	// exact only in one order).
	set := src.Select(ctx, hints, p.vs.LabelMatchers...)
	ev := newFastEval(set, steps, hints.Start, hints.End, func(b *fastSeries, r *fastOne) {
		n := 0
		// The window is b[lo:hi]; resets counts the samples i in it
		// after its first that are below sample i-1 (counter resets).
		lo, hi, resets := 0, 0, 0
		ts, fs := b.ts, b.fs
		for k := range steps {
			t := start + int64(k)*step
			maxt := t - offMs
			mint := maxt - rangeMs
			for hi < len(ts) && ts[hi] <= maxt {
				if hi > lo && fs[hi] < fs[hi-1] {
					resets++
				}
				hi++
			}
			for lo < hi && ts[lo] <= mint {
				lo++
				if lo < hi && fs[lo] < fs[lo-1] {
					resets-- // sample lo is now the first
				}
			}
			r.has[k] = false
			if hi-lo < 2 {
				continue
			}
			r.vals[k] = b.rate(lo, hi-1, resets > 0, t-rangeStartOff, t-offMs, isRate, rangeSeconds)
			r.has[k] = true
			n++
		}
		r.n = n
	})
	var (
		held   int // samples the engine's rate matrix would hold
		out    []promql.Series
		groups map[string]int
		sums   [][]float64
		comps  [][]float64
		seen   [][]bool
		lb     = labels.NewBuilder(labels.EmptyLabels())
		vals   = make([]float64, steps)
	)
	if p.agg != nil {
		groups = map[string]int{}
	}
	for {
		r, more := ev.next()
		if !more {
			break
		}
		if !r.ok || ctx.Err() != nil {
			return nil, 0, false // a histogram sample, or an iterator error
		}
		if r.n == 0 {
			continue
		}
		held += r.n
		if held > budget/2 {
			// Near -query.max-samples: the engine decides, and fails as
			// Prometheus does if it must.
			return nil, 0, false
		}
		all := r.labels
		metric := all.DropReserved(schema.IsMetadataLabel)
		if metric.Len() != all.Len()-1 {
			// __type__ or __unit__ too: two series may become one
			// labelset, which Prometheus refuses; the engine decides.
			return nil, 0, false
		}
		if p.agg == nil {
			out = append(out, standIn(metric, start, step, r.vals, r.has))
			continue
		}
		lb.Reset(metric)
		switch {
		case p.agg.Without:
			lb.Del(p.agg.Grouping...)
			schema.Metadata{}.SetToLabels(lb)
		case len(p.agg.Grouping) > 0:
			lb.Keep(p.agg.Grouping...)
		default:
			lb.Reset(labels.EmptyLabels())
		}
		gl := lb.Labels()
		key := gl.String()
		g, ok := groups[key]
		if !ok {
			g = len(out)
			groups[key] = g
			out = append(out, promql.Series{Metric: gl})
			sums = append(sums, make([]float64, steps))
			comps = append(comps, make([]float64, steps))
			seen = append(seen, make([]bool, steps))
		}
		sum, comp, sn := sums[g], comps[g], seen[g]
		for k := range steps {
			if !r.has[k] {
				continue
			}
			if !sn[k] {
				sn[k], sum[k], comp[k] = true, r.vals[k], 0
				continue
			}
			sum[k], comp[k] = kahansum.Inc(r.vals[k], sum[k], comp[k])
		}
	}
	if set.Err() != nil || len(set.Warnings()) > 0 {
		// Let the engine meet the error or carry the warnings as it does.
		return nil, 0, false
	}
	res := make([]storage.Series, len(out))
	for g := range out {
		if p.agg != nil {
			for k := range steps {
				vals[k] = sums[g][k] + comps[g][k]
			}
			out[g] = standIn(out[g].Metric, start, step, vals, seen[g])
		}
		res[g] = promql.NewStorageSeries(out[g])
	}
	return res, held, true
}

// standIn is a stand-in series: vals[k] at the steps that have a value, a
// stale marker at the other steps after the first, so a selector reads
// exactly the values at exactly their steps whatever its lookback.
func standIn(metric labels.Labels, start, step int64, vals []float64, has []bool) promql.Series {
	stale := math.Float64frombits(value.StaleNaN)
	s := promql.Series{Metric: metric, Floats: make([]promql.FPoint, 0, len(vals))}
	for k := range vals {
		t := start + int64(k)*step
		switch {
		case has[k]:
			s.Floats = append(s.Floats, promql.FPoint{T: t, F: vals[k]})
		case len(s.Floats) > 0:
			s.Floats = append(s.Floats, promql.FPoint{T: t, F: stale})
		}
	}
	return s
}

// fastSource selects the series of fast parts. Where the storage has a
// chunk querier that returns exactly its querier's samples (disjointer),
// it reads chunks and decodes each one directly, which skips the merge and
// deletion iterators that wrap every sample on the querier's path (a
// quarter of the CPU of BenchmarkFastPath8h).
type fastSource interface {
	Select(ctx context.Context, hints *storage.SelectHints, ms ...*labels.Matcher) fastSeriesSet
	Close() error
}

// fastSeriesSet is a selection being read: the series' labels and the
// series, a storage.Series or a storage.ChunkSeries.
type fastSeriesSet interface {
	Next() bool
	At() (labels.Labels, any)
	Err() error
	Warnings() annotations.Annotations
}

// disjointer is a storage that tells whether its chunk querier returns
// exactly its querier's samples over a range (collector/storage's
// DisjointParts): where its blocks or head overlap in time, the two
// merge samples of one timestamp in different orders and may keep
// different values, and only the querier's are Prometheus'.
type disjointer interface {
	DisjointParts(mint, maxt int64) bool
}

func openFastSource(q storage.Queryable, mint, maxt int64) (fastSource, error) {
	cq, ok := q.(storage.ChunkQueryable)
	d, ok2 := q.(disjointer)
	if ok && ok2 && d.DisjointParts(mint, maxt) {
		c, err := cq.ChunkQuerier(mint, maxt)
		if err != nil {
			return nil, err
		}
		if d.DisjointParts(mint, maxt) {
			// Still disjoint with the querier open: a compaction in
			// between would show here.
			return chunkSource{c}, nil
		}
		if err := c.Close(); err != nil {
			return nil, err
		}
	}
	s, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return sampleSource{s}, nil
}

type sampleSource struct{ storage.Querier }

func (s sampleSource) Select(ctx context.Context, hints *storage.SelectHints, ms ...*labels.Matcher) fastSeriesSet {
	return sampleSet{s.Querier.Select(ctx, false, hints, ms...)}
}

type sampleSet struct{ storage.SeriesSet }

func (s sampleSet) At() (labels.Labels, any) {
	x := s.SeriesSet.At()
	return x.Labels(), x
}

type chunkSource struct{ storage.ChunkQuerier }

func (s chunkSource) Select(ctx context.Context, hints *storage.SelectHints, ms ...*labels.Matcher) fastSeriesSet {
	// Chunks that cross the querier's range come whole instead of
	// re-encoded without their outer samples: load skips those itself.
	h := *hints
	h.DisableTrimming = true
	return chunkSet{s.ChunkQuerier.Select(ctx, false, &h, ms...)}
}

type chunkSet struct{ storage.ChunkSeriesSet }

func (s chunkSet) At() (labels.Labels, any) {
	x := s.ChunkSeriesSet.At()
	return x.Labels(), x
}

// xorIteratorType is the type of Prometheus' XOR chunk iterator.
var xorIteratorType = reflect.TypeOf(chunkenc.NewXORChunk().Iterator(nil))

// fastLoader reads series; each worker has its own iterators.
type fastLoader struct {
	it  chunkenc.Iterator
	cit chunks.Iterator
	xit chunkenc.Iterator
}

// load reads series' float samples in [from, to] into b, stale markers
// dropped (as the engine's matrixIterSlice drops them), and counts
// resets; false if the series has a histogram sample, its chunks overlap
// or its iterator fails: the engine decides.
func (l *fastLoader) load(series any, b *fastSeries, from, to int64) bool {
	b.reset()
	switch s := series.(type) {
	case storage.ChunkSeries:
		return l.loadChunks(s, b, from, to)
	case storage.Series:
		l.it = s.Iterator(l.it)
		x := l.it
		for vt := x.Seek(from); vt != chunkenc.ValNone; vt = x.Next() {
			if vt != chunkenc.ValFloat {
				return false
			}
			t, f := x.At()
			if t > to {
				break
			}
			b.add(t, f)
		}
		return x.Err() == nil
	}
	return false
}

func (l *fastLoader) loadChunks(s storage.ChunkSeries, b *fastSeries, from, to int64) bool {
	l.cit = s.Iterator(l.cit)
	last := int64(math.MinInt64)
	for l.cit.Next() {
		m := l.cit.At()
		if m.MinTime > to {
			break // chunks come in time order
		}
		if m.Chunk == nil {
			return false
		}
		if c, isXOR := m.Chunk.(*chunkenc.XORChunk); isXOR {
			// A block's chunk, immutable.
			var ok bool
			if last, ok = decodeXOR(c.Bytes(), b, from, to, last, m.MinTime < from); !ok {
				return false
			}
			continue
		}
		l.xit = m.Chunk.Iterator(l.xit)
		x := l.xit
		if reflect.TypeOf(x) == xorIteratorType {
			// The head's chunks come wrapped. Their iterator stops
			// before the samples of appends the querier's isolation
			// state does not see, which their bytes may hold: then it
			// is another type (or none). A plain XOR iterator reads
			// every sample of the bytes, which are immutable (the open
			// chunk is a copy, querier.go's copyHeadChunk).
			var ok bool
			if last, ok = decodeXOR(m.Chunk.Bytes(), b, from, to, last, m.MinTime < from); !ok {
				return false
			}
			continue
		}
		vt := x.Next()
		if m.MinTime < from {
			vt = x.Seek(from)
		}
		for ; vt != chunkenc.ValNone; vt = x.Next() {
			if vt != chunkenc.ValFloat {
				return false
			}
			t, f := x.At()
			if t <= last {
				// Overlapping chunks, which the merge should have
				// compacted: the engine reads them its own way.
				return false
			}
			if t > to {
				break
			}
			last = t
			b.add(t, f)
		}
		if x.Err() != nil {
			return false
		}
	}
	return l.cit.Err() == nil
}

// fastOne is one series' evaluation: its value at each step that has one.
type fastOne struct {
	labels labels.Labels
	vals   []float64
	has    []bool
	n      int  // steps with a value
	ok     bool // false: the part goes to the engine
}

// fastEval reads a selection's series in order and evaluates them. It is
// one goroutine on purpose: a querier's chunk reader is not safe for
// concurrent use (the head's caches a series' chunk list), and slicing
// the range over the cores (engine.go) already gives each slice its own
// querier.
type fastEval struct {
	set  fastSeriesSet
	eval func(*fastSeries, *fastOne)
	from int64
	to   int64
	b    fastSeries
	l    fastLoader
	r    fastOne
}

func newFastEval(set fastSeriesSet, steps int, from, to int64, eval func(*fastSeries, *fastOne)) *fastEval {
	return &fastEval{set: set, eval: eval, from: from, to: to, r: fastOne{vals: make([]float64, steps), has: make([]bool, steps)}}
}

// next returns the next series' evaluation, or false after the last; the
// evaluation is good until the next call.
func (e *fastEval) next() (*fastOne, bool) {
	if !e.set.Next() {
		return nil, false
	}
	var series any
	e.r.labels, series = e.set.At()
	e.r.n = 0
	if e.r.ok = e.l.load(series, &e.b, e.from, e.to); e.r.ok {
		e.eval(&e.b, &e.r)
	}
	return &e.r, true
}

func (b *fastSeries) reset() {
	b.ts, b.fs = b.ts[:0], b.fs[:0]
	b.memo = rateMemo{}
}

// grow makes room for n more samples.
func (b *fastSeries) grow(n int) {
	b.ts = slices.Grow(b.ts, n)
	b.fs = slices.Grow(b.fs, n)
}

// add appends a sample read in time order, dropping stale markers.
func (b *fastSeries) add(t int64, f float64) {
	if value.IsStaleNaN(f) {
		return
	}
	b.ts = append(b.ts, t)
	b.fs = append(b.fs, f)
}

// rateMemo holds the last operands and results of rate's divisions.
// Over a regular series consecutive steps divide the same numbers (the
// same span, the same gaps to the window's ends), and a division costs
// more than the rest of a step; a result taken from here is the same
// float, so the arithmetic stays Prometheus' bit for bit.
type rateMemo struct {
	spanMs, toStartMs, toEndMs int64
	n                          int
	sampled, toStart, toEnd    float64
	avg                        float64
	// The factor and what it was computed from (rangeSeconds is one
	// per part, as is isRate).
	fSampled, fStart, fEnd, factor float64
	fRate, fValid, valid           bool
}

// rate is promql's extrapolatedRate, float branch, for the samples
// first..last (at least two) of a window [rangeStart, rangeEnd]
// (isCounter is true: rate and increase).
func (b *fastSeries) rate(first, last int, hasReset bool, rangeStart, rangeEnd int64, isRate bool, rangeSeconds float64) float64 {
	resultFloat := b.fs[last] - b.fs[first]
	if hasReset {
		// The window holds a reset: Prometheus' loop, as written.
		for i := first + 1; i <= last; i++ {
			if b.fs[i] < b.fs[i-1] {
				resultFloat += b.fs[i-1]
			}
		}
	}
	m := &b.memo
	firstT, lastT := b.ts[first], b.ts[last]
	numSamplesMinusOne := last - first
	// durationToStart := float64(firstT-rangeStart) / 1000, and so on,
	// each division done only when its operand changed.
	if d := firstT - rangeStart; !m.valid || d != m.toStartMs {
		m.toStartMs, m.toStart = d, float64(d)/1000
	}
	if d := rangeEnd - lastT; !m.valid || d != m.toEndMs {
		m.toEndMs, m.toEnd = d, float64(d)/1000
	}
	if d := lastT - firstT; !m.valid || d != m.spanMs || numSamplesMinusOne != m.n {
		m.spanMs, m.n = d, numSamplesMinusOne
		m.sampled = float64(d) / 1000
		m.avg = m.sampled / float64(numSamplesMinusOne)
	}
	m.valid = true
	durationToStart, durationToEnd := m.toStart, m.toEnd
	sampledInterval := m.sampled
	averageDurationBetweenSamples := m.avg
	extrapolationThreshold := averageDurationBetweenSamples * 1.1
	if durationToStart >= extrapolationThreshold {
		durationToStart = averageDurationBetweenSamples / 2
	}
	if f := b.fs[first]; resultFloat > 0 && f >= 0 {
		// durationToZero := sampledInterval * (f / resultFloat), which
		// matters only where it is below durationToStart. Where f is
		// clearly more than resultFloat * durationToStart /
		// sampledInterval (by twice, far beyond any rounding, in the
		// range where no product under- or overflows), it is not, and
		// the division is skipped.
		if !(resultFloat > 1e-290 && f < 1e290 && f*sampledInterval > 2*durationToStart*resultFloat) {
			if durationToZero := sampledInterval * (f / resultFloat); durationToZero < durationToStart {
				durationToStart = durationToZero
			}
		}
	}
	if durationToEnd >= extrapolationThreshold {
		durationToEnd = averageDurationBetweenSamples / 2
	}
	// factor := (sampledInterval + durationToStart + durationToEnd) /
	// sampledInterval (1 where sampledInterval is 0), then / rangeSeconds
	// for rate.
	if !m.fValid || m.fSampled != sampledInterval || m.fStart != durationToStart || m.fEnd != durationToEnd || m.fRate != isRate {
		m.fValid, m.fSampled, m.fStart, m.fEnd, m.fRate = true, sampledInterval, durationToStart, durationToEnd, isRate
		m.factor = 1.0
		if sampledInterval != 0 {
			m.factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval
		}
		if isRate {
			m.factor /= rangeSeconds
		}
	}
	factor := m.factor
	resultFloat *= factor
	return resultFloat
}
