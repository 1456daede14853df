package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/chart"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// Limits of a render request.
const (
	renderDefaultRange = time.Hour
	renderMaxRange     = 31 * 24 * time.Hour
	renderMaxPoints    = 11_000 // per series, as Prometheus' query_range
	renderMaxVars      = 8
	renderMaxVarBytes  = 128
	renderMaxMarkers   = 200
)

// errBadRender marks a render request the caller must fix: HTTP 400.
var errBadRender = errors.New("bad render request")

func badRender(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRender, fmt.Sprintf(format, args...))
}

// renderRequest is one chart to draw, from GET /api/v1/render's
// parameters or from !graph.
type renderRequest struct {
	// query is PromQL; panel a panel title of the built-in dashboards
	// (exactly one is set).
	query, panel string
	// vars are the dashboard variables for a panel (service, env, host,
	// route); those not given match everything.
	vars          map[string]string
	start, end    time.Time
	step          time.Duration
	width, height int
	// series is the most series drawn (1 to chart.MaxSeries).
	series int
}

var varNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,63}$`)

// parseRenderRequest reads GET /api/v1/render's parameters: query=<PromQL>
// or panel=<title>; var-<name>=<value> for a panel's variables; start and
// end (RFC3339 or Unix seconds; end defaults to now, start to end minus
// range, range to 1h); step (a duration or seconds; default range/400,
// at least 1s); width and height in pixels; series (1 to 10). Every error
// wraps errBadRender and names the parameter and the fix.
func parseRenderRequest(form url.Values, now time.Time) (renderRequest, error) {
	r := renderRequest{query: strings.TrimSpace(form.Get("query")), panel: strings.TrimSpace(form.Get("panel")), vars: map[string]string{}}
	if (r.query == "") == (r.panel == "") {
		return r, badRender("give exactly one of query=<PromQL> and panel=<panel title>")
	}
	for k, vs := range form {
		name, ok := strings.CutPrefix(k, "var-")
		if !ok {
			continue
		}
		if len(r.vars) == renderMaxVars {
			return r, badRender("more than %d var- parameters: send only the panel's variables (service, env, host, route)", renderMaxVars)
		}
		if err := checkVar(name, vs[0]); err != nil {
			return r, err
		}
		r.vars[name] = vs[0]
	}
	var err error
	r.end = now
	if v := form.Get("end"); v != "" {
		if r.end, err = parseRenderTime("end", v); err != nil {
			return r, err
		}
	}
	span := renderDefaultRange
	if v := form.Get("range"); v != "" {
		if span, err = parseRenderDuration("range", v); err != nil {
			return r, err
		}
	}
	r.start = r.end.Add(-span)
	if v := form.Get("start"); v != "" {
		if r.start, err = parseRenderTime("start", v); err != nil {
			return r, err
		}
	}
	if !r.end.After(r.start) {
		return r, badRender("end %s is not after start %s: swap them, or send range=1h instead of start", r.end.Format(time.RFC3339), r.start.Format(time.RFC3339))
	}
	if d := r.end.Sub(r.start); d > renderMaxRange {
		return r, badRender("start to end is %s, limit %s: shorten the range", d, renderMaxRange)
	}
	r.step = max(time.Second, (r.end.Sub(r.start) / 400).Truncate(time.Second))
	if v := form.Get("step"); v != "" {
		if r.step, err = parseRenderDuration("step", v); err != nil {
			return r, err
		}
	}
	if n := r.end.Sub(r.start) / r.step; n > renderMaxPoints {
		return r, badRender("step %s gives %d points per series, limit %d: raise step (or leave it out)", r.step, n, renderMaxPoints)
	}
	if r.width, err = parseRenderInt(form, "width", chart.DefaultWidth, chart.MinWidth, chart.MaxWidth); err != nil {
		return r, err
	}
	if r.height, err = parseRenderInt(form, "height", chart.DefaultHeight, chart.MinHeight, chart.MaxHeight); err != nil {
		return r, err
	}
	if r.series, err = parseRenderInt(form, "series", chart.MaxSeries, 1, chart.MaxSeries); err != nil {
		return r, err
	}
	return r, nil
}

// checkVar checks a dashboard variable's name and value: the value goes
// into a PromQL string, so it may not hold a quote or backslash.
func checkVar(name, v string) error {
	if !varNameRE.MatchString(name) {
		return badRender("var-%s: a variable name is letters, digits and _, e.g. var-service=web", clipParam(name))
	}
	if len(v) > renderMaxVarBytes || strings.ContainsAny(v, "\"\\\n\r`") {
		return badRender("var-%s: a value is at most %d bytes without quotes, backslashes or newlines, e.g. web or web|api", name, renderMaxVarBytes)
	}
	return nil
}

func clipParam(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

func parseRenderTime(param, v string) (time.Time, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, badRender("%s=%s: want RFC3339 (2024-05-01T12:00:00Z) or Unix seconds (1714564800)", param, clipParam(v))
	}
	return t, nil
}

func parseRenderDuration(param, v string) (time.Duration, error) {
	var d time.Duration
	if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && f < renderMaxRange.Seconds() {
		d = time.Duration(f * float64(time.Second))
	} else if md, err := model.ParseDuration(v); err == nil {
		d = time.Duration(md)
	}
	if d < time.Second || d > renderMaxRange {
		return 0, badRender("%s=%s: want a duration from 1s to %s, e.g. 15s, 5m, 1h or seconds", param, clipParam(v), model.Duration(renderMaxRange))
	}
	return d, nil
}

func parseRenderInt(form url.Values, param string, def, lo, hi int) (int, error) {
	v := form.Get(param)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRender("%s=%s: want a whole number from %d to %d", param, clipParam(v), lo, hi)
	}
	return n, nil
}

// renderPanel is a time-series panel of the built-in dashboards.
type renderPanel struct {
	uid, board, title, unit string
	exprs                   []string
}

// renderPanels lists the panels of the built-in dashboards that draw a
// time series, with the raw queries the console runs.
func renderPanels() ([]renderPanel, error) {
	boards, err := board.All(board.Options{RawQueries: true})
	if err != nil {
		return nil, err
	}
	var out []renderPanel
	for _, b := range boards {
		for _, p := range board.Panels(b.Dashboard) {
			if p.Title == nil || *p.Title == "" {
				continue
			}
			rp := renderPanel{uid: b.UID, board: b.Title, title: *p.Title}
			if p.Type == "timeseries" {
				for _, t := range p.Targets {
					if pq, ok := t.(prometheus.Dataquery); ok && pq.Expr != "" {
						rp.exprs = append(rp.exprs, pq.Expr)
					}
				}
			}
			if p.FieldConfig != nil && p.FieldConfig.Defaults.Unit != nil {
				rp.unit = *p.FieldConfig.Defaults.Unit
			}
			out = append(out, rp)
		}
	}
	return out, nil
}

// findPanel returns the first panel titled arg (any case), or the first
// whose title holds arg when arg has 4 characters or more.
func findPanel(panels []renderPanel, arg string) (renderPanel, bool) {
	for _, p := range panels {
		if strings.EqualFold(p.title, arg) {
			return p, true
		}
	}
	if len(arg) >= 4 {
		for _, p := range panels {
			if strings.Contains(strings.ToLower(p.title), strings.ToLower(arg)) {
				return p, true
			}
		}
	}
	return renderPanel{}, false
}

// renderer draws charts of PromQL or panels with the change markers, for
// GET /api/v1/render and !graph.
type renderer struct {
	a      *app
	panels []renderPanel
}

// queryError is the query API's answer to a failed query_range: its
// status and message.
type queryError struct {
	status int
	msg    string
}

func (e *queryError) Error() string { return e.msg }

// draw runs r's queries and draws them with the changes in the range.
func (rd *renderer) draw(ctx context.Context, r renderRequest) (*chart.Chart, error) {
	c := &chart.Chart{Start: r.start, End: r.end, Step: r.step, Width: r.width, Height: r.height}
	exprs := []string{r.query}
	c.Title = r.query
	if r.panel != "" {
		p, ok := findPanel(rd.panels, r.panel)
		if !ok {
			return nil, badRender("panel=%s is not a panel title of the built-in dashboards: see their titles in the console, or send query=<PromQL>", clipParam(r.panel))
		}
		if len(p.exprs) == 0 {
			return nil, badRender("panel %q of %s is not a time series (a stat or table): only time series panels are drawn; send its query as query=<PromQL>", p.title, p.board)
		}
		vars := map[string]string{
			"__interval": model.Duration(r.step).String(), "__rate_interval": model.Duration(max(4*r.step, time.Minute)).String(),
			"__range": model.Duration(r.end.Sub(r.start)).String(), "service": ".*", "env": ".*", "host": ".*", "route": ".*",
			"collector_url": "", "datasource": board.DatasourceUID,
		}
		var said []string
		for k, v := range r.vars {
			vars[k] = v
			said = append(said, k+"="+v)
		}
		sort.Strings(said)
		exprs = exprs[:0]
		for _, e := range p.exprs {
			x, err := board.Expand(e, vars)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %w", p.title, err)
			}
			exprs = append(exprs, x)
		}
		c.Title, c.Unit = p.title+" ("+p.board+")", p.unit
		if len(said) > 0 {
			c.Title += " " + strings.Join(said, " ")
		}
	}
	for _, e := range exprs {
		ss, err := rd.a.queryRange(ctx, e, r.start, r.end, r.step)
		if err != nil {
			return nil, err
		}
		c.Series = append(c.Series, ss...)
	}
	if len(c.Series) > r.series {
		// Keep the series that reach highest: those a reader looks for.
		sort.SliceStable(c.Series, func(i, j int) bool { return peak(c.Series[i]) > peak(c.Series[j]) })
		c.Series = c.Series[:r.series]
	}
	markers, err := rd.a.changeMarkers(ctx, r.start, r.end, r.vars)
	if err != nil {
		return nil, err
	}
	c.Markers = markers
	return c, nil
}

func peak(s chart.Series) float64 {
	m := math.Inf(-1)
	for _, p := range s.Points {
		if !math.IsNaN(p.V) {
			m = math.Max(m, p.V)
		}
	}
	return m
}

// changeMarkers returns the changes recorded in [start, end] as markers,
// of the service and env in vars when they name one: what the console's
// graphs mark.
func (a *app) changeMarkers(ctx context.Context, start, end time.Time, vars map[string]string) ([]chart.ChangeMarker, error) {
	if a.changes == nil {
		return nil, nil
	}
	f := changes.Filter{From: start, To: end, Limit: renderMaxMarkers}
	if s := vars["service"]; changes.ValidLabel(s) {
		f.Service = s
	}
	if e := vars["env"]; changes.ValidLabel(e) {
		f.Env, f.EnvlessToo = e, true
	}
	list, err := a.changes.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("cannot read the change log: %w", err)
	}
	out := make([]chart.ChangeMarker, 0, len(list))
	for _, c := range list {
		out = append(out, chart.ChangeMarker{Time: c.Time, Label: markerLabel(c),
			Bad: c.Status != "" && c.Status != changes.StatusSuccess && c.Status != changes.StatusRunning && c.Status != "resolved"})
	}
	return out, nil
}

// markerLabel is a change's short label: "web@v1.2.3" for a deploy,
// "switch slow_checkout off" for others.
func markerLabel(c changes.Change) string {
	if c.Kind == changes.KindDeploy {
		if c.Version != "" {
			return c.Service + "@" + c.Version
		}
		return c.Service
	}
	s := c.Kind + " "
	if c.Subject != "" {
		s += c.Subject
		if st := c.Fields["state"]; st != "" {
			s += " " + st
		}
		return s
	}
	return s + c.Service
}

// queryRange runs expr over [start, end] by step through the query API's
// own handler, in-process: the same admission, limits and cache as GET
// /api/v1/query_range.
func (a *app) queryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]chart.Series, error) {
	form := url.Values{"query": {expr}, "start": {formatUnix(start)}, "end": {formatUnix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/query_range", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := &bufferWriter{h: http.Header{}, code: http.StatusOK}
	a.query.Handler().ServeHTTP(w, req)
	var ans struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.buf.Bytes(), &ans); err != nil {
		return nil, fmt.Errorf("query_range answered HTTP %d, not JSON: %.200s", w.code, w.buf.String())
	}
	if ans.Status != "success" {
		code := w.code
		if code/100 == 2 {
			code = http.StatusInternalServerError
		}
		return nil, &queryError{status: code, msg: fmt.Sprintf("query %s: %s", ans.ErrorType, ans.Error)}
	}
	out := make([]chart.Series, 0, len(ans.Data.Result))
	for _, r := range ans.Data.Result {
		s := chart.Series{Label: labels.FromMap(r.Metric).String(), Points: make([]chart.Point, 0, len(r.Values))}
		for _, v := range r.Values {
			t, _ := v[0].(float64)
			str, _ := v[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				f = math.NaN()
			}
			s.Points = append(s.Points, chart.Point{T: int64(math.Round(t * 1000)), V: f})
		}
		out = append(out, s)
	}
	return out, nil
}

func formatUnix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// bufferWriter keeps a handler's answer in memory.
type bufferWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.h }
func (w *bufferWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *bufferWriter) WriteHeader(code int)        { w.code = code }

// addRender mounts GET /api/v1/render (read scope): a PNG of a PromQL
// expression or a built-in panel over a range, with the change markers
// of the change log. Needs a.query and a.changes: wire after addChanges.
func (a *app) addRender(context.Context) error {
	panels, err := renderPanels()
	if err != nil {
		return fmt.Errorf("render: cannot read the dashboards' panels: %w", err)
	}
	a.render = &renderer{a: a, panels: panels}
	a.mux.Handle("/api/v1/render", a.auth.Require(auth.ScopeRead, http.HandlerFunc(a.serveRender)))
	return nil
}

// renderOutcome counts render requests by where they came from (http,
// chat) and outcome: ok, bad_request, query_error, error.
func (a *app) renderOutcome(source, outcome string) {
	a.set.GetOrCreateCounter(fmt.Sprintf(`telltale_render_requests_total{source=%q,outcome=%q}`, source, outcome)).Inc()
}

func (a *app) serveRender(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET /api/v1/render?query=<PromQL> (or panel=<title>)&range=1h", http.StatusMethodNotAllowed)
		return
	}
	req, err := parseRenderRequest(r.URL.Query(), time.Now())
	if err != nil {
		a.renderOutcome("http", "bad_request")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	start := time.Now()
	c, err := a.render.draw(r.Context(), req)
	if err != nil {
		var qe *queryError
		switch {
		case errors.Is(err, errBadRender):
			a.renderOutcome("http", "bad_request")
			http.Error(w, err.Error(), http.StatusBadRequest)
		case errors.As(err, &qe):
			a.renderOutcome("http", "query_error")
			http.Error(w, qe.msg, qe.status)
		default:
			a.renderOutcome("http", "error")
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	var buf bytes.Buffer
	if err := c.WritePNG(&buf); err != nil {
		a.renderOutcome("http", "error")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.set.GetOrCreateSummary(`telltale_render_duration_seconds`).UpdateDuration(start)
	a.renderOutcome("http", "ok")
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}
