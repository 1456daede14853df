package forward

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
)

// seriesTable keeps the labels of the series references the forwarder
// handed out, which is what the TSDB head does for the embedded storage:
// ingest.Writer appends a series it has seen before by reference alone,
// with empty labels.
//
// It is bounded: a shard that outgrows its share of maxEntries moves its
// entries to a previous generation, consulted (and promoted from) on a
// miss, and drops the one before (the two-generation scheme of the
// writer's own reference cache). A reference that was dropped is unknown:
// Append says so with tsdb.ErrInvalidSample, and the writer appends the
// series again with its labels, getting a new reference.
type seriesTable struct {
	next   atomic.Uint64
	perCap int
	shards [seriesShards]seriesShard
}

const seriesShards = 64

type seriesShard struct {
	mu        sync.Mutex
	cur, prev map[promstorage.SeriesRef]labels.Labels
}

func newSeriesTable(maxEntries int) *seriesTable {
	t := &seriesTable{perCap: max(maxEntries/seriesShards, 1)}
	for i := range t.shards {
		t.shards[i].cur = map[promstorage.SeriesRef]labels.Labels{}
	}
	return t
}

// add stores a copy of ls under a new reference and returns it.
func (t *seriesTable) add(ls labels.Labels) promstorage.SeriesRef {
	ref := promstorage.SeriesRef(t.next.Add(1))
	s := &t.shards[uint64(ref)%seriesShards]
	ls = ls.Copy() // the writer's labels may point into a request buffer
	s.mu.Lock()
	s.put(ref, ls, t.perCap)
	s.mu.Unlock()
	return ref
}

// get returns the labels of ref, or false when it is unknown.
func (t *seriesTable) get(ref promstorage.SeriesRef) (labels.Labels, bool) {
	s := &t.shards[uint64(ref)%seriesShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls, ok := s.cur[ref]; ok {
		return ls, true
	}
	ls, ok := s.prev[ref]
	if ok {
		delete(s.prev, ref)
		s.put(ref, ls, t.perCap)
	}
	return ls, ok
}

func (s *seriesShard) put(ref promstorage.SeriesRef, ls labels.Labels, perCap int) {
	if len(s.cur) >= perCap {
		s.prev = s.cur
		s.cur = make(map[promstorage.SeriesRef]labels.Labels, len(s.prev))
	}
	s.cur[ref] = ls
}

// len returns how many references the table knows.
func (t *seriesTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}
