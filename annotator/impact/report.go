package impact

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Report is what a change (a deploy, a switch flip ...) did to its
// service's signals; the deploy_ names of the JSON are the change's. It is plain data,
// JSON-serialisable (NaN and infinities encode as null) and safe to share
// once Analyze returned it.
type Report struct {
	DeployID   string    `json:"deploy_id"`
	Service    string    `json:"service"`
	Env        string    `json:"env"`
	DeployTime time.Time `json:"deploy_time"`
	// Window is the length of each window: before is [deploy−window,
	// deploy), after is (deploy, deploy+window].
	Window Duration `json:"window"`
	// Step is the query resolution: one value per step per window.
	Step       Duration  `json:"step"`
	ComputedAt time.Time `json:"computed_at"`
	// Verdict is regressed if any signal regressed, else changed if any
	// changed, else improved if any improved, else not_enough_data if any
	// signal could not be judged, else unchanged.
	Verdict Verdict        `json:"verdict"`
	Signals []SignalReport `json:"signals"`
	// Kind is the analysed change's kind ("" for reports of collectors
	// that analysed deploys only).
	Kind string `json:"kind,omitempty"`
	// Overlapping lists the ids of the other changes of the same service
	// and env inside either window, oldest first; never nil. Overlaps
	// says what each is.
	Overlapping []string  `json:"overlapping"`
	Overlaps    []Overlap `json:"overlaps,omitempty"`
	// Hint says why a report has no requests to judge, when the caller
	// could tell (e.g. "no series has service="web"; services with
	// data: demo"); "" else.
	Hint string `json:"hint,omitempty"`
	// RequestsBefore and RequestsAfter estimate the requests in each window
	// from the Traffic signal; null when there is none.
	RequestsBefore Float `json:"requests_before"`
	RequestsAfter  Float `json:"requests_after"`
	// Alpha is the family-wise significance level.
	Alpha Float `json:"alpha"`
	// SummaryText is Summary() at analysis time.
	SummaryText string `json:"summary"`
}

// SignalReport is the comparison of one signal.
type SignalReport struct {
	Name    string    `json:"name"`
	Query   string    `json:"query"`
	Unit    string    `json:"unit"`
	Bad     Direction `json:"bad"`
	Verdict Verdict   `json:"verdict"`
	Before  Stats     `json:"before"`
	After   Stats     `json:"after"`
	// DayBefore describes the after window's clock time a day earlier; nil
	// when there was no data then.
	DayBefore *Stats `json:"day_before"`
	// DayBeforeRelChange is the relative change of medians across the
	// deploy's clock time a day earlier (the daily-pattern check).
	DayBeforeRelChange Float `json:"day_before_rel_change"`
	// PValue is the two-sided Mann–Whitney p-value, variance inflated by
	// Autocorr; BootstrapP the moving-block bootstrap's. Both must be below
	// AlphaEach for a change to count.
	PValue     Float `json:"p_value"`
	BootstrapP Float `json:"bootstrap_p"`
	AlphaEach  Float `json:"alpha_each"`
	// RelChange is (after−before)/|before| of the medians; AbsChange
	// after−before in Unit.
	RelChange Float `json:"rel_change"`
	AbsChange Float `json:"abs_change"`
	// CILow and CIHigh bound the 95% block-bootstrap interval of AbsChange.
	CILow  Float `json:"ci_low"`
	CIHigh Float `json:"ci_high"`
	// Autocorr is the integrated autocorrelation time τ of the per-step
	// values (1 = independent): the tests count n/τ effective points.
	Autocorr Float `json:"autocorr"`
	// Note explains the verdict when it is not plain (below threshold,
	// daily pattern, too few requests, query error).
	Note string `json:"note,omitempty"`
}

// Stats summarises one window of a signal.
type Stats struct {
	Median Float `json:"median"`
	Mean   Float `json:"mean"`
	N      int   `json:"n"` // values that were not NaN
}

func statsOf(v []float64) Stats {
	c := compact(v)
	return Stats{Median: Float(median(c)), Mean: Float(mean(c)), N: len(c)}
}

// Float is a float64 whose JSON form is null for NaN and infinities.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler; null decodes as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("cannot decode number %q: %w", b, err)
	}
	*f = Float(v)
	return nil
}

// Duration is a time.Duration whose JSON form is a Go duration string
// ("15m0s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("cannot decode duration %s: want a string such as \"15m\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("cannot decode duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Regressions counts the signals that need a look: regressed ones and
// changed ones (a Both signal, the request rate, moved).
func (r *Report) Regressions() int {
	n := 0
	for _, s := range r.Signals {
		if s.Verdict == Regressed || s.Verdict == Changed {
			n++
		}
	}
	return n
}

// Summary is one line for annotations and chat: each regressed, changed
// and improved signal with its before and after medians, then counts of
// the unchanged and unjudged ones, then any overlapping deploys, e.g.
//
//	error ratio 0.4% → 2.1% ▲ regressed; p99 latency 120ms → 480ms ▲ regressed; no significant change in 4 signals
func (r *Report) Summary() string {
	var parts []string
	for _, v := range []Verdict{Regressed, Changed, Improved} {
		for _, s := range r.Signals {
			if s.Verdict != v {
				continue
			}
			b, a := float64(s.Before.Median), float64(s.After.Median)
			arrow := "▲"
			if a < b {
				arrow = "▼"
			}
			parts = append(parts, fmt.Sprintf("%s %s → %s %s %s", s.Name, formatValue(b, s.Unit), formatValue(a, s.Unit), arrow, v))
		}
	}
	var unchanged int
	var noData []string
	for _, s := range r.Signals {
		switch s.Verdict {
		case Unchanged:
			unchanged++
		case NotEnoughData:
			noData = append(noData, s.Name)
		}
	}
	if unchanged > 0 {
		parts = append(parts, "no significant change in "+plural(unchanged, "signal"))
	}
	if len(noData) > 0 {
		parts = append(parts, fmt.Sprintf("not enough data for %s (%s)", plural(len(noData), "signal"), strings.Join(noData, ", ")))
	}
	if o := overlapText(r); o != "" {
		parts = append(parts, "low confidence: overlaps "+o+", changes may be theirs")
	}
	if r.Hint != "" {
		parts = append(parts, r.Hint)
	}
	if len(parts) == 0 {
		return "no signals"
	}
	return strings.Join(parts, "; ")
}

// overlapText names the overlapping changes: "deploy a", "deploys a, b",
// "deploy a, switch slow_checkout on (shop)"; deploys by id, other kinds
// by title. Reports without Overlaps name deploys by Overlapping.
func overlapText(r *Report) string {
	var deploys, others []string
	if len(r.Overlaps) == 0 {
		deploys = r.Overlapping
	}
	for _, o := range r.Overlaps {
		if o.Kind == "deploy" || o.Kind == "" {
			deploys = append(deploys, o.ID)
		} else {
			others = append(others, o.Title)
		}
	}
	var parts []string
	switch len(deploys) {
	case 0:
	case 1:
		parts = append(parts, "deploy "+deploys[0])
	default:
		parts = append(parts, "deploys "+strings.Join(deploys, ", "))
	}
	return strings.Join(append(parts, others...), ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// formatValue renders v in its unit for people: ratios as percentages,
// seconds as µs/ms/s, bytes with binary prefixes, three significant digits.
func formatValue(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.IsInf(v, 1):
		return "∞"
	case math.IsInf(v, -1):
		return "-∞"
	}
	switch unit {
	case UnitRatio:
		return sig(v*100, 3) + "%"
	case UnitSeconds:
		a := math.Abs(v)
		switch {
		case a == 0:
			return "0s"
		case a < 1e-3:
			return sig(v*1e6, 3) + "µs"
		case a < 1:
			return sig(v*1e3, 3) + "ms"
		case a < 600:
			return sig(v, 3) + "s"
		}
		return time.Duration(v * float64(time.Second)).Round(time.Second).String()
	case UnitBytes:
		a := math.Abs(v)
		for i, p := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
			scale := math.Pow(1024, float64(i))
			if a < scale*1024 || p == "TiB" {
				return sig(v/scale, 3) + p
			}
		}
	case UnitReqPerSec, UnitCores:
		return sig(v, 3) + " " + unit
	case "":
		return sig(v, 3)
	}
	return sig(v, 3) + " " + unit
}

// formatDelta renders a change in a unit with an explicit sign.
func formatDelta(v float64, unit string) string {
	s := formatValue(v, unit)
	if v > 0 {
		s = "+" + s
	}
	if unit == UnitRatio {
		// A change of a ratio is in percentage points.
		s = strings.TrimSuffix(s, "%") + " pp"
	}
	return s
}

// formatRel renders a relative change as a signed percentage.
func formatRel(rel float64) string {
	switch {
	case math.IsNaN(rel):
		return "n/a"
	case math.IsInf(rel, 1):
		return "up from 0"
	case math.IsInf(rel, -1):
		return "down from 0"
	case rel > 0:
		return "+" + sig(rel*100, 2) + "%"
	}
	return sig(rel*100, 2) + "%"
}

// formatP renders a p-value compactly.
func formatP(p float64) string {
	if math.IsNaN(p) {
		return "n/a"
	}
	if p != 0 && p < 1e-4 {
		return strconv.FormatFloat(p, 'e', 1, 64)
	}
	return sig(p, 2)
}

// thresholdText describes a signal's practical threshold.
func thresholdText(s Signal) string {
	t := "±" + sig(s.MinRelChange*100, 3) + "%"
	if s.MinAbsChange > 0 {
		t += " and ±" + strings.TrimPrefix(formatDelta(s.MinAbsChange, s.Unit), "+")
	}
	if s.BigAbsChange > 0 {
		t += ", or ±" + strings.TrimPrefix(formatDelta(s.BigAbsChange, s.Unit), "+")
	}
	return t
}

// sig formats x with the given significant digits, without exponent and
// trailing zeros.
func sig(x float64, digits int) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	e := int(math.Floor(math.Log10(math.Abs(x))))
	dec := digits - 1 - e
	if dec < 0 {
		p := math.Pow10(-dec)
		x = math.Round(x/p) * p
		dec = 0
	}
	if dec > 12 {
		return strconv.FormatFloat(x, 'g', digits, 64)
	}
	s := strconv.FormatFloat(x, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	return s
}

// FormatValue renders v in unit for people, as the summary does: ratios as
// percentages, seconds as µs/ms/s, bytes with binary prefixes, three
// significant digits; "n/a" for NaN.
func FormatValue(v float64, unit string) string { return formatValue(v, unit) }

// FormatRel renders a relative change as a signed percentage ("+25%",
// "up from 0"); "n/a" for NaN.
func FormatRel(rel float64) string { return formatRel(rel) }

// FormatDelta renders an absolute change in the signal's unit ("+7.8 pp"
// for a ratio, "+390ms").
func FormatDelta(v float64, unit string) string { return formatDelta(v, unit) }

// FormatP renders a p-value compactly ("0.0032", "1.2e-07"); "n/a" for NaN.
func FormatP(p float64) string { return formatP(p) }
