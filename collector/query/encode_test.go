package query

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// randomFloat is a value of every kind the JSON writer formats its own
// way: integers, decimals, tiny and huge magnitudes, NaN, stale markers,
// infinities, negative zero.
func randomFloat(rng *rand.Rand) float64 {
	switch rng.IntN(9) {
	case 0:
		return math.NaN()
	case 1:
		return math.Float64frombits(value.StaleNaN)
	case 2:
		return math.Inf(1 - 2*rng.IntN(2))
	case 3:
		return math.Copysign(0, -1)
	case 4:
		return float64(rng.IntN(1 << 20))
	case 5:
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))
	case 6:
		return math.Float64frombits(rng.Uint64())
	default:
		return math.Floor(rng.Float64()*1e6) / 100
	}
}

// randomChunks are the cached chunks of consecutive step ranges of one
// query: series that come and go, labels that JSON escapes, a series with
// a native histogram among them.
func randomChunks(rng *rand.Rand, step int64) []*chunk {
	names := []string{`a`, `b"q`, `c<&>`, "d\u2028é", `e\n`}
	var out []*chunk
	t0 := int64(rng.IntN(1<<30))*1000 + int64(rng.IntN(1000))
	for c := range 1 + rng.IntN(5) {
		from := t0 + int64(c)*10*step
		ch := &chunk{from: from, to: from + 9*step}
		for i, n := range names {
			if rng.IntN(4) == 0 {
				continue // not in this chunk
			}
			s := promql.Series{Metric: labels.FromStrings("__name__", "m", "k", n, "i", string(rune('0'+i)))}
			for k := range 10 {
				if rng.IntN(5) > 0 {
					s.Floats = append(s.Floats, promql.FPoint{T: from + int64(k)*step, F: randomFloat(rng)})
				}
			}
			if i == 0 && rng.IntN(3) == 0 {
				s.Histograms = []promql.HPoint{{T: from, H: &histogram.FloatHistogram{Count: 3, Sum: 1.5, Schema: 0, ZeroCount: 1}}}
			}
			if len(s.Floats) > 0 || len(s.Histograms) > 0 {
				ch.series = append(ch.series, s)
			}
		}
		ch.enc = chunkEncoding(ch.series)
		out = append(out, ch)
	}
	return out
}

// TestMatrixEncoderMatchesPrometheus: an answer whose cached points'
// JSON is copied is byte for byte what Prometheus' encoder writes for the
// same answer, for answers merged from chunks over any range, and for
// chunks joined by coalesce.
func TestMatrixEncoderMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	codec := v1.JSONCodec{}
	const step = 15_000
	copied := 0
	for range 300 {
		chunks := randomChunks(rng, step)
		first, last := chunks[0].from, chunks[len(chunks)-1].to
		start := first + int64(rng.IntN(12)-1)*step
		end := max(start, last-int64(rng.IntN(12)-1)*step)
		res, segs := merge(chunks, start, end)
		m := res.Value.(promql.Matrix)
		resp := &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: m.Type(), Result: m}}
		noted := noteSegs(m, segs)
		got, err := codec.Encode(resp)
		if err != nil {
			t.Fatal(err)
		}
		forgetEncoded(m)
		if noted && lookupEncoded(m) != nil {
			t.Fatal("forgetEncoded left the answer noted")
		}
		want, err := codec.Encode(resp) // nothing noted: Prometheus' encoder
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("with copied points:\n%s\nPrometheus':\n%s", got, want)
		}
		if noted {
			copied++
		}
		// coalesce's join: the parts' bytes copied equal the points
		// written afresh.
		for i, ser := range m {
			if len(ser.Histograms) > 0 || len(ser.Floats) == 0 {
				continue
			}
			j, fresh := encodePoints(ser.Floats, segs[i]), encodePoints(ser.Floats, nil)
			if !bytes.Equal(j.b, fresh.b) || len(j.offs) != len(fresh.offs) {
				t.Fatalf("joined %s; written %s", j.b, fresh.b)
			}
			for k := range j.offs {
				if j.offs[k] != fresh.offs[k] {
					t.Fatalf("joined offsets %v; written %v", j.offs, fresh.offs)
				}
			}
		}
	}
	if copied < 100 {
		t.Fatalf("only %d of 300 answers had copied points: the test does not test the copying", copied)
	}
}

// TestMatrixEncoderChecksSeries: where an answer's series no longer has
// the points merge noted (a caller cut or replaced them), the encoder
// writes them afresh.
func TestMatrixEncoderChecksSeries(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	for {
		chunks := randomChunks(rng, 15_000)
		res, segs := merge(chunks, chunks[0].from, chunks[len(chunks)-1].to)
		m := res.Value.(promql.Matrix)
		if !noteSegs(m, segs) {
			continue
		}
		defer forgetEncoded(m)
		for i := range m {
			if len(m[i].Floats) > 1 {
				m[i].Floats = m[i].Floats[1:] // as if a caller cut the answer
				m[i].Floats[0].F = 42
			}
		}
		resp := &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: m.Type(), Result: m}}
		got, err := v1.JSONCodec{}.Encode(resp)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		forgetEncoded(m)
		w, _ := v1.JSONCodec{}.Encode(resp)
		want.Write(w)
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("a changed answer:\n%s\nPrometheus':\n%s", got, want.Bytes())
		}
		return
	}
}

// TestEncodedAnswersBounded: answers nobody closes do not pile up.
func TestEncodedAnswersBounded(t *testing.T) {
	for i := range 3 * maxEncodedAnswers {
		m := promql.Matrix{{Metric: labels.FromStrings("i", string(rune('a'+i%26))), Floats: []promql.FPoint{{T: 1, F: 1}}}}
		noteEncoded(m, []encodedSeries{{}})
	}
	encodedAnswers.Lock()
	n := len(encodedAnswers.m)
	clear(encodedAnswers.m)
	encodedAnswers.Unlock()
	if n > maxEncodedAnswers {
		t.Fatalf("%d answers held; want at most %d", n, maxEncodedAnswers)
	}
}
