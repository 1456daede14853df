package impact

// This file is the deterministic generator of the fixtures in testdata/:
// it simulates a service instrumented with the instrument library (request,
// error and latency-histogram counters, process CPU and memory, one sample
// per 15s scrape) around a deploy, then evaluates the default signal
// queries on those samples the way PromQL does (rate over (t−1m, t],
// histogram_quantile with linear interpolation, `or vector(0)`, 5m
// lookback for the memory gauge). `go test -run TestFixtures -update`
// rewrites the CSV files; TestFixtures checks that they are what the
// generator produces.

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"
)

// fixtureDeployTime is when every fixture's deploy happens.
var fixtureDeployTime = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

const (
	fixtureService = "shop"
	fixtureEnv     = "prod"
	scrapeInterval = 15 * time.Second
	scrapeOffset   = 7 * time.Second // scrapes fall between query steps
)

// latencyBuckets are the instrument library's DefaultBuckets.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// regime is how the simulated service behaves for a while.
type regime struct {
	rate      float64 // mean requests per second
	jitter    float64 // white log-normal noise on the traffic of each scrape interval
	errRatio  float64 // share of requests that answer 5xx
	latMedian float64 // median latency of the log-normal body, seconds
	latSigma  float64 // log-normal shape of the body

	tailFrac, tailXm, tailAlpha   float64 // Pareto tail mixed into every interval
	stallProb, stallFrac, stallXm float64 // intervals where a share of requests stall (Pareto α=1.5 from stallXm)
	errBurstProb, errBurstRatio   float64 // intervals with a burst of errors

	arPhi, arSD float64 // AR(1) per interval on log traffic and log latency level (stationary sd arSD)

	cpuBase, cpuPerReq, cpuNoise float64 // cores, CPU-seconds per request, log-normal sd per interval
	mem, memSD, memPhi           float64 // resident bytes, relative sd and AR(1) coefficient of its drift
}

// steadyRegime is a healthy service at 50 req/s.
func steadyRegime() regime {
	return regime{
		rate: 50, jitter: 0.05, errRatio: 0.004, latMedian: 0.035, latSigma: 0.55,
		cpuBase: 0.02, cpuPerReq: 0.001, cpuNoise: 0.1,
		mem: 150 << 20, memSD: 0.02, memPhi: 0.9,
	}
}

// heavyRegime adds heavy tails: a Pareto latency tail, stalls (GC, noisy
// neighbours) that push p99 up for single intervals, error bursts and
// noisier CPU.
func heavyRegime() regime {
	r := steadyRegime()
	r.tailFrac, r.tailXm, r.tailAlpha = 0.02, 0.08, 1.3
	r.stallProb, r.stallFrac, r.stallXm = 0.04, 0.3, 0.4
	r.errBurstProb, r.errBurstRatio = 0.03, 0.05
	r.cpuNoise = 0.3
	return r
}

// ar1Regime lets traffic and latency drift (AR(1), φ=0.9 per 15s, about
// ±12% and ±10%) and memory wander slowly.
func ar1Regime() regime {
	r := steadyRegime()
	r.arPhi, r.arSD = 0.9, 0.12
	r.memSD, r.memPhi = 0.04, 0.98
	return r
}

// gap is a span (relative to the deploy) without scrapes.
type gap struct{ from, to time.Duration }

// scenario is one fixture.
type scenario struct {
	name          string
	seed          uint64
	before, after regime
	// day is the day-before behaviour around deploy−24h; nil: no data.
	dayBefore, dayAfter *regime
	gaps                []gap
	missProb            float64 // share of single scrapes lost at random
}

// sampleRNG wraps PCG (a specified algorithm, so fixtures regenerate
// identically) with the few distributions the generator needs.
type sampleRNG struct {
	r     *rand.Rand
	spare float64
	has   bool
}

func newSampleRNG(seed uint64) *sampleRNG {
	return &sampleRNG{r: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))}
}

func (g *sampleRNG) uniform() float64 { return (float64(g.r.Uint64()>>11) + 0.5) / (1 << 53) }

// norm is a standard normal by Box–Muller.
func (g *sampleRNG) norm() float64 {
	if g.has {
		g.has = false
		return g.spare
	}
	u, v := g.uniform(), g.uniform()
	m := math.Sqrt(-2 * math.Log(u))
	g.spare, g.has = m*math.Sin(2*math.Pi*v), true
	return m * math.Cos(2*math.Pi*v)
}

func (g *sampleRNG) poisson(mean float64) float64 {
	if mean <= 0 {
		return 0
	}
	if mean > 50 {
		return math.Max(0, math.Round(mean+math.Sqrt(mean)*g.norm()))
	}
	limit, k, p := math.Exp(-mean), 0.0, g.uniform()
	for p > limit {
		k++
		p *= g.uniform()
	}
	return k
}

func (g *sampleRNG) binomial(n, p float64) float64 {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case n*p*(1-p) > 50:
		return math.Min(n, math.Max(0, math.Round(n*p+math.Sqrt(n*p*(1-p))*g.norm())))
	}
	// Inversion: walk the CDF from 0.
	u := g.uniform()
	q := 1 - p
	pk := math.Pow(q, n)
	cdf := pk
	k := 0.0
	for cdf < u && k < n {
		pk *= (n - k) / (k + 1) * p / q
		k++
		cdf += pk
	}
	return k
}

// latencyCDF is the share of requests at or below x seconds.
func latencyCDF(r regime, level float64, stall bool, x float64) float64 {
	ln := 0.5 * math.Erfc(-(math.Log(x)-math.Log(r.latMedian*level))/(r.latSigma*math.Sqrt2))
	pareto := func(xm, alpha float64) float64 {
		if x < xm {
			return 0
		}
		return 1 - math.Pow(xm/x, alpha)
	}
	f := ln
	if r.tailFrac > 0 {
		f = (1-r.tailFrac)*ln + r.tailFrac*pareto(r.tailXm*level, r.tailAlpha)
	}
	if stall {
		f = (1-r.stallFrac)*f + r.stallFrac*pareto(r.stallXm, 1.5)
	}
	return f
}

// scrape is the state of the service's series at one scrape.
type scrape struct {
	t       time.Time
	present bool
	reqs    float64
	errs    float64
	buckets []float64 // cumulative per le bound, then +Inf
	cpu     float64
	mem     float64
}

// simulate produces scrapes from..to with regime(t) in force.
func simulate(g *sampleRNG, from, to time.Time, regimeAt func(time.Time) regime, sc scenario, center time.Time) []scrape {
	var out []scrape
	var reqs, errs, cpu float64
	buckets := make([]float64, len(latencyBuckets)+1)
	r0 := regimeAt(from)
	arT, arL, memX := r0.arSD*g.norm(), r0.arSD*g.norm(), r0.memSD*g.norm()
	for t := from.Add(scrapeOffset); !t.After(to); t = t.Add(scrapeInterval) {
		r := regimeAt(t)
		innov := math.Sqrt(1 - r.arPhi*r.arPhi)
		arT = r.arPhi*arT + innov*r.arSD*g.norm()
		arL = r.arPhi*arL + innov*r.arSD*0.8*g.norm()
		memX = r.memPhi*memX + math.Sqrt(1-r.memPhi*r.memPhi)*r.memSD*g.norm()

		traffic := r.rate * math.Exp(arT+r.jitter*g.norm())
		n := g.poisson(traffic * scrapeInterval.Seconds())
		ratio := r.errRatio
		if g.uniform() < r.errBurstProb {
			ratio = r.errBurstRatio
		}
		stall := g.uniform() < r.stallProb
		level := math.Exp(arL)
		// Multinomial bucket counts by conditional binomials.
		left, prevF := n, 0.0
		for i, le := range latencyBuckets {
			f := latencyCDF(r, level, stall, le)
			pi := (f - prevF) / math.Max(1e-300, 1-prevF)
			k := g.binomial(left, math.Min(1, math.Max(0, pi)))
			left -= k
			prevF = f
			for j := i; j < len(buckets); j++ {
				buckets[j] += k
			}
		}
		buckets[len(buckets)-1] += left
		reqs += n
		errs += g.binomial(n, ratio)
		cpu += (r.cpuBase + r.cpuPerReq*n/scrapeInterval.Seconds()) * scrapeInterval.Seconds() * math.Exp(r.cpuNoise*g.norm())
		mem := r.mem * math.Exp(memX+0.01*g.norm())

		present := g.uniform() >= sc.missProb
		for _, gp := range sc.gaps {
			if !t.Before(center.Add(gp.from)) && t.Before(center.Add(gp.to)) {
				present = false
			}
		}
		out = append(out, scrape{t: t, present: present, reqs: reqs, errs: errs,
			buckets: append([]float64(nil), buckets...), cpu: cpu, mem: mem})
	}
	return out
}

// evalSignals evaluates the default queries at start, start+step, ... end.
func evalSignals(scr []scrape, start, end time.Time, step time.Duration) map[string][]float64 {
	out := map[string][]float64{}
	win := make([]scrape, 0, 8)
	for t := start; !t.After(end); t = t.Add(step) {
		// Present scrapes in (t−1m, t], and the memory gauge's last value
		// within the 5m lookback.
		hi := sort.Search(len(scr), func(i int) bool { return scr[i].t.After(t) }) // first after t
		win = win[:0]
		lastMem := math.NaN()
		for i := hi - 1; i >= 0 && scr[i].t.After(t.Add(-5*time.Minute)); i-- {
			if !scr[i].present {
				continue
			}
			if math.IsNaN(lastMem) {
				lastMem = scr[i].mem
			}
			if scr[i].t.After(t.Add(-time.Minute)) {
				win = append(win, scr[i])
			}
		}
		slices.Reverse(win)
		rate := func(f func(scrape) float64) float64 {
			if len(win) < 2 {
				return math.NaN() // no series in the result
			}
			a, b := win[0], win[len(win)-1]
			return (f(b) - f(a)) / b.t.Sub(a.t).Seconds()
		}
		reqRate := rate(func(s scrape) float64 { return s.reqs })
		errRate := rate(func(s scrape) float64 { return s.errs })
		orZero := func(v float64) float64 {
			if math.IsNaN(v) {
				return 0
			}
			return v
		}
		out[SignalRequestRate] = append(out[SignalRequestRate], orZero(reqRate))
		ratio := orZero(errRate) / reqRate // NaN when no traffic series; 0/0 = NaN
		out[SignalErrorRatio] = append(out[SignalErrorRatio], ratio)
		bucketRates := make([]float64, len(latencyBuckets)+1)
		for i := range bucketRates {
			bucketRates[i] = rate(func(s scrape) float64 { return s.buckets[i] })
		}
		out[SignalP50Latency] = append(out[SignalP50Latency], histogramQuantile(0.5, bucketRates))
		out[SignalP99Latency] = append(out[SignalP99Latency], histogramQuantile(0.99, bucketRates))
		out[SignalCPU] = append(out[SignalCPU], rate(func(s scrape) float64 { return s.cpu }))
		out[SignalMemory] = append(out[SignalMemory], lastMem)
	}
	return out
}

// histogramQuantile is PromQL's histogram_quantile over cumulative bucket
// rates (le bounds latencyBuckets, then +Inf).
func histogramQuantile(q float64, cum []float64) float64 {
	total := cum[len(cum)-1]
	if math.IsNaN(total) || total == 0 {
		return math.NaN()
	}
	rank := q * total
	i := 0
	for i < len(cum)-1 && cum[i] < rank {
		i++
	}
	if i == len(cum)-1 {
		return latencyBuckets[len(latencyBuckets)-1]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = latencyBuckets[i-1], cum[i-1]
	}
	upper := latencyBuckets[i]
	count := cum[i] - below
	if count == 0 {
		return upper
	}
	return lower + (upper-lower)*(rank-below)/count
}

// fixture is a scenario's query results: per signal, unix second → value.
type fixture map[string]map[int64]float64

// generate runs a scenario for today (deploy−history..deploy+window) and,
// when it has day-before regimes, for the day before.
func generate(sc scenario, opts Options) fixture {
	opts = opts.withDefaults()
	g := newSampleRNG(sc.seed)
	fx := fixture{}
	add := func(center time.Time, history time.Duration, before, after regime, sc scenario) {
		start, end := center.Add(-history), center.Add(opts.Window)
		scr := simulate(g, start.Add(-2*time.Minute), end, func(t time.Time) regime {
			if t.Before(center) {
				return before
			}
			return after
		}, sc, center)
		vals := evalSignals(scr, start, end, opts.Step)
		for name, vs := range vals {
			if fx[name] == nil {
				fx[name] = map[int64]float64{}
			}
			for i, v := range vs {
				fx[name][start.Add(time.Duration(i)*opts.Step).Unix()] = v
			}
		}
	}
	add(fixtureDeployTime, opts.History, sc.before, sc.after, sc)
	if sc.dayBefore != nil {
		day := sc
		day.gaps, day.missProb = nil, 0
		add(fixtureDeployTime.Add(-dayOffset), opts.Window, *sc.dayBefore, *sc.dayAfter, day)
	}
	return fx
}

var fixtureColumns = []string{SignalRequestRate, SignalErrorRatio, SignalP50Latency, SignalP99Latency, SignalCPU, SignalMemory}

// encode writes the fixture as CSV: unix seconds, then one column per
// signal; NaN for no value.
func (fx fixture) encode() []byte {
	var times []int64
	for t := range fx[SignalRequestRate] {
		times = append(times, t)
	}
	slices.Sort(times)
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(append([]string{"unix"}, fixtureColumns...))
	for _, t := range times {
		row := []string{strconv.FormatInt(t, 10)}
		for _, c := range fixtureColumns {
			row = append(row, strconv.FormatFloat(fx[c][t], 'g', 7, 64))
		}
		w.Write(row)
	}
	w.Flush()
	return buf.Bytes()
}

func decodeFixture(data []byte) (fixture, error) {
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("fixture has %d rows, want a header and values", len(rows))
	}
	fx := fixture{}
	header := rows[0]
	for _, row := range rows[1:] {
		t, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			return nil, err
		}
		for i, col := range header[1:] {
			v, err := strconv.ParseFloat(row[i+1], 64)
			if err != nil {
				return nil, fmt.Errorf("row %d column %q: %w", t, col, err)
			}
			if fx[col] == nil {
				fx[col] = map[int64]float64{}
			}
			fx[col][t] = v
		}
	}
	return fx, nil
}

// fakeQuerier serves fixture series by query string: each default signal's
// query maps to its column. Unknown queries are errors; failing queries
// can be injected by signal name.
type fakeQuerier struct {
	fx      fixture
	queries map[string]string // query → signal name
	fail    map[string]error  // signal name → error
	calls   int
}

func newFakeQuerier(fx fixture) *fakeQuerier {
	q := &fakeQuerier{fx: fx, queries: map[string]string{}, fail: map[string]error{}}
	for _, s := range DefaultSignals(fixtureService, fixtureEnv) {
		q.queries[s.Query] = s.Name
	}
	return q
}

func (q *fakeQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	q.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, ok := q.queries[query]
	if !ok {
		return nil, fmt.Errorf("fake querier: unknown query %q", query)
	}
	if err := q.fail[name]; err != nil {
		return nil, err
	}
	col := q.fx[name]
	var out []float64
	for t := start; !t.After(end); t = t.Add(step) {
		v, ok := col[t.Unix()]
		if !ok {
			v = math.NaN()
		}
		out = append(out, v)
	}
	return out, nil
}

func fixturePath(name string) string { return filepath.Join("testdata", name+".csv") }

// loadFixture reads a committed fixture.
func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	data, err := os.ReadFile(fixturePath(name))
	if err != nil {
		t.Fatalf("cannot read fixture (regenerate with go test -run TestFixtures -update): %v", err)
	}
	fx, err := decodeFixture(data)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return fx
}

// sameFixture compares two fixtures with a relative tolerance.
func sameFixture(a, b fixture) error {
	for col, av := range a {
		bv := b[col]
		if len(av) != len(bv) {
			return fmt.Errorf("column %q: %d values vs %d", col, len(av), len(bv))
		}
		for t, x := range av {
			y, ok := bv[t]
			if !ok {
				return fmt.Errorf("column %q: no value at %d", col, t)
			}
			if !(math.IsNaN(x) && math.IsNaN(y)) && math.Abs(x-y) > 1e-6*math.Max(1e-9, math.Abs(x)) {
				return fmt.Errorf("column %q at %d: %v vs %v", col, t, x, y)
			}
		}
	}
	if len(a) != len(b) {
		return fmt.Errorf("%d columns vs %d", len(a), len(b))
	}
	return nil
}

func hasNaN(fx fixture) bool {
	for _, col := range fx {
		for _, v := range col {
			if math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}
