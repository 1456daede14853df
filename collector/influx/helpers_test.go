package influx

import (
	"context"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/samples"
)

// memStore is an ingest.Appendable keeping committed samples in memory,
// by label set in Prometheus notation.
type memStore struct {
	mu        sync.Mutex
	series    map[string][]samples.Sample
	commitErr error
}

func newMemStore() *memStore { return &memStore{series: map[string][]samples.Sample{}} }

func (s *memStore) Appender(context.Context) promstorage.Appender { return &memAppender{s: s} }

func (s *memStore) snapshot() map[string][]samples.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]samples.Sample, len(s.series))
	for k, v := range s.series {
		out[k] = append([]samples.Sample(nil), v...)
	}
	return out
}

func (s *memStore) names() []string {
	var out []string
	for k := range s.snapshot() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type memAppender struct {
	promstorage.Appender // nil: only the methods below are used by ingest.Writer
	s                    *memStore
	pending              []pendingSample
}

type pendingSample struct {
	lset string
	s    samples.Sample
}

func (a *memAppender) Append(_ promstorage.SeriesRef, l labels.Labels, t int64, v float64) (promstorage.SeriesRef, error) {
	a.pending = append(a.pending, pendingSample{l.String(), samples.Sample{T: t, V: v}})
	return promstorage.SeriesRef(l.Hash()), nil
}

func (a *memAppender) Commit() error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.s.commitErr != nil {
		return a.s.commitErr
	}
	for _, p := range a.pending {
		a.s.series[p.lset] = append(a.s.series[p.lset], p.s)
	}
	return nil
}

func (a *memAppender) Rollback() error { a.pending = nil; return nil }

// nopStore is an ingest.Appendable that drops everything, for benchmarks.
type nopStore struct{}

func (nopStore) Appender(context.Context) promstorage.Appender { return nopAppender{} }

type nopAppender struct{ promstorage.Appender }

func (nopAppender) Append(ref promstorage.SeriesRef, l labels.Labels, _ int64, _ float64) (promstorage.SeriesRef, error) {
	if ref == 0 {
		ref = promstorage.SeriesRef(l.Hash())
	}
	return ref, nil
}
func (nopAppender) Commit() error   { return nil }
func (nopAppender) Rollback() error { return nil }
