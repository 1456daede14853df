package ingest

import (
	"sort"
	"strings"
	"sync"

	"github.com/telltale-dev/telltale/samples"
)

// maxMetadataFamilies bounds the metadata store; families beyond it are
// not recorded (their samples still are).
const maxMetadataFamilies = 100_000

// MetadataStore keeps the latest type, help and unit per metric family, for
// /api/v1/metadata. It is in memory only: senders repeat metadata with
// every push or every minute. It is safe for concurrent use.
type MetadataStore struct {
	mu sync.RWMutex
	m  map[string]samples.Metadata
}

// NewMetadataStore returns an empty store.
func NewMetadataStore() *MetadataStore {
	return &MetadataStore{m: make(map[string]samples.Metadata)}
}

// Add records md, copying the strings (they may alias a request buffer).
func (s *MetadataStore) Add(md []samples.Metadata) {
	if len(md) == 0 {
		return
	}
	s.mu.RLock()
	changed := false
	for _, m := range md {
		if old, ok := s.m[m.Name]; !ok || old != m {
			changed = true
			break
		}
	}
	s.mu.RUnlock()
	if !changed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range md {
		if m.Name == "" {
			continue
		}
		if old, ok := s.m[m.Name]; ok && old == m {
			continue
		}
		if _, ok := s.m[m.Name]; !ok && len(s.m) >= maxMetadataFamilies {
			continue
		}
		s.m[strings.Clone(m.Name)] = samples.Metadata{
			Name: strings.Clone(m.Name), Type: strings.Clone(m.Type),
			Help: strings.Clone(m.Help), Unit: strings.Clone(m.Unit),
		}
	}
}

// List returns the metadata of metric (all families when metric is ""),
// sorted by name, at most limit families (0 = all).
func (s *MetadataStore) List(metric string, limit int) []samples.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if metric != "" {
		if m, ok := s.m[metric]; ok {
			return []samples.Metadata{m}
		}
		return nil
	}
	out := make([]samples.Metadata, 0, len(s.m))
	for _, m := range s.m {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
