package storage

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// ErrSeriesLimit is wrapped by the append error of a sample whose series
// would be new while a series limit (Options.MaxSeries,
// Options.MaxHourlySeries) is reached: the series is not created, nothing
// of it is stored. Existing series keep ingesting. The message names the
// limit, its flag and the fix.
var ErrSeriesLimit = errors.New("series limit reached")

// seriesLimiter is the head's SeriesLifecycleCallback: the head asks it
// before creating a series (and only then: a sample of an existing series
// never reaches it), so it can refuse series beyond the limits without
// keeping a set of its own.
//
// MaxHourlySeries counts series created in the last hour in one-minute
// buckets, as VictoriaMetrics' -storage.maxHourlySeries bounds the churn a
// label holding a request id causes; MaxSeries bounds what the head holds.
// Series the WAL replay recreates at start-up are not limited.
type seriesLimiter struct {
	maxSeries, maxHourly int64
	numSeries            func() uint64
	now                  func() time.Time
	ready                atomic.Bool // set once the WAL is replayed

	mu      sync.Mutex
	buckets [60]struct {
		minute int64
		n      int64
	}
}

func (l *seriesLimiter) PreCreation(lset labels.Labels) error {
	if !l.ready.Load() {
		return nil
	}
	if l.maxSeries > 0 {
		if n := int64(l.numSeries()); n >= l.maxSeries {
			return fmt.Errorf("%w: the collector holds %d series, limit -storage.max-series=%d: the sender creates too many series (a label with an unbounded value, e.g. a request id?); drop that label or raise the flag", ErrSeriesLimit, n, l.maxSeries)
		}
	}
	if l.maxHourly <= 0 {
		return nil
	}
	minute := l.now().Unix() / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for i := range l.buckets {
		if b := &l.buckets[i]; minute-b.minute < 60 {
			n += b.n
		}
	}
	if n >= l.maxHourly {
		return fmt.Errorf("%w: %d new series in the last hour, limit -storage.max-hourly-series=%d: the sender creates series faster than they are meant to come (a label with an unbounded value, e.g. a request id?); drop that label or raise the flag", ErrSeriesLimit, n, l.maxHourly)
	}
	b := &l.buckets[minute%60]
	if b.minute != minute {
		b.minute, b.n = minute, 0
	}
	b.n++
	return nil
}

func (*seriesLimiter) PostCreation(labels.Labels)                          {}
func (*seriesLimiter) PostDeletion(map[chunks.HeadSeriesRef]labels.Labels) {}
