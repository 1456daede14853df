package rules

import (
	"context"
	"errors"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/samples"
	"github.com/telltale-dev/telltale/samples/promhistogram"
)

// BatchWriter stores a batch: the collector's write path (ingest.Writer),
// so rule results reach the live tail, the console and whatever else
// watches committed writes. Write returns nil only once every sample of b
// is committed; on a partial rejection (*ingest.PartialError) the valid
// series are committed; it must not keep b.
type BatchWriter interface {
	Write(ctx context.Context, b *samples.Batch) (ingest.Written, error)
}

// appendable adapts a BatchWriter to the rules engine's storage.AppendableV2:
// each appender collects what one rule evaluation appends into one
// samples.Batch and writes it at Commit.
type appendable struct {
	w       BatchWriter
	written *metrics.Counter
	failed  *metrics.Counter
	stale   *metrics.Counter // stale markers the storage refused (another rule wrote the series)
}

func newAppendable(w BatchWriter, set *metrics.Set) *appendable {
	return &appendable{
		w:       w,
		written: set.NewCounter("telltale_rules_samples_written_total"),
		failed:  set.NewCounter("telltale_rules_samples_failed_total"),
		stale:   set.NewCounter("telltale_rules_stale_markers_dropped_total"),
	}
}

// AppenderV2 implements storage.AppendableV2.
func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{ctx: ctx, a: a}
}

// appender buffers the samples of one rule evaluation.
//
// Differences from the TSDB's own appender, all harmless for rule results:
// Append never fails for a float sample (errors come from Commit); the
// returned reference is the label set's hash, not a storage reference (the
// rules engine ignores it); RejectOutOfOrder is not enforced (the write path
// accepts samples within -storage.out-of-order-window).
type appender struct {
	ctx   context.Context
	a     *appendable
	b     samples.Batch // rule results
	stale samples.Batch // staleness markers, written apart (see Commit)
	done  bool
}

// Append implements storage.AppenderV2.
func (ap *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if ap.done {
		return 0, errors.New("BUG: rules appender used after Commit or Rollback")
	}
	// Label strings of a labels.Labels are immutable, so the batch may
	// point at them until Commit; so are the engine's result histograms.
	b := &ap.b
	if (h == nil && fh == nil && value.IsStaleNaN(v)) || (h != nil && value.IsStaleNaN(h.Sum)) || (fh != nil && value.IsStaleNaN(fh.Sum)) {
		b = &ap.stale
	}
	b.StartSeries(nil)
	ls.Range(func(l labels.Label) { b.AddLabel(l.Name, l.Value) })
	if h != nil || fh != nil {
		b.AddHistogram(promhistogram.FromPrometheus(t, h, fh))
	} else {
		b.AddSample(t, v)
	}
	return storage.SeriesRef(ls.Hash()), nil
}

// Commit writes the buffered samples through the write path, which
// commits the valid series of a batch and names the others. Staleness
// markers go in a batch of their own: one the storage refuses (another
// rule writes the series at that time) is dropped quietly, as Prometheus
// does.
func (ap *appender) Commit() error {
	if ap.done {
		return errors.New("BUG: rules appender committed twice")
	}
	ap.done = true
	err := ap.write(&ap.b, ap.a.failed)
	if serr := ap.write(&ap.stale, ap.a.stale); serr != nil && !errors.Is(serr, ingest.ErrInvalid) {
		err = errors.Join(err, serr)
	}
	return err
}

// write writes b, counting what was stored and, in refused, what was not.
func (ap *appender) write(b *samples.Batch, refused *metrics.Counter) error {
	n := b.Len() + len(b.Histograms)
	if n == 0 {
		return nil
	}
	w, err := ap.a.w.Write(ap.ctx, b)
	stored := w.Samples + w.Histograms
	ap.a.written.Add(stored)
	if err != nil {
		refused.Add(n - stored)
	}
	return err
}

// Rollback drops the buffered samples.
func (ap *appender) Rollback() error {
	ap.done = true
	ap.b.Reset()
	ap.stale.Reset()
	return nil
}
