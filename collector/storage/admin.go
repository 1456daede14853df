package storage

import (
	"context"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// The methods below are what Prometheus' HTTP API (web/api/v1
// TSDBAdminStats) needs for /api/v1/status/tsdb, status/walreplay and the
// admin endpoints (snapshot, delete_series, clean_tombstones). They answer
// exactly as Prometheus' own storage does.

// CleanTombstones removes deleted data from disk.
func (s *Storage) CleanTombstones() error { return s.db.CleanTombstones() }

// Delete marks the samples of the series matching ms in [mint, maxt] as
// deleted.
func (s *Storage) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return s.db.Delete(ctx, mint, maxt, ms...)
}

// Snapshot writes a consistent copy of all blocks (and the head when
// withHead) into dir.
func (s *Storage) Snapshot(dir string, withHead bool) error { return s.db.Snapshot(dir, withHead) }

// Stats returns the head's cardinality statistics: the top limit metric
// names, label names and label pairs by series count.
func (s *Storage) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	return s.db.Head().Stats(statsByLabelName, limit), nil
}

// WALReplayStatus reports the progress of the WAL replay at start-up.
func (s *Storage) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return s.stats.Head.WALReplayStatus.GetWALReplayStatus(), nil
}

// BlockMetas lists the persisted blocks.
func (s *Storage) BlockMetas() ([]tsdb.BlockMeta, error) { return s.db.BlockMetas(), nil }

// ChunkQuerier returns a chunk querier over [mint, maxt] in milliseconds
// (remote read streams chunks).
func (s *Storage) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	return s.db.ChunkQuerier(mint, maxt)
}

// ExemplarQuerier returns a querier over the exemplar storage.
func (s *Storage) ExemplarQuerier(ctx context.Context) (promstorage.ExemplarQuerier, error) {
	return s.db.ExemplarQuerier(ctx)
}

// MinTime returns the timestamp (ms) of the oldest sample held, or
// math.MaxInt64 when empty.
func (s *Storage) MinTime() int64 {
	if bs := s.db.Blocks(); len(bs) > 0 {
		return bs[0].Meta().MinTime
	}
	return s.db.Head().MinTime()
}

// DisjointParts reports whether no two of the storage's parts (its blocks
// and its head, out-of-order samples included) hold samples of the same
// time within [mint, maxt]. Then its chunk querier returns exactly the
// samples its querier does: where parts overlap, the two merge samples of
// the same timestamp in different orders and may keep different values.
func (s *Storage) DisjointParts(mint, maxt int64) bool { return DisjointParts(s.db, mint, maxt) }

// DisjointParts is Storage.DisjointParts for a TSDB.
func DisjointParts(db *tsdb.DB, mint, maxt int64) bool {
	end := int64(math.MinInt64) // where the blocks so far end (exclusive)
	for _, b := range db.Blocks() {
		m := b.Meta()
		if m.MaxTime <= mint || m.MinTime > maxt {
			continue
		}
		if m.MinTime < end {
			return false
		}
		end = m.MaxTime
	}
	h := db.Head()
	hmin := h.MinTime()
	// The out-of-order head's bounds, when it holds samples (its minimum
	// is kept conservative after a truncation: the whole window).
	if omin, omax := h.MinOOOTime(), h.MaxOOOTime(); omax >= omin && omin < hmin {
		hmin = omin
	}
	return hmin >= end
}
