package changelog

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/impact"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// fakeQuerier answers the default signals' queries with noisy, steady
// values per service; for services in jumps the error ratio jumps from
// 0.4% to 2.1% at the given time. A service named "ghost" has no data.
type fakeQuerier struct {
	mu    sync.Mutex
	jumps map[string]time.Time // service → when its error ratio jumps
	fail  error
	calls int
}

func (q *fakeQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	q.mu.Lock()
	q.calls++
	fail := q.fail
	jumps := q.jumps
	q.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	m := regexp.MustCompile(`service="([^"]*)"`).FindStringSubmatch(query)
	if m == nil {
		return nil, errors.New("fake querier: query without a service: " + query)
	}
	service := m[1]
	jump, hasJump := jumps[service]
	var out []float64
	for t := start; !t.After(end); t = t.Add(step) {
		if service == "ghost" {
			if strings.Contains(query, "or vector(0)") && !strings.Contains(query, `code=~"5.."`) {
				out = append(out, 0) // the request rate of a silent service
			} else {
				out = append(out, math.NaN())
			}
			continue
		}
		if t.Before(time.Date(2024, 4, 30, 23, 0, 0, 0, time.UTC)) {
			out = append(out, math.NaN()) // no data a day earlier
			continue
		}
		n := noise(query, t)
		var v float64
		switch {
		case strings.Contains(query, `code=~"5.."`):
			v = 0.004
			if hasJump && t.After(jump) {
				v = 0.021
			}
			v *= 1 + 0.1*n
		case strings.Contains(query, "http_requests_total"):
			v = 50 * (1 + 0.03*n)
		case strings.Contains(query, "histogram_quantile(0.5,"):
			v = 0.03 * (1 + 0.03*n)
		case strings.Contains(query, "histogram_quantile(0.99,"):
			v = 0.12 * (1 + 0.05*n)
		case strings.Contains(query, "process_cpu_seconds_total"):
			v = 0.5 * (1 + 0.05*n)
		case strings.Contains(query, "process_resident_memory_bytes"):
			v = 150 << 20 * (1 + 0.01*n)
		default:
			return nil, errors.New("fake querier: unknown query " + query)
		}
		out = append(out, v)
	}
	return out, nil
}

// noise is a deterministic standard normal value per query and time.
func noise(query string, t time.Time) float64 {
	h := fnv.New64a()
	io.WriteString(h, query)
	return rand.New(rand.NewPCG(h.Sum64(), uint64(t.UnixMilli()))).NormFloat64()
}

func (q *fakeQuerier) setFail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fail = err
}

func (q *fakeQuerier) callCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls
}

// clock is a settable clock for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}

func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

// impactOf fetches GET /api/v1/deploys/{id}/impact.
func (e *env) impactOf(id string) (int, changes.ImpactAnswer, string) {
	e.t.Helper()
	r := e.do("GET", "/api/v1/deploys/"+id+"/impact", "")
	var ans changes.ImpactAnswer
	if r.Code == 200 {
		if err := json.Unmarshal(r.Data, &ans); err != nil {
			e.t.Fatalf("impact answer: %v: %s", err, r.Data)
		}
	}
	return r.Code, ans, r.Error
}

// report decodes the report of a done impact answer.
func report(t *testing.T, ans changes.ImpactAnswer) impact.Report {
	t.Helper()
	var rep impact.Report
	if err := json.Unmarshal(ans.Report, &rep); err != nil {
		t.Fatalf("report: %v: %s", err, ans.Report)
	}
	return rep
}

func verdictsOf(rep impact.Report) map[string]impact.Verdict {
	m := map[string]impact.Verdict{}
	for _, s := range rep.Signals {
		m[s.Name] = s.Verdict
	}
	return m
}

// round runs one round of the worker of target, synchronously.
func (e *env) round(target string) {
	e.t.Helper()
	for _, w := range e.s.workers {
		if w.target == target {
			w.round(e.t.Context())
			return
		}
	}
	e.t.Fatalf("no worker for target %s", target)
}

var summaryRE = regexp.MustCompile(`^error ratio 0\.\d+% → 2\.\d+% ▲ regressed; no significant change in 5 signals$`)

// TestImpactWhenDue: the analysis waits for the window, runs once when due,
// is stored with the deploy, and its summary reaches the deploy series, the
// Grafana annotation and the webhook.
func TestImpactWhenDue(t *testing.T) {
	clk := newClock(t0.Add(time.Minute))
	q := &fakeQuerier{jumps: map[string]time.Time{"web": t0}}
	g, gc := newGrafana(t, "tok")
	h := &hook{}
	hsrv := httptest.NewServer(h)
	t.Cleanup(hsrv.Close)
	w := &fakeWriter{}
	set := metrics.NewSet()
	e := newEnv(t, Options{Now: clk.now, Writer: w, Grafana: gc, Metrics: set, Webhooks: []WebhookConfig{{URL: hsrv.URL, Name: "chat"}},
		Impact: &ImpactOptions{Querier: q}}, true)
	e.post(`{"id":"web-1","service":"web","env":"prod","version":"v1.2.3","time":"2024-05-01T12:00:00Z"}`, 201)

	code, ans, _ := e.impactOf("web-1")
	due := t0.Add(15*time.Minute + 30*time.Second)
	if code != 200 || ans.Status != changes.ImpactPending || ans.DueAt == nil || !ans.DueAt.Equal(due) ||
		ans.Message != "pending: due at 2024-05-01T12:15:30Z" || ans.Report != nil {
		t.Fatalf("before due: got %d %+v; want 200 pending due at %v", code, ans, due)
	}
	if d := e.get("web-1"); d.Impact == nil || d.Impact.Status != changes.ImpactPending || d.Delivery == nil || d.Delivery.Series == nil {
		t.Fatalf("deploy before due: got impact %+v delivery %+v; want pending, and the deliveries", d.Impact, d.Delivery)
	}
	eventually(t, "annotation", func() bool { return len(g.Annotations()) == 1 })
	clk.set(due.Add(-time.Second))
	e.round(targetImpact) // a whole round, synchronously: no fixed wait for "nothing happened"
	if n := q.callCount(); n != 0 {
		t.Fatalf("a second before due: got %d queries; want none", n)
	}

	clk.set(due)
	e.s.kick()
	eventually(t, "impact done", func() bool { _, a, _ := e.impactOf("web-1"); return a.Status == changes.ImpactDone })
	_, ans, _ = e.impactOf("web-1")
	rep := report(t, ans)
	want := map[string]impact.Verdict{impact.SignalRequestRate: impact.Unchanged, impact.SignalErrorRatio: impact.Regressed,
		impact.SignalP50Latency: impact.Unchanged, impact.SignalP99Latency: impact.Unchanged, impact.SignalCPU: impact.Unchanged, impact.SignalMemory: impact.Unchanged}
	if got := verdictsOf(rep); !mapsEqual(got, want) {
		t.Fatalf("verdicts: got %v; want %v", got, want)
	}
	if ans.Verdict != "regressed" || ans.Regressions != 1 || !summaryRE.MatchString(ans.Summary) || ans.Summary != rep.SummaryText ||
		ans.Message != "regressed: "+ans.Summary || ans.ComputedAt == nil || !ans.ComputedAt.Equal(due) {
		t.Fatalf("done: got %+v; want regressed, 1 regression, summary like %s, computed at %v", ans.Impact, summaryRE, due)
	}
	d := e.get("web-1")
	if d.Impact == nil || d.Impact.Summary != ans.Summary || d.Impact.Verdict != "regressed" || d.Impact.Regressions != 1 {
		t.Fatalf("deploy JSON impact: got %+v; want the summary", d.Impact)
	}
	if l := e.list("?service=web"); len(l) != 1 || l[0].Impact == nil || l[0].Impact.Summary != ans.Summary {
		t.Fatalf("list: got %+v; want the deploy with its summary", l)
	}

	eventually(t, "annotation updated with the summary", func() bool {
		as := g.Annotations()
		return len(as) == 1 && strings.Contains(as[0].Text, "<b>Impact: regressed</b> "+ans.Summary) && slices.Contains(as[0].Tags, "impact:regressed")
	})
	if c := g.Creates(); c != 1 {
		t.Fatalf("grafana creates: got %d; want 1 (the impact updates the annotation)", c)
	}
	eventually(t, "impact webhook", func() bool { b, _ := h.got(); return len(b) == 2 })
	bodies, headers := h.got()
	var msg struct{ Text string }
	json.Unmarshal([]byte(bodies[1]), &msg)
	if ev := headers[1].Get("X-Telltale-Event"); ev != "impact" || msg.Text != ":warning: Deploy impact: *web* v1.2.3 to *prod*: "+ans.Summary {
		t.Fatalf("impact webhook: got event %q %s; want event impact with the summary", ev, bodies[1])
	}
	eventually(t, "impact series", func() bool { return len(w.written()) == 11 })
	wantSeries := map[string]float64{
		`telltale_change_regressions{env="prod",kind="deploy",service="web"}`:                1,
		`telltale_deploy_regressions{env="prod",service="web"}`:                              1,
		`telltale_deploy_impact_signals{env="prod",service="web",verdict="regressed"}`:       1,
		`telltale_deploy_impact_signals{env="prod",service="web",verdict="changed"}`:         0,
		`telltale_deploy_impact_signals{env="prod",service="web",verdict="improved"}`:        0,
		`telltale_deploy_impact_signals{env="prod",service="web",verdict="unchanged"}`:       5,
		`telltale_deploy_impact_signals{env="prod",service="web",verdict="not_enough_data"}`: 0,
	}
	for _, s := range w.written()[4:] {
		v, ok := wantSeries[s.Labels]
		if !ok || v != s.V || s.T != due.UnixMilli() {
			t.Errorf("impact series: got %s@%d=%v; want one of %v at %d", s.Labels, s.T, s.V, wantSeries, due.UnixMilli())
		}
		delete(wantSeries, s.Labels)
	}
	if len(wantSeries) > 0 {
		t.Errorf("impact series missing: %v", wantSeries)
	}

	// Later rounds do not analyse again.
	calls := q.callCount()
	if calls != 12 {
		t.Fatalf("queries: got %d; want 12 (6 signals, window and day before)", calls)
	}
	clk.add(time.Hour)
	e.s.kick()
	e.round(targetImpact)
	if n := q.callCount(); n != calls {
		t.Fatalf("queries after more rounds: got %d; want %d (analysed once)", n, calls)
	}
	if v := metricValue(set, `telltale_impact_analyses_total{outcome="done"}`); v != "1" {
		t.Fatalf("analyses done: got %q; want 1", v)
	}
	if v := metricValue(set, `telltale_impact_analysis_duration_seconds_count`); v != "1" {
		t.Fatalf("analysis duration count: got %q; want 1", v)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestImpactSurvivesRestart: an analysis that fell due while the service
// was down runs after start; the report survives a reopen and is not
// computed again, also when a crash came between storing it and marking
// the outbox entry done.
func TestImpactSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	clk := newClock(t0.Add(time.Minute))
	q := &fakeQuerier{jumps: map[string]time.Time{"web": t0}}
	opts := Options{DBPath: path, Now: clk.now, Impact: &ImpactOptions{Querier: q}}
	e := newEnv(t, opts, false)
	e.post(`{"id":"web-1","service":"web","env":"prod","time":"2024-05-01T12:00:00Z"}`, 201)
	e.post(`{"id":"web-2","service":"web","env":"prod","time":"2024-05-01T12:01:00Z"}`, 201)
	e.stop()

	// Down past the due time; the next start analyses both.
	clk.set(t0.Add(time.Hour))
	e = newEnv(t, opts, false)
	e.round(targetImpact)
	if n := q.callCount(); n != 24 {
		t.Fatalf("queries after start: got %d; want 24 (two deploys)", n)
	}
	_, ans, _ := e.impactOf("web-1")
	if ans.Status != changes.ImpactDone || ans.Verdict != "regressed" {
		t.Fatalf("web-1 after start: got %+v; want done, regressed", ans.Impact)
	}
	rep := report(t, ans)
	if !slices.Equal(rep.Overlapping, []string{"web-2"}) || !strings.Contains(ans.Summary, "low confidence: overlaps deploy web-2") {
		t.Fatalf("web-1 overlaps: got %v, summary %q; want web-2 named", rep.Overlapping, ans.Summary)
	}
	e.stop()

	// Reopen: the report is there and nothing is queried again.
	e = newEnv(t, opts, false)
	e.round(targetImpact)
	if n := q.callCount(); n != 24 {
		t.Fatalf("queries after reopen: got %d; want still 24", n)
	}
	_, again, _ := e.impactOf("web-1")
	if again.Summary != ans.Summary || string(again.Report) != string(ans.Report) {
		t.Fatalf("after reopen: got %+v; want the stored report %+v", again.Impact, ans.Impact)
	}

	// A crash after the report was stored, before the entry was marked
	// done: the entry is pending again, the report is there.
	e.post(`{"id":"web-3","service":"web","env":"prod","time":"2024-05-01T12:10:00Z"}`, 201)
	err := e.s.log.Update(t.Context(), clk.now(), func(tx *Tx) error {
		return tx.SetImpact(t.Context(), "web-3", ImpactRecord{Verdict: "unchanged", Summary: "stored before the crash",
			ComputedAt: clk.now(), Report: []byte(`{"verdict":"unchanged"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(backfillSettle) // recorded late: due backfillSettle after it was recorded
	e.round(targetImpact)
	if n := q.callCount(); n != 24 {
		t.Fatalf("queries for a deploy with a stored report: got %d; want still 24", n)
	}
	entries, _ := e.s.log.Entries(t.Context(), "web-3")
	if len(entries) != 1 || entries[0].Status != changes.DeliveryDelivered {
		t.Fatalf("web-3 impact entry: got %+v; want delivered", entries)
	}
	if _, a, _ := e.impactOf("web-3"); a.Summary != "stored before the crash" {
		t.Fatalf("web-3: got %+v; want the stored summary", a.Impact)
	}
}

// TestImpactScenarios: a deploy that changed nothing, one of a service
// without traffic, and a failing storage that recovers.

// TestImpactBackfillSeesItsBatch: changes recorded after their windows
// passed are analysed backfillSettle after they were recorded, so one
// recorded a moment later inside the window is named as overlapping,
// whichever the worker would have reached first.
func TestImpactBackfillSeesItsBatch(t *testing.T) {
	clk := newClock(t0.Add(time.Hour))
	q := &fakeQuerier{}
	e := newEnv(t, Options{Now: clk.now, Impact: &ImpactOptions{Querier: q}}, false)
	e.post(`{"id":"b-1","service":"steady","env":"prod","time":"2024-05-01T12:00:00Z"}`, 201)
	e.round(targetImpact) // the worker comes by before the next one is recorded
	if n := q.callCount(); n != 0 {
		t.Fatalf("analysed %d queries right after recording a backfilled deploy; want none before backfillSettle", n)
	}
	e.post(`{"id":"b-2","service":"steady","env":"prod","time":"2024-05-01T12:01:00Z"}`, 201)
	clk.add(backfillSettle)
	e.round(targetImpact)
	_, ans, _ := e.impactOf("b-1")
	if rep := report(t, ans); !slices.Equal(rep.Overlapping, []string{"b-2"}) {
		t.Fatalf("b-1 overlapping: got %v; want b-2, recorded after it", rep.Overlapping)
	}
}
func TestImpactScenarios(t *testing.T) {
	clk := newClock(t0.Add(time.Hour))
	q := &fakeQuerier{}
	set := metrics.NewSet()
	e := newEnv(t, Options{Now: clk.now, Metrics: set, Impact: &ImpactOptions{Querier: q}}, false)
	e.post(`{"id":"steady-1","service":"steady","env":"prod","time":"2024-05-01T12:00:00Z"}`, 201)
	e.post(`{"id":"ghost-1","service":"ghost","env":"prod","time":"2024-05-01T12:00:00Z"}`, 201)
	clk.add(backfillSettle) // recorded after their windows: due backfillSettle after recording
	e.round(targetImpact)

	_, ans, _ := e.impactOf("steady-1")
	if ans.Status != changes.ImpactDone || ans.Verdict != "unchanged" || ans.Regressions != 0 || ans.Summary != "no significant change in 6 signals" {
		t.Fatalf("steady: got %+v; want unchanged in 6 signals", ans.Impact)
	}
	_, ans, _ = e.impactOf("ghost-1")
	rep := report(t, ans)
	if ans.Verdict != "not_enough_data" || !strings.HasPrefix(ans.Summary, "not enough data for 6 signals (request rate, error ratio,") {
		t.Fatalf("ghost: got %+v; want not enough data for all 6", ans.Impact)
	}
	for _, s := range rep.Signals {
		if s.Note == "" {
			t.Errorf("ghost %s: no note; want why there is not enough data", s.Name)
		}
	}

	// Storage fails: the analysis stays pending with the error, then runs.
	q.setFail(errors.New("storage: tsdb closed"))
	e.post(`{"id":"steady-2","service":"steady","env":"prod","time":"2024-05-01T12:40:00Z"}`, 201)
	clk.add(backfillSettle)
	e.round(targetImpact)
	_, ans, _ = e.impactOf("steady-2")
	if ans.Status != changes.ImpactPending || ans.Attempts != 1 || !strings.Contains(ans.LastError, "tsdb closed") ||
		!strings.Contains(ans.Message, "the last attempt failed") {
		t.Fatalf("while storage fails: got %+v %q; want pending with the error", ans.Impact, ans.Message)
	}
	if v := metricValue(set, `telltale_impact_analyses_total{outcome="error"}`); v != "1" {
		t.Fatalf("failed analyses: got %q; want 1", v)
	}
	q.setFail(nil)
	clk.add(time.Hour) // past the backoff
	e.round(targetImpact)
	_, ans, _ = e.impactOf("steady-2")
	if ans.Status != changes.ImpactDone || ans.Attempts != 2 || ans.Verdict != "unchanged" {
		t.Fatalf("after storage is back: got %+v; want done after 2 attempts", ans.Impact)
	}
}

// TestImpactAPI: unknown deploys, deploys without analysis, a window
// lengthened across a restart, the method check.
func TestImpactAPI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	clk := newClock(t0.Add(time.Minute))
	off := newEnv(t, Options{DBPath: path, Now: clk.now}, false)
	off.post(`{"id":"before","service":"web","time":"2024-05-01T12:00:00Z"}`, 201)
	code, _, msg := off.impactOf("before")
	if code != 404 || !strings.Contains(msg, `deploy "before" has no impact analysis: impact analysis is off`) {
		t.Fatalf("impact off: got %d %q; want 404 saying it is off", code, msg)
	}
	if d := off.get("before"); d.Impact != nil || d.Delivery != nil {
		t.Fatalf("deploy without targets: got impact %+v delivery %+v; want neither", d.Impact, d.Delivery)
	}
	off.stop()

	q := &fakeQuerier{}
	cfg, err := (*impact.Config)(nil).WithWindow(30 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{DBPath: path, Now: clk.now, Impact: &ImpactOptions{Querier: q}}
	e := newEnv(t, opts, false)
	code, _, msg = e.impactOf("nope")
	if code != 404 || !strings.Contains(msg, `deploy "nope" not found`) {
		t.Fatalf("unknown deploy: got %d %q; want 404 not found", code, msg)
	}
	code, _, msg = e.impactOf("before")
	if code != 404 || !strings.Contains(msg, "recorded while impact analysis was off") {
		t.Fatalf("deploy from before: got %d %q; want 404 naming why", code, msg)
	}
	if r := e.do("POST", "/api/v1/deploys/before/impact", "{}"); r.Code != 405 || r.Header.Get("Allow") != "GET" {
		t.Fatalf("POST impact: got %d allow %q; want 405 GET", r.Code, r.Header.Get("Allow"))
	}
	e.post(`{"id":"w","service":"web","time":"2024-05-01T12:00:00Z"}`, 201)
	e.stop()

	// Restarted with a 30m window after the 15m one was due: rescheduled,
	// not analysed on the old window.
	clk.set(t0.Add(20 * time.Minute))
	opts.Impact.Config = cfg
	e = newEnv(t, opts, false)
	e.round(targetImpact)
	_, ans, _ := e.impactOf("w")
	if q.callCount() != 0 || ans.Status != changes.ImpactPending || !ans.DueAt.Equal(t0.Add(30*time.Minute+30*time.Second)) || ans.Attempts != 0 {
		t.Fatalf("window lengthened: got %d queries, %+v; want none, pending due at 12:30:30 without an attempt", q.callCount(), ans.Impact)
	}
	clk.set(t0.Add(31 * time.Minute))
	e.round(targetImpact)
	_, ans, _ = e.impactOf("w")
	if ans.Status != changes.ImpactDone || report(t, ans).Window != impact.Duration(30*time.Minute) {
		t.Fatalf("after the 30m window: got %+v; want done over 30m", ans.Impact)
	}
}

func TestImpactOptionsErrors(t *testing.T) {
	_, err := Open(t.Context(), Options{DBPath: filepath.Join(t.TempDir(), "d.db"), Impact: &ImpactOptions{}})
	if err == nil || !strings.Contains(err.Error(), "without a Querier") {
		t.Fatalf("no querier: got %v; want an error", err)
	}
}

// TestImpactConfigLiteral: a Config built in code with a short window and
// no step gets the step and rate window for that window.
func TestImpactConfigLiteral(t *testing.T) {
	clk := newClock(t0.Add(time.Hour))
	q := &fakeQuerier{}
	e := newEnv(t, Options{Now: clk.now, Impact: &ImpactOptions{Querier: q, Config: &impact.Config{Window: 2 * time.Minute}}}, false)
	e.post(`{"id":"s","service":"steady","env":"prod","time":"2024-05-01T12:00:00Z"}`, 201)
	clk.add(backfillSettle)
	e.round(targetImpact)
	_, ans, _ := e.impactOf("s")
	rep := report(t, ans)
	if ans.Status != changes.ImpactDone || rep.Window != impact.Duration(2*time.Minute) || rep.Step != impact.Duration(2*time.Second) ||
		!strings.Contains(rep.Signals[0].Query, "[8s]") {
		t.Fatalf("got %+v window %v step %v query %q; want done over 2m at 2s with 8s rates", ans.Impact, rep.Window, rep.Step, rep.Signals[0].Query)
	}
}
