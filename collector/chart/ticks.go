package chart

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// unitRange is niceRange with the ticks on round numbers of the unit
// the axis shows: bytes on multiples of KiB, MiB ... rather than of 10.
func unitRange(lo, hi float64, unit string) (nlo, nhi float64, ticks []float64) {
	div := 1.0
	if unit == "bytes" || unit == "Bps" {
		top := math.Max(math.Abs(lo), math.Abs(hi))
		for top >= 1024*div && div < 1<<50 {
			div *= 1024
		}
	}
	nlo, nhi, ticks = niceRange(lo/div, hi/div, 5)
	for i := range ticks {
		ticks[i] *= div
	}
	return nlo * div, nhi * div, ticks
}

// niceRange widens [lo, hi] to multiples of a "nice" step (1, 2 or 5
// times a power of ten) giving about n ticks, and returns the ticks.
func niceRange(lo, hi float64, n int) (nlo, nhi float64, ticks []float64) {
	if hi == lo {
		d := math.Abs(lo) * 0.1
		if d == 0 {
			d = 1
		}
		lo, hi = lo-d, hi+d
	}
	if lo > 0 && lo < (hi-lo) {
		lo = 0 // a positive series close to zero reads better from zero
	}
	step := niceStep((hi - lo) / float64(max(n-1, 1)))
	nlo, nhi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	if nhi == nlo {
		nhi = nlo + step
	}
	for i := 0; ; i++ {
		v := nlo + float64(i)*step
		if v > nhi+step/2 || i > 2*n+2 {
			break
		}
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ticks = append(ticks, v)
	}
	return nlo, nhi, ticks
}

// niceStep is the least of 1, 2, 5 × 10^k that is at least raw.
func niceStep(raw float64) float64 {
	if raw <= 0 || !finite(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// formatValue formats a y tick v in unit, with as many decimals as the
// ticks' spacing needs.
func formatValue(v float64, unit string, ticks []float64) string {
	if v == 0 {
		return "0"
	}
	step := 0.0
	if len(ticks) > 1 {
		step = math.Abs(ticks[1] - ticks[0])
	}
	top := 0.0
	for _, t := range ticks {
		top = math.Max(top, math.Abs(t))
	}
	scaled := func(div float64, suffix string) string {
		return formatFixed(v/div, decimals(step/div)) + suffix
	}
	switch unit {
	case "bytes", "Bps":
		per := ""
		if unit == "Bps" {
			per = "/s"
		}
		div, names := 1.0, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
		i := 0
		for top >= 1024*div && i < len(names)-1 {
			div *= 1024
			i++
		}
		return scaled(div, " "+names[i]+per)
	case "s", "ms":
		if unit == "ms" {
			v, step, top = v/1000, step/1000, top/1000
		}
		switch {
		case top == 0:
			return "0"
		case top < 1e-3:
			return formatFixed(v*1e6, decimals(step*1e6)) + " us"
		case top < 1:
			return formatFixed(v*1e3, decimals(step*1e3)) + " ms"
		case top < 120:
			return formatFixed(v, decimals(step)) + " s"
		case top < 7200:
			return formatFixed(v/60, decimals(step/60)) + " min"
		case top < 3*86400:
			return formatFixed(v/3600, decimals(step/3600)) + " h"
		}
		return formatFixed(v/86400, decimals(step/86400)) + " d"
	case "percentunit":
		return formatFixed(v*100, decimals(step*100)) + "%"
	case "percent":
		return formatFixed(v, decimals(step)) + "%"
	}
	suffix := ""
	switch unit {
	case "reqps":
		suffix = " req/s"
	case "ops":
		suffix = " ops/s"
	}
	div, si := 1.0, ""
	for _, p := range []struct {
		d float64
		s string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if top >= p.d {
			div, si = p.d, p.s
			break
		}
	}
	return scaled(div, si+suffix)
}

// decimals is how many decimals tell ticks step apart (0 to 4).
func decimals(step float64) int {
	if step <= 0 || !finite(step) || step >= 1 {
		return 0
	}
	return min(4, int(math.Ceil(-math.Log10(step)-1e-9)))
}

func formatFixed(v float64, dec int) string {
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if s == "-0" || strings.HasPrefix(s, "-0.") && strings.Trim(s[1:], "0.") == "" {
		s = s[1:]
	}
	return s
}

// tickSteps are the x tick intervals, in ms.
var tickSteps = []time.Duration{
	time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 30 * 24 * time.Hour,
}

// timeTicks returns at most n tick times (ms) in [start, end] on a round
// interval of UTC time.
func timeTicks(start, end int64, n int) []int64 {
	span := end - start
	step := tickSteps[len(tickSteps)-1].Milliseconds()
	for _, s := range tickSteps {
		if span/s.Milliseconds() < int64(n) {
			step = s.Milliseconds()
			break
		}
	}
	var out []int64
	first := (start + step - 1) / step * step
	if start < 0 {
		first = start / step * step
	}
	for t := first; t <= end && len(out) <= n; t += step {
		out = append(out, t)
	}
	return out
}

// formatTime is a tick's label: "15:04" within a day, "Jan 2 15:04"
// beyond, "Jan 2" past a week, in UTC.
func formatTime(ms, span int64) string {
	t := time.UnixMilli(ms).UTC()
	switch {
	case span <= 10*time.Minute.Milliseconds():
		return t.Format("15:04:05")
	case span <= 26*time.Hour.Milliseconds():
		return t.Format("15:04")
	case span <= 8*24*time.Hour.Milliseconds():
		return t.Format("Jan 2 15:04")
	}
	return t.Format("Jan 2")
}
