package rules

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	promrules "github.com/prometheus/prometheus/rules"
)

const latencyAlert = `
groups:
  - name: shop
    interval: 15s
    rules:
      - alert: CheckoutSlow
        expr: shop_latency_seconds > 0.25
        for: 1m
        labels:
          severity: page
        annotations:
          summary: 'checkout of {{ $labels.service }} takes {{ $value }} s'
`

// fakeChanges serves a fixed list of changes.
type fakeChanges struct{ list []Change }

func (f fakeChanges) Recent(_ context.Context, service string, from, to time.Time) ([]Change, error) {
	var out []Change
	for _, c := range f.list {
		if c.Service == service && !c.Time.Before(from) && !c.Time.After(to) {
			out = append(out, c)
		}
	}
	return out, nil
}

// hookRecorder is a chat webhook receiver.
type hookRecorder struct {
	mu   sync.Mutex
	msgs []hookMsg
	fail int // answer 503 to this many requests first
}

type hookMsg struct {
	event, delivery string
	alert           WebhookAlert
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var a WebhookAlert
	json.NewDecoder(r.Body).Decode(&a)
	h.msgs = append(h.msgs, hookMsg{r.Header.Get("X-Telltale-Event"), r.Header.Get("X-Telltale-Delivery"), a})
}

func (h *hookRecorder) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs {
		out = append(out, m.event)
	}
	return out
}

func (h *hookRecorder) last() hookMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[len(h.msgs)-1]
}

// amRecorder is a fake Alertmanager API v2 that records what it is posted.
type amRecorder struct {
	mu     sync.Mutex
	alerts []amAlert
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

func (a *amRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v2/alerts" && r.URL.Path != "/prefix/api/v2/alerts" {
		http.NotFound(w, r)
		return
	}
	var list []amAlert
	json.NewDecoder(r.Body).Decode(&list)
	a.mu.Lock()
	a.alerts = append(a.alerts, list...)
	a.mu.Unlock()
}

// serve runs h on a test server until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitFor polls cond until it holds or 30 s passed (the notifier sends on
// its own goroutine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a settable clock for the ledger and change annotations.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// TestAlertAcrossRestart fires an alert, restarts the manager on the same
// storage and ledger while it fires, then resolves it: the `for` state
// (the time it became active) is the same before and after, each webhook
// gets exactly one firing and one resolved message, the Alertmanager gets
// it firing and then resolved, and all of them carry the deploy that
// preceded it.
func TestAlertAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	hook := &hookRecorder{}
	hookURL := serve(t, hook)
	slack := &hookRecorder{}
	slackURL := serve(t, slack)
	am := &amRecorder{}
	amURL := serve(t, am)

	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	t1 := start.Add(2 * time.Minute)      // checkout turns slow
	restartAt := t1.Add(90 * time.Second) // firing since t1+1m
	t3 := restartAt.Add(2 * time.Minute)  // checkout is fast again
	end := t3.Add(time.Minute)
	deploy := Change{ID: "d1", Kind: "deploy", Service: "shop", Env: "prod", Version: "v1.2.3", Who: "alice",
		Link: "https://ci.example/builds/7", Time: t1.Add(-4 * time.Minute), Impact: "error ratio 0.4% → 2.1% ▲ regressed"}
	clk := &clock{}
	mutate := func(o *Options) {
		o.Now = clk.now
		o.Changes = fakeChanges{[]Change{deploy}}
		o.Webhooks = []Webhook{{Name: "json", URL: hookURL, Format: FormatJSON}, {Name: "chat", URL: slackURL}}
		o.Alertmanagers = []string{amURL}
	}
	value := func(ts time.Time) float64 {
		if !ts.Before(t1) && ts.Before(t3) {
			return 0.5
		}
		return 0.1
	}
	run := func(h *harness, from, to time.Time) {
		for ts := from; ts.Before(to); ts = ts.Add(15 * time.Second) {
			clk.set(ts)
			h.write("shop_latency_seconds", map[string]string{"service": "shop", "env": "prod"}, ts, value(ts))
			h.evalAt(ts)
			h.deliverWebhooks()
		}
	}
	startAM := func(h *harness) {
		h.m.am.start()
		t.Cleanup(h.m.am.stop)
	}

	h := newHarness(t, dir, latencyAlert, mutate)
	startAM(h)
	run(h, start, restartAt)
	alerts := h.alerts()
	if len(alerts) != 1 || alerts[0].State != promrules.StateFiring || !alerts[0].ActiveAt.Equal(t1) {
		t.Fatalf("before the restart: got %v; want one firing alert active since %s", alerts, t1)
	}
	forState := h.query(`ALERTS_FOR_STATE{alertname="CheckoutSlow"}`, restartAt.Add(-15*time.Second))
	if len(forState) != 1 || forState[0].F != float64(t1.Unix()) {
		t.Fatalf("ALERTS_FOR_STATE before the restart: got %v; want %d", forState, t1.Unix())
	}
	if got := hook.events(); !slices.Equal(got, []string{"alert_firing"}) {
		t.Fatalf("webhook before the restart: got %v; want one firing message", got)
	}
	fired := hook.last().alert
	changes := fired.Annotations[AnnotationChanges]
	for _, want := range []string{"4 min after deploy shop v1.2.3 to prod by alice", "https://ci.example/builds/7", "impact: error ratio 0.4% → 2.1% ▲ regressed", "firing since " + formatClock(t1.Add(time.Minute))} {
		if !strings.Contains(changes, want) {
			t.Errorf("webhook firing message %s: got %q; want it to contain %q", AnnotationChanges, changes, want)
		}
	}
	if fired.Annotations[AnnotationChangeLink] != deploy.Link || fired.Annotations["summary"] != "checkout of shop takes 0.5 s" {
		t.Errorf("webhook firing message annotations: got %v; want the change link and the rule's summary", fired.Annotations)
	}
	if txt := slack.msgs[0].alert; txt.Status != "" { // slack bodies are {"text": ...}, not alerts
		t.Errorf("slack webhook got an alert object %+v; want a text message", txt)
	}
	waitFor(t, "the alertmanager to get the firing alert with its change annotation", func() bool {
		am.mu.Lock()
		defer am.mu.Unlock()
		return slices.ContainsFunc(am.alerts, func(a amAlert) bool {
			return a.Labels["alertname"] == "CheckoutSlow" && strings.Contains(a.Annotations[AnnotationChanges], "deploy shop v1.2.3")
		})
	})
	live := h.alerts()[0].Annotations.Get(AnnotationChanges)
	if live != changes {
		t.Errorf("/api/v1/alerts annotation: got %q; want what the notification said, %q", live, changes)
	}

	// Restart: same data directory and ledger, a new manager.
	h.close()
	h = newHarness(t, dir, latencyAlert, mutate)
	startAM(h)
	run(h, restartAt, t3)
	alerts = h.alerts()
	if len(alerts) != 1 || alerts[0].State != promrules.StateFiring || !alerts[0].ActiveAt.Equal(t1) {
		t.Fatalf("after the restart: got %+v; want the alert firing, active since %s as before", alerts, t1)
	}
	forState = h.query(`ALERTS_FOR_STATE{alertname="CheckoutSlow"}`, t3.Add(-15*time.Second))
	if len(forState) != 1 || forState[0].F != float64(t1.Unix()) {
		t.Fatalf("ALERTS_FOR_STATE after the restart: got %v; want %d, unchanged", forState, t1.Unix())
	}
	if got := hook.events(); !slices.Equal(got, []string{"alert_firing"}) {
		t.Fatalf("webhook after the restart: got %v; want still the one firing message", got)
	}

	run(h, t3, end)
	if got := hook.events(); !slices.Equal(got, []string{"alert_firing", "alert_resolved"}) {
		t.Fatalf("webhook after the alert ended: got %v; want firing, resolved", got)
	}
	if got := slack.events(); !slices.Equal(got, []string{"alert_firing", "alert_resolved"}) {
		t.Fatalf("chat webhook after the alert ended: got %v; want firing, resolved", got)
	}
	res := hook.last()
	if res.alert.Status != "resolved" || !res.alert.EndsAt.Equal(t3) || res.delivery != hook.msgs[0].delivery[:len(hook.msgs[0].delivery)-len("firing")]+"resolved" {
		t.Errorf("resolved message: got %+v (delivery %s); want status resolved, ended %s, same episode id as the firing one", res.alert, res.delivery, t3)
	}
	waitFor(t, "the alertmanager to get the alert resolved", func() bool {
		am.mu.Lock()
		defer am.mu.Unlock()
		return slices.ContainsFunc(am.alerts, func(a amAlert) bool {
			return a.Labels["alertname"] == "CheckoutSlow" && a.EndsAt.Equal(t3)
		})
	})
	if eps := h.m.ledger.episodes(); len(eps) != 0 {
		t.Errorf("ledger after everything was delivered: got %d episodes; want none", len(eps))
	}
}

// TestAlertEndedWhileDown: the alert fires, the collector stops, the
// condition clears meanwhile; after the restart the webhook gets the
// resolved message and both Alertmanagers the alert resolved, although the
// engine itself never saw it resolve.
func TestAlertEndedWhileDown(t *testing.T) {
	dir := t.TempDir()
	hook := &hookRecorder{}
	hookURL := serve(t, hook)
	am, am2 := &amRecorder{}, &amRecorder{}
	amURL, am2URL := serve(t, am), serve(t, am2)
	clk := &clock{}
	mutate := func(o *Options) {
		o.Now = clk.now
		o.Webhooks = []Webhook{{Name: "json", URL: hookURL, Format: FormatJSON}}
		o.Alertmanagers = []string{amURL, am2URL + "/prefix/"}
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	h := newHarness(t, dir, latencyAlert, mutate)
	step := func(h *harness, ts time.Time, v float64) {
		clk.set(ts)
		h.write("shop_latency_seconds", map[string]string{"service": "shop"}, ts, v)
		h.evalAt(ts)
		h.deliverWebhooks()
	}
	ts := start
	for ; ts.Before(start.Add(90 * time.Second)); ts = ts.Add(15 * time.Second) {
		step(h, ts, 0.5)
	}
	if got := hook.events(); !slices.Equal(got, []string{"alert_firing"}) {
		t.Fatalf("webhook: got %v; want one firing message", got)
	}
	h.close()

	h = newHarness(t, dir, latencyAlert, mutate)
	h.m.am.start()
	defer h.m.am.stop()
	ts = ts.Add(5 * time.Minute) // down for 5 minutes; checkout recovered meanwhile
	for i := 0; i < 3; i++ {
		step(h, ts, 0.1)
		ts = ts.Add(15 * time.Second)
	}
	if got := hook.events(); !slices.Equal(got, []string{"alert_firing", "alert_resolved"}) {
		t.Fatalf("webhook after the restart: got %v; want firing, resolved", got)
	}
	for _, am := range []*amRecorder{am, am2} { // both Alertmanagers, the second under a path prefix
		waitFor(t, "the alertmanagers to get the alert resolved", func() bool {
			am.mu.Lock()
			defer am.mu.Unlock()
			return slices.ContainsFunc(am.alerts, func(a amAlert) bool { return !a.EndsAt.IsZero() && a.EndsAt.Before(ts) })
		})
	}
}

// TestWebhookRetriesWithBackoff: a webhook that answers 503 twice gets the
// message on the third attempt, each retry after its backoff, and the
// ledger keeps the attempts across a restart.
func TestWebhookRetriesWithBackoff(t *testing.T) {
	dir := t.TempDir()
	hook := &hookRecorder{fail: 2}
	hookURL := serve(t, hook)
	clk := &clock{}
	mutate := func(o *Options) {
		o.Now = clk.now
		o.Webhooks = []Webhook{{Name: "json", URL: hookURL, Format: FormatJSON}}
		o.MinBackoff, o.MaxBackoff = 10*time.Second, time.Minute
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	h := newHarness(t, dir, latencyAlert, mutate)
	ts := start
	for ; ts.Before(start.Add(75 * time.Second)); ts = ts.Add(15 * time.Second) {
		clk.set(ts)
		h.write("shop_latency_seconds", map[string]string{"service": "shop"}, ts, 0.5)
		h.evalAt(ts)
	}
	h.deliverWebhooks() // attempt 1: 503
	eps := h.m.ledger.episodes()
	if len(eps) != 1 {
		t.Fatalf("ledger: got %d episodes; want 1", len(eps))
	}
	d := eps[0].Deliveries["json"]
	if d.Attempts != 1 || d.Sent != 0 || d.Next.Sub(ts.Add(-15*time.Second)) < 8*time.Second {
		t.Fatalf("after a 503: got %+v; want 1 attempt, nothing sent, next attempt at least 8 s (10 s backoff -20%% jitter) later", d)
	}
	h.deliverWebhooks() // not due yet: no attempt
	if got := h.m.ledger.episodes()[0].Deliveries["json"].Attempts; got != 1 {
		t.Fatalf("a round before the backoff passed: got %d attempts; want still 1", got)
	}
	h.close()
	h = newHarness(t, dir, latencyAlert, mutate) // the attempts survive a restart
	clk.set(d.Next)
	h.deliverWebhooks() // attempt 2: 503
	d2 := h.m.ledger.episodes()[0].Deliveries["json"]
	if d2.Attempts != 2 || d2.Next.Sub(d.Next) < 16*time.Second {
		t.Fatalf("after the second 503: got %+v; want 2 attempts and a backoff of at least 16 s", d2)
	}
	clk.set(d2.Next)
	h.deliverWebhooks() // attempt 3: delivered
	if got := hook.events(); !slices.Equal(got, []string{"alert_firing"}) {
		t.Fatalf("webhook: got %v; want the firing message after two failures", got)
	}
}
