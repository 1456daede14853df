package query

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// rangeEngine is the promql.QueryEngine the API runs on. Instant queries
// go to Prometheus' engine as they are. A range query is answered from
// time slices: slices the result cache holds are reused, the others are
// evaluated by Prometheus' engine as range queries of their own, several
// at once.
//
// Why this is exact: PromQL evaluates every step of a range query on its
// own — a step's value depends on the data around that step's time, never
// on the query's other steps (subquery steps are aligned to absolute time)
// — so the steps of [start, end] evaluated as a few shorter range queries
// are the steps Prometheus computes for the whole range, and their series
// merge by labels into the same matrix, sorted the same way. The
// exceptions are handled by not slicing: @ start() / @ end() (whose time
// is the whole query's), per-step statistics and stats=all (whose peak
// counts are the whole query's), and queries that touch no data.
//
// Where Telltale differs on purpose: -query.max-samples bounds each slice,
// so a range query whose whole result would exceed it may still succeed.
type rangeEngine struct {
	eng   *promql.Engine
	cache *resultCache // nil: no result cache
	// parallel is how many slices of one query are evaluated at once.
	parallel int
	// minSliceSteps is the fewest steps worth a slice of its own.
	minSliceSteps int
	// lookback is the engine's default lookback delta.
	lookback time.Duration
	// fast turns on the fast path for range queries (fastpath.go);
	// maxSamples is the engine's -query.max-samples.
	fast       bool
	maxSamples int
	timeout    time.Duration
	fastTaken  *metrics.Counter
	fastEngine *metrics.Counter
	// whole holds queries whose answers carry annotations that only the
	// whole query gets right (see aggregatingAnnotation); bounded.
	wholeMu sync.Mutex
	whole   map[string]struct{}
}

// wholeOnly reports whether qs's answers must come from the whole query.
func (e *rangeEngine) wholeOnly(qs string) bool {
	e.wholeMu.Lock()
	defer e.wholeMu.Unlock()
	_, ok := e.whole[qs]
	return ok
}

func (e *rangeEngine) markWholeOnly(qs string) {
	e.wholeMu.Lock()
	defer e.wholeMu.Unlock()
	if e.whole == nil || len(e.whole) >= 1000 {
		e.whole = map[string]struct{}{}
	}
	e.whole[qs] = struct{}{}
}

// ctxKey carries per-request choices from the HTTP guard to the engine.
type ctxKey struct{}

// rangeHints are what the request asked of a range query beyond PromQL.
type rangeHints struct {
	stats   bool // stats=... : run as one query, its statistics are the answer's
	noCache bool // nocache=1 : neither read nor fill the result cache
}

func withHints(ctx context.Context, h rangeHints) context.Context {
	return context.WithValue(ctx, ctxKey{}, h)
}

func hintsFrom(ctx context.Context) rangeHints {
	h, _ := ctx.Value(ctxKey{}).(rangeHints)
	return h
}

func (e *rangeEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return e.eng.NewInstantQuery(ctx, q, opts, qs, ts)
}

func (e *rangeEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	// The whole query first: it parses and checks qs exactly as Prometheus
	// does, and is what runs when slicing does not apply.
	h := hintsFrom(ctx)
	full, err := e.newRangeQuery(ctx, q, opts, qs, start, end, step, h)
	if err != nil {
		return nil, err
	}
	stmt, ok := full.Statement().(*parser.EvalStmt)
	if !ok || h.stats || (opts != nil && opts.EnablePerStepStats()) || !sliceable(qs, stmt.Expr) || e.wholeOnly(qs) {
		return full, nil
	}
	// The steps are start, start+step, ... up to end: the last one is end
	// only when end is on that grid (a sub-millisecond time often rounds
	// to an end a millisecond short of it). Slices, cached chunks and the
	// cache's spans are all on the grid, so end is taken to its last step.
	from, to, every := start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	if every > 0 && to > from {
		to = from + (to-from)/every*every
	}
	return &slicedQuery{e: e, full: full, stmt: stmt, q: q, opts: opts, qs: qs,
		start: from, end: to, step: every, noCache: h.noCache}, nil
}

// newRangeQuery is Prometheus' range query, on the fast path
// (fastpath.go) where it is on and the answer carries no statistics.
func (e *rangeEngine) newRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration, h rangeHints) (promql.Query, error) {
	if !e.fast || h.stats || (opts != nil && opts.EnablePerStepStats()) {
		return e.eng.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	}
	pq := &pinnedQueryable{Queryable: q}
	query, err := e.eng.NewRangeQuery(ctx, pq, opts, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	return &fastQuery{Query: query, pq: pq, maxSamples: e.maxSamples, timeout: e.timeout, used: e.fastTaken, declined: e.fastEngine}, nil
}

// sliceable reports whether the steps of qs (parsed: expr) may be
// evaluated in separate range queries: it reads data, no @ refers to the
// query's start or end, and no duration expression uses range() (the
// query's length).
func sliceable(qs string, expr parser.Expr) bool {
	l := parser.Lex(qs)
	var it parser.Item
	for l.NextItem(&it); it.Typ != parser.EOF && it.Typ != parser.ERROR; l.NextItem(&it) {
		if it.Typ == parser.RANGE {
			return false
		}
	}
	ok, selects := true, false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch x := n.(type) {
		case *parser.VectorSelector:
			selects = true
			if x.StartOrEnd != 0 {
				ok = false
			}
		case *parser.SubqueryExpr:
			if x.StartOrEnd != 0 {
				ok = false
			}
		case *parser.StepInvariantExpr:
			// The engine evaluates these once for the whole range; the
			// value is the same at every step, so slicing keeps it.
		}
		return nil
	})
	return ok && selects
}

// slicedQuery is a range query answered from slices.
type slicedQuery struct {
	e                *rangeEngine
	full             promql.Query
	stmt             *parser.EvalStmt
	q                storage.Queryable
	opts             promql.QueryOpts
	qs               string
	start, end, step int64 // ms
	noCache          bool
	noted            promql.Matrix // the answer whose cached points' JSON the encoder was told of
}

func (s *slicedQuery) Statement() parser.Statement { return s.full.Statement() }
func (s *slicedQuery) Stats() *stats.Statistics    { return s.full.Stats() }
func (s *slicedQuery) Cancel()                     { s.full.Cancel() }
func (s *slicedQuery) String() string              { return s.qs }

// Close releases the whole query the slices stand in for; the slices'
// results were copied out of the engine's pools when they finished.
func (s *slicedQuery) Close() {
	forgetEncoded(s.noted)
	s.full.Close()
}

// span is a run of steps [from, to] (ms, both on the query's step grid);
// extended spans reach one step into what is answered otherwise.
type span struct {
	from, to int64
	extended bool
}

func (s *slicedQuery) Exec(ctx context.Context) *promql.Result {
	e := s.e
	var (
		key    cacheKey
		cached []*chunk
		seq    uint64
		cutoff int64
	)
	useCache := e.cache != nil && !s.noCache
	if useCache {
		lookback := s.stmt.LookbackDelta
		if lookback == 0 {
			lookback = e.lookback
		}
		key = cacheKey{query: s.qs, step: s.step, phase: mod(s.start, s.step), lookback: lookback}
		seq = e.cache.seq()
		cutoff = e.cache.cutoff()
		cached = e.cache.get(key, s.start, s.end)
	}
	// What the cache does not hold is evaluated, in slices of at least
	// minSliceSteps steps, split at the cutoff so the older part can be
	// kept.
	var todo []span
	next := s.start
	for _, c := range cached {
		if from := max(c.from, s.start); from > next {
			todo = append(todo, s.slices(next, from-s.step, cutoff)...)
		}
		next = min(c.to, s.end) + s.step
	}
	if next <= s.end {
		todo = append(todo, s.slices(next, s.end, cutoff)...)
	}
	// The engine treats a range query of one step like an instant query
	// (topk keeps its order, sort warns of nothing): a one-step gap of a
	// longer query is evaluated with a neighbouring step, which merge
	// drops again; such a span is not cached.
	for i, sp := range todo {
		if sp.from == sp.to && s.start != s.end {
			if sp.from-s.step >= s.start {
				todo[i] = span{sp.from - s.step, sp.to, true}
			} else {
				todo[i] = span{sp.from, sp.to + s.step, true}
			}
		}
	}
	if len(cached) == 0 && len(todo) == 1 {
		// Nothing to reuse, nothing to split: the whole query, as
		// Prometheus runs it.
		res := s.full.Exec(ctx)
		if res.Err == nil && useCache && s.end <= cutoff {
			if m, ok := res.Value.(promql.Matrix); ok {
				e.cache.put(key, seq, cutoff, s.start, s.newChunk(span{from: s.start, to: s.end}, m, res.Warnings))
			}
		}
		return res
	}
	computed, res := s.evaluate(ctx, todo)
	if res != nil {
		if ctx.Err() != nil {
			return res
		}
		// A slice failed where the whole query might not, or fail in
		// other words (-query.max-samples counts a slice; a range that
		// cuts a chunk with deletion marks trips a bug of Prometheus'
		// tombstones.Intervals.Add that the whole range may not): the
		// answer is the whole query's, whatever it is.
		return s.full.Exec(ctx)
	}
	for _, c := range append(cached, computed...) {
		if c.aggregated {
			// An annotation that sums over the query's steps: its text
			// depends on how the steps were grouped, so only the whole
			// query gives Prometheus' words.
			e.markWholeOnly(s.qs)
			return s.full.Exec(ctx)
		}
	}
	if useCache {
		e.cache.put(key, seq, cutoff, s.start, computed...)
	}
	all := append(append([]*chunk{}, cached...), computed...)
	sort.Slice(all, func(i, j int) bool { return all[i].from < all[j].from })
	res, segs := merge(all, s.start, s.end)
	if m := res.Value.(promql.Matrix); noteSegs(m, segs) {
		s.noted = m
	}
	return res
}

// slices cuts [from, to] into spans of at least minSliceSteps (and two)
// steps, about parallel of them, with a boundary after cutoff.
func (s *slicedQuery) slices(from, to, cutoff int64) []span {
	minSteps := int64(max(2, s.e.minSliceSteps))
	var parts []span
	if c := from + (cutoff-from)/s.step*s.step; from < c && c+s.step < to {
		parts = append(parts, span{from: from, to: c}, span{from: c + s.step, to: to})
	} else {
		parts = append(parts, span{from: from, to: to})
	}
	var out []span
	for _, p := range parts {
		steps := (p.to-p.from)/s.step + 1
		n := min(int64(s.e.parallel), steps/minSteps)
		if n <= 1 {
			out = append(out, p)
			continue
		}
		per := steps / n
		for k := range n {
			f := p.from + k*per*s.step
			t := f + (per-1)*s.step
			if k == n-1 {
				t = p.to
			}
			out = append(out, span{from: f, to: t})
		}
	}
	return out
}

// evaluate runs the spans as range queries, parallel at a time, and
// returns their results as chunks in span order, or the first failure as
// Prometheus would answer it.
func (s *slicedQuery) evaluate(ctx context.Context, todo []span) ([]*chunk, *promql.Result) {
	out := make([]*chunk, len(todo))
	errs := make([]*promql.Result, len(todo))
	sem := make(chan struct{}, s.e.parallel)
	var wg sync.WaitGroup
	for i, sp := range todo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			q, err := s.e.newRangeQuery(ctx, s.q, s.opts, s.qs, time.UnixMilli(sp.from), time.UnixMilli(sp.to), time.Duration(s.step)*time.Millisecond, rangeHints{noCache: s.noCache})
			if err != nil {
				errs[i] = &promql.Result{Err: err}
				return
			}
			defer q.Close()
			res := q.Exec(ctx)
			if res.Err != nil {
				errs[i] = &promql.Result{Err: res.Err, Warnings: res.Warnings}
				return
			}
			m, _ := res.Value.(promql.Matrix)
			out[i] = s.newChunk(sp, m, res.Warnings)
		})
	}
	wg.Wait()
	for _, r := range errs {
		if r != nil {
			return nil, r
		}
	}
	return out, nil
}

// newChunk copies m out of the engine's pools into a chunk for [sp].
func (s *slicedQuery) newChunk(sp span, m promql.Matrix, warns annotations.Annotations) *chunk {
	c := &chunk{from: sp.from, to: sp.to, series: make([]promql.Series, len(m)), extended: sp.extended}
	for i, ser := range m {
		cs := promql.Series{Metric: ser.Metric, DropName: ser.DropName}
		if len(ser.Floats) > 0 {
			cs.Floats = append([]promql.FPoint(nil), ser.Floats...)
		}
		if len(ser.Histograms) > 0 {
			cs.Histograms = make([]promql.HPoint, len(ser.Histograms))
			for k, h := range ser.Histograms {
				cs.Histograms[k] = promql.HPoint{T: h.T, H: h.H.Copy()}
			}
		}
		c.series[i] = cs
	}
	if len(warns) > 0 {
		c.annos = annotations.Annotations{}
		c.annos.Merge(warns)
		for _, err := range warns {
			c.aggregated = c.aggregated || aggregatingAnnotation(err)
		}
	}
	if s.e.cache != nil {
		c.depFrom, c.depTo = s.dependency(sp)
		c.names = s.e.cache.names(s.stmt.Expr)
		c.minTime = s.e.cache.minTime()
	}
	c.size = c.bytes()
	return c
}

// aggregatingAnnotation reports whether err is one of the annotations that
// Prometheus merges across steps into counts and time ranges (rather than
// reporting once): merged per slice, their text would differ.
func aggregatingAnnotation(err error) bool {
	return errors.Is(err, annotations.HistogramQuantileForcedMonotonicityInfo) || errors.Is(err, annotations.StartTimeOverlapWarning)
}

// dependency is the time range of data the steps of sp read.
func (s *slicedQuery) dependency(sp span) (int64, int64) {
	st := *s.stmt
	st.Start, st.End = time.UnixMilli(sp.from), time.UnixMilli(sp.to)
	if st.LookbackDelta == 0 {
		st.LookbackDelta = s.e.lookback
	}
	return promql.FindMinMaxTime(&st)
}

// merge joins chunks (in time order, each [from, to] on the step grid) into
// the matrix of [start, end]: every series with its points in time order,
// series sorted by labels, and the annotations of every chunk. A chunk that
// reaches outside [start, end] is cut (only chunks without annotations
// are; see resultCache.get).
func merge(chunks []*chunk, start, end int64) (*promql.Result, [][]pointSeg) {
	idx := map[uint64][]int{}
	var mat promql.Matrix
	var segs [][]pointSeg // per series of mat: its points that have JSON in a chunk
	var warns annotations.Annotations
	for _, c := range chunks {
		if len(c.annos) > 0 {
			if warns == nil {
				warns = annotations.Annotations{}
			}
			warns.Merge(c.annos)
		}
		for si, ser := range c.series {
			fa, fb := cutIdx(ser.Floats, start, end, func(p promql.FPoint) int64 { return p.T })
			hs := cut(ser.Histograms, start, end, func(p promql.HPoint) int64 { return p.T })
			if fa == fb && len(hs) == 0 {
				continue
			}
			h := ser.Metric.Hash()
			at := -1
			for _, i := range idx[h] {
				if labels.Equal(mat[i].Metric, ser.Metric) {
					at = i
					break
				}
			}
			if at < 0 {
				at = len(mat)
				idx[h] = append(idx[h], at)
				mat = append(mat, promql.Series{Metric: ser.Metric, DropName: ser.DropName})
				segs = append(segs, nil)
			}
			// Chunks may share a step (an extended span): each step once.
			if n := len(mat[at].Floats); n > 0 {
				after := mat[at].Floats[n-1].T
				fa = max(fa, sort.Search(len(ser.Floats), func(i int) bool { return ser.Floats[i].T > after }))
				fb = max(fa, fb)
			}
			if n := len(mat[at].Histograms); n > 0 {
				hs = cut(hs, mat[at].Histograms[n-1].T+1, end, func(p promql.HPoint) int64 { return p.T })
			}
			if fa < fb && si < len(c.enc) && c.enc[si] != nil {
				segs[at] = append(segs[at], pointSeg{at: len(mat[at].Floats), from: fa, n: fb - fa, enc: c.enc[si]})
			}
			mat[at].Floats = append(mat[at].Floats, ser.Floats[fa:fb]...)
			mat[at].Histograms = append(mat[at].Histograms, hs...)
		}
	}
	sort.Sort(matrixWithSegs{mat, segs})
	return &promql.Result{Value: mat, Warnings: warns}, segs
}

// matrixWithSegs sorts a matrix as promql.Matrix sorts (by labels), its
// series' segments along.
type matrixWithSegs struct {
	m    promql.Matrix
	segs [][]pointSeg
}

func (x matrixWithSegs) Len() int           { return len(x.m) }
func (x matrixWithSegs) Less(i, j int) bool { return x.m.Less(i, j) }
func (x matrixWithSegs) Swap(i, j int) {
	x.m.Swap(i, j)
	x.segs[i], x.segs[j] = x.segs[j], x.segs[i]
}

// noteSegs tells the matrix encoder which points of m have JSON in a
// cached chunk (encode.go); false if none.
func noteSegs(m promql.Matrix, segs [][]pointSeg) bool {
	var es []encodedSeries
	for i, sg := range segs {
		if len(sg) == 0 {
			continue
		}
		if es == nil {
			es = make([]encodedSeries, len(m))
		}
		es[i] = encodedSeries{floats: unsafe.SliceData(m[i].Floats), n: len(m[i].Floats), segs: sg}
	}
	if es == nil {
		return false
	}
	noteEncoded(m, es)
	return true
}

// cut returns the points of ps (in time order) within [from, to].
func cut[P any](ps []P, from, to int64, t func(P) int64) []P {
	i, j := cutIdx(ps, from, to, t)
	return ps[i:j]
}

// cutIdx returns the indexes [i, j) of the points of ps (in time order)
// within [from, to].
func cutIdx[P any](ps []P, from, to int64, t func(P) int64) (int, int) {
	i := sort.Search(len(ps), func(i int) bool { return t(ps[i]) >= from })
	j := sort.Search(len(ps), func(i int) bool { return t(ps[i]) > to })
	return i, j
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
