package rules

import (
	"context"
	"errors"
	"fmt"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/samples"
)

// BatchWriter stores a batch: the collector's write path (ingest.Writer),
// so rule results reach the live tail, the console and whatever else
// watches committed writes. Write must return nil only once every sample of
// b is committed, and on error commit none of them; it must not keep b.
type BatchWriter interface {
	Write(ctx context.Context, b *samples.Batch) error
}

// ErrNativeHistogram is returned by the appender for a histogram sample:
// the write path stores floats only, so a rule whose result is a native
// histogram cannot be recorded.
var ErrNativeHistogram = errors.New("native histogram results cannot be recorded: the collector stores float samples only; aggregate the histogram to floats in the rule (histogram_quantile, histogram_count ...)")

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
	b     samples.Batch
	stale []bool // per series of b: the sample is a staleness marker
	done  bool
}

// Append implements storage.AppenderV2.
func (ap *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if ap.done {
		return 0, errors.New("BUG: rules appender used after Commit or Rollback")
	}
	if h != nil || fh != nil {
		ap.a.failed.Inc()
		return 0, fmt.Errorf("series %s: %w", ls.String(), ErrNativeHistogram)
	}
	// Label strings of a labels.Labels are immutable, so the batch may
	// point at them until Commit.
	ap.b.StartSeries(nil)
	ls.Range(func(l labels.Label) { ap.b.AddLabel(l.Name, l.Value) })
	ap.b.AddSample(t, v)
	ap.stale = append(ap.stale, value.IsStaleNaN(v))
	return storage.SeriesRef(ls.Hash()), nil
}

// Commit writes the buffered samples through the write path. If the batch
// is refused as a whole for bad input (a duplicate timestamp, say), each
// series is written on its own so one bad series does not cost the others;
// a refused staleness marker is dropped silently, as Prometheus does (the
// series is written by another rule at the same time).
func (ap *appender) Commit() error {
	if ap.done {
		return errors.New("BUG: rules appender committed twice")
	}
	ap.done = true
	n := ap.b.Len()
	if n == 0 {
		return nil
	}
	err := ap.a.w.Write(ap.ctx, &ap.b)
	if err == nil {
		ap.a.written.Add(n)
		return nil
	}
	if !isInvalid(err) {
		ap.a.failed.Add(n)
		return err
	}
	var errs []error
	var one samples.Batch
	for i := range ap.b.Series {
		s := &ap.b.Series[i]
		one.Reset()
		one.StartSeries(nil)
		for _, l := range ap.b.SeriesLabels(s) {
			one.AddLabel(l.Name, l.Value)
		}
		for _, smp := range ap.b.SeriesSamples(s) {
			one.AddSample(smp.T, smp.V)
		}
		switch err := ap.a.w.Write(ap.ctx, &one); {
		case err == nil:
			ap.a.written.Add(one.Len())
		case ap.stale[i]:
			ap.a.stale.Add(one.Len())
		default:
			ap.a.failed.Add(one.Len())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Rollback drops the buffered samples.
func (ap *appender) Rollback() error {
	ap.done = true
	ap.b.Reset()
	return nil
}

// isInvalid reports whether err is the write path's "bad input" error
// (as opposed to storage trouble, which retrying series one by one would
// not help).
func isInvalid(err error) bool { return errors.Is(err, ingest.ErrInvalid) }
