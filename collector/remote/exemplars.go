package remote

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
)

// ExemplarQuerier returns a querier of the engine's exemplars
// (/api/v1/query_exemplars).
func (s *Storage) ExemplarQuerier(ctx context.Context) (promstorage.ExemplarQuerier, error) {
	return exemplarQuerier{s: s, ctx: ctx}, nil
}

type exemplarQuerier struct {
	s   *Storage
	ctx context.Context
}

// Select returns the exemplars in [start, end] (ms) of the series matching
// any of the matcher sets.
func (q exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	if len(matchers) == 0 {
		return nil, nil
	}
	sels := make([]string, len(matchers))
	for i, ms := range matchers {
		sels[i] = selector(ms)
	}
	var data []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    map[string]string `json:"labels"`
			Value     string            `json:"value"`
			Timestamp any               `json:"timestamp"`
		} `json:"exemplars"`
	}
	params := url.Values{"query": {strings.Join(sels, " or ")}, "start": {formatTime(start)}, "end": {formatTime(end)}}
	if _, err := q.s.get(q.ctx, "exemplars", "/api/v1/query_exemplars", params, &data); err != nil {
		return nil, fmt.Errorf("exemplars from -storage.query-url=%s: %w", q.s.base, err)
	}
	out := make([]exemplar.QueryResult, 0, len(data))
	for _, r := range data {
		res := exemplar.QueryResult{SeriesLabels: q.s.labelsOf(r.SeriesLabels)}
		for _, e := range r.Exemplars {
			v, err := strconv.ParseFloat(e.Value, 64)
			if err != nil {
				return nil, fmt.Errorf("the engine's exemplar value %q: %w", e.Value, err)
			}
			t, err := parseTime(e.Timestamp)
			if err != nil {
				return nil, fmt.Errorf("the engine's exemplar: %w", err)
			}
			res.Exemplars = append(res.Exemplars, exemplar.Exemplar{Labels: labels.FromMap(e.Labels), Value: v, Ts: t, HasTs: true})
		}
		out = append(out, res)
	}
	return out, nil
}

// labelsOf makes sorted labels of m without the dropped ones.
func (s *Storage) labelsOf(m map[string]string) labels.Labels {
	b := labels.NewScratchBuilder(len(m))
	for k, v := range m {
		if !s.drop[k] {
			b.Add(k, v)
		}
	}
	b.Sort()
	return b.Labels()
}
