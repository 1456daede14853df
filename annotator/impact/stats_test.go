package impact

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func closeTo(got, want, tol float64) bool {
	if math.IsNaN(got) || math.IsNaN(want) {
		return math.IsNaN(got) && math.IsNaN(want)
	}
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// TestMannWhitneyKnownValues checks the test against published results.
func TestMannWhitneyKnownValues(t *testing.T) {
	f := func(name string, x, y []float64, wantU, wantP float64, wantExact bool) {
		t.Helper()
		got := mannWhitney(x, y, 1)
		if got.U != wantU || !closeTo(got.P, wantP, 1e-12) || got.Exact != wantExact {
			t.Errorf("%s: got U=%v p=%.17g exact=%v; want U=%v p=%.17g exact=%v", name, got.U, got.P, got.Exact, wantU, wantP, wantExact)
		}
	}
	// scipy.stats.mannwhitneyu documentation, example "ages at diagnosis of
	// type II diabetes": males vs females, U1 = 17 for males (so U = 20−17 =
	// 3 for females), exact two-sided p = 0.1111111111111111 (= 14/126).
	males := []float64{19, 22, 16, 29, 24}
	females := []float64{20, 11, 17, 12}
	f("scipy exact", males, females, 3, 0.1111111111111111, true)
	f("scipy exact swapped", females, males, 17, 0.1111111111111111, true)

	// ClickHouse tests/queries/0_stateless/01560_mann_whitney.sql, whose
	// expected answer comes from scipy: 20 vs 20 values with four tied
	// pairs, U1 = 223 for the first sample, asymptotic tie-corrected p =
	// 0.5426959774289482 (continuity correction on).
	left := []float64{310, 195, 530, 155, 530, 245, 385, 450, 465, 545, 170, 180, 125, 180, 230, 75, 430, 480, 495, 295}
	right := []float64{116, 171, 176, 421, 111, 326, 481, 111, 346, 441, 261, 411, 206, 521, 456, 446, 296, 51, 426, 261}
	f("clickhouse ties", left, right, 400-223, 0.5426959774289482, false)

	// Complete separation of 10 vs 10 distinct values, ties none, so the
	// normal approximation: U = 100, μ = 50, σ² = 10·10·21/12 = 175,
	// z = (100−50−0.5)/√175 = 3.7418..., p = erfc(z/√2).
	lo := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hi := []float64{11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	f("separation", lo, hi, 100, math.Erfc(49.5/math.Sqrt(175)/math.Sqrt2), false)

	// All values equal: p = 1.
	f("all tied", []float64{5, 5, 5, 5, 5, 5, 5, 5, 5}, []float64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, 45, 1, false)
}

// TestMannWhitneyNormalScipy checks the asymptotic path on the scipy
// documentation example: method="asymptotic" gives p = 0.11134688653314041.
func TestMannWhitneyNormalScipy(t *testing.T) {
	z, p := mannWhitneyNormal(17, 5, 4, 0, 1)
	if !closeTo(p, 0.11134688653314041, 1e-12) {
		t.Errorf("got p=%.17g; want 0.11134688653314041", p)
	}
	// Inflating the variance 4× halves z.
	z4, p4 := mannWhitneyNormal(17, 5, 4, 0, 4)
	if !closeTo(z4, z/2, 1e-12) || !(p4 > p) {
		t.Errorf("inflation 4: got z=%v p=%v; want z=%v and p > %v", z4, p4, z/2, p)
	}
}

// TestMannWhitneyExactBruteForce checks the exact distribution against
// enumeration of every split of the pooled values.
func TestMannWhitneyExactBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 60 {
		n1, n2 := 1+rng.IntN(7), 1+rng.IntN(9)
		perm := rng.Perm(n1 + n2)
		pooled := make([]float64, n1+n2)
		for i, p := range perm {
			pooled[i] = float64(p)
		}
		x, y := pooled[:n1], pooled[n1:]
		got := mannWhitney(x, y, 1)
		if !got.Exact {
			t.Fatalf("trial %d: n1=%d n2=%d: got exact=false; want true", trial, n1, n2)
		}
		// Enumerate all subsets of size n1 as x.
		n := n1 + n2
		big := math.Max(got.U, float64(n1*n2)-got.U)
		total, tail := 0, 0
		for mask := 0; mask < 1<<n; mask++ {
			if popcount(mask) != n1 {
				continue
			}
			u := 0
			for i := range n {
				if mask&(1<<i) != 0 {
					continue // i is in x
				}
				for j := range n {
					if mask&(1<<j) != 0 && pooled[i] > pooled[j] {
						u++
					}
				}
			}
			total++
			if float64(u) >= big {
				tail++
			}
		}
		want := math.Min(1, 2*float64(tail)/float64(total))
		if !closeTo(got.P, want, 1e-12) {
			t.Errorf("trial %d: x=%v y=%v: got p=%v; want %v", trial, x, y, got.P, want)
		}
	}
}

func popcount(v int) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}

func TestRankAverage(t *testing.T) {
	f := func(in, wantRanks []float64, wantTies float64) {
		t.Helper()
		got, ties := rankAverage(in)
		if !slices.Equal(got, wantRanks) || ties != wantTies {
			t.Errorf("rankAverage(%v): got %v ties=%v; want %v ties=%v", in, got, ties, wantRanks, wantTies)
		}
	}
	f([]float64{10, 20, 20, 30}, []float64{1, 2.5, 2.5, 4}, 6)
	f([]float64{3, 1, 2}, []float64{3, 1, 2}, 0)
	f([]float64{7, 7, 7}, []float64{2, 2, 2}, 24)
	f(nil, []float64{}, 0)
}

func TestMedian(t *testing.T) {
	f := func(in []float64, want float64) {
		t.Helper()
		if got := median(in); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("median(%v): got %v; want %v", in, got, want)
		}
	}
	f(nil, math.NaN())
	f([]float64{3}, 3)
	f([]float64{4, 1}, 2.5)
	f([]float64{5, 1, 3}, 3)
	f([]float64{2, 2, 9, 1}, 2)
}

// TestResampleMedian checks the counting-sort median of a resample
// against sorting the same draws.
func TestResampleMedian(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		n := 2 + rng.IntN(80)
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(rng.IntN(10)) // many ties
		}
		block := 1 + rng.IntN(n/2)
		w := newRankedWindow(v)
		seed := rng.Uint64()
		got := w.resampleMedian(block, rand.New(rand.NewPCG(seed, 0)))
		// Replay the same draws by hand.
		r := rand.New(rand.NewPCG(seed, 0))
		var draw []float64
		for len(draw) < n {
			s := r.IntN(n - block + 1)
			draw = append(draw, v[s:s+min(block, n-len(draw))]...)
		}
		if want := median(draw); got != want {
			t.Fatalf("trial %d: v=%v block=%d: got %v; want %v", trial, v, block, got, want)
		}
	}
}

func ar1(rng *rand.Rand, n int, phi float64) []float64 {
	v := make([]float64, n)
	x := 0.0
	for i := range v {
		x = phi*x + rng.NormFloat64()
		v[i] = x
	}
	return v
}

func TestIntegratedAutocorr(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := func(name string, series [][]float64, lo, hi float64) {
		t.Helper()
		got := integratedAutocorr(series, 200)
		if got < lo || got > hi {
			t.Errorf("%s: got τ=%.2f; want in [%v, %v]", name, got, lo, hi)
		}
	}
	white := make([]float64, 4000)
	for i := range white {
		white[i] = rng.NormFloat64()
	}
	f("white noise", [][]float64{white}, 1, 1.3)

	// AR(1) with φ=0.8: τ = (1+φ)/(1−φ) = 9.
	f("ar1 0.8", [][]float64{ar1(rng, 20000, 0.8)}, 7.5, 10.5)

	// Moving sums of 4 white values (what rate(x[1m]) at a 15s step does
	// to independent increments): ρ = .75, .5, .25, so τ = 1+2·1.5 = 4.
	inc := make([]float64, 8003)
	for i := range inc {
		inc[i] = rng.NormFloat64()
	}
	ma := make([]float64, 8000)
	for i := range ma {
		ma[i] = inc[i] + inc[i+1] + inc[i+2] + inc[i+3]
	}
	f("moving sum of 4", [][]float64{ma}, 3.4, 4.6)

	// A level shift between two windows of white noise is not
	// autocorrelation: each window is centred on its own mean.
	a, b := make([]float64, 60), make([]float64, 60)
	for i := range a {
		a[i] = rng.NormFloat64()
		b[i] = 100 + rng.NormFloat64()
	}
	f("shifted windows", [][]float64{a, b}, 1, 1.8)

	// NaN gaps are skipped, not treated as values: an AR(1) series with
	// every 7th value missing keeps its τ.
	g := ar1(rng, 20000, 0.8)
	for i := 0; i < len(g); i += 7 {
		g[i] = math.NaN()
	}
	f("ar1 0.8 with gaps", [][]float64{g}, 7.5, 10.5)

	// A constant series has no variance: τ = 1.
	f("constant", [][]float64{{3, 3, 3, 3, 3, 3}}, 1, 1)
}

func TestBlockBootstrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	before, after := make([]float64, 60), make([]float64, 60)
	for i := range before {
		before[i] = 100 + 5*rng.NormFloat64()
		after[i] = 130 + 5*rng.NormFloat64()
	}
	got := blockBootstrap(before, after, 4, 2000, rand.New(rand.NewPCG(1, 1)))
	if !(got.Lo > 20 && got.Hi < 40 && got.Lo < got.Hi) {
		t.Errorf("shift of 30: got CI [%v, %v]; want inside [20, 40]", got.Lo, got.Hi)
	}
	if want := 1.0 / 2001; got.P != want {
		t.Errorf("shift of 30: got p=%v; want %v (no resample crosses 0)", got.P, want)
	}
	again := blockBootstrap(before, after, 4, 2000, rand.New(rand.NewPCG(1, 1)))
	if again != got {
		t.Errorf("same seed: got %+v then %+v; want equal", got, again)
	}
	same := blockBootstrap(before, before, 4, 2000, rand.New(rand.NewPCG(1, 1)))
	if !(same.P > 0.5 && same.Lo < 0 && same.Hi > 0) {
		t.Errorf("same data: got %+v; want p > 0.5 and a CI around 0", same)
	}
	if got.Block != 4 {
		t.Errorf("got block %d; want 4", got.Block)
	}
	if b := blockBootstrap(before[:6], after[:6], 50, 100, rng).Block; b != 3 {
		t.Errorf("block 50 on 6 values: got %d; want 3 (half the window)", b)
	}
}

// TestAutocorrCalibration checks the rank test with autocorrOf's τ on
// noise with no change: white, moving sums of 4 (what rate(x[1m]) at a 15s
// step does) and AR(1) with φ=0.9. The false-positive rate at α=0.05 must
// stay near 5% (the τ from the two test windows alone gives 18% on AR(1)),
// and a shift of 1.5 standard deviations in moving-sum noise must still be
// found most of the time, so the correction is not simply blind.
func TestAutocorrCalibration(t *testing.T) {
	const trials = 1000
	rng := rand.New(rand.NewPCG(11, 9))
	opts := Options{}.withDefaults()
	for _, kind := range []string{"white", "ma4", "ar0.9"} {
		falsePos, found := 0, 0
		for trial := range 2 * trials {
			var v []float64
			sd := 1.0
			switch kind {
			case "white":
				v = make([]float64, 301)
				for i := range v {
					v[i] = rng.NormFloat64()
				}
			case "ma4":
				inc := make([]float64, 304)
				for i := range inc {
					inc[i] = rng.NormFloat64()
				}
				v = make([]float64, 301)
				for i := range v {
					v[i] = inc[i] + inc[i+1] + inc[i+2] + inc[i+3]
				}
				sd = 2
			case "ar0.9":
				v = ar1(rng, 351, 0.9)[50:]
				sd = 1 / math.Sqrt(1-0.81)
			}
			shift := trial >= trials
			sd2 := &signalData{history: v[:240], before: v[180:240], after: slices.Clone(v[241:])}
			if shift {
				for i := range sd2.after {
					sd2.after[i] += 1.5 * sd
				}
			}
			p := mannWhitney(sd2.before, sd2.after, autocorrOf(sd2, opts)).P
			switch {
			case !shift && p < 0.05:
				falsePos++
			case shift && p < 0.05/6:
				found++
			}
		}
		fp, power := float64(falsePos)/trials, float64(found)/trials
		t.Logf("%s: false positives %.3f at α=0.05; shift of 1.5 sd found %.3f at α=0.05/6", kind, fp, power)
		if fp > 0.075 {
			t.Errorf("%s: got false-positive rate %.3f; want ≤ 0.075 at α=0.05", kind, fp)
		}
		if kind == "ma4" && power < 0.6 {
			t.Errorf("%s: got power %.3f for a 1.5 sd shift; want ≥ 0.6", kind, power)
		}
	}
}
