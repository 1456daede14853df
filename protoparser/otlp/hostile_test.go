package otlp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
	"github.com/telltale-dev/telltale/samples"
)

// The hostile requests of issue 22, built without pdata (which could not
// hold them without the recursion they are meant to provoke).

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
	f("proto 850k deep", otlptest.DeepProto(850_000), Protobuf, ErrAttributeDepth, "-otlp.max-attribute-depth=16")
	f("json 850k deep", otlptest.DeepJSON(850_000), JSON, ErrAttributeDepth, "-otlp.max-attribute-depth=16")
	f("proto at the depth limit", otlptest.DeepProto(lim.MaxAttributeDepth), Protobuf, nil, "")
	f("proto over the depth limit", otlptest.DeepProto(lim.MaxAttributeDepth+1), Protobuf, ErrAttributeDepth, "at least 17 levels")
	f("json at the depth limit", otlptest.DeepJSON(lim.MaxAttributeDepth), JSON, nil, "")
	f("json over the depth limit", otlptest.DeepJSON(lim.MaxAttributeDepth+1), JSON, ErrAttributeDepth, "-otlp.max-attribute-depth=16")

	// Issue 22: 100k attributes cost 30+ CPU-seconds in the translator.
	now := time.Now()
	for _, format := range []Format{Protobuf, JSON} {
		fs := format.ContentType()
		f(fs+" 100k attributes", encode(t, otlptest.ManyAttributes(100_000, now), format), format, ErrTooManyAttributes, "-otlp.max-attributes=128")
		f(fs+" at the attribute limit", encode(t, otlptest.ManyAttributes(lim.MaxAttributes, now), format), format, nil, "")
		f(fs+" over the attribute limit", encode(t, otlptest.ManyAttributes(lim.MaxAttributes+1, now), format), format, ErrTooManyAttributes, "a data point")

		where := func(name string, set func(md pmetric.Metrics) pcommon.Map) {
			md := otlptest.ManyAttributes(1, now)
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
		md := otlptest.ManyAttributes(1, now)
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
	res, err := NewConverter(ConvertOptions{}).Convert(context.Background(), otlptest.MaxTimestamp(now), &b)
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
		"hostile_deep_attribute.pb":    otlptest.DeepProto(DefaultMaxAttributeDepth + 4),
		"hostile_deep_attribute.json":  otlptest.DeepJSON(DefaultMaxAttributeDepth + 4),
		"hostile_many_attributes.pb":   encode(t, otlptest.ManyAttributes(DefaultMaxAttributes+1, now), Protobuf),
		"hostile_many_attributes.json": encode(t, otlptest.ManyAttributes(DefaultMaxAttributes+1, now), JSON),
		"hostile_max_timestamp.pb":     encode(t, otlptest.MaxTimestamp(now), Protobuf),
		"hostile_max_timestamp.json":   encode(t, otlptest.MaxTimestamp(now), JSON),
	}
}
