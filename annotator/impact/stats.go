package impact

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// This file holds the statistics: ranks, the Mann–Whitney U test (exact and
// normal approximation with tie correction), the autocorrelation variance
// inflation, and the moving-block bootstrap of the difference of medians.
// Everything here is pure and allocation-bounded; NaN means "no value".

// mwResult is the outcome of a two-sided Mann–Whitney U test.
type mwResult struct {
	// U is the statistic of the second sample (y): the number of (x, y)
	// pairs with y > x, ties counting one half. U > n1*n2/2 means y tends
	// to be larger.
	U float64
	// Z is the standardised statistic (0 for the exact test).
	Z float64
	// P is the two-sided p-value.
	P float64
	// Exact reports whether P comes from the exact null distribution.
	Exact bool
}

// maxExactSmall and maxExactLarge bound the sample sizes for which the exact
// distribution is used: as scipy's method="auto", when the smaller sample has
// at most 8 values and there are no ties.
const (
	maxExactSmall = 8
	maxExactLarge = 400
)

// mannWhitney runs the two-sided Mann–Whitney U test on x and y, which must
// hold no NaN. inflation (≥ 1) multiplies the variance of U in the normal
// approximation to account for autocorrelated samples; with inflation 1,
// no ties and a small sample the exact distribution is used, otherwise the
// normal approximation with tie correction and continuity correction 0.5
// (scipy.stats.mannwhitneyu's defaults).
func mannWhitney(x, y []float64, inflation float64) mwResult {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return mwResult{P: math.NaN(), U: math.NaN(), Z: math.NaN()}
	}
	pooled := make([]float64, 0, n1+n2)
	pooled = append(pooled, x...)
	pooled = append(pooled, y...)
	ranks, ties := rankAverage(pooled)
	r2 := 0.0
	for _, r := range ranks[n1:] {
		r2 += r
	}
	fn2 := float64(n2)
	u := r2 - fn2*(fn2+1)/2
	return mannWhitneyFromU(u, n1, n2, ties, inflation)
}

// mannWhitneyFromU computes the p-value of U for samples of n1 and n2
// values whose pooled ranks had the tie term ties = Σ(t³−t): exactly when
// there are no ties, no inflation and the smaller sample is tiny, else by
// the normal approximation.
func mannWhitneyFromU(u float64, n1, n2 int, ties, inflation float64) mwResult {
	if inflation < 1 || math.IsNaN(inflation) {
		inflation = 1
	}
	if ties == 0 && inflation == 1 && min(n1, n2) <= maxExactSmall && max(n1, n2) <= maxExactLarge {
		big := math.Max(u, float64(n1*n2)-u)
		return mwResult{U: u, P: mannWhitneyExactP(int(big+0.5), n1, n2), Exact: true}
	}
	z, p := mannWhitneyNormal(u, n1, n2, ties, inflation)
	return mwResult{U: u, Z: z, P: p}
}

// mannWhitneyNormal is the two-sided normal approximation of the
// Mann–Whitney test with tie correction and continuity correction 0.5, the
// variance of U multiplied by inflation. It returns z (of the larger of U
// and n1·n2−U) and p.
func mannWhitneyNormal(u float64, n1, n2 int, ties, inflation float64) (z, p float64) {
	fn1, fn2 := float64(n1), float64(n2)
	n := fn1 + fn2
	big := math.Max(u, fn1*fn2-u)
	mu := fn1 * fn2 / 2
	variance := fn1 * fn2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		// Every value is the same: nothing tells the samples apart.
		return 0, 1
	}
	z = (big - mu - 0.5) / math.Sqrt(variance*inflation)
	return z, min(1, math.Erfc(z/math.Sqrt2))
}

// mannWhitneyExactP returns the two-sided exact p-value 2·P(U ≥ big) for
// samples of n1 and n2 distinct values, capped at 1. It counts the
// arrangements with the recurrence c(k, l, u) = c(k−1, l, u−l) + c(k, l−1, u)
// (Mann and Whitney 1947), in float64: all terms are positive, so the result
// is accurate to a few ulps.
func mannWhitneyExactP(big, n1, n2 int) float64 {
	m, n := min(n1, n2), max(n1, n2)
	size := m*n + 1
	// c[k][u] for the current l; c[0] is 1 at u=0 for every l.
	c := make([][]float64, m+1)
	for k := range c {
		c[k] = make([]float64, size)
	}
	c[0][0] = 1
	// l = 0: only k = 0 arrangements exist (c(k, 0, 0) = 1 for all k).
	for k := 1; k <= m; k++ {
		c[k][0] = 1
	}
	for l := 1; l <= n; l++ {
		// c(k, l, u) = c(k-1, l, u-l) + c(k, l-1, u); iterate k upwards so
		// c[k-1] already holds level l while c[k] still holds level l-1.
		for k := 1; k <= m; k++ {
			prev := c[k-1]
			cur := c[k]
			for u := k * l; u >= l; u-- {
				cur[u] += prev[u-l]
			}
		}
	}
	total, tail := 0.0, 0.0
	for u, v := range c[m] {
		total += v
		if u >= big {
			tail += v
		}
	}
	return min(1, 2*tail/total)
}

// rankAverage returns the 1-based ranks of v (ties get the average of their
// ranks) and the tie term Σ(t³−t) over groups of t equal values.
func rankAverage(v []float64) (ranks []float64, ties float64) {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return a - b
	})
	ranks = make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		r := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			ranks[idx[k]] = r
		}
		if t := float64(j - i + 1); t > 1 {
			ties += t*t*t - t
		}
		i = j + 1
	}
	return ranks, ties
}

// integratedAutocorr estimates τ = 1 + 2·Σ ρ_k, the factor by which
// autocorrelation inflates the variance of a sum of n steps (n/τ is the
// effective sample size). Each series is one window in time order, NaN
// marking missing steps; each is centred on its own mean, so a level shift
// between windows does not count as correlation, and the lag products of
// all windows are pooled. The sum is cut with Geyer's initial monotone
// sequence (pairs ρ_2j + ρ_2j+1 summed while positive and non-increasing),
// at most maxLag lags. The result is at least 1: negative correlation is
// not allowed to shrink the variance.
func integratedAutocorr(series [][]float64, maxLag int) float64 {
	var c0 float64
	var count int
	means := make([]float64, len(series))
	for i, s := range series {
		sum, n := 0.0, 0
		for _, v := range s {
			if !math.IsNaN(v) {
				sum += v
				n++
			}
		}
		if n == 0 {
			means[i] = math.NaN()
			continue
		}
		means[i] = sum / float64(n)
		for _, v := range s {
			if !math.IsNaN(v) {
				d := v - means[i]
				c0 += d * d
			}
		}
		count += n
	}
	if count < 4 || c0 == 0 {
		return 1
	}
	rho := func(k int) float64 {
		ck, pairs, full := 0.0, 0, 0
		for i, s := range series {
			m := means[i]
			valid := 0
			for j, a := range s {
				if math.IsNaN(a) {
					continue
				}
				valid++
				if j+k >= len(s) || math.IsNaN(s[j+k]) {
					continue
				}
				ck += (a - m) * (s[j+k] - m)
				pairs++
			}
			full += max(0, valid-k)
		}
		if pairs == 0 {
			return 0
		}
		// The usual biased (positive-definite) estimator, with the pairs
		// that gaps removed made up for.
		return ck / c0 * float64(full) / float64(pairs)
	}
	tau := -1.0
	prev := math.Inf(1)
	for j := 0; 2*j+1 <= maxLag; j++ {
		var g float64
		if j == 0 {
			g = 1 + rho(1)
		} else {
			g = rho(2*j) + rho(2*j+1)
		}
		if g <= 0 {
			break
		}
		g = min(g, prev)
		prev = g
		tau += 2 * g
	}
	return max(tau, 1)
}

// rankSeries returns the pooled ranks of the non-NaN values of a and b,
// laid out like a and b (NaN where they are NaN).
func rankSeries(a, b []float64) (ra, rb []float64) {
	vals := make([]float64, 0, len(a)+len(b))
	for _, v := range a {
		if !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	for _, v := range b {
		if !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	ranks, _ := rankAverage(vals)
	ra, rb = make([]float64, len(a)), make([]float64, len(b))
	k := 0
	for i, v := range a {
		if math.IsNaN(v) {
			ra[i] = math.NaN()
			continue
		}
		ra[i] = ranks[k]
		k++
	}
	for i, v := range b {
		if math.IsNaN(v) {
			rb[i] = math.NaN()
			continue
		}
		rb[i] = ranks[k]
		k++
	}
	return ra, rb
}

// compact returns the non-NaN values of v in order.
func compact(v []float64) []float64 {
	out := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

// mean of v (no NaN); NaN for an empty slice.
func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// median of v (no NaN); NaN for an empty slice. v is not modified.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	return (s[(n-1)/2] + s[n/2]) / 2
}

// bootResult is a moving-block bootstrap of median(after) − median(before).
type bootResult struct {
	// Lo and Hi bound the central 95% interval of the difference.
	Lo, Hi float64
	// P is the two-sided bootstrap p-value for "the difference is 0":
	// (2·min(#d ≤ 0, #d ≥ 0) + 1) / (B + 1), capped at 1.
	P float64
	// Block is the block length used, in steps.
	Block int
}

// blockBootstrap resamples each window (time-ordered, no NaN) in blocks of
// block consecutive steps (a moving-block bootstrap, which keeps the
// short-range autocorrelation inside each block) resamples times and
// returns the distribution summary of median(after*) − median(before*).
func blockBootstrap(before, after []float64, block, resamples int, rng *rand.Rand) bootResult {
	nb, na := len(before), len(after)
	if nb == 0 || na == 0 || resamples <= 0 {
		return bootResult{Lo: math.NaN(), Hi: math.NaN(), P: math.NaN()}
	}
	block = max(1, min(block, nb/2, na/2))
	wb, wa := newRankedWindow(before), newRankedWindow(after)
	diffs := make([]float64, resamples)
	for i := range diffs {
		mb := wb.resampleMedian(block, rng)
		diffs[i] = wa.resampleMedian(block, rng) - mb
	}
	le, ge := 0, 0
	for _, d := range diffs {
		if d <= 0 {
			le++
		}
		if d >= 0 {
			ge++
		}
	}
	slices.Sort(diffs)
	return bootResult{
		Lo:    percentileSorted(diffs, 0.025),
		Hi:    percentileSorted(diffs, 0.975),
		P:     min(1, float64(2*min(le, ge)+1)/float64(resamples+1)),
		Block: block,
	}
}

// rankedWindow holds a window's values for fast resampled medians: a
// resample is counted per rank (a counting sort), so its median costs
// O(n) with no sorting and no copying.
type rankedWindow struct {
	sorted []float64
	rankOf []int32 // rankOf[i] is the index in sorted of value i
	counts []int32
}

func newRankedWindow(v []float64) *rankedWindow {
	idx := make([]int32, len(v))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int { return cmp.Compare(v[a], v[b]) })
	w := &rankedWindow{sorted: make([]float64, len(v)), rankOf: make([]int32, len(v)), counts: make([]int32, len(v))}
	for r, i := range idx {
		w.sorted[r] = v[i]
		w.rankOf[i] = int32(r)
	}
	return w
}

// resampleMedian draws len(v) values in blocks of block consecutive steps
// from random offsets and returns their median.
func (w *rankedWindow) resampleMedian(block int, rng *rand.Rand) float64 {
	n := len(w.rankOf)
	clear(w.counts)
	starts := n - block + 1
	for filled := 0; filled < n; {
		s := rng.IntN(starts)
		m := min(block, n-filled)
		for _, r := range w.rankOf[s : s+m] {
			w.counts[r]++
		}
		filled += m
	}
	// The median is the mean of the values at order positions (n−1)/2 and
	// n/2.
	lo, hi := (n-1)/2, n/2
	a := math.NaN()
	cum := 0
	for r, c := range w.counts {
		cum += int(c)
		if math.IsNaN(a) && cum > lo {
			a = w.sorted[r]
		}
		if cum > hi {
			return (a + w.sorted[r]) / 2
		}
	}
	return a // not reached
}

// percentileSorted returns the q-quantile of sorted (linear interpolation
// between closest ranks).
func percentileSorted(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i] + f*(sorted[i+1]-sorted[i])
}
