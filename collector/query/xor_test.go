package query

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// refDecodeXOR is loadChunks' reading of one chunk through Prometheus'
// iterator, the reference decodeXOR must match.
func refDecodeXOR(chk []byte, b *fastSeries, from, to, last int64, skipBefore bool) (int64, bool) {
	c, err := chunkenc.FromData(chunkenc.EncXOR, chk)
	if err != nil || len(chk) < 2 {
		return last, false
	}
	x := c.Iterator(nil)
	vt := x.Next()
	if skipBefore {
		vt = x.Seek(from)
	}
	for ; vt != chunkenc.ValNone; vt = x.Next() {
		t, f := x.At()
		if t <= last {
			return last, false
		}
		if t > to {
			return last, true
		}
		last = t
		b.add(t, f)
	}
	return last, x.Err() == nil
}

// xorChunk encodes samples with Prometheus' appender.
func xorChunk(t *testing.T, ts []int64, vs []float64) []byte {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return c.Bytes()
}

// randomSamples are samples shaped like what a TSDB holds and its edge
// cases: regular scrapes with jitter and gaps (every delta-of-delta
// width), counters with resets, gauges, integers, NaN, stale markers,
// infinities, values that change in every bit.
func randomSamples(rng *rand.Rand, n int) ([]int64, []float64) {
	ts, vs := make([]int64, n), make([]float64, n)
	t := rng.Int64N(1<<40) - 1<<39
	every := []int64{1, 10, 1000, 15_000, 60_000, 1 << 30}[rng.IntN(6)]
	v := float64(rng.IntN(1000))
	kind := rng.IntN(5)
	for i := range n {
		switch r := rng.IntN(20); {
		case r == 0:
			t += 1 + rng.Int64N(1<<20) // a gap: a wide delta of delta
		case r == 1:
			t += 1 + rng.Int64N(1<<40)
		case r == 2: // a delta of delta at the edge of each width
			edges := []int64{1 << 13, 1<<13 + 1, -(1 << 13) + 1, -(1 << 13), 1 << 16, 1<<16 + 1, -(1 << 16) + 1, 1 << 19, 1<<19 + 1, -(1 << 19) + 1, -(1 << 19)}
			delta := every
			if i >= 2 {
				delta = ts[i-1] - ts[i-2]
			}
			t += max(1, delta+edges[rng.IntN(len(edges))])
		case r < 5:
			t += max(1, every+rng.Int64N(2001)-1000) // jitter
		default:
			t += every
		}
		ts[i] = t
		switch kind {
		case 0: // a counter with resets
			if rng.IntN(50) == 0 {
				v = 0
			}
			v += math.Floor(rng.Float64()*300) / 100
		case 1: // a gauge
			v = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
		case 2: // integers that often repeat
			if rng.IntN(3) == 0 {
				v = float64(rng.IntN(5))
			}
		case 3: // every bit
			v = math.Float64frombits(rng.Uint64())
		default: // specials between ordinary values
			switch rng.IntN(6) {
			case 0:
				v = math.NaN()
			case 1:
				v = math.Float64frombits(value.StaleNaN)
			case 2:
				v = math.Inf(1 - 2*rng.IntN(2))
			default:
				v = float64(rng.IntN(1 << 20))
			}
		}
		vs[i] = v
	}
	return ts, vs
}

// compareDecode: decodeXOR and the iterator read chk alike. Where
// mayGiveUp (a cut chunk), decodeXOR may give up where the iterator goes
// on: Prometheus' bit reader, asked for more bits than are left, returns
// whatever its buffer holds. The engine then reads it with the iterator.
func compareDecode(t *testing.T, chk []byte, from, to, last int64, skip, mayGiveUp bool) {
	t.Helper()
	var got, want fastSeries
	gl, gok := decodeXOR(chk, &got, from, to, last, skip)
	wl, wok := refDecodeXOR(chk, &want, from, to, last, skip)
	if !gok && mayGiveUp {
		return
	}
	if gok != wok {
		t.Fatalf("from %d to %d last %d skip %v: ok %v, iterator %v (chunk %x)", from, to, last, skip, gok, wok, chk)
	}
	if !gok {
		return
	}
	if gl != wl || len(got.ts) != len(want.ts) {
		t.Fatalf("from %d to %d: last %d, %d samples; iterator last %d, %d samples", from, to, gl, len(got.ts), wl, len(want.ts))
	}
	for i := range got.ts {
		if got.ts[i] != want.ts[i] || math.Float64bits(got.fs[i]) != math.Float64bits(want.fs[i]) {
			t.Fatalf("sample %d: %d %v, iterator %d %v", i, got.ts[i], got.fs[i], want.ts[i], want.fs[i])
		}
	}
}

// TestDecodeXORMatchesIterator compares decodeXOR with Prometheus'
// iterator on chunks Prometheus' appender wrote, whole and cut at every
// length, over ranges that cut them anywhere.
func TestDecodeXORMatchesIterator(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 400 {
		n := 1 + rng.IntN(240)
		if rng.IntN(10) == 0 {
			n = 1 + rng.IntN(3)
		}
		ts, vs := randomSamples(rng, n)
		chk := xorChunk(t, ts, vs)
		lo, hi := ts[0], ts[n-1]
		pick := func() int64 { return lo - 5 + rng.Int64N(hi-lo+11) }
		for range 8 {
			from, to := pick(), pick()
			last := int64(math.MinInt64)
			if rng.IntN(4) == 0 {
				last = pick() // an earlier chunk's last sample
			}
			compareDecode(t, chk, from, to, last, rng.IntN(2) == 0, false)
		}
		compareDecode(t, chk, math.MinInt64, math.MaxInt64, math.MinInt64, false, false)
		// Cut short: where decodeXOR answers, it answers as the iterator.
		for range 4 {
			cut := rng.IntN(len(chk) + 1)
			compareDecode(t, chk[:cut], math.MinInt64, math.MaxInt64, math.MinInt64, false, true)
			compareDecode(t, chk[:cut], lo, pick(), math.MinInt64, true, true)
		}
	}
}

// FuzzDecodeXOR: any bytes. decodeXOR never panics, and where it answers,
// Prometheus' iterator gives the same samples (where it gives up, the
// engine reads the chunk with the iterator).
func FuzzDecodeXOR(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 3))
	for range 8 {
		ts, vs := randomSamples(rng, 1+rng.IntN(30))
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender()
		for i := range ts {
			app.Append(0, ts[i], vs[i])
		}
		f.Add(c.Bytes(), int64(0), int64(math.MaxInt64), false)
	}
	f.Fuzz(func(t *testing.T, chk []byte, from, to int64, skip bool) {
		var got, want fastSeries
		gl, gok := decodeXOR(chk, &got, from, to, math.MinInt64, skip)
		if !gok {
			return
		}
		wl, wok := refDecodeXOR(chk, &want, from, to, math.MinInt64, skip)
		if !wok || gl != wl || len(got.ts) != len(want.ts) {
			t.Fatalf("decodeXOR: last %d, %d samples; iterator ok %v last %d, %d samples", gl, len(got.ts), wok, wl, len(want.ts))
		}
		for i := range got.ts {
			if got.ts[i] != want.ts[i] || math.Float64bits(got.fs[i]) != math.Float64bits(want.fs[i]) {
				t.Fatalf("sample %d: %d %v, iterator %d %v", i, got.ts[i], got.fs[i], want.ts[i], want.fs[i])
			}
		}
	})
}

// BenchmarkDecodeXOR: ns per sample of decodeXOR and of Prometheus'
// iterator (as loadChunks used it) on 120-sample chunks of counters
// scraped every 10 s.
//
//	go test -run XXX -bench DecodeXOR ./collector/query/
func BenchmarkDecodeXOR(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	var chks [][]byte
	for range 100 {
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender()
		v := 0.0
		for i := range 120 {
			v = math.Floor((v+rng.Float64()*3)*100) / 100
			app.Append(0, int64(i)*10_000+rng.Int64N(3), v)
		}
		chks = append(chks, c.Bytes())
	}
	var s fastSeries
	for _, c := range []struct {
		name string
		f    func([]byte, *fastSeries, int64, int64, int64, bool) (int64, bool)
	}{{"decodeXOR", decodeXOR}, {"iterator", refDecodeXOR}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				for _, chk := range chks {
					s.reset()
					if _, ok := c.f(chk, &s, 0, math.MaxInt64, math.MinInt64, false); !ok {
						b.Fatal("not decoded")
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chks)*120), "ns/sample")
		})
	}
}

// TestChunkSourceIsolation: a sample committed to a series' open head
// chunk after the chunk source was opened is not read, as Prometheus'
// querier hides it (its isolation state), although the chunk's bytes
// hold it by the time the series is read.
func TestChunkSourceIsolation(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ls := labels.FromStrings("__name__", "c_total")
	add := func(from, to int64) {
		app := db.Appender(context.Background())
		for ts := from; ts <= to; ts += 10_000 {
			if _, err := app.Append(0, ls, ts, float64(ts/1000)); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	add(0, 90_000)
	read := func(src fastSource) []int64 {
		set := src.Select(context.Background(), &storage.SelectHints{Start: 0, End: 200_000}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "c_total"))
		var l fastLoader
		var b fastSeries
		var got []int64
		for set.Next() {
			_, s := set.At()
			if !l.load(s, &b, 0, 200_000) {
				t.Fatal("not loaded")
			}
			got = append(got, b.ts...)
		}
		if set.Err() != nil {
			t.Fatal(set.Err())
		}
		return got
	}
	cq, err := db.ChunkQuerier(0, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	defer cq.Close()
	q, err := db.Querier(0, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	add(100_000, 100_000) // after both opened
	want := read(sampleSource{q})
	if len(want) != 10 {
		t.Fatalf("the querier reads %d samples; want the 10 committed before it was opened", len(want))
	}
	if got := read(chunkSource{cq}); !slices.Equal(got, want) {
		t.Fatalf("the chunk source reads %v; want %v", got, want)
	}
}
