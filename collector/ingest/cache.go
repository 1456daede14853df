package ingest

import (
	"sync"

	"github.com/cespare/xxhash/v2"
	promstorage "github.com/prometheus/prometheus/storage"
)

// refCache maps a series key (samples.Series.Key) to its storage reference,
// so a series seen before skips validation, label building and the head's
// hash lookup. It is sharded to keep lock contention low with
// several concurrent writers, and bounded: a shard that outgrows its share
// of maxEntries moves its entries to a previous generation, consulted on a
// miss, and drops the generation before that (a two-generation LRU-ish
// scheme, as VictoriaMetrics' caches do). A stale reference is harmless: the
// writer builds the labels when the appender does not know the reference.
type refCache struct {
	shards [cacheShards]cacheShard
}

const (
	cacheShards = 64
	// maxEntries bounds the cache to about 4M series (roughly 1 GiB at 250
	// bytes a series), far above what one collector's head holds.
	maxEntries = 4 << 20
)

type cacheShard struct {
	mu   sync.RWMutex
	cur  map[string]cacheEntry
	prev map[string]cacheEntry
}

// cacheEntry is what the cache keeps per series: the reference only; the
// labels are in the head already.
type cacheEntry struct {
	ref promstorage.SeriesRef
}

func newRefCache() *refCache {
	c := &refCache{}
	for i := range c.shards {
		c.shards[i].cur = make(map[string]cacheEntry)
	}
	return c
}

func (c *refCache) shard(key []byte) *cacheShard {
	return &c.shards[xxhash.Sum64(key)%cacheShards]
}

func (c *refCache) get(key []byte) (cacheEntry, bool) {
	if len(key) == 0 {
		return cacheEntry{}, false
	}
	s := c.shard(key)
	s.mu.RLock()
	e, ok := s.cur[string(key)]
	if !ok && s.prev != nil {
		e, ok = s.prev[string(key)]
	}
	s.mu.RUnlock()
	return e, ok
}

func (c *refCache) put(key []byte, e cacheEntry) {
	s := c.shard(key)
	s.mu.Lock()
	if len(s.cur) >= maxEntries/cacheShards {
		s.prev = s.cur
		s.cur = make(map[string]cacheEntry, len(s.prev))
	}
	s.cur[string(key)] = e
	s.mu.Unlock()
}

func (c *refCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.cur)
		s.mu.RUnlock()
	}
	return n
}
