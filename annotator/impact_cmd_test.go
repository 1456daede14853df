package main

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

// jumpQuerier answers the default impact signals with steady noisy values;
// the error ratio of service "web" jumps from 0.4% to 5% at jump.
type jumpQuerier struct{ jump time.Time }

func (q jumpQuerier) QueryRange(_ context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	h := fnv.New64a()
	io.WriteString(h, query)
	var out []float64
	for t := start; !t.After(end); t = t.Add(step) {
		n := rand.New(rand.NewPCG(h.Sum64(), uint64(t.UnixMilli()))).NormFloat64()
		v := 1.0
		switch {
		case strings.Contains(query, `code=~"5.."`):
			v = 0.004
			if strings.Contains(query, `service="web"`) && t.After(q.jump) {
				v = 0.05
			}
		case strings.Contains(query, "http_requests_total"):
			v = 50
		case strings.Contains(query, "histogram_quantile"):
			v = 0.05
		}
		out = append(out, v*(1+0.03*n))
	}
	return out, nil
}

// TestImpactCommand: annotator impact prints the report of a real deploy
// service (with a fake querier) as a table, or JSON; annotator deploys shows
// the verdict and summary.
func TestImpactCommand(t *testing.T) {
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	c := newCollectorWith(t, &changelog.ImpactOptions{Querier: jumpQuerier{jump: at}})
	when := at.Format(time.RFC3339)
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "web", "-env", "prod", "-version", "v1.2.3", "-id", "web-1").want(t, 0, "", "")
	// A deploy in the past is due at once; a deploy now is pending.
	body := `{"id":"web-0","service":"web","env":"prod","version":"v1.2.2","time":"` + when + `"}`
	if resp, err := c.Client().Post(c.URL+"/api/v1/deploys", "application/json", strings.NewReader(body)); err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST deploy in the past: %v %v", resp, err)
	}

	r := annotator(t, nil, "impact", "-collector", c.URL, "web-1")
	r.want(t, 0, "deploy web-1: impact analysis pending: due at ", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = annotator(t, nil, "impact", "-collector", c.URL, "web-0")
		if r.code != 0 || !strings.Contains(r.stdout, "pending") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.want(t, 0, "deploy web-0: web to prod at "+when, "")
	lines := strings.Split(r.stdout, "\n")
	wantLines := []string{
		`^verdict: regressed \(1 signal needs a look\)$`,
		`^summary: error ratio 0\.\d+% → [45](\.\d+)?% ▲ regressed; no significant change in 5 signals$`,
		`^compared: 15m0s before vs 15m0s after the deploy, one value per 15s; requests \d+ before, \d+ after$`,
		`^SIGNAL +BEFORE +AFTER +CHANGE +P-VALUE +VERDICT$`,
		`^request rate +\d+\.?\d* req/s +\d+\.?\d* req/s +[-+]\d.*% +[0-9.e-]+ +unchanged$`,
		`^error ratio +0\.\d+% +[45](\.\d+)?% +\+1[0-9]{3}% +[0-9.e-]+ +regressed$`,
		`^memory +[0-9.]+B +[0-9.]+B +[-+]?\d.*% +[0-9.e-]+ +unchanged$`,
	}
	for _, re := range wantLines {
		found := false
		for _, l := range lines {
			if regexp.MustCompile(re).MatchString(strings.TrimRight(l, " ")) {
				found = true
			}
		}
		if !found {
			t.Errorf("impact output lacks a line like %s:\n%s", re, r.stdout)
		}
	}

	r = annotator(t, nil, "impact", "-collector", c.URL, "web-0", "-json")
	var ans changes.ImpactAnswer
	if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || ans.Verdict != "regressed" || ans.Regressions != 1 || len(ans.Report) == 0 {
		t.Fatalf("impact -json: got %+v, %v; want regressed with the report:\n%s", ans.Impact, err, r.stdout)
	}

	r = annotator(t, nil, "deploys", "-collector", c.URL)
	r.want(t, 0, "IMPACT", "")
	for _, l := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.Contains(l, "v1.2.2") && !strings.Contains(l, "regressed: error ratio 0."):
			t.Errorf("deploys row of web-0 %q: want the verdict and summary", l)
		case strings.Contains(l, "v1.2.3") && !strings.Contains(l, "pending (due "):
			t.Errorf("deploys row of web-1 %q: want pending with the due time", l)
		}
	}

	annotator(t, nil, "impact", "-collector", c.URL, "nope").want(t, 4, "", `change "nope" not found`)
	annotator(t, nil, "impact", "-collector", c.URL).want(t, 2, "", "missing change id")
	annotator(t, nil, "impact", "-collector", c.URL, "a", "b").want(t, 2, "", `unexpected argument "b"`)
	off := newCollector(t)
	annotator(t, nil, "deploy", "-collector", off.URL, "-service", "api", "-id", "api-1").want(t, 0, "", "")
	annotator(t, nil, "impact", "-collector", off.URL, "api-1").want(t, 4, "", "impact analysis is off")
}
