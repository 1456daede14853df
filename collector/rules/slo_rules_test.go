package rules

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	promrules "github.com/prometheus/prometheus/rules"

	"github.com/telltale-dev/telltale/collector/rules/slo"
)

// TestSLORulesFire evaluates the rules generated from
// collector/rules/slo/testdata/test.yml (latency: 90% within 0.25 s,
// burn rate 2 over 1m and 10s) over traffic that turns 30% slow: the slow
// ratio is recorded exactly, the latency alert fires and then resolves,
// and the availability alert stays quiet with its error ratio recorded as
// 0, not absent.
func TestSLORulesFire(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("slo", "testdata", "test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := slo.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	ruleFile, err := c.Render("test.yml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, t.TempDir(), string(ruleFile), func(o *Options) { o.Interval = time.Second })
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	slowFrom, slowTo := start.Add(2*time.Minute), start.Add(4*time.Minute)
	var total, fast float64
	lbl := func(extra ...string) map[string]string {
		m := map[string]string{"service": "shop", "env": "e2e", "route": "/api/checkout"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	firedAt, resolvedAt := time.Time{}, time.Time{}
	for ts := start; ts.Before(start.Add(6 * time.Minute)); ts = ts.Add(time.Second) {
		total += 10
		if !ts.Before(slowFrom) && ts.Before(slowTo) {
			fast += 7
		} else {
			fast += 10
		}
		h.write("http_requests_total", lbl("code", "200"), ts, total)
		h.write("http_request_duration_seconds_count", lbl(), ts, total)
		h.write("http_request_duration_seconds_bucket", lbl("le", "0.25"), ts, fast)
		h.write("http_request_duration_seconds_bucket", lbl("le", "+Inf"), ts, total)
		h.evalAt(ts)
		for _, a := range h.alerts() {
			if a.Labels.Get("alertname") == slo.ErrorBudgetAlert {
				t.Fatalf("at %s: the availability alert is %s; want it quiet (no request failed)", ts.Sub(start), a.State)
			}
			if a.State == promrules.StateFiring && firedAt.IsZero() {
				firedAt = ts
			}
		}
		if !firedAt.IsZero() && resolvedAt.IsZero() && len(h.alerts()) == 0 {
			resolvedAt = ts
		}
		if ts.Equal(slowTo.Add(-time.Second)) {
			got := h.query(`service_env:slo_slow_requests:ratio_rate1m{service="shop"}`, ts)
			if len(got) != 1 || math.Abs(got[0].F-0.3) > 1e-9 {
				t.Fatalf("slow ratio over 1m after 2 min of 30%% slow requests: got %v; want 0.3", got)
			}
			errs := h.query(`service_env:slo_errors:ratio_rate1m{service="shop"}`, ts)
			if len(errs) != 1 || errs[0].F != 0 {
				t.Fatalf("error ratio without errors: got %v; want 0", errs)
			}
		}
	}
	// Over 1m the slow ratio passes 0.2 after 2/3 of the window, the 10s
	// one after 7s; then `for: 5s`.
	if firedAt.IsZero() || firedAt.Before(slowFrom.Add(40*time.Second)) || firedAt.After(slowFrom.Add(70*time.Second)) {
		t.Errorf("latency alert fired at %s after the slowdown; want between 40 s and 70 s", firedAt.Sub(slowFrom))
	}
	if resolvedAt.IsZero() || resolvedAt.After(slowTo.Add(30*time.Second)) {
		t.Errorf("latency alert resolved %s after checkout was fast again; want within 30 s", resolvedAt.Sub(slowTo))
	}
}
