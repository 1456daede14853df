// Package ingest is the collector's write path: it validates a decoded
// samples.Batch against the limits, resolves each series to a storage
// reference (cached by the series key so a series seen before skips label
// building and hashing), appends all samples in one storage transaction and
// commits it, then tells observers (the live tail).
//
// Promise: Write returns nil only after every sample of the batch is
// committed; on any error nothing of the batch is committed.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/telltale-dev/telltale/samples"
)

// Sentinel errors callers map to HTTP status codes with errors.Is.
var (
	// ErrInvalid marks input that can never be written: 400, do not retry.
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge marks a body over a size limit: 413.
	ErrTooLarge = errors.New("request too large")
	// ErrUnsupportedMediaType marks an unknown Content-Type or encoding: 415.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrOverloaded marks a request that could not get an insert slot in
	// time: 503 with Retry-After, the sender should retry.
	ErrOverloaded = errors.New("overloaded")
	// ErrStorage marks a storage failure: 503 with Retry-After.
	ErrStorage = errors.New("storage unavailable")
)

// Appendable is what the writer needs from storage.
type Appendable interface {
	Appender(ctx context.Context) promstorage.Appender
}

// Observer is told about every committed batch, e.g. the live tail.
type Observer interface {
	// Active reports whether Observe has any work to do; when false the
	// writer skips it, so an idle tail costs nothing.
	Active() bool
	// Observe is called after b is committed; refs[i] is the storage
	// reference of b.Series[i]. It must not keep b or refs after returning
	// and must not block.
	Observe(b *samples.Batch, refs []promstorage.SeriesRef)
}

// Limits bound what one series may look like. Zero means no limit.
type Limits struct {
	MaxLabelsPerSeries int
	MaxLabelNameLen    int
	MaxLabelValueLen   int
	// MaxFutureDrift rejects samples later than now+MaxFutureDrift.
	MaxFutureDrift time.Duration
	// MaxConcurrentInserts bounds writes in progress; 0 means unbounded.
	MaxConcurrentInserts int
	// MaxQueueDuration is how long a write waits for a slot before it is
	// answered 503.
	MaxQueueDuration time.Duration
}

// Options configure NewWriter.
type Options struct {
	Limits  Limits
	Logger  *slog.Logger
	Metrics *metrics.Set
	// Now is the clock; nil means time.Now.
	Now      func() time.Time
	Observer Observer
}

// Writer is the shared write path of every ingest endpoint. It is safe for
// concurrent use.
type Writer struct {
	db     Appendable
	limits Limits
	log    *slog.Logger
	set    *metrics.Set
	now    func() time.Time
	obs    Observer
	cache  *refCache
	meta   *MetadataStore
	slots  chan struct{}

	scratch sync.Pool // *writeScratch

	rejected  sync.Map // reason -> *metrics.Counter
	samplesC  *metrics.Counter
	seriesC   *metrics.Counter
	cacheMis  *metrics.Counter
	staleRefs *metrics.Counter
}

type writeScratch struct {
	refs    []promstorage.SeriesRef
	builder labels.ScratchBuilder
}

// NewWriter returns a writer appending to db.
func NewWriter(db Appendable, opts Options) *Writer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{
		db:     db,
		limits: opts.Limits,
		log:    opts.Logger,
		set:    opts.Metrics,
		now:    opts.Now,
		obs:    opts.Observer,
		cache:  newRefCache(),
		meta:   NewMetadataStore(),
	}
	if n := opts.Limits.MaxConcurrentInserts; n > 0 {
		w.slots = make(chan struct{}, n)
	}
	w.samplesC = w.set.NewCounter("telltale_ingest_committed_samples_total")
	w.seriesC = w.set.NewCounter("telltale_ingest_new_series_total")
	w.cacheMis = w.set.NewCounter("telltale_ingest_series_cache_misses_total")
	w.staleRefs = w.set.NewCounter("telltale_ingest_series_cache_stale_total")
	w.set.NewGauge("telltale_ingest_series_cache_entries", func() float64 { return float64(w.cache.len()) })
	w.set.NewGauge("telltale_ingest_concurrent_inserts", func() float64 { return float64(len(w.slots)) })
	w.set.NewGauge("telltale_ingest_concurrent_inserts_limit", func() float64 { return float64(cap(w.slots)) })
	return w
}

// SetObserver sets the observer told about committed batches. Call it
// before the first Write.
func (w *Writer) SetObserver(o Observer) { w.obs = o }

// Metadata returns the store of metric metadata seen so far.
func (w *Writer) Metadata() *MetadataStore { return w.meta }

// CountRejected counts a rejected request or sample under reason (a short
// snake_case word such as too_many_labels).
func (w *Writer) CountRejected(reason string, n int) {
	c, ok := w.rejected.Load(reason)
	if !ok {
		c, _ = w.rejected.LoadOrStore(reason, w.set.GetOrCreateCounter(`telltale_ingest_rejected_total{reason="`+reason+`"}`))
	}
	c.(*metrics.Counter).Add(n)
}

// Acquire takes an insert slot, waiting at most MaxQueueDuration. Handlers
// call it before reading the body, so concurrent inserts bound memory too.
// The returned release must be called exactly once.
func (w *Writer) Acquire(ctx context.Context) (release func(), err error) {
	if w.slots == nil {
		return func() {}, nil
	}
	select {
	case w.slots <- struct{}{}:
		return w.release, nil
	default:
	}
	wait := w.limits.MaxQueueDuration
	if wait <= 0 {
		wait = time.Minute
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case w.slots <- struct{}{}:
		return w.release, nil
	case <-t.C:
		w.CountRejected("overloaded", 1)
		return nil, fmt.Errorf("%w: all %d insert slots busy for %s; retry later or raise -ingest.max-concurrent-inserts", ErrOverloaded, cap(w.slots), wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *Writer) release() { <-w.slots }

// WriteSamples writes b; it implements the deploy service's SampleWriter.
func (w *Writer) WriteSamples(ctx context.Context, b *samples.Batch) error {
	return w.Write(ctx, b)
}

// Write validates b, appends all of it and commits. On error nothing of b
// is committed; the error wraps ErrInvalid or ErrStorage.
func (w *Writer) Write(ctx context.Context, b *samples.Batch) error {
	if len(b.Samples) == 0 {
		w.meta.Add(b.Metadata)
		return nil
	}
	sc, _ := w.scratch.Get().(*writeScratch)
	if sc == nil {
		sc = &writeScratch{}
	}
	defer w.scratch.Put(sc)
	refs := sc.refs[:0]

	var maxT int64 = 1<<63 - 1
	if w.limits.MaxFutureDrift > 0 {
		maxT = w.now().Add(w.limits.MaxFutureDrift).UnixMilli()
	}

	app := w.db.Appender(ctx)
	committed := false
	defer func() {
		if !committed {
			_ = app.Rollback()
		}
	}()

	newSeries := 0
	for i := range b.Series {
		s := &b.Series[i]
		ss := b.SeriesSamples(s)
		if len(ss) == 0 {
			refs = append(refs, 0)
			continue
		}
		// A cached series is appended by reference alone, with no labels:
		// the cache keeps no copy of them. A stale reference (the head
		// dropped the series) then fails as an empty label set, and the
		// labels are built from the batch after all.
		e, cached := w.cache.get(s.Key)
		var lset labels.Labels
		if !cached {
			w.cacheMis.Inc()
			var err error
			if lset, err = w.buildLabels(b, s, &sc.builder); err != nil {
				sc.refs = refs
				return err
			}
		}
		ref := e.ref
		for _, smp := range ss {
			if smp.T > maxT {
				w.CountRejected("too_far_in_future", 1)
				sc.refs = refs
				return fmt.Errorf("%w: series %s: sample at %s is more than %s in the future; fix the sender's clock or raise -ingest.max-future-drift",
					ErrInvalid, describe(b.SeriesLabels(s)), time.UnixMilli(smp.T).UTC().Format(time.RFC3339), w.limits.MaxFutureDrift)
			}
			r, err := app.Append(ref, lset, smp.T, smp.V)
			if err != nil && lset.IsEmpty() && errors.Is(err, tsdb.ErrInvalidSample) {
				w.staleRefs.Inc()
				if lset, err = w.buildLabels(b, s, &sc.builder); err != nil {
					sc.refs = refs
					return err
				}
				r, err = app.Append(0, lset, smp.T, smp.V)
			}
			if err != nil {
				sc.refs = refs
				return w.appendError(err, describe(b.SeriesLabels(s)), smp.T)
			}
			ref = r
		}
		if ref != e.ref {
			if e.ref == 0 {
				newSeries++
			}
			e.ref = ref
			if len(s.Key) > 0 {
				w.cache.put(s.Key, e)
			}
		}
		refs = append(refs, ref)
	}
	if err := app.Commit(); err != nil {
		committed = true // Commit rolls back itself on error.
		sc.refs = refs
		w.CountRejected("storage_error", len(b.Samples))
		return fmt.Errorf("%w: cannot commit %d samples: %v", ErrStorage, len(b.Samples), err)
	}
	committed = true
	w.samplesC.Add(len(b.Samples))
	if newSeries > 0 {
		w.seriesC.Add(newSeries)
	}
	w.meta.Add(b.Metadata)
	if w.obs != nil && w.obs.Active() {
		w.obs.Observe(b, refs)
	}
	sc.refs = refs
	return nil
}

func (w *Writer) appendError(err error, series string, t int64) error {
	ts := time.UnixMilli(t).UTC().Format(time.RFC3339Nano)
	switch {
	case errors.Is(err, promstorage.ErrOutOfBounds), errors.Is(err, promstorage.ErrTooOldSample):
		w.CountRejected("too_old", 1)
		return fmt.Errorf("%w: series %s: sample at %s is older than the out-of-order window allows; raise -storage.out-of-order-window or drop the backlog", ErrInvalid, series, ts)
	case errors.Is(err, promstorage.ErrOutOfOrderSample):
		w.CountRejected("out_of_order", 1)
		return fmt.Errorf("%w: series %s: sample at %s is out of order; enable -storage.out-of-order-window", ErrInvalid, series, ts)
	case errors.Is(err, promstorage.ErrDuplicateSampleForTimestamp):
		w.CountRejected("duplicate_timestamp", 1)
		return fmt.Errorf("%w: series %s: a different value is already stored at %s; each series may have one value per timestamp", ErrInvalid, series, ts)
	case errors.Is(err, promstorage.ErrOutOfOrderExemplar), errors.Is(err, promstorage.ErrExemplarLabelLength):
		w.CountRejected("bad_exemplar", 1)
		return fmt.Errorf("%w: series %s: %v", ErrInvalid, series, err)
	}
	w.CountRejected("storage_error", 1)
	return fmt.Errorf("%w: series %s: %v", ErrStorage, series, err)
}

// buildLabels validates the labels of s and returns them sorted.
func (w *Writer) buildLabels(b *samples.Batch, s *samples.Series, sb *labels.ScratchBuilder) (labels.Labels, error) {
	ls := b.SeriesLabels(s)
	lim := &w.limits
	if lim.MaxLabelsPerSeries > 0 && len(ls) > lim.MaxLabelsPerSeries {
		w.CountRejected("too_many_labels", 1)
		return labels.EmptyLabels(), fmt.Errorf("%w: series %s has %d labels, limit -ingest.max-labels-per-series=%d: drop labels at the sender or raise the flag",
			ErrInvalid, describe(ls), len(ls), lim.MaxLabelsPerSeries)
	}
	sb.Reset()
	name := ""
	for _, l := range ls {
		if l.Value == "" {
			continue // an empty value means the label is absent
		}
		if l.Name == "" {
			w.CountRejected("invalid_label_name", 1)
			return labels.EmptyLabels(), fmt.Errorf("%w: series %s has a label with an empty name", ErrInvalid, describe(ls))
		}
		if lim.MaxLabelNameLen > 0 && len(l.Name) > lim.MaxLabelNameLen {
			w.CountRejected("label_name_too_long", 1)
			return labels.EmptyLabels(), fmt.Errorf("%w: series %s: label name %q is %d bytes, limit -ingest.max-label-name-len=%d: shorten it or raise the flag",
				ErrInvalid, describe(ls), truncate(l.Name, 64), len(l.Name), lim.MaxLabelNameLen)
		}
		if lim.MaxLabelValueLen > 0 && len(l.Value) > lim.MaxLabelValueLen {
			w.CountRejected("label_value_too_long", 1)
			return labels.EmptyLabels(), fmt.Errorf("%w: series %s: value of label %q is %d bytes, limit -ingest.max-label-value-len=%d: shorten it or raise the flag",
				ErrInvalid, describe(ls), truncate(l.Name, 64), len(l.Value), lim.MaxLabelValueLen)
		}
		if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			w.CountRejected("invalid_utf8", 1)
			return labels.EmptyLabels(), fmt.Errorf("%w: series %s: label %q is not valid UTF-8", ErrInvalid, describe(ls), truncate(l.Name, 64))
		}
		if l.Name == labels.MetricName {
			name = l.Value
		}
		sb.Add(l.Name, l.Value)
	}
	if name == "" {
		w.CountRejected("missing_metric_name", 1)
		return labels.EmptyLabels(), fmt.Errorf("%w: series %s has no metric name (__name__ label); every series needs one", ErrInvalid, describe(ls))
	}
	sb.Sort()
	lset := sb.Labels()
	if d := firstDuplicate(lset); d != "" {
		w.CountRejected("duplicate_label", 1)
		return labels.EmptyLabels(), fmt.Errorf("%w: series %s has label %q twice; each label name may appear once", ErrInvalid, describe(ls), d)
	}
	return lset, nil
}

func firstDuplicate(ls labels.Labels) string {
	prev, dup := "", ""
	ls.Range(func(l labels.Label) {
		if dup == "" && l.Name == prev {
			dup = l.Name
		}
		prev = l.Name
	})
	return dup
}

// describe renders a label list for an error message, bounded in length.
func describe(ls []samples.Label) string {
	var sb strings.Builder
	name := ""
	for _, l := range ls {
		if l.Name == labels.MetricName {
			name = l.Value
		}
	}
	sb.WriteString(truncate(name, 128))
	sb.WriteByte('{')
	n := 0
	for _, l := range ls {
		if l.Name == labels.MetricName {
			continue
		}
		if n > 0 {
			sb.WriteString(", ")
		}
		if n == 8 {
			fmt.Fprintf(&sb, "... %d more", len(ls)-n-1)
			break
		}
		fmt.Fprintf(&sb, "%s=%q", truncate(l.Name, 64), truncate(l.Value, 64))
		n++
	}
	sb.WriteByte('}')
	return sb.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
