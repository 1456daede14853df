// Package storage opens and runs the embedded Prometheus TSDB that holds
// every sample the collector accepts.
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
	// Logger receives TSDB logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives telltale_storage_* metrics; nil means a private set.
	Metrics *metrics.Set
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
func Open(ctx context.Context, opts Options) (*Storage, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
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

	topts := tsdb.DefaultOptions()
	topts.RetentionDuration = opts.Retention.Milliseconds()
	topts.OutOfOrderTimeWindow = opts.OutOfOrderWindow.Milliseconds()
	topts.EnableMetadataWALRecords = false
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

	reg := prometheus.NewRegistry()
	start := time.Now()
	stats := tsdb.NewDBStats()
	db, err := tsdb.Open(dir, opts.Logger.With("component", "tsdb"), reg, topts, stats)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot open TSDB in %q: %w; if another collector uses this -data directory stop it first", dir, err)
	}
	opts.Logger.Info("storage opened", "component", "storage", "dir", dir,
		"retention", opts.Retention, "out_of_order_window", opts.OutOfOrderWindow,
		"head_series", db.Head().NumSeries(), "duration", time.Since(start).Round(time.Millisecond))

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

// DB returns the underlying TSDB.
func (s *Storage) DB() *tsdb.DB { return s.db }

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
