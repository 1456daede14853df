package tail

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/samples"
)

// snapshot is the set of subscribed clients Observe works with. It is
// replaced, never changed, when a client comes or goes; gen numbers it.
type snapshot struct {
	gen uint64
	// subs are the clients; a client that went is a nil slot until the
	// next client comes, so cached entries' indexes stay valid.
	subs []*subscriber
	n    int // non-nil subs
	// refs caches match entries by series reference; nil when n is 0.
	refs *refTable
	// noMatch is the cache entry of series no client wants, shared by all
	// of them in this generation.
	noMatch *matchEntry
}

// matchEntry is what the hub knows about one series for one snapshot: the
// indexes in snapshot.subs of the clients whose selectors match it, and
// its labels, copied out of the request buffer, for the messages.
type matchEntry struct {
	gen    uint64
	subs   []uint16
	series *series
}

// series is a matching series: labels copied out of the request buffer,
// and their JSON, built once by the first client goroutine that sends it.
type series struct {
	labels []samples.Label // immutable after creation
	json   atomic.Pointer[[]byte]
}

func (s *series) labelsJSON() []byte {
	if p := s.json.Load(); p != nil {
		return *p
	}
	b := labelsJSON(s.labels)
	s.json.Store(&b)
	return b
}

// match computes the entry of a series with labels ls for snap. Labels
// with empty values count as absent, as in storage.
func (snap *snapshot) match(ls []samples.Label) *matchEntry {
	var subs []uint16
	for i, s := range snap.subs {
		if s != nil && matchAny(s.matchers, ls) {
			subs = append(subs, uint16(i))
		}
	}
	if subs == nil {
		return snap.noMatch
	}
	ser := &series{labels: make([]samples.Label, 0, len(ls))}
	for _, l := range ls {
		if l.Value != "" {
			ser.labels = append(ser.labels, samples.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)})
		}
	}
	return &matchEntry{gen: snap.gen, subs: subs, series: ser}
}

func matchAny(sets [][]*labels.Matcher, ls []samples.Label) bool {
	for _, ms := range sets {
		ok := true
		for _, m := range ms {
			if !m.Matches(labelValue(ls, m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func labelValue(ls []samples.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// refTable caches match entries by storage series reference, for all
// clients at once, so the steady-state cost of a sample is one lookup
// however many clients there are. The embedded TSDB numbers series 1, 2,
// 3 ... so small references go to a paged array (two atomic loads, no
// lock); larger ones to a bounded map behind a mutex. Entries of an older
// snapshot are stale and recomputed when met, so a new client needs no
// flush. Safe for concurrent use.
type refTable struct {
	pages []atomic.Pointer[refPage]

	mu          sync.Mutex
	overflow    map[storage.SeriesRef]*matchEntry
	maxOverflow int
}

const (
	refPageBits = 12
	refPageSize = 1 << refPageBits
)

type refPage [refPageSize]atomic.Pointer[matchEntry]

// newRefTable returns a table holding references below denseLimit in
// pages (8 bytes per reference, allocated 32 KiB at a time as references
// are met) and up to maxOverflow others in a map, cleared when full.
func newRefTable(denseLimit, maxOverflow int) *refTable {
	return &refTable{
		pages:       make([]atomic.Pointer[refPage], (denseLimit+refPageSize-1)/refPageSize),
		overflow:    map[storage.SeriesRef]*matchEntry{},
		maxOverflow: maxOverflow,
	}
}

func (t *refTable) get(ref storage.SeriesRef) *matchEntry {
	if p := uint64(ref) >> refPageBits; p < uint64(len(t.pages)) {
		pg := t.pages[p].Load()
		if pg == nil {
			return nil
		}
		return pg[ref&(refPageSize-1)].Load()
	}
	t.mu.Lock()
	e := t.overflow[ref]
	t.mu.Unlock()
	return e
}

func (t *refTable) put(ref storage.SeriesRef, e *matchEntry) {
	if p := uint64(ref) >> refPageBits; p < uint64(len(t.pages)) {
		pg := t.pages[p].Load()
		if pg == nil {
			pg = new(refPage)
			if !t.pages[p].CompareAndSwap(nil, pg) {
				pg = t.pages[p].Load()
			}
		}
		pg[ref&(refPageSize-1)].Store(e)
		return
	}
	t.mu.Lock()
	if len(t.overflow) >= t.maxOverflow {
		clear(t.overflow)
	}
	t.overflow[ref] = e
	t.mu.Unlock()
}

// overflowLen returns the number of entries in the map part.
func (t *refTable) overflowLen() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.overflow)
}
