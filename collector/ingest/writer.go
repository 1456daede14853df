package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/samples"
	"github.com/telltale-dev/telltale/samples/promhistogram"
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
	// MaxHistogramBuckets bounds the buckets (positive and negative) of one
	// native histogram sample.
	MaxHistogramBuckets int
	// MaxExemplarLabelBytes bounds the characters of an exemplar's label
	// names and values together (the TSDB refuses more than 128 anyway).
	MaxExemplarLabelBytes int
}

// Options configure NewWriter.
type Options struct {
	Limits  Limits
	Logger  *slog.Logger // nil means slog.Default()
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

	scratch   sync.Pool // *writeScratch
	offenders *offenders

	rejected    sync.Map // reason -> *metrics.Counter
	samplesC    *metrics.Counter
	histogramsC *metrics.Counter
	exemplarsC  *metrics.Counter
	seriesC     *metrics.Counter
	cacheMis    *metrics.Counter
	staleRefs   *metrics.Counter
}

type writeScratch struct {
	refs []promstorage.SeriesRef
	// last is the last float sample appended per series in this Write, so
	// a series that comes twice in one request (two text lines) cannot
	// slip a second value at a timestamp past the check.
	last      map[promstorage.SeriesRef]lastSample
	builder   labels.ScratchBuilder
	exBuilder labels.ScratchBuilder
}

// NewWriter returns a writer appending to db.
func NewWriter(db Appendable, opts Options) *Writer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
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
	w.offenders = newOffenders(1000)
	w.set.RegisterMetricsWriter(func(out io.Writer) { w.offenders.write(out, 10) })
	w.samplesC = w.set.NewCounter("telltale_ingest_committed_samples_total")
	w.histogramsC = w.set.NewCounter("telltale_ingest_committed_histograms_total")
	w.exemplarsC = w.set.NewCounter("telltale_ingest_committed_exemplars_total")
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
// call it after reading the body (Handlers.readBody), so a slow sender
// never holds a slot; memory is bounded by -ingest.max-inflight-bytes.
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
	_, err := w.Write(ctx, b)
	return err
}

// Written counts what one Write committed.
type Written struct {
	Samples, Histograms, Exemplars int
}

// PartialError is Write's error when part of a batch was rejected: the
// rest is committed (Written says how much). It wraps ErrInvalid (400: the
// rejected part can never be written, a sender must not retry it) and its
// message names the first rejected series and why.
type PartialError struct {
	Written Written
	// Rejected counts the float and histogram samples not stored,
	// RejectedExemplars the exemplars, RejectedSeries the series with at
	// least one rejection.
	Rejected, RejectedExemplars, RejectedSeries int
	msgs                                        []string
	more                                        int
}

// maxPartialMessages is how many rejections a PartialError describes.
const maxPartialMessages = 10

func (e *PartialError) add(msg string) {
	if len(e.msgs) < maxPartialMessages {
		e.msgs = append(e.msgs, msg)
	} else {
		e.more++
	}
}

func (e *PartialError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d samples and %d exemplars of %d series rejected; %d samples, %d histogram samples and %d exemplars of the request were stored: ",
		e.Rejected, e.RejectedExemplars, e.RejectedSeries, e.Written.Samples, e.Written.Histograms, e.Written.Exemplars)
	sb.WriteString(strings.Join(e.msgs, "; "))
	if e.more > 0 {
		fmt.Fprintf(&sb, "; and %d more", e.more)
	}
	return sb.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *PartialError) Unwrap() error { return ErrInvalid }

// Write validates b and commits every series, sample, histogram and
// exemplar of it that is valid, in one storage transaction.
//
// What is invalid (a series over a label limit, a sample out of order, too
// old or too far in the future, a second value at a timestamp, a histogram
// over the bucket limit, an exemplar over the label limit) is rejected and
// counted by reason; the rest is committed, and the error is then a
// *PartialError (wrapping ErrInvalid). A nil error means all of b was
// committed. On an error wrapping ErrStorage (or the context's) nothing is
// committed. Exemplars the exemplar storage does not keep (out of order
// for their series, or exemplar storage off) are counted and left out of
// Written.Exemplars but are not a rejection, as in Prometheus: exemplars
// are a bounded sample of the data, not the data.
//
// Write drops the rejected samples, histograms and exemplars from b, so b
// holds exactly what was committed when it returns (what the observer sees).
func (w *Writer) Write(ctx context.Context, b *samples.Batch) (Written, error) {
	if b.Empty() {
		w.meta.Add(b.Metadata)
		return Written{}, nil
	}
	sc, _ := w.scratch.Get().(*writeScratch)
	if sc == nil {
		sc = &writeScratch{}
	}
	defer w.scratch.Put(sc)
	sc.refs = sc.refs[:0]
	if sc.last == nil {
		sc.last = map[promstorage.SeriesRef]lastSample{}
	}
	clear(sc.last)

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

	var written Written
	var perr PartialError
	newSeries := 0
	for i := range b.Series {
		s := &b.Series[i]
		ref, isNew, err := w.writeSeries(app, b, s, maxT, sc, &written, &perr)
		if err != nil {
			return Written{}, err
		}
		if isNew {
			newSeries++
		}
		sc.refs = append(sc.refs, ref)
	}
	if err := app.Commit(); err != nil {
		committed = true // Commit rolls back itself on error.
		w.CountRejected("storage_error", written.Samples+written.Histograms)
		return Written{}, fmt.Errorf("%w: cannot commit %d samples: %v", ErrStorage, written.Samples+written.Histograms, err)
	}
	committed = true
	w.samplesC.Add(written.Samples)
	w.histogramsC.Add(written.Histograms)
	w.exemplarsC.Add(written.Exemplars)
	if newSeries > 0 {
		w.seriesC.Add(newSeries)
	}
	w.meta.Add(b.Metadata)
	if w.obs != nil && w.obs.Active() {
		w.obs.Observe(b, sc.refs)
	}
	if perr.RejectedSeries > 0 {
		perr.Written = written
		return written, &perr
	}
	return written, nil
}

// writeSeries appends what is valid of series s to app and drops the rest
// from b. It returns the series' storage reference (0 if none of it was
// appended) and whether the series is new to the cache; an error means
// the whole batch fails (storage trouble).
func (w *Writer) writeSeries(app promstorage.Appender, b *samples.Batch, s *samples.Series, maxT int64, sc *writeScratch, written *Written, perr *PartialError) (promstorage.SeriesRef, bool, error) {
	ss := b.SeriesSamples(s)
	hs := b.SeriesHistograms(s)
	es := b.SeriesExemplars(s)
	if len(ss) == 0 && len(hs) == 0 && len(es) == 0 {
		return 0, false, nil
	}
	rejected, rejectedEx := 0, 0
	first := ""
	reject := func(reason, msg string, n int) {
		w.CountRejected(reason, n)
		if reason == "series_limit" {
			w.offenders.add(b.Name(s), n)
		}
		rejected += n
		if first == "" {
			first = msg
		}
	}
	dropAll := func() {
		s.SamplesEnd, s.HistogramsEnd, s.ExemplarsEnd = s.SamplesStart, s.HistogramsStart, s.ExemplarsStart
	}
	// A cached series is appended by reference alone, with no labels: the
	// cache keeps no copy of them. A stale reference (the head dropped the
	// series) then fails as an empty label set, and the labels are built
	// from the batch after all.
	e, cached := w.cache.get(s.Key)
	var lset labels.Labels
	if !cached {
		w.cacheMis.Inc()
		var err error
		if lset, err = w.buildLabels(b, s, &sc.builder); err != nil {
			reason, _ := rejectReason(err)
			w.CountRejected(reason, len(ss)+len(hs))
			perr.Rejected += len(ss) + len(hs)
			perr.RejectedExemplars += len(es)
			perr.RejectedSeries++
			perr.add(err.Error())
			dropAll()
			return 0, false, nil
		}
	}
	ref := e.ref
	// appendWith retries once with labels when the cached reference is
	// stale (see above).
	appendWith := func(do func(promstorage.SeriesRef, labels.Labels) (promstorage.SeriesRef, error)) (promstorage.SeriesRef, error) {
		r, err := do(ref, lset)
		if err != nil && lset.IsEmpty() && errors.Is(err, tsdb.ErrInvalidSample) {
			w.staleRefs.Inc()
			var lerr error
			if lset, lerr = w.buildLabels(b, s, &sc.builder); lerr != nil {
				return 0, lerr
			}
			r, err = do(0, lset)
		}
		return r, err
	}
	desc := func() string { return describe(b.SeriesLabels(s)) }

	kept := ss[:0]
	prevT, prevV, hasPrev := int64(0), 0.0, false
	if l, ok := sc.last[ref]; ok && ref != 0 {
		prevT, prevV, hasPrev = l.t, l.v, true
	}
	for _, smp := range ss {
		if smp.T > maxT {
			reject("too_far_in_future", fmt.Sprintf("series %s: sample at %s is more than %s in the future; fix the sender's clock or raise -ingest.max-future-drift",
				desc(), time.UnixMilli(smp.T).UTC().Format(time.RFC3339), w.limits.MaxFutureDrift), 1)
			continue
		}
		if hasPrev && smp.T == prevT {
			// The head would keep the first and drop this one silently at
			// commit: a second value at a timestamp is a rejection, and the
			// same value again is a harmless repeat.
			if math.Float64bits(smp.V) != math.Float64bits(prevV) {
				reject("duplicate_timestamp", twoValues(desc(), smp.T), 1)
			}
			continue
		}
		r, err := appendWith(func(ref promstorage.SeriesRef, l labels.Labels) (promstorage.SeriesRef, error) {
			return app.Append(ref, l, smp.T, smp.V)
		})
		if err != nil {
			if reason, ok := rejectReason(err); ok {
				reject(reason, w.appendMessage(err, desc(), smp.T), 1)
				continue
			}
			return 0, false, w.storageError(err, desc())
		}
		ref = r
		if l, ok := sc.last[r]; ok && !hasPrev && l.t == smp.T {
			// The series came earlier in this request under another key
			// (or none): the head will keep that value and drop this one
			// at commit. Say so instead of counting it written.
			if math.Float64bits(smp.V) != math.Float64bits(l.v) {
				reject("duplicate_timestamp", twoValues(desc(), smp.T), 1)
			}
			prevT, prevV, hasPrev = l.t, l.v, true
			continue
		}
		kept = append(kept, smp)
		prevT, prevV, hasPrev = smp.T, smp.V, true
		written.Samples++
	}
	s.SamplesEnd = s.SamplesStart + int32(len(kept))
	if hasPrev && ref != 0 {
		sc.last[ref] = lastSample{prevT, prevV}
	}

	keptH := hs[:0]
	for _, h := range hs {
		if n := h.Buckets(); w.limits.MaxHistogramBuckets > 0 && n > w.limits.MaxHistogramBuckets {
			reject("too_many_histogram_buckets", fmt.Sprintf("series %s: native histogram at %s has %d buckets, limit -ingest.max-histogram-buckets=%d: lower the resolution at the sender (native_histogram_bucket_limit, a smaller MaxSize) or raise the flag",
				desc(), time.UnixMilli(h.T).UTC().Format(time.RFC3339), n, w.limits.MaxHistogramBuckets), 1)
			continue
		}
		if h.T > maxT {
			reject("too_far_in_future", fmt.Sprintf("series %s: histogram sample at %s is more than %s in the future; fix the sender's clock or raise -ingest.max-future-drift",
				desc(), time.UnixMilli(h.T).UTC().Format(time.RFC3339), w.limits.MaxFutureDrift), 1)
			continue
		}
		ih, fh := promhistogram.ToPrometheus(&h)
		r, err := appendWith(func(ref promstorage.SeriesRef, l labels.Labels) (promstorage.SeriesRef, error) {
			return app.AppendHistogram(ref, l, h.T, ih, fh)
		})
		if err != nil {
			if reason, ok := rejectReason(err); ok {
				reject(reason, w.appendMessage(err, desc(), h.T), 1)
				continue
			}
			return 0, false, w.storageError(err, desc())
		}
		ref = r
		keptH = append(keptH, h)
		written.Histograms++
	}
	s.HistogramsEnd = s.HistogramsStart + int32(len(keptH))

	keptE := es[:0]
	exRef := ref
	if exRef == 0 && len(ss) == 0 && len(hs) == 0 {
		// An exemplar-only series: the exemplar storage keeps exemplars of
		// series in the head, found by the cached reference or the labels.
		exRef = e.ref
	}
	for _, ex := range es {
		if exRef == 0 && lset.IsEmpty() {
			// Exemplars of a series whose samples were all rejected have
			// nothing to belong to.
			w.CountRejected("exemplar_not_kept", 1)
			continue
		}
		el := b.ExemplarLabelsOf(&ex)
		if n := exemplarLabelLen(el); n > w.limits.MaxExemplarLabelBytes && w.limits.MaxExemplarLabelBytes > 0 {
			rejectedEx++
			w.CountRejected("exemplar_labels_too_long", 1)
			msg := fmt.Sprintf("series %s: exemplar labels are %d characters, limit -ingest.max-exemplar-label-bytes=%d (OpenMetrics allows 128): shorten them at the sender",
				desc(), n, w.limits.MaxExemplarLabelBytes)
			if first == "" {
				first = msg
			}
			continue
		}
		sc.exBuilder.Reset()
		for _, l := range el {
			sc.exBuilder.Add(l.Name, l.Value)
		}
		sc.exBuilder.Sort()
		eref, err := app.AppendExemplar(exRef, lset, exemplar.Exemplar{Labels: sc.exBuilder.Labels(), Value: ex.V, Ts: ex.T, HasTs: true})
		switch {
		case errors.Is(err, promstorage.ErrExemplarLabelLength):
			rejectedEx++
			w.CountRejected("exemplar_labels_too_long", 1)
			if first == "" {
				first = fmt.Sprintf("series %s: %v", desc(), err)
			}
			continue
		case err != nil || eref == 0:
			// Not kept, as in Prometheus: out of order for its series, a
			// duplicate (eref 0), exemplar storage off (eref 0), or a
			// series not in the head (an exemplar-only series never
			// written). Appending exemplars does no I/O: no storage error.
			w.CountRejected("exemplar_not_kept", 1)
			continue
		}
		keptE = append(keptE, ex)
		written.Exemplars++
	}
	s.ExemplarsEnd = s.ExemplarsStart + int32(len(keptE))

	if first != "" {
		perr.Rejected += rejected
		perr.RejectedExemplars += rejectedEx
		perr.RejectedSeries++
		perr.add(first)
	}
	isNew := false
	if ref != e.ref {
		isNew = e.ref == 0
		e.ref = ref
		if len(s.Key) > 0 {
			w.cache.put(s.Key, e)
		}
	}
	return ref, isNew, nil
}

func twoValues(series string, t int64) string {
	return fmt.Sprintf("series %s: two different values at %s in one request; each series may have one value per timestamp",
		series, time.UnixMilli(t).UTC().Format(time.RFC3339Nano))
}

type lastSample struct {
	t int64
	v float64
}

// exemplarLabelLen is the length of exemplar labels as OpenMetrics and the
// TSDB count it: characters of all names and values.
func exemplarLabelLen(ls []samples.Label) int {
	n := 0
	for _, l := range ls {
		n += utf8.RuneCountInString(l.Name) + utf8.RuneCountInString(l.Value)
	}
	return n
}

// rejectReason classifies an append or validation error: the counter
// reason, and whether it rejects the input (true) or is storage trouble.
func rejectReason(err error) (string, bool) {
	var herr histogram.Error
	var lerr *labelError
	switch {
	case errors.As(err, &lerr):
		return lerr.reason, true
	case errors.Is(err, promstorage.ErrOutOfBounds), errors.Is(err, promstorage.ErrTooOldSample):
		return "too_old", true
	case errors.Is(err, promstorage.ErrOutOfOrderSample):
		return "out_of_order", true
	case errors.Is(err, promstorage.ErrDuplicateSampleForTimestamp):
		return "duplicate_timestamp", true
	case errors.Is(err, storage.ErrSeriesLimit):
		return "series_limit", true
	case errors.Is(err, promstorage.ErrNativeHistogramsDisabled):
		return "native_histograms_disabled", true
	case errors.As(err, &herr):
		return "invalid_histogram", true
	case errors.Is(err, ErrInvalid):
		return "invalid", true
	}
	return "storage_error", false
}

// appendMessage says what is wrong with a rejected sample and what to do.
func (w *Writer) appendMessage(err error, series string, t int64) string {
	ts := time.UnixMilli(t).UTC().Format(time.RFC3339Nano)
	var herr histogram.Error
	switch {
	case errors.Is(err, promstorage.ErrOutOfBounds), errors.Is(err, promstorage.ErrTooOldSample):
		return fmt.Sprintf("series %s: sample at %s is older than the out-of-order window allows; raise -storage.out-of-order-window or drop the backlog", series, ts)
	case errors.Is(err, promstorage.ErrOutOfOrderSample):
		return fmt.Sprintf("series %s: sample at %s is out of order; enable -storage.out-of-order-window", series, ts)
	case errors.Is(err, promstorage.ErrDuplicateSampleForTimestamp):
		return fmt.Sprintf("series %s: a different value is already stored at %s; each series may have one value per timestamp", series, ts)
	case errors.As(err, &herr):
		return fmt.Sprintf("series %s: native histogram at %s is invalid: %v; fix the sender", series, ts, err)
	case errors.Is(err, storage.ErrSeriesLimit):
		return fmt.Sprintf("series %s is new and not created: %v", series, err)
	}
	return fmt.Sprintf("series %s: sample at %s: %v", series, ts, err)
}

func (w *Writer) storageError(err error, series string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	w.CountRejected("storage_error", 1)
	return fmt.Errorf("%w: series %s: %v", ErrStorage, series, err)
}

// labelError is buildLabels' error: it wraps ErrInvalid and carries the
// counter reason.
type labelError struct {
	reason, msg string
}

func (e *labelError) Error() string { return e.msg }
func (e *labelError) Unwrap() error { return ErrInvalid }

func invalidLabels(reason, format string, args ...any) error {
	return &labelError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// buildLabels validates the labels of s and returns them sorted.
func (w *Writer) buildLabels(b *samples.Batch, s *samples.Series, sb *labels.ScratchBuilder) (labels.Labels, error) {
	ls := b.SeriesLabels(s)
	lim := &w.limits
	if lim.MaxLabelsPerSeries > 0 && len(ls) > lim.MaxLabelsPerSeries {
		return labels.EmptyLabels(), invalidLabels("too_many_labels", "series %s has %d labels, limit -ingest.max-labels-per-series=%d: drop labels at the sender or raise the flag",
			describe(ls), len(ls), lim.MaxLabelsPerSeries)
	}
	sb.Reset()
	name := ""
	for _, l := range ls {
		if l.Value == "" {
			continue // an empty value means the label is absent
		}
		if l.Name == "" {
			return labels.EmptyLabels(), invalidLabels("invalid_label_name", "series %s has a label with an empty name", describe(ls))
		}
		if lim.MaxLabelNameLen > 0 && len(l.Name) > lim.MaxLabelNameLen {
			return labels.EmptyLabels(), invalidLabels("label_name_too_long", "series %s: label name %q is %d bytes, limit -ingest.max-label-name-len=%d: shorten it or raise the flag",
				describe(ls), truncate(l.Name, 64), len(l.Name), lim.MaxLabelNameLen)
		}
		if lim.MaxLabelValueLen > 0 && len(l.Value) > lim.MaxLabelValueLen {
			return labels.EmptyLabels(), invalidLabels("label_value_too_long", "series %s: value of label %q is %d bytes, limit -ingest.max-label-value-len=%d: shorten it or raise the flag",
				describe(ls), truncate(l.Name, 64), len(l.Value), lim.MaxLabelValueLen)
		}
		if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			return labels.EmptyLabels(), invalidLabels("invalid_utf8", "series %s: label %q is not valid UTF-8", describe(ls), truncate(l.Name, 64))
		}
		if l.Name == labels.MetricName {
			name = l.Value
		}
		sb.Add(l.Name, l.Value)
	}
	if name == "" {
		return labels.EmptyLabels(), invalidLabels("missing_metric_name", "series %s has no metric name (__name__ label); every series needs one", describe(ls))
	}
	sb.Sort()
	lset := sb.Labels()
	if d := firstDuplicate(lset); d != "" {
		return labels.EmptyLabels(), invalidLabels("duplicate_label", "series %s has label %q twice; each label name may appear once", describe(ls), d)
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
