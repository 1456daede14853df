// Package promhistogram converts native histograms between samples.Batch's
// form (samples.Histogram) and Prometheus' model (model/histogram), the
// form the TSDB stores and Prometheus' own code (the rules engine's
// appender, the OTLP translator) produces.
//
// It is a package of its own so that samples stays free of dependencies
// (the agent imports it) while the collector's writer, rules engine and
// OTLP decoder share one conversion.
package promhistogram

import (
	"slices"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/telltale-dev/telltale/samples"
)

// FromPrometheus converts a native histogram of Prometheus' model (an
// integer h or, when fh is not nil, a float fh) at time t (ms) to the
// Batch's form. The result aliases the histogram's slices: they must not
// be changed while the Batch is used.
func FromPrometheus(t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) samples.Histogram {
	spans := func(s []histogram.Span) []samples.Span {
		if len(s) == 0 {
			return nil
		}
		out := make([]samples.Span, len(s))
		for i, x := range s {
			out[i] = samples.Span{Offset: x.Offset, Length: x.Length}
		}
		return out
	}
	if fh != nil {
		return samples.Histogram{T: t, Float: true, CounterResetHint: uint8(fh.CounterResetHint), Schema: fh.Schema,
			ZeroThreshold: fh.ZeroThreshold, Sum: fh.Sum, Count: fh.Count, ZeroCount: fh.ZeroCount,
			PositiveSpans: spans(fh.PositiveSpans), NegativeSpans: spans(fh.NegativeSpans),
			PositiveCounts: fh.PositiveBuckets, NegativeCounts: fh.NegativeBuckets, CustomValues: fh.CustomValues}
	}
	return samples.Histogram{T: t, CounterResetHint: uint8(h.CounterResetHint), Schema: h.Schema,
		ZeroThreshold: h.ZeroThreshold, Sum: h.Sum, IntCount: h.Count, IntZeroCount: h.ZeroCount,
		PositiveSpans: spans(h.PositiveSpans), NegativeSpans: spans(h.NegativeSpans),
		PositiveDeltas: h.PositiveBuckets, NegativeDeltas: h.NegativeBuckets, CustomValues: h.CustomValues}
}

// ToPrometheus converts h to Prometheus' model: an integer histogram, or a
// float one when h.Float. The slices are copied: the TSDB head keeps the
// last histogram of each series, and h's point into a reused request
// buffer.
func ToPrometheus(h *samples.Histogram) (*histogram.Histogram, *histogram.FloatHistogram) {
	spans := func(s []samples.Span) []histogram.Span {
		if len(s) == 0 {
			return nil
		}
		out := make([]histogram.Span, len(s))
		for i, x := range s {
			out[i] = histogram.Span{Offset: x.Offset, Length: x.Length}
		}
		return out
	}
	hint := histogram.CounterResetHint(h.CounterResetHint)
	if h.Float {
		return nil, &histogram.FloatHistogram{
			CounterResetHint: hint, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
			ZeroCount: h.ZeroCount, Count: h.Count, Sum: h.Sum,
			PositiveSpans: spans(h.PositiveSpans), NegativeSpans: spans(h.NegativeSpans),
			PositiveBuckets: slices.Clone(h.PositiveCounts), NegativeBuckets: slices.Clone(h.NegativeCounts),
			CustomValues: slices.Clone(h.CustomValues),
		}
	}
	return &histogram.Histogram{
		CounterResetHint: hint, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
		ZeroCount: h.IntZeroCount, Count: h.IntCount, Sum: h.Sum,
		PositiveSpans: spans(h.PositiveSpans), NegativeSpans: spans(h.NegativeSpans),
		PositiveBuckets: slices.Clone(h.PositiveDeltas), NegativeBuckets: slices.Clone(h.NegativeDeltas),
		CustomValues: slices.Clone(h.CustomValues),
	}, nil
}
