package impact

// The verdict of one signal: whether its data suffice, the tests that
// judge it, and the overall verdict of a report. Analyze (impact.go)
// gathers the data these functions judge.

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// enoughData decides whether a signal can be judged and notes why not.
func enoughData(sd *signalData, sr *SignalReport, reqBefore, reqAfter float64, opts Options) bool {
	nb, na := sr.Before.N, sr.After.N
	if nb < opts.MinPoints || na < opts.MinPoints {
		sd.notes = append(sd.notes, fmt.Sprintf("%d points before and %d after, need %d in each (missing data?)", nb, na, opts.MinPoints))
		return false
	}
	if opts.MinRequests < 0 {
		return true
	}
	low := func(v float64) bool { return !math.IsNaN(v) && v < opts.MinRequests }
	switch {
	case sd.sig.Traffic && low(reqBefore) && low(reqAfter):
		sd.notes = append(sd.notes, fmt.Sprintf("about %.0f requests before and %.0f after, need %.0f in a window", reqBefore, reqAfter, opts.MinRequests))
		return false
	case sd.sig.PerRequest && !sd.sig.Traffic && (low(reqBefore) || low(reqAfter)):
		sd.notes = append(sd.notes, fmt.Sprintf("about %.0f requests before and %.0f after, need %.0f in each window", reqBefore, reqAfter, opts.MinRequests))
		return false
	}
	return true
}

// judge runs the tests on a signal with enough data and sets its verdict.
func judge(sd *signalData, sr *SignalReport, d Change, opts Options, alpha float64, dayOverlap bool) {
	s := sd.sig
	b, a := compact(sd.before), compact(sd.after)
	tau := autocorrOf(sd, opts)
	mw := mannWhitney(b, a, tau)
	rng := rand.New(rand.NewPCG(opts.Seed^seedOf(d.ID, s.Name), 0x9e3779b97f4a7c15))
	boot := blockBootstrap(b, a, int(math.Ceil(tau)), opts.Resamples, rng)

	mb, ma := float64(sr.Before.Median), float64(sr.After.Median)
	abs := ma - mb
	rel := relChange(mb, ma)
	sr.Autocorr = Float(tau)
	sr.PValue = Float(mw.P)
	sr.BootstrapP = Float(boot.P)
	sr.CILow, sr.CIHigh = Float(boot.Lo), Float(boot.Hi)
	sr.AbsChange = Float(abs)
	sr.RelChange = Float(rel)
	sr.AlphaEach = Float(alpha)
	sr.Verdict = Unchanged

	significant := mw.P < alpha && boot.P < alpha
	practical := isPractical(s, abs, rel)
	switch {
	case abs == 0:
		if significant {
			sd.notes = append(sd.notes, "distributions differ but the median did not move")
		}
		return
	case !significant && practical:
		sd.notes = append(sd.notes, fmt.Sprintf("moved %s but not significantly (p=%s, bootstrap p=%s, need < %s): noisy", formatRel(rel), formatP(mw.P), formatP(boot.P), formatP(alpha)))
		return
	case !significant:
		return
	case !practical:
		sd.notes = append(sd.notes, fmt.Sprintf("significant (p=%s) but %s (%s) is below the practical threshold (%s)",
			formatP(mw.P), formatRel(rel), formatDelta(abs, s.Unit), thresholdText(s)))
		return
	}
	v := directionVerdict(s.Bad, abs)

	// The same clock time a day earlier: a practical move the same way
	// then means a daily pattern, not this deploy.
	if dayRel := float64(sr.DayBeforeRelChange); !math.IsNaN(dayRel) {
		dayB, dayA := compact(sd.dayBefore), compact(sd.dayAfter)
		dayAbs := median(dayA) - median(dayB)
		switch {
		case dayOverlap:
			sd.notes = append(sd.notes, "another deploy fell at the same time a day earlier: daily-pattern check skipped")
		case dayAbs*abs > 0 && isPractical(s, dayAbs, dayRel):
			sd.notes = append(sd.notes, fmt.Sprintf("moved %s, but the same time a day earlier moved %s too: daily pattern, not this deploy", formatRel(rel), formatRel(dayRel)))
			return
		}
	}
	sr.Verdict = v
}

// autocorrOf estimates the integrated autocorrelation time of a signal
// under "the deploy changed nothing". With enough history before the deploy
// (at least two windows, half of it with values) it comes from that history
// alone: four times the points of a window, so less bias and noise, and it
// sees slow drifts that a 15-minute window cannot tell from noise. Under
// that hypothesis the after window behaves like the history, so nothing is
// lost by not looking at it; a changed after window (say a p99 flapping
// between two buckets) does not weaken the test of a change that plainly
// happened. Without history it comes from the two test windows, each
// centred on its own mean.
func autocorrOf(sd *signalData, opts Options) float64 {
	if h := sd.history; len(h) >= 2*len(sd.before) && len(compact(h)) >= len(h)/2 {
		rh, _ := rankSeries(h, nil)
		return integratedAutocorr([][]float64{rh}, len(h)/3)
	}
	rb, ra := rankSeries(sd.before, sd.after)
	return integratedAutocorr([][]float64{rb, ra}, min(len(sd.before), len(sd.after))/3)
}

// dayStats fills the day-before fields of sr when that window has data.
func dayStats(sd *signalData, sr *SignalReport, opts Options) {
	dayB, dayA := compact(sd.dayBefore), compact(sd.dayAfter)
	if len(dayA) < opts.MinPoints {
		return
	}
	st := statsOf(sd.dayAfter)
	sr.DayBefore = &st
	if len(dayB) >= opts.MinPoints {
		sr.DayBeforeRelChange = Float(relChange(median(dayB), median(dayA)))
	}
}

func directionVerdict(bad Direction, delta float64) Verdict {
	switch {
	case bad == Both:
		return Changed
	case (bad == Up) == (delta > 0):
		return Regressed
	default:
		return Improved
	}
}

// isPractical applies a signal's practical thresholds to a change of
// medians.
func isPractical(s Signal, abs, rel float64) bool {
	a := math.Abs(abs)
	if a < s.MinAbsChange || a == 0 {
		return false
	}
	return math.Abs(rel) >= s.MinRelChange || (s.BigAbsChange > 0 && a >= s.BigAbsChange)
}

// relChange is (after−before)/|before|: ±Inf from 0, 0 for 0 → 0.
func relChange(before, after float64) float64 {
	switch {
	case math.IsNaN(before) || math.IsNaN(after):
		return math.NaN()
	case before == after:
		return 0
	case before == 0:
		return math.Copysign(math.Inf(1), after)
	}
	return (after - before) / math.Abs(before)
}

func overall(signals []SignalReport) Verdict {
	has := func(v Verdict) bool {
		return slices.ContainsFunc(signals, func(s SignalReport) bool { return s.Verdict == v })
	}
	switch {
	case has(Regressed):
		return Regressed
	case has(Changed):
		return Changed
	case has(Improved):
		return Improved
	case has(NotEnoughData):
		return NotEnoughData
	}
	return Unchanged
}

func seedOf(id, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return h.Sum64()
}

func nan() Float { return Float(math.NaN()) }
