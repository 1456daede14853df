package query

import (
	"container/list"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/telltale-dev/telltale/samples"
)

// resultCache keeps the steps range queries computed, so a dashboard that
// asks for the same hour every refresh has only the newest steps
// evaluated (what VictoriaMetrics' rollup cache and the Thanos/Cortex query
// frontend do).
//
// Exactness. A cached step must equal what the engine would compute now.
// Three things change past data:
//
//   - Late samples. Only steps whose data ends before the cutoff (now minus
//     Freshness, when the query started) are kept; a sample that can change
//     such a step has a timestamp at least Freshness older than the moment
//     it is written. The cache watches every committed write (it is an
//     ingest observer): a sample older than that drops the cached slices
//     whose data range holds it, for queries that can read its metric. A
//     query that was running when such a write came in does not store its
//     result at all (its evaluation may or may not have seen the sample).
//   - Deletes (the admin API) drop everything.
//   - Retention: a slice computed when the storage held older data than it
//     holds now, and whose data range reaches into what is gone, is dropped
//     when next asked for.
//
// Annotations (warnings, infos) belong to a slice as a whole: a slice with
// annotations is only used when the request covers all of it; a slice
// without may be cut to any part of it.
//
// Memory is bounded by MaxBytes (least recently used queries go first).
type resultCache struct {
	maxBytes  int64
	freshness time.Duration
	now       func() time.Time
	minTime   func() int64 // the oldest sample time the storage holds

	mu      sync.Mutex
	bytes   int64
	entries map[cacheKey]*entry
	lru     *list.List // of *entry, most recent first
	byName  map[string]map[*entry]struct{}
	late    atomic.Uint64 // count of late-write and delete events

	stepsCached, stepsComputed *metrics.Counter
	evictions, lateDrops       *metrics.Counter
	deletes, retentionDrops    *metrics.Counter
}

// cacheKey identifies a query whose steps are interchangeable: the same
// expression on the same step grid (step and phase: start mod step) with
// the same lookback.
type cacheKey struct {
	query       string
	step, phase int64
	lookback    time.Duration
}

type entry struct {
	key    cacheKey
	chunks []*chunk // sorted by from, not overlapping
	elem   *list.Element
	names  []string
}

// chunk is the result of steps [from, to] of one query.
type chunk struct {
	from, to       int64
	series         []promql.Series // sorted by labels; points are the cache's own
	annos          annotations.Annotations
	depFrom, depTo int64    // the data the steps read
	names          []string // metric names the query reads; "" is any
	minTime        int64    // the storage's oldest sample when computed
	size           int64
	aggregated     bool // has an annotation merged across steps: never stored
	extended       bool // reaches a step into another chunk: never stored
	// enc[i] is series i's points as the API writes them (nil: histograms),
	// set when the chunk is stored (encode.go).
	enc []*pointsEnc
}

func newResultCache(maxBytes int64, freshness time.Duration, now func() time.Time, minTime func() int64, set *metrics.Set) *resultCache {
	c := &resultCache{
		maxBytes: maxBytes, freshness: freshness, now: now, minTime: minTime,
		entries: map[cacheKey]*entry{}, lru: list.New(), byName: map[string]map[*entry]struct{}{},
		stepsCached:    set.GetOrCreateCounter(`telltale_query_cache_steps_total{source="cache"}`),
		stepsComputed:  set.GetOrCreateCounter(`telltale_query_cache_steps_total{source="computed"}`),
		evictions:      set.GetOrCreateCounter(`telltale_query_cache_evictions_total`),
		lateDrops:      set.GetOrCreateCounter(`telltale_query_cache_invalidations_total{reason="late_write"}`),
		deletes:        set.GetOrCreateCounter(`telltale_query_cache_invalidations_total{reason="delete"}`),
		retentionDrops: set.GetOrCreateCounter(`telltale_query_cache_invalidations_total{reason="retention"}`),
	}
	set.NewGauge("telltale_query_cache_bytes", func() float64 { c.mu.Lock(); defer c.mu.Unlock(); return float64(c.bytes) })
	set.NewGauge("telltale_query_cache_entries", func() float64 { c.mu.Lock(); defer c.mu.Unlock(); return float64(len(c.entries)) })
	set.NewGauge("telltale_query_cache_max_bytes", func() float64 { return float64(c.maxBytes) })
	return c
}

// seq returns the count of late writes and deletes so far: a result
// computed while it changed is not stored.
func (c *resultCache) seq() uint64 { return c.late.Load() }

// cutoff is the newest data time a result computed now may depend on and
// still be stored.
func (c *resultCache) cutoff() int64 { return c.now().Add(-c.freshness).UnixMilli() }

// names lists the metric names expr reads, "" standing for a selector
// without one (it may read any metric).
func (c *resultCache) names(expr parser.Expr) []string {
	seen := map[string]bool{}
	var out []string
	for _, ms := range parser.ExtractSelectors(expr) {
		name := ""
		for _, m := range ms {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// get returns the cached chunks of key usable for [start, end], in time
// order: those overlapping it that have no annotations, and those with
// annotations that lie within it.
func (c *resultCache) get(key cacheKey, start, end int64) []*chunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		return nil
	}
	c.lru.MoveToFront(e.elem)
	oldest := c.minTime()
	var out []*chunk
	kept := e.chunks[:0]
	for _, ch := range e.chunks {
		if oldest > ch.minTime && ch.depFrom < oldest {
			// Retention removed data this chunk was computed from.
			c.retentionDrops.Inc()
			c.bytes -= ch.size
			continue
		}
		kept = append(kept, ch)
		if ch.to < start || ch.from > end {
			continue
		}
		if len(ch.annos) > 0 && (ch.from < start || ch.to > end) {
			continue
		}
		out = append(out, ch)
	}
	clear(e.chunks[len(kept):])
	e.chunks = kept
	for _, ch := range out {
		c.stepsCached.Add(int((min(ch.to, end)-max(ch.from, start))/key.step + 1))
	}
	return out
}

// put stores the computed chunks of key whose data ends by cutoff (taken
// with seq when the query started), unless a late write or delete came in
// since. Chunks of the entry that end before start are dropped: the
// query's window has moved past them.
func (c *resultCache) put(key cacheKey, seq uint64, cutoff, start int64, chunks ...*chunk) {
	for _, ch := range chunks {
		c.stepsComputed.Add(int((ch.to-ch.from)/key.step + 1))
	}
	var keep []*chunk
	for _, ch := range chunks {
		if ch.depTo <= cutoff && ch.size <= c.maxBytes/4 && !ch.aggregated && !ch.extended {
			// The JSON of its points, written once for every answer
			// that will take them from here.
			ch.enc = chunkEncoding(ch.series)
			ch.size += encSize(ch.enc)
			keep = append(keep, ch)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(keep) == 0 || c.late.Load() != seq {
		return
	}
	e := c.entries[key]
	if e == nil {
		e = &entry{key: key, names: keep[0].names}
		e.elem = c.lru.PushFront(e)
		c.entries[key] = e
		for _, n := range e.names {
			if c.byName[n] == nil {
				c.byName[n] = map[*entry]struct{}{}
			}
			c.byName[n][e] = struct{}{}
		}
	}
	c.lru.MoveToFront(e.elem)
	// The new chunks replace what they overlap.
	var merged []*chunk
	for _, old := range e.chunks {
		drop := old.to < start
		for _, ch := range keep {
			drop = drop || old.from <= ch.to && ch.from <= old.to
		}
		if drop {
			c.bytes -= old.size
			continue
		}
		merged = append(merged, old)
	}
	for _, ch := range keep {
		merged = append(merged, ch)
		c.bytes += ch.size
	}
	sort.Slice(merged, func(i, j int) bool { return merged[i].from < merged[j].from })
	if len(merged) > 8 {
		// Refreshes add a small chunk each time; join runs of them.
		merged = c.coalesce(merged, key.step)
	}
	e.chunks = merged
	if len(e.chunks) == 0 {
		c.remove(e)
	}
	for c.bytes > c.maxBytes && c.lru.Len() > 0 {
		c.evictions.Inc()
		c.remove(c.lru.Back().Value.(*entry))
	}
}

// coalesce joins adjacent chunks (no step between them) into one.
func (c *resultCache) coalesce(chunks []*chunk, step int64) []*chunk {
	out := []*chunk{chunks[0]}
	for _, ch := range chunks[1:] {
		last := out[len(out)-1]
		if last.to+step != ch.from {
			out = append(out, ch)
			continue
		}
		res, segs := merge([]*chunk{last, ch}, last.from, ch.to)
		j := &chunk{from: last.from, to: ch.to, series: res.Value.(promql.Matrix), annos: res.Warnings,
			depFrom: min(last.depFrom, ch.depFrom), depTo: max(last.depTo, ch.depTo), names: last.names,
			minTime: max(last.minTime, ch.minTime)}
		// The joined JSON: the parts' bytes, copied.
		j.enc = make([]*pointsEnc, len(j.series))
		for i, ser := range j.series {
			if len(ser.Histograms) == 0 && len(ser.Floats) > 0 {
				j.enc[i] = encodePoints(ser.Floats, segs[i])
			}
		}
		j.size = j.bytes() + encSize(j.enc)
		c.bytes += j.size - last.size - ch.size
		out[len(out)-1] = j
	}
	return out
}

func (c *resultCache) remove(e *entry) {
	for _, ch := range e.chunks {
		c.bytes -= ch.size
	}
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
	for _, n := range e.names {
		delete(c.byName[n], e)
		if len(c.byName[n]) == 0 {
			delete(c.byName, n)
		}
	}
}

// clear drops everything: data was deleted.
func (c *resultCache) clear() {
	c.late.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deletes.Inc()
	for _, e := range c.entries {
		c.remove(e)
	}
}

// Active reports that the cache wants to see every write: even when it
// holds nothing, a query running now must learn of a late write.
func (c *resultCache) Active() bool { return true }

// Observe looks at a committed write for late samples, float or histogram
// (older than now minus Freshness), and drops the cached chunks they can change. The usual
// write, all samples recent, costs one pass over its timestamps.
func (c *resultCache) Observe(b *samples.Batch, _ []storage.SeriesRef) {
	cut := c.cutoff()
	late := false
	for _, s := range b.Samples {
		if s.T <= cut {
			late = true
			break
		}
	}
	for i := 0; i < len(b.Histograms) && !late; i++ {
		late = b.Histograms[i].T <= cut
	}
	if !late {
		return
	}
	type window struct{ from, to int64 }
	byName := map[string]window{}
	for i := range b.Series {
		s := &b.Series[i]
		w := window{from: 1<<63 - 1, to: -1 << 63}
		for _, smp := range b.SeriesSamples(s) {
			if smp.T <= cut {
				w.from, w.to = min(w.from, smp.T), max(w.to, smp.T)
			}
		}
		for _, h := range b.SeriesHistograms(s) {
			if h.T <= cut {
				w.from, w.to = min(w.from, h.T), max(w.to, h.T)
			}
		}
		if w.to == -1<<63 {
			continue
		}
		name := b.Name(s)
		if old, ok := byName[name]; ok {
			w.from, w.to = min(w.from, old.from), max(w.to, old.to)
		}
		byName[name] = w
	}
	c.late.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, w := range byName {
		for _, n := range []string{name, ""} {
			for e := range c.byName[n] {
				kept := e.chunks[:0]
				for _, ch := range e.chunks {
					if ch.depFrom <= w.to && w.from <= ch.depTo {
						c.lateDrops.Inc()
						c.bytes -= ch.size
						continue
					}
					kept = append(kept, ch)
				}
				clear(e.chunks[len(kept):])
				e.chunks = kept
				if len(e.chunks) == 0 {
					c.remove(e)
				}
			}
		}
	}
}

// bytes estimates the memory a chunk holds.
func (ch *chunk) bytes() int64 {
	n := int64(200)
	for _, s := range ch.series {
		n += 64 + int64(s.Metric.ByteSize()) + 16*int64(len(s.Floats))
		for _, h := range s.Histograms {
			n += 16 + int64(h.H.Size())
		}
	}
	return n
}
