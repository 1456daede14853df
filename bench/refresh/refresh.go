// Package refresh is a refresh of Telltale's provisioned dashboards
// (dashboards/board) as Grafana asks it of its Prometheus data source:
// first the label-values lookup of every variable, in order, each value
// chosen as Grafana chooses it (the first value of a single-value variable,
// the All value of a multi-value one) and put into the next lookups; then
// every PromQL annotation and every panel target with the variables
// expanded: range queries over the dashboard's time range at Grafana's
// step, aligned to the step as Grafana aligns them, and instant queries at
// the range's end for stat and table panels.
//
// Promises: a refresh runs exactly the queries the generated dashboards
// hold (board.Queries), nothing added or left out; a query the server
// refuses fails the refresh with the server's message; the requests of a
// refresh go one after another, so its wall time is the sum of the
// server's answers. A Dashboard is not safe for concurrent use.
package refresh

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// Options say how Grafana shows the dashboards.
type Options struct {
	// Range is the dashboards' time range, now-Range to now; 0 means the
	// dashboards' default (board.DefaultFrom, 30 min).
	Range time.Duration
	// MaxDataPoints is a panel's width in pixels, which Grafana divides the
	// range by for the step; 0 means 1200.
	MaxDataPoints int
	// ScrapeInterval is the data source's scrape interval (timeInterval in
	// its provisioning): the smallest step and the base of
	// $__rate_interval; 0 means 10 s, what the provisioned data source sets.
	ScrapeInterval time.Duration
	// Raw builds the dashboards with board.Options.RawQueries: the panels
	// compute from the raw series instead of reading the dashboards'
	// recorded series.
	Raw bool
}

func (o Options) withDefaults() Options {
	if o.Range <= 0 {
		o.Range = 30 * time.Minute
	}
	if o.MaxDataPoints <= 0 {
		o.MaxDataPoints = 1200
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = 10 * time.Second
	}
	return o
}

// Dashboard is the refresh of one dashboard.
type Dashboard struct {
	UID     string
	opts    Options
	vars    []variable
	queries []query
	// values are the variables' values of the last refresh, name to value.
	values map[string]string
}

type variable struct {
	name, label, selector string
	all                   string // the All value of a multi-value variable; "" for single-value ones
}

type query struct {
	kind     board.Kind
	panel    string
	expr     string
	instant  bool
	minStep  time.Duration // a panel's own min interval, e.g. 1d
	recorded bool          // reads a series of board.Recordings
}

// Dashboards returns the refresh of each provisioned dashboard whose uid
// is in uids (every dashboard when uids is empty), in the dashboards'
// order.
func Dashboards(opts Options, uids ...string) ([]*Dashboard, error) {
	opts = opts.withDefaults()
	boards, err := board.All(board.Options{RawQueries: opts.Raw})
	if err != nil {
		return nil, err
	}
	qs, err := board.Queries(boards)
	if err != nil {
		return nil, err
	}
	var out []*Dashboard
	for _, b := range boards {
		if len(uids) > 0 && !slices.Contains(uids, b.UID) {
			continue
		}
		d := &Dashboard{UID: b.UID, opts: opts}
		minSteps, err := panelIntervals(b.Dashboard)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", b.UID, err)
		}
		all := map[string]string{}
		for _, v := range b.Dashboard.Templating.List {
			if v.Multi != nil && *v.Multi && v.IncludeAll != nil && *v.IncludeAll {
				all[v.Name] = ".*" // Grafana's All for a regex matcher when no allValue is set
				if v.AllValue != nil && *v.AllValue != "" {
					all[v.Name] = *v.AllValue
				}
			}
		}
		for _, q := range qs {
			if q.Dashboard != b.UID {
				continue
			}
			if q.Kind == board.KindVariable {
				d.vars = append(d.vars, variable{name: q.Panel, label: q.Label, selector: q.Expr, all: all[q.Panel]})
				continue
			}
			dq := query{kind: q.Kind, panel: q.Panel, expr: q.Expr, instant: q.Instant}
			if q.Kind == board.KindPanel {
				dq.minStep = minSteps[q.Panel]
			}
			for _, r := range board.Recordings() {
				dq.recorded = dq.recorded || strings.Contains(q.Expr, r.Record)
			}
			d.queries = append(d.queries, dq)
		}
		out = append(out, d)
	}
	if len(uids) > 0 && len(out) != len(uids) {
		return nil, fmt.Errorf("dashboards %v: found %d of them; the provisioned ones are %s, %s, %s and %s",
			uids, len(out), board.UIDHosts, board.UIDService, board.UIDDeploys, board.UIDSelf)
	}
	return out, nil
}

// panelIntervals returns the min interval of each panel that sets one, by
// title.
func panelIntervals(d dashboard.Dashboard) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, p := range board.Panels(d) {
		if p.Interval == nil || *p.Interval == "" || p.Title == nil {
			continue
		}
		iv, err := parseInterval(*p.Interval)
		if err != nil {
			return nil, fmt.Errorf("panel %q: interval %q: %w", *p.Title, *p.Interval, err)
		}
		out[*p.Title] = iv
	}
	return out, nil
}

// parseInterval parses a Grafana interval: 30s, 5m, 1h, 1d, 1w.
func parseInterval(s string) (time.Duration, error) {
	s = strings.TrimPrefix(s, ">")
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok && n != "" && !strings.ContainsAny(n, "msdhw") {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f <= 0 {
				return 0, fmt.Errorf("want a positive number before %s", u.suffix)
			}
			return time.Duration(f * float64(u.d)), nil
		}
	}
	return 0, fmt.Errorf("want a number and a unit (ms, s, m, h, d, w)")
}

// Queries returns the number of requests a refresh makes and how many of
// them read a recorded series.
func (d *Dashboard) Queries() (requests, recorded int) {
	for _, q := range d.queries {
		if q.recorded {
			recorded++
		}
	}
	return len(d.vars) + len(d.queries), recorded
}

// Stats is what one refresh got back.
type Stats struct {
	Requests int
	// Series and Points count what the answers held: series of range and
	// instant results, points of range results (an instant result's series
	// is one point each), values of label lookups as series.
	Series, Points int
	Wall           time.Duration
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Requests += o.Requests
	s.Series += o.Series
	s.Points += o.Points
	s.Wall += o.Wall
}

// Run refreshes the dashboard at time now through c: the variables'
// lookups, then every annotation and panel query, one after another.
func (d *Dashboard) Run(ctx context.Context, c *load.QueryClient, now time.Time) (Stats, error) {
	var st Stats
	t0 := time.Now()
	step := Step(d.opts.Range, d.opts.MaxDataPoints, d.opts.ScrapeInterval)
	vars := Vars(d.opts, step)
	from := now.Add(-d.opts.Range)
	for _, v := range d.vars {
		sel, err := board.Expand(v.selector, vars)
		if err != nil {
			return st, fmt.Errorf("%s: variable %s: %w", d.UID, v.name, err)
		}
		vals, err := c.LabelValues(ctx, v.label, sel, from, now)
		if err != nil {
			return st, fmt.Errorf("%s: variable %s: %w", d.UID, v.name, err)
		}
		st.Requests++
		st.Series += len(vals)
		slices.Sort(vals) // the dashboards sort variables alphabetically
		switch {
		case v.all != "":
			vars[v.name] = v.all
		case len(vals) > 0:
			vars[v.name] = vals[0]
		default:
			vars[v.name] = "" // Grafana's "None"
		}
	}
	for _, q := range d.queries {
		qstep := max(step, q.minStep)
		qv := vars
		if qstep != step {
			qv = Vars(d.opts, qstep)
			for _, v := range d.vars {
				qv[v.name] = vars[v.name]
			}
		}
		expr, err := board.Expand(q.expr, qv)
		if err != nil {
			return st, fmt.Errorf("%s: %s %q: %w", d.UID, q.kind, q.panel, err)
		}
		var series, points int
		if q.instant {
			series, points, err = c.Instant(ctx, expr, now)
		} else {
			series, points, err = c.Range(ctx, expr, Align(from, qstep), Align(now, qstep), qstep)
		}
		if err != nil {
			return st, fmt.Errorf("%s: %s %q: %w", d.UID, q.kind, q.panel, err)
		}
		st.Requests++
		st.Series += series
		st.Points += points
	}
	d.values = map[string]string{}
	for _, v := range d.vars {
		d.values[v.name] = vars[v.name]
	}
	st.Wall = time.Since(t0)
	return st, nil
}

// Values returns the variables' values the last refresh chose, e.g.
// "service=cart env=prod route=.*".
func (d *Dashboard) Values() string {
	var out []string
	for _, v := range d.vars {
		out = append(out, v.name+"="+d.values[v.name])
	}
	return strings.Join(out, " ")
}

// Vars returns Grafana's built-in variables for a query at step: $__interval,
// $__interval_ms, $__rate_interval (max($__interval + scrape interval, 4 ×
// scrape interval)), $__range, $__range_s, $__range_ms, and the
// dashboards' datasource and collector_url.
func Vars(o Options, step time.Duration) map[string]string {
	o = o.withDefaults()
	rate := max(step+o.ScrapeInterval, 4*o.ScrapeInterval)
	rs := int64(o.Range.Seconds())
	return map[string]string{
		"__interval":      Duration(step),
		"__interval_ms":   strconv.FormatInt(step.Milliseconds(), 10),
		"__rate_interval": Duration(rate),
		"__range":         strconv.FormatInt(rs, 10) + "s",
		"__range_s":       strconv.FormatInt(rs, 10),
		"__range_ms":      strconv.FormatInt(o.Range.Milliseconds(), 10),
		"datasource":      board.DatasourceUID,
		"collector_url":   board.DefaultCollectorURL,
	}
}

// Step is Grafana's step ($__interval) for a range shown in maxDataPoints
// pixels: range ÷ maxDataPoints rounded to a round interval as Grafana
// rounds it (gtime.RoundInterval), at least the scrape interval. Zero
// maxDataPoints and scrape take Options' defaults (1200, 10 s).
func Step(rng time.Duration, maxDataPoints int, scrape time.Duration) time.Duration {
	o := Options{Range: rng, MaxDataPoints: maxDataPoints, ScrapeInterval: scrape}.withDefaults()
	return max(RoundInterval(o.Range/time.Duration(o.MaxDataPoints)), o.ScrapeInterval)
}

// roundIntervals are Grafana's: below the first bound, the second value.
var roundIntervals = []struct{ below, to time.Duration }{
	{15 * time.Millisecond, 10 * time.Millisecond},
	{35 * time.Millisecond, 20 * time.Millisecond},
	{75 * time.Millisecond, 50 * time.Millisecond},
	{150 * time.Millisecond, 100 * time.Millisecond},
	{350 * time.Millisecond, 200 * time.Millisecond},
	{750 * time.Millisecond, 500 * time.Millisecond},
	{1500 * time.Millisecond, time.Second},
	{3500 * time.Millisecond, 2 * time.Second},
	{7500 * time.Millisecond, 5 * time.Second},
	{12500 * time.Millisecond, 10 * time.Second},
	{17500 * time.Millisecond, 15 * time.Second},
	{25 * time.Second, 20 * time.Second},
	{45 * time.Second, 30 * time.Second},
	{90 * time.Second, time.Minute},
	{210 * time.Second, 2 * time.Minute},
	{450 * time.Second, 5 * time.Minute},
	{750 * time.Second, 10 * time.Minute},
	{1050 * time.Second, 15 * time.Minute},
	{1500 * time.Second, 20 * time.Minute},
	{2700 * time.Second, 30 * time.Minute},
	{5400 * time.Second, time.Hour},
	{9000 * time.Second, 2 * time.Hour},
	{16200 * time.Second, 3 * time.Hour},
	{24300 * time.Second, 6 * time.Hour},
	{64800 * time.Second, 12 * time.Hour},
	{604800 * time.Second, 24 * time.Hour},
}

// RoundInterval rounds d as Grafana does before it uses it as a step.
func RoundInterval(d time.Duration) time.Duration {
	for _, r := range roundIntervals {
		if d < r.below {
			return r.to
		}
	}
	return 7 * 24 * time.Hour
}

// Align rounds t down to a multiple of step, as Grafana aligns the start
// and end of a range query to its step (in UTC).
func Align(t time.Time, step time.Duration) time.Time {
	ms := step.Milliseconds()
	return time.UnixMilli(t.UnixMilli() / ms * ms)
}

// Duration formats d as a PromQL duration in its largest whole unit: 40s,
// 2m, 1d.
func Duration(d time.Duration) string {
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d >= u.d && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.suffix
		}
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Backfill writes what the collector's rules engine would have recorded
// for each of the dashboards' recording rules (board.Recordings) at every
// board.RulesInterval over [start, end], so that panels reading the
// recorded series show the whole history, not only the time since the
// rules engine started: the rule's expression as a range query through q
// (an hour at a time), imported under the rule's name as text exposition
// into importURL. It returns the samples written.
func Backfill(ctx context.Context, q *load.QueryClient, importURL string, start, end time.Time) (int, error) {
	n := 0
	for _, r := range board.Recordings() {
		for from := start; from.Before(end); from = from.Add(time.Hour) {
			to := from.Add(time.Hour - board.RulesInterval)
			if to.After(end) {
				to = end
			}
			ss, err := q.Matrix(ctx, r.Expr, from, to, board.RulesInterval)
			if err != nil {
				return n, fmt.Errorf("backfill %s: %w", r.Record, err)
			}
			var b strings.Builder
			samples := 0
			for _, s := range ss {
				keys := make([]string, 0, len(s.Metric))
				for k := range s.Metric {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				var lb []string
				for _, k := range keys {
					lb = append(lb, fmt.Sprintf("%s=%q", k, s.Metric[k]))
				}
				for _, p := range s.Points {
					fmt.Fprintf(&b, "%s{%s} %s %d\n", r.Record, strings.Join(lb, ","), p.V, p.T)
					samples++
				}
			}
			if samples == 0 {
				continue
			}
			if _, err := load.Send(ctx, load.Target{URL: importURL, Format: load.Text}, []load.Stream{{{Data: []byte(b.String()), Samples: samples}}}); err != nil {
				return n, fmt.Errorf("backfill %s: %w", r.Record, err)
			}
			n += samples
		}
	}
	return n, nil
}
