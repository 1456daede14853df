package otlp

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/telltale-dev/telltale/samples"
)

// TestTestdata keeps testdata/ (the fuzz seeds) in step with the request
// builders: run with -update after changing them.
func TestTestdata(t *testing.T) {
	files := readTestdata(t)
	for name, md := range testdataRequests() {
		for _, f := range []Format{Protobuf, JSON} {
			file := name + ".pb"
			if f == JSON {
				file = name + ".json"
			}
			data, ok := files[file]
			if !ok {
				t.Fatalf("testdata/%s missing; run go test -run TestTestdata -update", file)
			}
			got, err := Decode(data, f, Limits{})
			if err != nil {
				t.Fatalf("testdata/%s: %v", file, err)
			}
			var b1, b2 samples.Batch
			if _, err := NewConverter(ConvertOptions{}).Convert(t.Context(), got, &b1); err != nil {
				t.Fatal(err)
			}
			if _, err := NewConverter(ConvertOptions{}).Convert(t.Context(), md, &b2); err != nil {
				t.Fatal(err)
			}
			if d := diffSeries(seriesOf(&b1), seriesOf(&b2)); d != "" {
				t.Fatalf("testdata/%s is stale (%s); run go test -run TestTestdata -update", file, d)
			}
		}
	}
}

// TestHostileTestdata keeps the fuzz seeds of issue 22's hostile inputs in
// testdata/ and checks each is refused or trimmed by a limit.
func TestHostileTestdata(t *testing.T) {
	files := readTestdata(t)
	for name, want := range hostileSeeds(t) {
		if !bytes.Equal(files[name], want) {
			t.Fatalf("testdata/%s missing or stale; run go test -run TestTestdata -update", name)
		}
		f := Protobuf
		if strings.HasSuffix(name, ".json") {
			f = JSON
		}
		md, err := Decode(want, f, Limits{})
		if strings.Contains(name, "timestamp") {
			if err != nil {
				t.Fatalf("testdata/%s: %v", name, err)
			}
			var b samples.Batch
			res, err := NewConverter(ConvertOptions{}).Convert(t.Context(), md, &b)
			if err != nil || res.Rejected != 1 {
				t.Fatalf("testdata/%s: got %+v, %v; want 1 rejected point", name, res, err)
			}
			continue
		}
		if !errors.Is(err, ErrLimit) {
			t.Fatalf("testdata/%s: got %v; want a limit error", name, err)
		}
	}
}

// FuzzOTLP feeds arbitrary bodies through decode and translation: no
// panic, a bounded batch, well-formed series, and the same series after a
// protobuf round trip of the decoded request.
func FuzzOTLP(f *testing.F) {
	for name, data := range readTestdata(f) {
		f.Add(data, strings.HasSuffix(name, ".json"))
	}
	// Each converter has its own Cumulator fed the same requests, so
	// delta points convert the same way in both.
	conv := NewConverter(ConvertOptions{Delta: NewCumulator(CumulatorOptions{MaxSeries: 1000})})
	conv2 := NewConverter(ConvertOptions{Delta: NewCumulator(CumulatorOptions{MaxSeries: 1000})})
	var b1, b2 samples.Batch
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		format := Protobuf
		if isJSON {
			format = JSON
		}
		md, err := Decode(data, format, Limits{})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Round trip before Convert, which removes what it rejects.
		again, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
		if err != nil {
			t.Fatalf("cannot re-encode a decoded request: %v", err)
		}
		md2, err := Decode(again, Protobuf, Limits{})
		if err != nil {
			t.Fatalf("cannot decode a re-encoded request: %v", err)
		}
		limit := MaxSamplesFor(len(data))
		conv.opts.MaxSamples, conv2.opts.MaxSamples = limit, limit
		b1.Reset()
		res, err := conv.Convert(t.Context(), md, &b1)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if b1.Len() > limit {
			t.Fatalf("got %d samples; limit %d", b1.Len(), limit)
		}
		if res.Rejected > res.DataPoints || res.Rejected < 0 {
			t.Fatalf("got %d of %d data points rejected", res.Rejected, res.DataPoints)
		}
		if res.Rejected > 0 && res.Message() == "" {
			t.Fatal("rejected data points without a message")
		}
		for i := range b1.Series {
			s := &b1.Series[i]
			if s.SamplesEnd <= s.SamplesStart && s.HistogramsEnd <= s.HistogramsStart {
				t.Fatalf("series %d has no samples", i)
			}
			if b1.Name(s) == "" {
				t.Fatalf("series %d has no metric name: %v", i, b1.SeriesLabels(s))
			}
			if len(s.Key) == 0 || s.Key[0] != keyPrefix {
				t.Fatalf("series %d: key %q", i, s.Key)
			}
		}
		b2.Reset()
		if _, err := conv2.Convert(t.Context(), md2, &b2); err != nil {
			t.Fatalf("round trip: converting the re-encoded request failed: %v", err)
		}
		if d := diffSeries(seriesOf(&b1), seriesOf(&b2)); d != "" {
			t.Fatalf("round trip changed the series: %s", d)
		}
	})
}

// diffSeries describes the first difference between two series maps, or "".
func diffSeries(a, b map[string][]samples.Sample) string {
	for k, as := range a {
		bs, ok := b[k]
		if !ok {
			return "series " + k + " only in the first"
		}
		if len(as) != len(bs) {
			return "series " + k + " has a different number of samples"
		}
		for i := range as {
			if as[i].T != bs[i].T || math.Float64bits(as[i].V) != math.Float64bits(bs[i].V) {
				return "series " + k + " has different samples"
			}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return "series " + k + " only in the second"
		}
	}
	return ""
}
