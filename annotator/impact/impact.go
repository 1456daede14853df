package impact

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Querier runs PromQL range queries. It is the only thing Analyze needs from
// storage.
type Querier interface {
	// QueryRange evaluates query at start, start+step, ... up to end and
	// returns one value per step (index i at start + i·step), NaN where
	// there is none. A query that yields several series is summed per step
	// by the implementation; one that yields none gives all NaN (or an
	// empty slice). Extra values past end are ignored, missing ones count
	// as NaN.
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error)
}

// Change is the change to analyse (a deploy, a switch flip, a config
// change), or another change that may overlap it. An empty Env means every
// env of the service.
type Change struct {
	ID string `json:"id"`
	// Kind is the change's kind ("deploy", "switch" ...); "" reads as
	// deploy.
	Kind string `json:"kind,omitempty"`
	// Title names the change for people, e.g. "switch slow_checkout on
	// (shop)"; "" uses the ID.
	Title   string    `json:"title,omitempty"`
	Service string    `json:"service"`
	Env     string    `json:"env"`
	Time    time.Time `json:"time"` // when the change happened (or started)
}

// Overlap is another change inside the windows of the analysed one.
type Overlap struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	Title string    `json:"title"`
	Time  time.Time `json:"time"`
}

// Direction is the direction of change that is bad for a signal.
type Direction string

// Directions.
const (
	Up   Direction = "up"   // a rise is a regression, a drop an improvement
	Down Direction = "down" // a drop is a regression, a rise an improvement
	Both Direction = "both" // any move is "changed" (request rate)
)

func (d Direction) valid() bool { return d == Up || d == Down || d == Both }

// Verdict is what a deploy did to one signal, or overall.
type Verdict string

// Verdicts.
const (
	Regressed     Verdict = "regressed"       // moved the bad way, significantly and practically
	Improved      Verdict = "improved"        // moved the good way, significantly and practically
	Changed       Verdict = "changed"         // a Both signal moved, significantly and practically
	Unchanged     Verdict = "unchanged"       // no significant and practical change
	NotEnoughData Verdict = "not_enough_data" // too few points or requests to judge
)

// Units the summary formats specially; any other string is printed after
// the number.
const (
	UnitReqPerSec = "req/s" // requests per second
	UnitRatio     = "ratio" // 0..1, shown as a percentage
	UnitSeconds   = "s"     // shown as µs, ms, s
	UnitBytes     = "bytes" // shown with binary prefixes (KiB, MiB, GiB)
	UnitCores     = "cores" // CPU seconds per second
)

// Signal is one number to compare before and after a deploy.
type Signal struct {
	// Name is shown in reports and summaries ("p99 latency"); unique per
	// analysis.
	Name string
	// Query is PromQL that yields one series (aggregate it).
	Query string
	// Bad is the direction that is bad.
	Bad Direction
	// MinRelChange is the smallest practical change of the median,
	// relative to the before median (0.2 = 20%).
	MinRelChange float64
	// MinAbsChange is the smallest practical change of the median in Unit;
	// smaller changes never count, whatever their relative size.
	MinAbsChange float64
	// BigAbsChange, if positive, is an absolute change in Unit that counts
	// whatever its relative size (error ratio: 1 percentage point).
	BigAbsChange float64
	// Unit of the values: one of the Unit constants or free text.
	Unit string
	// PerRequest marks signals computed from requests (error ratio,
	// latency): they are judged only when both windows saw at least
	// Options.MinRequests requests.
	PerRequest bool
	// Traffic marks the request-rate signal (req/s); its values give the
	// request counts that gate PerRequest signals. At most one per analysis
	// is used (the first).
	Traffic bool
}

// Defaults of Options.
const (
	DefaultWindow      = 15 * time.Minute
	DefaultStep        = 15 * time.Second
	DefaultAlpha       = 0.01
	DefaultMinRequests = 300
	DefaultResamples   = 2000
	// Grace is added to the window before a deploy is due, so the last
	// samples of the after window (pushed or scraped every 10–15s) are in
	// storage when it is analysed.
	Grace = 30 * time.Second
	// MaxSignals bounds the signals of one analysis.
	MaxSignals = 50
	// dayOffset is how far back the seasonal comparison looks.
	dayOffset = 24 * time.Hour
	// minPointsFloor is the least Options.MinPoints may be.
	minPointsFloor = 5
)

// ErrNotDue is returned by Analyze for a deploy whose after window (plus
// Grace) has not passed yet.
var ErrNotDue = errors.New("deploy impact is not due yet")

// Options tune Analyze. Zero values take the documented defaults.
type Options struct {
	// Window is the length of the before and after windows; default 15m.
	Window time.Duration
	// Step is the query resolution; default 15s. Window/Step values are
	// compared per window, so keep it at 30–120.
	Step time.Duration
	// History is how far before the deploy the signals are read to
	// estimate their autocorrelation (the before window included); default
	// 4×Window. A longer span estimates slow drifts better; a step in it
	// (an earlier deploy) only makes the tests more cautious.
	History time.Duration
	// Alpha is the family-wise significance level, split evenly across the
	// signals judged (Bonferroni); default 0.01.
	Alpha float64
	// MinPoints is the least number of values a window needs; default a
	// third of Window/Step, at least 5.
	MinPoints int
	// MinRequests is the least number of requests each window needs for
	// PerRequest signals to be judged; default 300. Negative turns the
	// traffic gate off.
	MinRequests float64
	// Resamples is the number of bootstrap resamples; default 2000.
	Resamples int
	// Seed seeds the bootstrap (mixed with the deploy ID and signal name).
	Seed uint64
	// SkipDayBefore turns off the comparison with the day before.
	SkipDayBefore bool
	// Now is the clock; default time.Now. It stamps Report.ComputedAt and
	// decides ErrNotDue.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if o.History == 0 {
		o.History = 4 * o.Window
	}
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if o.MinPoints == 0 {
		o.MinPoints = max(minPointsFloor, int(o.Window/o.Step)/3)
	}
	if o.MinRequests == 0 {
		o.MinRequests = DefaultMinRequests
	}
	if o.Resamples == 0 {
		o.Resamples = DefaultResamples
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Window < 0 || o.Step < 0:
		return fmt.Errorf("window %v and step %v must not be negative", o.Window, o.Step)
	case o.Window > 12*time.Hour:
		return fmt.Errorf("window %v is over 12h: the day-before comparison would overlap; use a window of minutes", o.Window)
	case o.Window/o.Step < 2*minPointsFloor:
		return fmt.Errorf("window %v / step %v gives %d points, need at least %d: use a shorter step", o.Window, o.Step, o.Window/o.Step, 2*minPointsFloor)
	case o.Window/o.Step > 11000:
		return fmt.Errorf("window %v / step %v gives %d points, limit 11000: use a longer step", o.Window, o.Step, o.Window/o.Step)
	case o.History < o.Window || o.History > 20*time.Hour:
		return fmt.Errorf("history %v must be in [window %v, 20h]; default 4×window", o.History, o.Window)
	case o.History/o.Step > 11000:
		return fmt.Errorf("history %v / step %v gives %d points, limit 11000: shorten history", o.History, o.Step, o.History/o.Step)
	case !(o.Alpha > 0 && o.Alpha < 1):
		return fmt.Errorf("alpha %v must be in (0, 1), e.g. 0.01", o.Alpha)
	case o.MinPoints < minPointsFloor:
		return fmt.Errorf("min points %d must be at least %d", o.MinPoints, minPointsFloor)
	case math.IsNaN(o.MinRequests) || math.IsInf(o.MinRequests, 0):
		return fmt.Errorf("min requests %v must be a finite number", o.MinRequests)
	case o.Resamples < 100 || o.Resamples > 100000:
		return fmt.Errorf("resamples %d must be in [100, 100000]; default %d", o.Resamples, DefaultResamples)
	}
	return nil
}

func (s Signal) validate() error {
	switch {
	case s.Name == "":
		return errors.New("signal has no name")
	case strings.TrimSpace(s.Query) == "":
		return fmt.Errorf("signal %q has no query", s.Name)
	case !s.Bad.valid():
		return fmt.Errorf("signal %q: bad direction %q must be up, down or both", s.Name, s.Bad)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"min relative change", s.MinRelChange}, {"min absolute change", s.MinAbsChange}, {"big absolute change", s.BigAbsChange}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("signal %q: %s %v must be a finite number ≥ 0", s.Name, f.name, f.v)
		}
	}
	return nil
}

// DueAt is when the deploy's impact can be analysed: its time plus window
// plus Grace. window 0 means DefaultWindow.
func DueAt(d Change, window time.Duration) time.Time {
	if window == 0 {
		window = DefaultWindow
	}
	return d.Time.Add(window + Grace)
}

// Due reports whether the deploy's impact can be analysed at now.
func Due(d Change, window time.Duration, now time.Time) bool {
	return !now.Before(DueAt(d, window))
}

// signalData is what Analyze gathers for one signal before judging it.
type signalData struct {
	sig                 Signal
	history             []float64 // [deploy−History, deploy), the before window at its end
	before, after       []float64 // time-ordered, NaN kept
	dayBefore, dayAfter []float64 // nil when not queried or failed
	err                 error
	notes               []string
	judged              bool
}

// Analyze compares signals in the window after change d with the window
// before it (and the same clock time a day earlier) and returns the Report.
// others may list any changes (other services, d itself): only those of
// d's service and env inside the windows are reported as overlapping.
// It returns ErrNotDue (wrapped) before DueAt(d, opts.Window).
func Analyze(ctx context.Context, q Querier, d Change, others []Change, signals []Signal, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("cannot analyse deploy %q: %w", d.ID, err)
	}
	switch {
	case q == nil:
		return nil, errors.New("cannot analyse deploy: BUG: nil Querier")
	case d.ID == "":
		return nil, errors.New("cannot analyse deploy: it has no id")
	case d.Time.IsZero():
		return nil, fmt.Errorf("cannot analyse deploy %q: it has no time", d.ID)
	case len(signals) == 0:
		return nil, fmt.Errorf("cannot analyse deploy %q: no signals; pass DefaultSignals(service, env)", d.ID)
	case len(signals) > MaxSignals:
		return nil, fmt.Errorf("cannot analyse deploy %q: %d signals, limit %d: drop signals from the config", d.ID, len(signals), MaxSignals)
	}
	seen := make(map[string]bool, len(signals))
	for _, s := range signals {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("cannot analyse deploy %q: %w", d.ID, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("cannot analyse deploy %q: two signals are named %q: names must be unique", d.ID, s.Name)
		}
		seen[s.Name] = true
	}
	now := opts.Now()
	if due := DueAt(d, opts.Window); now.Before(due) {
		return nil, fmt.Errorf("deploy %q at %s: its %v window ends at %s (plus %v grace); analyse after Due returns true: %w",
			d.ID, d.Time.UTC().Format(time.RFC3339), opts.Window, d.Time.Add(opts.Window).UTC().Format(time.RFC3339), Grace, ErrNotDue)
	}

	overlapping, dayOverlap := overlaps(d, others, opts.Window)
	ids := make([]string, len(overlapping))
	for i, o := range overlapping {
		ids[i] = o.ID
	}
	data := make([]*signalData, len(signals))
	failed := 0
	var lastErr error
	for i, s := range signals {
		sd := &signalData{sig: s}
		data[i] = sd
		sd.history, sd.after, sd.err = fetch(ctx, q, s.Query, d.Time, opts.History, opts)
		sd.before = sd.history[max(0, len(sd.history)-int(opts.Window/opts.Step)):]
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cannot analyse deploy %q: %w", d.ID, err)
		}
		if sd.err != nil {
			failed++
			lastErr = sd.err
			continue
		}
		if !opts.SkipDayBefore {
			b, a, err := fetch(ctx, q, s.Query, d.Time.Add(-dayOffset), opts.Window, opts)
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("cannot analyse deploy %q: %w", d.ID, err)
			}
			if err == nil {
				sd.dayBefore, sd.dayAfter = b, a
			} else {
				sd.notes = append(sd.notes, "day-before query failed: "+err.Error())
			}
		}
	}
	if failed == len(signals) {
		return nil, fmt.Errorf("cannot analyse deploy %q: all %d signal queries failed (is storage up?), last: %w", d.ID, failed, lastErr)
	}

	r := &Report{
		DeployID:    d.ID,
		Service:     d.Service,
		Env:         d.Env,
		DeployTime:  d.Time,
		Kind:        d.Kind,
		Window:      Duration(opts.Window),
		Step:        Duration(opts.Step),
		ComputedAt:  now,
		Alpha:       Float(opts.Alpha),
		Overlapping: ids,
		Overlaps:    overlapping,
		Signals:     make([]SignalReport, len(signals)),
	}
	r.RequestsBefore, r.RequestsAfter = Float(math.NaN()), Float(math.NaN())
	for _, sd := range data {
		if sd.sig.Traffic && sd.err == nil {
			r.RequestsBefore = Float(requests(sd.before, opts))
			r.RequestsAfter = Float(requests(sd.after, opts))
			break
		}
	}

	// First pass: who has enough data to be judged (the Bonferroni count).
	judged := 0
	for i, sd := range data {
		sr := &r.Signals[i]
		*sr = SignalReport{
			Name: sd.sig.Name, Query: sd.sig.Query, Unit: sd.sig.Unit, Bad: sd.sig.Bad,
			Verdict: NotEnoughData,
			Before:  statsOf(sd.before), After: statsOf(sd.after),
			PValue: nan(), BootstrapP: nan(), RelChange: nan(), AbsChange: nan(),
			CILow: nan(), CIHigh: nan(), Autocorr: nan(), DayBeforeRelChange: nan(),
		}
		if sd.err != nil {
			sd.notes = append(sd.notes, "query failed: "+sd.err.Error())
			continue
		}
		dayStats(sd, sr, opts)
		sd.judged = enoughData(sd, sr, float64(r.RequestsBefore), float64(r.RequestsAfter), opts)
		if sd.judged {
			judged++
		}
	}
	for i, sd := range data {
		sr := &r.Signals[i]
		if sd.judged {
			judge(sd, sr, d, opts, opts.Alpha/float64(judged), dayOverlap)
		}
		sr.Note = strings.Join(sd.notes, "; ")
	}
	r.Verdict = overall(r.Signals)
	r.SummaryText = r.Summary()
	return r, nil
}

// fetch queries [center−history, center+window] and splits the values into
// the steps before and after center (the step at center itself belongs to
// neither).
func fetch(ctx context.Context, q Querier, query string, center time.Time, history time.Duration, opts Options) (before, after []float64, err error) {
	start, end := center.Add(-history), center.Add(opts.Window)
	vals, err := q.QueryRange(ctx, query, start, end, opts.Step)
	if err != nil {
		return nil, nil, err
	}
	steps := int(end.Sub(start)/opts.Step) + 1
	before = make([]float64, 0, steps/2)
	after = make([]float64, 0, steps/2)
	for i := range steps {
		v := math.NaN()
		if i < len(vals) {
			v = vals[i]
		}
		if math.IsInf(v, 0) {
			v = math.NaN() // e.g. a ratio over zero traffic: no information
		}
		t := start.Add(time.Duration(i) * opts.Step)
		switch {
		case t.Before(center):
			before = append(before, v)
		case t.After(center):
			after = append(after, v)
		}
	}
	return before, after, nil
}

// requests estimates the requests in a window from its request rates.
func requests(rates []float64, opts Options) float64 {
	v := compact(rates)
	if len(v) < opts.MinPoints {
		return math.NaN()
	}
	return mean(v) * opts.Window.Seconds()
}

// overlaps lists the other changes of d's service inside d's windows
// whose env matches (an empty env matches every env), oldest first, and
// reports whether any fell in the day-before windows.
func overlaps(d Change, others []Change, window time.Duration) (list []Overlap, day bool) {
	in := func(t, center time.Time) bool {
		return !t.Before(center.Add(-window)) && !t.After(center.Add(window))
	}
	list = []Overlap{}
	for _, o := range others {
		if o.ID == d.ID || o.Service != d.Service || o.Env != d.Env && o.Env != "" && d.Env != "" {
			continue
		}
		if in(o.Time, d.Time) && !slices.ContainsFunc(list, func(x Overlap) bool { return x.ID == o.ID }) {
			kind, title := o.Kind, o.Title
			if kind == "" {
				kind = "deploy"
			}
			if title == "" {
				title = kind + " " + o.ID
			}
			list = append(list, Overlap{ID: o.ID, Kind: kind, Title: title, Time: o.Time})
		}
		if in(o.Time, d.Time.Add(-dayOffset)) {
			day = true
		}
	}
	slices.SortStableFunc(list, func(a, b Overlap) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, day
}
