// Package promq runs change-impact queries on a PromQL engine: Querier
// implements impact.Querier over a *promql.Engine and a storage.Queryable
// (the collector's embedded TSDB, or its remote-read storage in forward
// mode), so the collector wires change impact with
//
//	q := promq.New(engine, storage)
//	report, err := impact.Analyze(ctx, q, change, others, signals, opts)
//
// It promises one value per step, NaN where the query has no value, and
// the per-step sum when a query yields several series. Its LabelValues
// answers which services and envs have data (the change log's Catalog).
// It keeps no state and is safe for concurrent use as far as the engine
// and storage are.
package promq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/annotator/impact"
)

// Querier implements impact.Querier.
type Querier struct {
	engine *promql.Engine
	q      storage.Queryable
	// parser parses LabelValues selectors; the default options suffice
	// for plain series selectors.
	parser parser.Parser
}

var _ impact.Querier = (*Querier)(nil)

// New returns a Querier that runs range queries with engine on q. Use the
// collector's engine (its limits and timeout apply to impact queries too).
func New(engine *promql.Engine, q storage.Queryable) *Querier {
	if engine == nil || q == nil {
		panic("BUG: promq.New needs an engine and a queryable")
	}
	return &Querier{engine: engine, q: q, parser: parser.NewParser(parser.Options{})}
}

// QueryRange evaluates query at start, start+step, ... end and returns one
// value per step (index i at start + i·step), NaN where no series has a
// float value; several series are summed per step. Native-histogram
// samples are not values here: aggregate them with histogram_quantile.
func (p *Querier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	if step <= 0 || end.Before(start) {
		return nil, fmt.Errorf("impact query %q: bad range %s..%s step %v", query, start, end, step)
	}
	qry, err := p.engine.NewRangeQuery(ctx, p.q, nil, query, start, end, step)
	if err != nil {
		return nil, fmt.Errorf("impact query %q does not parse (check the signal's query in the impact config): %w", query, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("impact query %q failed: %w", query, res.Err)
	}
	n := int(end.Sub(start)/step) + 1
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		return nil, errors.New("BUG: range query did not return a matrix")
	}
	startMs, stepMs := start.UnixMilli(), step.Milliseconds()
	for _, s := range m {
		for _, pt := range s.Floats {
			off := pt.T - startMs
			if off < 0 || off%stepMs != 0 {
				continue
			}
			i := int(off / stepMs)
			if i >= n {
				continue
			}
			if math.IsNaN(out[i]) {
				out[i] = pt.F
			} else {
				out[i] += pt.F
			}
		}
	}
	return out, nil
}

// maxLabelValues bounds what LabelValues returns.
const maxLabelValues = 1000

// LabelValues returns the sorted values of label on the series matching
// selector ("" for all series) with samples in [from, to], at most 1000.
func (p *Querier) LabelValues(ctx context.Context, label, selector string, from, to time.Time) ([]string, error) {
	var ms []*labels.Matcher
	if selector != "" {
		var err error
		if ms, err = p.parser.ParseMetricSelector(selector); err != nil {
			return nil, fmt.Errorf("BUG: label values selector %q does not parse: %w", selector, err)
		}
	}
	q, err := p.q.Querier(from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("cannot query label %s: %w", label, err)
	}
	defer q.Close()
	vals, _, err := q.LabelValues(ctx, label, &storage.LabelHints{Limit: maxLabelValues}, ms...)
	if err != nil {
		return nil, fmt.Errorf("cannot query label %s: %w", label, err)
	}
	return vals, nil
}
