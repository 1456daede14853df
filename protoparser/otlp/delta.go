package otlp

import (
	"encoding/binary"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Cumulator turns OTLP delta sums and histograms into cumulative ones, per
// series, as the OpenTelemetry Collector's deltatocumulative processor
// does: each series keeps a running total (and its start time) that every
// delta point adds to, and the point is rewritten to carry the total.
//
// Why convert rather than store deltas as they come (Prometheus 3's
// native delta ingestion): PromQL's rate(), increase() and
// histogram_quantile(rate(...)) — what every dashboard, recording rule and
// the deploy impact analysis use — assume cumulative counters; stored
// deltas need sum_over_time() instead, so a service's panels would change
// with its SDK's temporality. The price is state: a running total per
// series in memory (bounded by MaxSeries, idle series dropped after
// IdleTimeout). After a restart, or when a series was dropped, the total
// starts again from the next delta with a new start time: PromQL sees a
// counter reset, which rate() handles. Behind a load balancer a sender's
// series must reach the same collector (sticky routing), or each replica
// counts only its share.
//
// A Cumulator is safe for concurrent use.
type Cumulator struct {
	opts CumulatorOptions

	mu        sync.Mutex
	series    map[string]*deltaSeries
	lastSweep time.Time
	key       []byte // scratch, under mu
}

// CumulatorOptions configure NewCumulator.
type CumulatorOptions struct {
	// MaxSeries bounds the delta series tracked; points of new series
	// beyond it are rejected (-otlp.delta-max-series). 0 means 100,000.
	MaxSeries int
	// IdleTimeout drops a series' running total when it got no point for
	// this long. 0 means 1h.
	IdleTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewCumulator returns an empty Cumulator.
func NewCumulator(opts CumulatorOptions) *Cumulator {
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = 100_000
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cumulator{opts: opts, series: map[string]*deltaSeries{}}
}

// Len returns the number of series with a running total.
func (c *Cumulator) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.series)
}

// deltaSeries is the running total of one series.
type deltaSeries struct {
	start, last pcommon.Timestamp
	seen        time.Time

	intSum   int64
	floatSum float64
	isInt    bool

	count  uint64
	sum    float64
	bounds []float64 // explicit histograms
	counts []uint64

	scale            int32 // exponential histograms
	zeroThreshold    float64
	zeroCount        uint64
	posOff, negOff   int32
	posCnts, negCnts []uint64
}

// deltaRejects counts what accumulate could not convert.
type deltaRejects struct {
	outOfOrder, overLimit int
}

// accumulate rewrites the delta points of m (of resource res and scope
// scope) into cumulative ones and marks m cumulative. Points older than
// the series' last point, and points of new series over MaxSeries, are
// removed and counted.
func (c *Cumulator) accumulate(res pcommon.Resource, scope pcommon.InstrumentationScope, m pmetric.Metric) deltaRejects {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	if now.Sub(c.lastSweep) > c.opts.IdleTimeout/4 {
		for k, s := range c.series {
			if now.Sub(s.seen) > c.opts.IdleTimeout {
				delete(c.series, k)
			}
		}
		c.lastSweep = now
	}
	var rj deltaRejects
	prefix := c.metricKey(res, scope, m)
	get := func(attrs pcommon.Map, start, t pcommon.Timestamp) *deltaSeries {
		c.key = appendAttrs(c.key[:prefix], attrs)
		s := c.series[string(c.key)]
		if s == nil {
			if len(c.series) >= c.opts.MaxSeries {
				rj.overLimit++
				return nil
			}
			if start == 0 {
				start = t
			}
			s = &deltaSeries{start: start}
			c.series[string(c.key)] = s
		} else if t <= s.last {
			rj.outOfOrder++
			return nil
		}
		s.last, s.seen = t, now
		return s
	}
	switch m.Type() {
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().RemoveIf(func(p pmetric.NumberDataPoint) bool {
			s := get(p.Attributes(), p.StartTimestamp(), p.Timestamp())
			if s == nil {
				return true
			}
			if p.ValueType() == pmetric.NumberDataPointValueTypeInt {
				s.intSum += p.IntValue()
				s.isInt = true
				p.SetIntValue(s.intSum)
			} else {
				if s.isInt { // the SDK changed the type: keep one running total
					s.floatSum, s.isInt = float64(s.intSum), false
				}
				s.floatSum += p.DoubleValue()
				p.SetDoubleValue(s.floatSum)
			}
			p.SetStartTimestamp(s.start)
			return false
		})
		m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().RemoveIf(func(p pmetric.HistogramDataPoint) bool {
			s := get(p.Attributes(), p.StartTimestamp(), p.Timestamp())
			if s == nil {
				return true
			}
			bounds := p.ExplicitBounds().AsRaw()
			if !slices.Equal(bounds, s.bounds) || len(s.counts) != p.BucketCounts().Len() {
				// New bucket layout: start a new total (PromQL sees a reset).
				*s = deltaSeries{start: p.StartTimestamp(), last: s.last, seen: s.seen, bounds: bounds, counts: make([]uint64, p.BucketCounts().Len())}
				if s.start == 0 {
					s.start = p.Timestamp()
				}
			}
			s.count += p.Count()
			s.sum += p.Sum()
			for i := range s.counts {
				s.counts[i] += p.BucketCounts().At(i)
			}
			p.SetCount(s.count)
			p.SetSum(s.sum)
			p.BucketCounts().FromRaw(s.counts)
			p.RemoveMin()
			p.RemoveMax()
			p.SetStartTimestamp(s.start)
			return false
		})
		m.Histogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case pmetric.MetricTypeExponentialHistogram:
		m.ExponentialHistogram().DataPoints().RemoveIf(func(p pmetric.ExponentialHistogramDataPoint) bool {
			s := get(p.Attributes(), p.StartTimestamp(), p.Timestamp())
			if s == nil {
				return true
			}
			if s.count == 0 && s.posCnts == nil && s.negCnts == nil {
				s.scale, s.zeroThreshold = p.Scale(), p.ZeroThreshold()
			}
			if p.Scale() != s.scale || p.ZeroThreshold() != s.zeroThreshold {
				*s = deltaSeries{start: p.StartTimestamp(), last: s.last, seen: s.seen, scale: p.Scale(), zeroThreshold: p.ZeroThreshold()}
				if s.start == 0 {
					s.start = p.Timestamp()
				}
			}
			s.count += p.Count()
			s.sum += p.Sum()
			s.zeroCount += p.ZeroCount()
			s.posOff, s.posCnts = addBuckets(s.posOff, s.posCnts, p.Positive().Offset(), p.Positive().BucketCounts().AsRaw())
			s.negOff, s.negCnts = addBuckets(s.negOff, s.negCnts, p.Negative().Offset(), p.Negative().BucketCounts().AsRaw())
			p.SetCount(s.count)
			p.SetSum(s.sum)
			p.SetZeroCount(s.zeroCount)
			p.Positive().SetOffset(s.posOff)
			p.Positive().BucketCounts().FromRaw(s.posCnts)
			p.Negative().SetOffset(s.negOff)
			p.Negative().BucketCounts().FromRaw(s.negCnts)
			p.RemoveMin()
			p.RemoveMax()
			p.SetStartTimestamp(s.start)
			return false
		})
		m.ExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	return rj
}

// addBuckets adds the bucket counts b starting at index off to the running
// counts a starting at aOff, and returns the merged range.
func addBuckets(aOff int32, a []uint64, off int32, b []uint64) (int32, []uint64) {
	if len(b) == 0 {
		return aOff, a
	}
	if len(a) == 0 {
		return off, slices.Clone(b)
	}
	lo := min(aOff, off)
	hi := max(aOff+int32(len(a)), off+int32(len(b)))
	out := a
	if lo != aOff || hi != aOff+int32(len(a)) {
		out = make([]uint64, hi-lo)
		copy(out[aOff-lo:], a)
	}
	for i, v := range b {
		out[off-lo+int32(i)] += v
	}
	return lo, out
}

// metricKey puts the identity of m's series family into c.key and returns
// its length: resource attributes, scope name and version, metric name,
// unit and type.
func (c *Cumulator) metricKey(res pcommon.Resource, scope pcommon.InstrumentationScope, m pmetric.Metric) int {
	k := appendAttrs(c.key[:0], res.Attributes())
	k = appendString(k, scope.Name())
	k = appendString(k, scope.Version())
	k = appendString(k, m.Name())
	k = appendString(k, m.Unit())
	k = append(k, byte(m.Type()))
	c.key = k
	return len(k)
}

// appendAttrs appends attrs to k sorted by key, each key and value (as
// OTLP's string form) length-prefixed, so different sets never share a key.
func appendAttrs(k []byte, attrs pcommon.Map) []byte {
	keys := make([]string, 0, attrs.Len())
	attrs.Range(func(name string, _ pcommon.Value) bool {
		keys = append(keys, name)
		return true
	})
	sort.Strings(keys)
	k = binary.AppendUvarint(k, uint64(len(keys)))
	for _, name := range keys {
		v, _ := attrs.Get(name)
		k = appendString(k, name)
		k = append(k, byte(v.Type()))
		k = appendString(k, v.AsString())
	}
	return k
}

func appendString(k []byte, s string) []byte {
	k = binary.AppendUvarint(k, uint64(len(s)))
	return append(k, s...)
}

// isDelta reports whether m is a sum or histogram of delta temporality.
func isDelta(m pmetric.Metric) bool {
	t, ok := temporality(m)
	return ok && t == pmetric.AggregationTemporalityDelta
}
