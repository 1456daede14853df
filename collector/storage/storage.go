// Package storage opens and runs the embedded Prometheus TSDB that holds
// every sample the collector accepts: float samples, native histograms
// (integer, float and custom-bucket), and exemplars in a bounded in-memory
// ring buffer (Options.MaxExemplars) that is replayed from the WAL.
//
// Promise: once Appender().Commit returns nil, the samples are in the WAL
// (written to the OS, not yet fsynced), so they survive a kill -9 of the
// process; like Prometheus, a power loss may lose the last seconds. Start-up
// repairs a torn WAL tail (the partially written record a crash leaves)
// instead of failing, and counts the repair.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// Options configure Open.
type Options struct {
	// Dir is the data directory; it is created if missing.
	Dir string
	// Retention is how long samples are kept; 0 means 15 days.
	Retention time.Duration
	// OutOfOrderWindow is how far behind the newest sample a sample may be
	// and still be accepted (a replaying agent is hours behind). 0 disables
	// out-of-order ingestion.
	OutOfOrderWindow time.Duration
	// Logger receives TSDB logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives telltale_storage_* metrics; nil means a private set.
	Metrics *metrics.Set
	// MaxSeries bounds the series the head holds and MaxHourlySeries the
	// series created in the last hour; a sample that would create a series
	// beyond either fails with an error wrapping ErrSeriesLimit. 0 means no
	// limit.
	MaxSeries, MaxHourlySeries int64
	// Now is the clock of the hourly series limit; nil means time.Now.
	Now func() time.Time
	// MaxExemplars is how many exemplars the in-memory ring buffer keeps
	// (Prometheus' --storage.exemplars.max-exemplars); 0 turns exemplar
	// storage off. Native histograms need no option: the TSDB stores them.
	MaxExemplars int64
	// WALCompression is "none", "snappy" (Prometheus' default) or "zstd";
	// "" means none. Snappy halves the WAL on disk for about 10% more CPU
	// per ingested sample (BenchmarkRemoteWrite in collector/ingest).
	WALCompression string
}

// Storage is the embedded TSDB. It is safe for concurrent use.
type Storage struct {
	db       *tsdb.DB
	stats    *tsdb.DBStats
	registry *prometheus.Registry
}

// Open opens (or creates) the TSDB under opts.Dir, replaying its WAL.
func Open(opts Options) (*Storage, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Retention <= 0 {
		opts.Retention = 15 * 24 * time.Hour
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create data directory %q: %w; check -data and its permissions", opts.Dir, err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve data directory %q: %w", opts.Dir, err)
	}
	if err := checkLock(dir); err != nil {
		return nil, err
	}

	topts := tsdb.DefaultOptions()
	topts.RetentionDuration = opts.Retention.Milliseconds()
	topts.OutOfOrderTimeWindow = opts.OutOfOrderWindow.Milliseconds()
	topts.EnableMetadataWALRecords = false
	topts.EnableExemplarStorage = opts.MaxExemplars > 0
	topts.MaxExemplars = opts.MaxExemplars
	switch opts.WALCompression {
	case "", "none":
		topts.WALCompression = compression.None
	case "snappy":
		topts.WALCompression = compression.Snappy
	case "zstd":
		topts.WALCompression = compression.Zstd
	default:
		return nil, fmt.Errorf("-storage.wal-compression=%q: want snappy, zstd or none", opts.WALCompression)
	}

	if opts.Now == nil {
		opts.Now = time.Now
	}
	limiter := &seriesLimiter{maxSeries: opts.MaxSeries, maxHourly: opts.MaxHourlySeries, now: opts.Now}
	topts.SeriesLifecycleCallback = limiter

	reg := prometheus.NewRegistry()
	start := time.Now()
	stats := tsdb.NewDBStats()
	// The TSDB's routine start-up lines (WAL replay steps) only at debug:
	// "storage opened" below says what a reader needs.
	tlog := opts.Logger
	if !tlog.Enabled(context.Background(), slog.LevelDebug) {
		tlog = slog.New(warnAndAbove{tlog.Handler()})
	}
	db, err := tsdb.Open(dir, tlog.With("component", "tsdb"), reg, topts, stats)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot open TSDB in %q: %w; if another collector uses this -data directory stop it first", dir, err)
	}
	opts.Logger.Info("storage opened", "component", "storage", "dir", dir,
		"retention", opts.Retention, "out_of_order_window", opts.OutOfOrderWindow,
		"head_series", db.Head().NumSeries(), "duration", time.Since(start).Round(time.Millisecond))

	limiter.numSeries = db.Head().NumSeries
	limiter.ready.Store(true) // the WAL is replayed: limit new series from now on
	s := &Storage{db: db, stats: stats, registry: reg}
	opts.Metrics.NewGauge("telltale_storage_head_series", func() float64 { return float64(db.Head().NumSeries()) })
	opts.Metrics.NewGauge("telltale_storage_head_min_time_seconds", func() float64 { return float64(db.Head().MinTime()) / 1e3 })
	opts.Metrics.NewGauge("telltale_storage_head_max_time_seconds", func() float64 { return float64(db.Head().MaxTime()) / 1e3 })
	opts.Metrics.NewGauge("telltale_storage_blocks", func() float64 { return float64(len(db.Blocks())) })
	return s, nil
}

// Appender returns an appender for one batch; see Prometheus' storage.Appender.
func (s *Storage) Appender(ctx context.Context) promstorage.Appender { return s.db.Appender(ctx) }

// Querier returns a querier over [mint, maxt] in milliseconds.
func (s *Storage) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return s.db.Querier(mint, maxt)
}

// Registry returns the Prometheus registry holding the TSDB's own metrics
// (prometheus_tsdb_*), which /metrics serves next to Telltale's.
func (s *Storage) Registry() *prometheus.Registry { return s.registry }

// Close flushes the head's in-memory state and closes the TSDB.
func (s *Storage) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cannot close TSDB: %w", err)
	}
	return nil
}

// warnAndAbove passes on only warnings and errors.
type warnAndAbove struct{ slog.Handler }

func (h warnAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnAndAbove) WithAttrs(as []slog.Attr) slog.Handler {
	return warnAndAbove{h.Handler.WithAttrs(as)}
}

func (h warnAndAbove) WithGroup(name string) slog.Handler {
	return warnAndAbove{h.Handler.WithGroup(name)}
}
