package otlp

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// deltaRequest is one delta sum point of value v at second sec for series
// attribute a, plus an explicit and an exponential histogram point.
func deltaRequest(sec int, a string, v int64, bounds []float64, counts []uint64, expOff int32, exp []uint64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "d")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts := pcommon.NewTimestampFromTime(time.Unix(int64(1000+sec), 0))
	m := ms.AppendEmpty()
	m.SetName("c")
	s := m.SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	s.SetIsMonotonic(true)
	p := s.DataPoints().AppendEmpty()
	p.Attributes().PutStr("a", a)
	p.SetTimestamp(ts)
	p.SetIntValue(v)
	if bounds != nil {
		m = ms.AppendEmpty()
		m.SetName("h")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		hp := h.DataPoints().AppendEmpty()
		hp.SetTimestamp(ts)
		hp.ExplicitBounds().FromRaw(bounds)
		hp.BucketCounts().FromRaw(counts)
		var n uint64
		for _, c := range counts {
			n += c
		}
		hp.SetCount(n)
		hp.SetSum(float64(n))
	}
	if exp != nil {
		m = ms.AppendEmpty()
		m.SetName("e")
		e := m.SetEmptyExponentialHistogram()
		e.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		ep := e.DataPoints().AppendEmpty()
		ep.SetTimestamp(ts)
		ep.SetScale(1)
		ep.Positive().SetOffset(expOff)
		ep.Positive().BucketCounts().FromRaw(exp)
		var n uint64
		for _, c := range exp {
			n += c
		}
		ep.SetCount(n)
	}
	return md
}

func TestCumulator(t *testing.T) {
	c := NewCumulator(CumulatorOptions{MaxSeries: 4})
	f := func(md pmetric.Metrics, wantSum int64, wantBuckets, wantExp string, wantRejected int) {
		t.Helper()
		var res Result
		conv := &Converter{opts: ConvertOptions{Delta: c}}
		conv.prepare(md, &res)
		if res.Rejected != wantRejected {
			t.Fatalf("got %d rejected (%s); want %d", res.Rejected, res.Message(), wantRejected)
		}
		ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
		for i := range ms.Len() {
			m := ms.At(i)
			if t2, ok := temporality(m); ok && t2 != pmetric.AggregationTemporalityCumulative {
				t.Fatalf("metric %s still %s", m.Name(), t2)
			}
			switch m.Name() {
			case "c":
				if wantRejected > 0 && m.Sum().DataPoints().Len() == 0 {
					continue
				}
				p := m.Sum().DataPoints().At(0)
				if p.IntValue() != wantSum || p.StartTimestamp() == 0 {
					t.Fatalf("sum: got %d start %v; want %d with a start time", p.IntValue(), p.StartTimestamp(), wantSum)
				}
			case "h":
				p := m.Histogram().DataPoints().At(0)
				if got := fmt.Sprint(p.BucketCounts().AsRaw(), p.Count()); got != wantBuckets {
					t.Fatalf("histogram: got %s; want %s", got, wantBuckets)
				}
			case "e":
				p := m.ExponentialHistogram().DataPoints().At(0)
				if got := fmt.Sprint(p.Positive().Offset(), p.Positive().BucketCounts().AsRaw(), p.Count()); got != wantExp {
					t.Fatalf("exponential histogram: got %s; want %s", got, wantExp)
				}
			}
		}
	}
	f(deltaRequest(1, "x", 5, []float64{1, 2}, []uint64{1, 2, 3}, 2, []uint64{1, 1}), 5, "[1 2 3] 6", "2 [1 1] 2", 0)
	f(deltaRequest(2, "x", 3, []float64{1, 2}, []uint64{1, 0, 0}, 0, []uint64{4}), 8, "[2 2 3] 7", "0 [4 0 1 1] 6", 0)
	// Another series keeps its own total.
	f(deltaRequest(2, "y", 7, nil, nil, 0, nil), 7, "", "", 0)
	// New bounds start a new total.
	f(deltaRequest(3, "x", 1, []float64{5}, []uint64{1, 1}, 0, nil), 9, "[1 1] 2", "", 0)
	// A point not later than the last is rejected, not counted twice.
	f(deltaRequest(3, "x", 100, nil, nil, 0, nil), 0, "", "", 1)
	// Over MaxSeries: c{a="x"}, c{a="y"}, h and e are 4; c{a="z"} would be 5.
	f(deltaRequest(4, "z", 1, nil, nil, 0, nil), 0, "", "", 1)
	if c.Len() != 4 {
		t.Fatalf("got %d series; want 4", c.Len())
	}
}
