package tail

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"testing"
	"unicode/utf8"

	"github.com/telltale-dev/telltale/samples"
)

func addLines(f *testing.F, path string) {
	f.Helper()
	file, err := os.Open(path)
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f.Add(sc.Text())
	}
}

// FuzzValueJSON: decoding a sample value never panics, and what decodes
// encodes back to the same float.
func FuzzValueJSON(f *testing.F) {
	addLines(f, "testdata/values.txt")
	f.Fuzz(func(t *testing.T, in string) {
		var v Value
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", v, err)
		}
		var w Value
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatalf("Unmarshal(%s) of Marshal(%v): %v", out, v, err)
		}
		if math.Float64bits(float64(v)) != math.Float64bits(float64(w)) && !(math.IsNaN(float64(v)) && math.IsNaN(float64(w))) {
			t.Fatalf("round trip of %s: got %v; want %v", in, w, v)
		}
	})
}

// FuzzSamplesJSON: whatever labels and values a write carries, the samples
// message is valid JSON that decodes to them.
func FuzzSamplesJSON(f *testing.F) {
	f.Add("__name__", "up", "job", "api", int64(1700000000000), 1.5)
	f.Add("__name__", "x", "path", "/a\"b\\c\n\x1b[31m\u2028", int64(-1), math.NaN())
	f.Add("a", "", "b", "<>&", int64(math.MaxInt64), math.Inf(-1))
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string, ts int64, v float64) {
		if !utf8.ValidString(n1) || !utf8.ValidString(v1) || !utf8.ValidString(n2) || !utf8.ValidString(v2) {
			return // the writer rejects invalid UTF-8 before it gets here
		}
		ser := &series{labels: []samples.Label{{Name: n1, Value: v1}, {Name: n2, Value: v2}}}
		raw := appendSamples(nil, &item{time: ts, samples: []queued{{s: ser, t: ts, v: v}}})
		var m Message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("invalid JSON: %v: %s", err, raw)
		}
		if len(m.Samples) != 1 || m.Samples[0].T != ts || m.Time != ts {
			t.Fatalf("decoded %s: got %+v", raw, m)
		}
		got := float64(m.Samples[0].V)
		if got != v && !(math.IsNaN(v) && math.IsNaN(got)) {
			t.Fatalf("value: got %v; want %v", got, v)
		}
		want := map[string]string{n1: v1, n2: v2} // a repeated name keeps the last value
		for k, wv := range want {
			if m.Samples[0].Labels[k] != wv {
				t.Fatalf("label %q: got %q; want %q (%s)", k, m.Samples[0].Labels[k], wv, raw)
			}
		}
	})
}
