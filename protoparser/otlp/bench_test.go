package otlp

import (
	"testing"

	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
	"github.com/telltale-dev/telltale/samples"
)

// BenchmarkDecodeConvert measures decoding a request and translating it to
// a samples.Batch, the work the OTLP endpoint adds to the shared write path.
func BenchmarkDecodeConvert(b *testing.B) {
	for _, f := range []Format{Protobuf, JSON} {
		b.Run(f.ContentType()[len("application/"):], func(b *testing.B) {
			body := encode(b, otlptest.Bench(otlptest.Time), f)
			conv := NewConverter(ConvertOptions{})
			var batch samples.Batch
			n := 0
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				batch.Reset()
				md, err := Decode(body, f, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conv.Convert(b.Context(), md, &batch); err != nil {
					b.Fatal(err)
				}
				n += batch.Len()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(batch.Len()), "samples/req")
		})
	}
}
