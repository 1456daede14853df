package otlp

import (
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/encoding/protowire"
)

// Limits bound the shape of an OTLP request beyond its size, so that no
// request can make decoding or translation run away: AnyValue attributes
// nest (arrays and key-value lists of AnyValues), and the recursion that
// decodes them and turns them into label strings is as deep as the nesting;
// the translator's work grows with the square of the attributes of one
// resource, scope or data point.
//
// Zero values mean the defaults (DefaultMaxAttributeDepth,
// DefaultMaxAttributes); there is no "unlimited".
type Limits struct {
	// MaxAttributeDepth is the deepest an attribute value may nest: a
	// string, number or bool is depth 1, an array or key-value list of them
	// depth 2, and so on (-otlp.max-attribute-depth).
	MaxAttributeDepth int
	// MaxAttributes is the most attributes one resource, scope, metric
	// (its metadata), data point or exemplar may have (-otlp.max-attributes).
	MaxAttributes int
}

// Defaults of Limits. Real attribute values nest one or two levels; a data
// point with more attributes than -ingest.max-labels-per-series (40) is
// rejected by the ingest path anyway, and resource attributes all go to
// target_info, which obeys the same label limit.
const (
	DefaultMaxAttributeDepth = 16
	DefaultMaxAttributes     = 128
)

func (l Limits) withDefaults() Limits {
	if l.MaxAttributeDepth <= 0 {
		l.MaxAttributeDepth = DefaultMaxAttributeDepth
	}
	if l.MaxAttributes <= 0 {
		l.MaxAttributes = DefaultMaxAttributes
	}
	return l
}

// ErrLimit is wrapped by the errors of Decode and CheckLimits for a request
// over one of the Limits; the message names the flag and the fix. Errors
// wrapping it also wrap one of ErrAttributeDepth and ErrTooManyAttributes.
var (
	ErrLimit             = errors.New("OTLP request over a limit")
	ErrAttributeDepth    = fmt.Errorf("%w: attribute nested too deep", ErrLimit)
	ErrTooManyAttributes = fmt.Errorf("%w: too many attributes", ErrLimit)
)

// LimitReason returns the rejection reason (telltale_ingest_rejected_total)
// of an error wrapping ErrLimit, or "".
func LimitReason(err error) string {
	switch {
	case errors.Is(err, ErrAttributeDepth):
		return "otlp_attribute_depth"
	case errors.Is(err, ErrTooManyAttributes):
		return "otlp_too_many_attributes"
	}
	return ""
}

func depthError(depth int, lim Limits) error {
	return fmt.Errorf("%w: an attribute value nests at least %d levels deep (arrays or key-value lists of values), limit -otlp.max-attribute-depth=%d: flatten the attribute at the sender or raise the flag",
		ErrAttributeDepth, depth, lim.MaxAttributeDepth)
}

// protobuf message kinds the guard walks: only those on a path to AnyValue.
type pbKind uint8

const (
	pbOther pbKind = iota // skipped
	pbRequest
	pbResourceMetrics
	pbResource
	pbScopeMetrics
	pbScope
	pbMetric
	pbNumberPoints // Gauge, Sum: field 1 is NumberDataPoint
	pbHistogramPoints
	pbExpHistogramPoints
	pbSummaryPoints
	pbNumberPoint
	pbHistogramPoint
	pbExpHistogramPoint
	pbSummaryPoint
	pbExemplar
	pbKeyValue
	pbAnyValue
	pbArrayValue
	pbKeyValueList
)

// pbChild returns the kind of field f of a message of kind k, from
// opentelemetry/proto/{collector/metrics,metrics,resource,common}/v1.
func pbChild(k pbKind, f protowire.Number) pbKind {
	switch k {
	case pbRequest:
		if f == 1 {
			return pbResourceMetrics
		}
	case pbResourceMetrics:
		switch f {
		case 1:
			return pbResource
		case 2:
			return pbScopeMetrics
		}
	case pbResource:
		if f == 1 {
			return pbKeyValue
		}
	case pbScopeMetrics:
		switch f {
		case 1:
			return pbScope
		case 2:
			return pbMetric
		}
	case pbScope:
		if f == 3 {
			return pbKeyValue
		}
	case pbMetric:
		switch f {
		case 5, 7: // gauge, sum
			return pbNumberPoints
		case 9:
			return pbHistogramPoints
		case 10:
			return pbExpHistogramPoints
		case 11:
			return pbSummaryPoints
		case 12: // metadata
			return pbKeyValue
		}
	case pbNumberPoints:
		if f == 1 {
			return pbNumberPoint
		}
	case pbHistogramPoints:
		if f == 1 {
			return pbHistogramPoint
		}
	case pbExpHistogramPoints:
		if f == 1 {
			return pbExpHistogramPoint
		}
	case pbSummaryPoints:
		if f == 1 {
			return pbSummaryPoint
		}
	case pbNumberPoint:
		switch f {
		case 7:
			return pbKeyValue
		case 5:
			return pbExemplar
		}
	case pbHistogramPoint:
		switch f {
		case 9:
			return pbKeyValue
		case 8:
			return pbExemplar
		}
	case pbExpHistogramPoint:
		switch f {
		case 1:
			return pbKeyValue
		case 11:
			return pbExemplar
		}
	case pbSummaryPoint, pbExemplar:
		if f == 7 {
			return pbKeyValue
		}
	case pbKeyValue:
		if f == 2 {
			return pbAnyValue
		}
	case pbAnyValue:
		switch f {
		case 5:
			return pbArrayValue
		case 6:
			return pbKeyValueList
		}
	case pbArrayValue:
		if f == 1 {
			return pbAnyValue
		}
	case pbKeyValueList:
		if f == 1 {
			return pbKeyValue
		}
	}
	return pbOther
}

// guardProto checks an ExportMetricsServiceRequest in protobuf wire format
// against lim before it is decoded, so the decoder's recursion stays as deep
// as MaxAttributeDepth allows. Its own recursion follows the message
// nesting, which is fixed by the schema except for AnyValue, and it stops
// at MaxAttributeDepth. It counts the attributes of every resource, scope,
// metric, data point and exemplar too, before the decoder allocates them.
// Malformed wire format is left to the decoder to report.
func guardProto(body []byte, lim Limits) error {
	return guardMessage(body, pbRequest, 0, lim)
}

func guardMessage(b []byte, kind pbKind, depth int, lim Limits) error {
	if kind == pbAnyValue {
		depth++
		if depth > lim.MaxAttributeDepth {
			return depthError(depth, lim)
		}
	}
	attrs := 0
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(f, typ, b)
			if n < 0 {
				return nil
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		child := pbChild(kind, f)
		if child == pbOther {
			continue
		}
		if child == pbKeyValue && kind != pbKeyValueList {
			attrs++
			if attrs > lim.MaxAttributes {
				return attributesError(pbKindName(kind), attrs, lim)
			}
		}
		if err := guardMessage(v, child, depth, lim); err != nil {
			return err
		}
	}
	return nil
}

func pbKindName(k pbKind) string {
	switch k {
	case pbResource:
		return "a resource"
	case pbScope:
		return "an instrumentation scope"
	case pbMetric:
		return "a metric's metadata"
	case pbExemplar:
		return "an exemplar"
	}
	return "a data point"
}

func attributesError(where string, n int, lim Limits) error {
	return fmt.Errorf("%w: %s has at least %d attributes, limit -otlp.max-attributes=%d: drop attributes at the sender (most become labels, and a series may have -ingest.max-labels-per-series) or raise the flag",
		ErrTooManyAttributes, where, n, lim.MaxAttributes)
}

// guardJSON bounds the nesting of a JSON body before it is decoded: an
// OTLP JSON request nests at most jsonBaseDepth levels outside attribute
// values, and each level of an attribute value adds at most
// jsonDepthPerValue. Brackets inside strings do not count.
func guardJSON(body []byte, lim Limits) error {
	limit := jsonBaseDepth + jsonDepthPerValue*lim.MaxAttributeDepth
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > limit {
				return fmt.Errorf("%w: JSON nests more than %d levels, which means attribute values nest more than -otlp.max-attribute-depth=%d levels: flatten the attribute at the sender or raise the flag",
					ErrAttributeDepth, limit, lim.MaxAttributeDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// JSON nesting of an OTLP request: {resourceMetrics:[{scopeMetrics:[{metrics:[{sum:{dataPoints:[{exemplars:[{filteredAttributes:[{value:{
// is 15 levels to the first AnyValue; arrayValue:{values:[{ adds 3 and
// kvlistValue:{values:[{value:{ 4 per level.
const (
	jsonBaseDepth     = 16
	jsonDepthPerValue = 4
)

// CheckLimits checks decoded metrics against lim: the attributes of every
// resource, scope, metric, data point and exemplar, and how deep their
// values nest. Decode checks protobuf bodies before decoding; this is the
// check for what JSON decoding produced (whose depth guardJSON bounded
// only roughly), and a cheap one: linear in the attributes.
func CheckLimits(md pmetric.Metrics, lim Limits) error {
	lim = lim.withDefaults()
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		if err := checkAttributes(rm.Resource().Attributes(), "a resource", lim); err != nil {
			return err
		}
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			if err := checkAttributes(sm.Scope().Attributes(), "an instrumentation scope", lim); err != nil {
				return err
			}
			ms := sm.Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				if err := checkAttributes(m.Metadata(), "a metric's metadata", lim); err != nil {
					return err
				}
				if err := eachPoint(m, func(attrs pcommon.Map, ex pmetric.ExemplarSlice) error {
					if err := checkAttributes(attrs, "a data point", lim); err != nil {
						return err
					}
					for e := range ex.Len() {
						if err := checkAttributes(ex.At(e).FilteredAttributes(), "an exemplar", lim); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					return fmt.Errorf("metric %q: %w", truncate(m.Name(), 128), err)
				}
			}
		}
	}
	return nil
}

func checkAttributes(attrs pcommon.Map, where string, lim Limits) error {
	if attrs.Len() > lim.MaxAttributes {
		return attributesError(where, attrs.Len(), lim)
	}
	var err error
	attrs.Range(func(_ string, v pcommon.Value) bool {
		err = checkValueDepth(v, 1, lim)
		return err == nil
	})
	return err
}

func checkValueDepth(v pcommon.Value, depth int, lim Limits) error {
	if depth > lim.MaxAttributeDepth {
		return depthError(depth, lim)
	}
	switch v.Type() {
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		for i := range s.Len() {
			if err := checkValueDepth(s.At(i), depth+1, lim); err != nil {
				return err
			}
		}
	case pcommon.ValueTypeMap:
		var err error
		v.Map().Range(func(_ string, v pcommon.Value) bool {
			err = checkValueDepth(v, depth+1, lim)
			return err == nil
		})
		return err
	}
	return nil
}

// eachPoint calls f with the attributes and exemplars of every data point
// of m until f returns an error.
func eachPoint(m pmetric.Metric, f func(pcommon.Map, pmetric.ExemplarSlice) error) error {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return eachNumberPoint(m.Gauge().DataPoints(), f)
	case pmetric.MetricTypeSum:
		return eachNumberPoint(m.Sum().DataPoints(), f)
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := range dps.Len() {
			if err := f(dps.At(i).Attributes(), dps.At(i).Exemplars()); err != nil {
				return err
			}
		}
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := range dps.Len() {
			if err := f(dps.At(i).Attributes(), dps.At(i).Exemplars()); err != nil {
				return err
			}
		}
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := range dps.Len() {
			if err := f(dps.At(i).Attributes(), pmetric.NewExemplarSlice()); err != nil {
				return err
			}
		}
	}
	return nil
}

func eachNumberPoint(dps pmetric.NumberDataPointSlice, f func(pcommon.Map, pmetric.ExemplarSlice) error) error {
	for i := range dps.Len() {
		if err := f(dps.At(i).Attributes(), dps.At(i).Exemplars()); err != nil {
			return err
		}
	}
	return nil
}

// maxTimestamp is the latest OTLP timestamp (uint64 nanoseconds) that fits
// the int64 nanoseconds the translator converts it through (year 2262).
const maxTimestamp = math.MaxInt64

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
