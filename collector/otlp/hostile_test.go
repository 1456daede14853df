package otlp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/telltale-dev/telltale/samples"
)

// The hostile requests of issue 22, built without pdata (which could not
// hold them without the recursion they are meant to provoke).

// deepAnyValue returns an AnyValue in protobuf wire format nesting depth
// levels: a string at the bottom, then alternately arrays and key-value
// lists around it. It takes time and memory linear in depth.
func deepAnyValue(depth int) []byte {
	uvlen := func(n int) int { return len(binary.AppendUvarint(nil, uint64(n))) }
	size := make([]int, depth+1)   // size[i]: bytes of the AnyValue at level i
	inner := make([]int, depth+1)  // ArrayValue or KeyValueList size at level i
	kvSize := make([]int, depth+1) // KeyValue size at level i (kvlist levels)
	size[1] = 3                    // {1: "x"}
	for i := 2; i <= depth; i++ {
		c := size[i-1]
		if i%2 == 0 { // AnyValue{5: ArrayValue{1: child}}
			inner[i] = 1 + uvlen(c) + c
		} else { // AnyValue{6: KeyValueList{1: KeyValue{1: "k", 2: child}}}
			kvSize[i] = 3 + 1 + uvlen(c) + c
			inner[i] = 1 + uvlen(kvSize[i]) + kvSize[i]
		}
		size[i] = 1 + uvlen(inner[i]) + inner[i]
	}
	b := make([]byte, 0, size[depth])
	for i := depth; i >= 2; i-- {
		if i%2 == 0 {
			b = append(b, 0x2a)
			b = binary.AppendUvarint(b, uint64(inner[i]))
			b = append(b, 0x0a)
		} else {
			b = append(b, 0x32)
			b = binary.AppendUvarint(b, uint64(inner[i]))
			b = append(b, 0x0a)
			b = binary.AppendUvarint(b, uint64(kvSize[i]))
			b = append(b, 0x0a, 1, 'k', 0x12)
		}
		b = binary.AppendUvarint(b, uint64(size[i-1]))
	}
	return append(b, 0x0a, 1, 'x')
}

// pbField appends field f, length-delimited, holding v.
func pbField(b []byte, f byte, v []byte) []byte {
	b = append(b, f<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// deepProtoRequest is an ExportMetricsServiceRequest whose one resource
// attribute "deep" nests depth levels.
func deepProtoRequest(depth int) []byte {
	kv := pbField(pbField(nil, 1, []byte("deep")), 2, deepAnyValue(depth))
	res := pbField(nil, 1, kv)
	rm := pbField(nil, 1, res)
	return pbField(nil, 1, rm)
}

// deepJSONRequest is deepProtoRequest in OTLP JSON, arrays only.
func deepJSONRequest(depth int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"deep","value":`)
	for range depth - 1 {
		b.WriteString(`{"arrayValue":{"values":[`)
	}
	b.WriteString(`{"stringValue":"x"}`)
	for range depth - 1 {
		b.WriteString(`]}}`)
	}
	b.WriteString(`}]}}]}`)
	return b.Bytes()
}

// manyAttributes is a request whose one gauge data point has n attributes.
func manyAttributes(n int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "wide")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("wide.gauge")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetDoubleValue(1)
	attrs := dp.Attributes()
	if n > 1000 {
		// PutStr looks for the key first: quadratic. FromRaw is linear, in
		// random order.
		raw := make(map[string]any, n)
		for i := range n {
			raw["a"+strconv.Itoa(i)] = "v"
		}
		_ = attrs.FromRaw(raw)
		return md
	}
	for i := range n {
		attrs.PutStr("a"+strconv.Itoa(i), "v")
	}
	return md
}

// maxTimestampRequest has a gauge with one point at time_unix_nano
// 2^64-1 and one at ts.
func maxTimestampRequest(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "clock")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("clock.gauge")
	g := m.SetEmptyGauge()
	dp := g.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.Timestamp(math.MaxUint64))
	dp.SetDoubleValue(1)
	dp = g.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.SetDoubleValue(2)
	return md
}

// nestedValue sets v to a value nesting depth levels (pdata, small depths).
func nestedValue(v pcommon.Value, depth int) {
	for range depth - 1 {
		v = v.SetEmptySlice().AppendEmpty()
	}
	v.SetStr("x")
}

func TestDecodeLimits(t *testing.T) {
	lim := Limits{}.withDefaults()
	f := func(name string, body []byte, format Format, wantErr error, wantMsg string) {
		t.Helper()
		_, err := Decode(body, format, Limits{})
		if wantErr == nil {
			if err != nil {
				t.Fatalf("%s: got %v; want no error", name, err)
			}
			return
		}
		if !errors.Is(err, wantErr) || !strings.Contains(err.Error(), wantMsg) {
			t.Fatalf("%s: got %v; want %v naming %q", name, err, wantErr, wantMsg)
		}
	}
	// Issue 22: ~850,000 levels crashed the collector with a stack overflow.
	f("proto 850k deep", deepProtoRequest(850_000), Protobuf, ErrAttributeDepth, "-otlp.max-attribute-depth=16")
	f("json 850k deep", deepJSONRequest(850_000), JSON, ErrAttributeDepth, "-otlp.max-attribute-depth=16")
	f("proto at the depth limit", deepProtoRequest(lim.MaxAttributeDepth), Protobuf, nil, "")
	f("proto over the depth limit", deepProtoRequest(lim.MaxAttributeDepth+1), Protobuf, ErrAttributeDepth, "at least 17 levels")
	f("json at the depth limit", deepJSONRequest(lim.MaxAttributeDepth), JSON, nil, "")
	f("json over the depth limit", deepJSONRequest(lim.MaxAttributeDepth+1), JSON, ErrAttributeDepth, "-otlp.max-attribute-depth=16")

	// Issue 22: 100k attributes cost 30+ CPU-seconds in the translator.
	now := time.Now()
	for _, format := range []Format{Protobuf, JSON} {
		fs := format.ContentType()
		f(fs+" 100k attributes", encode(t, manyAttributes(100_000, now), format), format, ErrTooManyAttributes, "-otlp.max-attributes=128")
		f(fs+" at the attribute limit", encode(t, manyAttributes(lim.MaxAttributes, now), format), format, nil, "")
		f(fs+" over the attribute limit", encode(t, manyAttributes(lim.MaxAttributes+1, now), format), format, ErrTooManyAttributes, "a data point")

		where := func(name string, set func(md pmetric.Metrics) pcommon.Map) {
			md := manyAttributes(1, now)
			attrs := set(md)
			for i := range lim.MaxAttributes + 1 {
				attrs.PutStr("x"+strconv.Itoa(i), "v")
			}
			f(fs+" "+name, encode(t, md, format), format, ErrTooManyAttributes, name)
		}
		point := func(md pmetric.Metrics) pmetric.Metric {
			return md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
		}
		where("a resource", func(md pmetric.Metrics) pcommon.Map { return md.ResourceMetrics().At(0).Resource().Attributes() })
		where("an instrumentation scope", func(md pmetric.Metrics) pcommon.Map {
			return md.ResourceMetrics().At(0).ScopeMetrics().At(0).Scope().Attributes()
		})
		where("an exemplar", func(md pmetric.Metrics) pcommon.Map {
			return point(md).Gauge().DataPoints().At(0).Exemplars().AppendEmpty().FilteredAttributes()
		})
		where("a metric's metadata", func(md pmetric.Metrics) pcommon.Map { return point(md).Metadata() })

		// Depth on a data point attribute, through pdata.
		md := manyAttributes(1, now)
		nestedValue(point(md).Gauge().DataPoints().At(0).Attributes().PutEmpty("nested"), lim.MaxAttributeDepth+1)
		f(fs+" deep data point attribute", encode(t, md, format), format, ErrAttributeDepth, "-otlp.max-attribute-depth")
	}
}

// TestConvertMaxTimestamp: a time_unix_nano of 2^64-1 was reported as a
// sample in 1970, older than the out-of-order window (issue 22). It is
// now rejected with its own reason and message; the other point is kept.
func TestConvertMaxTimestamp(t *testing.T) {
	now := time.Now()
	var b samples.Batch
	res, err := NewConverter(ConvertOptions{}).Convert(context.Background(), maxTimestampRequest(now), &b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 1 || len(res.Rejections) != 1 || res.Rejections[0].Reason != ReasonTimestamp {
		t.Fatalf("got %+v; want 1 data point rejected as %s", res, ReasonTimestamp)
	}
	if msg := res.Message(); !strings.Contains(msg, "after 2262") || strings.Contains(msg, "1970") {
		t.Fatalf("got message %q; want it to name the year 2262 limit", msg)
	}
	got := seriesOf(&b)[`{__name__="clock_gauge", job="clock"}`]
	if len(got) != 1 || got[0].V != 2 || got[0].T != now.UnixMilli() {
		t.Fatalf("got %v; want the point at %d with value 2", got, now.UnixMilli())
	}
}

// hostileSeeds are the fuzz seeds of issue 22's inputs, small enough for
// testdata/ but each over a limit.
func hostileSeeds(t testing.TB) map[string][]byte {
	now := time.Unix(1_700_000_000, 0)
	return map[string][]byte{
		"hostile_deep_attribute.pb":    deepProtoRequest(DefaultMaxAttributeDepth + 4),
		"hostile_deep_attribute.json":  deepJSONRequest(DefaultMaxAttributeDepth + 4),
		"hostile_many_attributes.pb":   encode(t, manyAttributes(DefaultMaxAttributes+1, now), Protobuf),
		"hostile_many_attributes.json": encode(t, manyAttributes(DefaultMaxAttributes+1, now), JSON),
		"hostile_max_timestamp.pb":     encode(t, maxTimestampRequest(now), Protobuf),
		"hostile_max_timestamp.json":   encode(t, maxTimestampRequest(now), JSON),
	}
}
