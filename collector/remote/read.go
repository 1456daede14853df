package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"
	promremote "github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
)

// querier reads [mint, maxt] from the engine.
type querier struct {
	s          *Storage
	mint, maxt int64
}

func (q *querier) Close() error { return nil }

// Select returns the series matching ms with their raw samples in the
// hinted range (PromQL passes the exact range it needs), without the
// dropped labels.
func (q *querier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	start, end := q.mint, q.maxt
	if hints != nil && hints.Start != 0 && hints.End != 0 {
		start, end = max(hints.Start, q.mint), min(hints.End, q.maxt)
	}
	if hints != nil && hints.Func == "series" {
		// /api/v1/series asks for labels only: no need for samples.
		return q.s.series(ctx, start, end, ms)
	}
	mode, err := q.s.readMode(ctx)
	if err != nil {
		return promstorage.ErrSeriesSet(err)
	}
	var ss promstorage.SeriesSet
	if mode == ReadQueryAPI {
		ss = q.s.selectQueryAPI(ctx, start, end, ms)
	} else {
		ss = q.s.selectRemoteRead(ctx, start, end, hints, ms, sortSeries)
	}
	if len(q.s.drop) == 0 {
		if mode == ReadQueryAPI && sortSeries {
			return sorted(ss)
		}
		return ss
	}
	return q.s.dropLabels(ss)
}

func (s *Storage) selectRemoteRead(ctx context.Context, start, end int64, hints *promstorage.SelectHints, ms []*labels.Matcher, sortSeries bool) promstorage.SeriesSet {
	s.requests["read"].Inc()
	query, err := promremote.ToQuery(start, end, ms, hints)
	if err != nil {
		s.errs["read"].Inc()
		return promstorage.ErrSeriesSet(err)
	}
	ss, err := s.reader.Read(ctx, query, sortSeries || len(s.drop) > 0)
	if err != nil {
		s.errs["read"].Inc()
		return promstorage.ErrSeriesSet(fmt.Errorf("remote read from -storage.query-url=%s: %w", s.base, err))
	}
	return ss
}

// selector renders matchers as a PromQL series selector.
func selector(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// selectQueryAPI reads the raw float samples of [start, end] with an
// instant query of the selector over a range ending at end: PromQL
// returns the samples of a range selection as they are stored, staleness
// markers left out.
func (s *Storage) selectQueryAPI(ctx context.Context, start, end int64, ms []*labels.Matcher) promstorage.SeriesSet {
	// A range selection is (end-range, end]: the range reaches one
	// millisecond before start.
	qs := fmt.Sprintf("%s[%dms]", selector(ms), end-start+1)
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric     map[string]string `json:"metric"`
			Values     [][2]any          `json:"values"`
			Histograms [][2]any          `json:"histograms"`
		} `json:"result"`
	}
	params := url.Values{"query": {qs}, "time": {formatTime(end)}}
	warns, err := s.get(ctx, "query", "/api/v1/query", params, &data)
	if err != nil {
		return promstorage.ErrSeriesSet(fmt.Errorf("reading %s from -storage.query-url=%s: %w", qs, s.base, err))
	}
	var annos annotations.Annotations
	for _, w := range warns {
		annos.Add(fmt.Errorf("engine: %s", w))
	}
	out := make([]promstorage.Series, 0, len(data.Result))
	histos := 0
	for _, r := range data.Result {
		b := labels.NewScratchBuilder(len(r.Metric))
		for k, v := range r.Metric {
			b.Add(k, v)
		}
		b.Sort()
		ser := promql.Series{Metric: b.Labels()}
		for _, v := range r.Values {
			t, err := parseTime(v[0])
			if err != nil {
				return promstorage.ErrSeriesSet(fmt.Errorf("the engine's answer to %s: %w", qs, err))
			}
			vs, _ := v[1].(string)
			f, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return promstorage.ErrSeriesSet(fmt.Errorf("the engine's answer to %s: sample value %q: %w", qs, vs, err))
			}
			ser.Floats = append(ser.Floats, promql.FPoint{T: t, F: f})
		}
		histos += len(r.Histograms)
		out = append(out, promql.NewStorageSeries(ser))
	}
	if histos > 0 {
		annos.Add(fmt.Errorf("%d native histogram samples left out: the engine's query API cannot return them exactly; use an engine with remote read", histos))
	}
	return &sliceSet{series: out, annos: annos}
}

// series lists the series matching ms in [start, end] through the query
// API, labels only.
func (s *Storage) series(ctx context.Context, start, end int64, ms []*labels.Matcher) promstorage.SeriesSet {
	var data []map[string]string
	params := url.Values{"match[]": {selector(ms)}, "start": {formatTime(start)}, "end": {formatTime(end)}}
	warns, err := s.get(ctx, "query", "/api/v1/series", params, &data)
	if err != nil {
		return promstorage.ErrSeriesSet(fmt.Errorf("series from -storage.query-url=%s: %w", s.base, err))
	}
	var annos annotations.Annotations
	for _, w := range warns {
		annos.Add(fmt.Errorf("engine: %s", w))
	}
	seen := map[uint64]bool{}
	out := make([]promstorage.Series, 0, len(data))
	for _, m := range data {
		b := labels.NewScratchBuilder(len(m))
		for k, v := range m {
			if !s.drop[k] {
				b.Add(k, v)
			}
		}
		b.Sort()
		ls := b.Labels()
		if h := ls.Hash(); !seen[h] {
			seen[h] = true
			out = append(out, promql.NewStorageSeries(promql.Series{Metric: ls}))
		}
	}
	slices.SortFunc(out, func(a, b promstorage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &sliceSet{series: out, annos: annos}
}

// LabelNames lists the label names of the series matching ms (all when
// none) from the engine's query API.
func (q *querier) LabelNames(ctx context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	params := url.Values{"start": {formatTime(q.mint)}, "end": {formatTime(q.maxt)}}
	if len(ms) > 0 {
		params.Set("match[]", selector(ms))
	}
	var names []string
	warns, err := q.s.get(ctx, "labels", "/api/v1/labels", params, &names)
	if err != nil {
		return nil, nil, fmt.Errorf("label names from -storage.query-url=%s: %w", q.s.base, err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return q.s.drop[n] })
	slices.Sort(names)
	return limit(names, hints), annosOf(warns), nil
}

// LabelValues lists the values of label name from the engine's query API.
func (q *querier) LabelValues(ctx context.Context, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.s.drop[name] {
		return nil, nil, nil
	}
	params := url.Values{"start": {formatTime(q.mint)}, "end": {formatTime(q.maxt)}}
	if len(ms) > 0 {
		params.Set("match[]", selector(ms))
	}
	var values []string
	warns, err := q.s.get(ctx, "label_values", "/api/v1/label/"+url.PathEscape(name)+"/values", params, &values)
	if err != nil {
		return nil, nil, fmt.Errorf("values of label %s from -storage.query-url=%s: %w", name, q.s.base, err)
	}
	slices.Sort(values)
	return limit(values, hints), annosOf(warns), nil
}

func limit(vs []string, hints *promstorage.LabelHints) []string {
	if hints != nil && hints.Limit > 0 && len(vs) > hints.Limit {
		return vs[:hints.Limit]
	}
	return vs
}

func annosOf(warns []string) annotations.Annotations {
	var a annotations.Annotations
	for _, w := range warns {
		a.Add(fmt.Errorf("engine: %s", w))
	}
	return a
}

// formatTime renders ms as the API's seconds with millisecond precision.
func formatTime(ms int64) string {
	if ms == math.MinInt64 || ms < -9_000_000_000_000 {
		ms = -9_000_000_000_000 // before any data; the API parses it
	}
	if ms == math.MaxInt64 || ms > 9_000_000_000_000 {
		ms = 9_000_000_000_000
	}
	return strconv.FormatFloat(float64(ms)/1e3, 'f', 3, 64)
}

// parseTime reads an API timestamp (seconds, a JSON number) into ms.
func parseTime(v any) (int64, error) {
	switch t := v.(type) {
	case float64:
		return int64(math.Round(t * 1e3)), nil
	case json.Number:
		f, err := t.Float64()
		return int64(math.Round(f * 1e3)), err
	}
	return 0, fmt.Errorf("timestamp %v is not a number", v)
}

// sliceSet is a SeriesSet over series in memory.
type sliceSet struct {
	series []promstorage.Series
	i      int
	annos  annotations.Annotations
}

func (s *sliceSet) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}

func (s *sliceSet) At() promstorage.Series            { return s.series[s.i-1] }
func (s *sliceSet) Err() error                        { return nil }
func (s *sliceSet) Warnings() annotations.Annotations { return s.annos }

// sorted returns ss with its series sorted by labels.
func sorted(ss promstorage.SeriesSet) promstorage.SeriesSet {
	var out []promstorage.Series
	for ss.Next() {
		out = append(out, ss.At())
	}
	if ss.Err() != nil {
		return ss
	}
	slices.SortFunc(out, func(a, b promstorage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &sliceSet{series: out, annos: ss.Warnings()}
}

// dropLabels returns ss with the dropped labels removed, sorted, series
// whose labels are then equal merged into one (a sample at the same time
// in two of them counted once).
func (s *Storage) dropLabels(ss promstorage.SeriesSet) promstorage.SeriesSet {
	type group struct {
		ls     labels.Labels
		series []promstorage.Series
	}
	byHash := map[uint64][]*group{}
	var groups []*group
	for ss.Next() {
		ser := ss.At()
		ls := ser.Labels()
		b := labels.NewBuilder(ls)
		ls.Range(func(l labels.Label) {
			if s.drop[l.Name] {
				b.Del(l.Name)
			}
		})
		ls = b.Labels()
		h := ls.Hash()
		var g *group
		for _, c := range byHash[h] {
			if labels.Equal(c.ls, ls) {
				g = c
			}
		}
		if g == nil {
			g = &group{ls: ls}
			byHash[h] = append(byHash[h], g)
			groups = append(groups, g)
		}
		g.series = append(g.series, relabeled{ser, ls})
	}
	if err := ss.Err(); err != nil {
		return promstorage.ErrSeriesSet(err)
	}
	slices.SortFunc(groups, func(a, b *group) int { return labels.Compare(a.ls, b.ls) })
	out := make([]promstorage.Series, len(groups))
	for i, g := range groups {
		if len(g.series) == 1 {
			out[i] = g.series[0]
		} else {
			out[i] = promstorage.ChainedSeriesMerge(g.series...)
		}
	}
	return &sliceSet{series: out, annos: ss.Warnings()}
}

// relabeled is a series under other labels.
type relabeled struct {
	promstorage.Series
	ls labels.Labels
}

func (r relabeled) Labels() labels.Labels { return r.ls }
