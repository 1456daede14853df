package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/dashboards/board"
)

func TestMain(m *testing.M) { collectortest.Main(m) }

// startProcess runs bin until the test ends.
func startProcess(t *testing.T, bin string, args ...string) {
	t.Helper()
	collectortest.StartProcess(t, exec.Command(bin, args...))
}

// e2eDeploy is the deploy the test records.
var e2eDeploy = map[string]string{
	"service": "demo", "env": "dev", "version": "v1.2.3", "commit": "abc123", "who": "alice",
	"message": "dashboards e2e", "link": "https://example.com/commit/abc123",
}

// recordDeploy posts e2eDeploy to the deploy API at time at and reports
// whether the API took it. Until the API is wired into the collector (404),
// it writes the deploy series the API would write
// (annotator/changelog/series.go) through the text import, so the dashboards'
// deploy queries are still checked against real storage.
func recordDeploy(t *testing.T, col *collectortest.Instance, at time.Time) (api bool) {
	t.Helper()
	body := map[string]string{"time": at.UTC().Format(time.RFC3339Nano)}
	for k, v := range e2eDeploy {
		body[k] = v
	}
	js, _ := json.Marshal(body)
	code, resp := col.Post(t.Context(), "/api/v1/deploys", js, map[string]string{"Content-Type": "application/json"})
	switch code {
	case http.StatusCreated, http.StatusOK:
		return true
	case http.StatusNotFound:
		t.Logf("POST /api/v1/deploys: 404, the deploy API is not wired yet; writing the deploy series directly")
	default:
		t.Fatalf("POST /api/v1/deploys: %d %s", code, resp)
	}
	ms := at.UnixMilli()
	text := fmt.Sprintf("telltale_deploys_total{env=\"dev\",service=\"demo\"} 1 %d\n"+
		"telltale_deploy_info{commit=\"abc123\",env=\"dev\",service=\"demo\",status=\"success\",version=\"v1.2.3\",who=\"alice\"} %.3f %d\n",
		ms, float64(ms)/1e3, ms)
	if code, resp := col.Post(t.Context(), "/api/v1/import/prometheus", []byte(text), nil); code/100 != 2 {
		t.Fatalf("import deploy series: %d %s", code, resp)
	}
	return false
}

// labelValues asks the collector for the values of label on series
// matching selector, as Grafana's label_values(selector, label) does.
func labelValues(t *testing.T, base, label, selector string) []string {
	t.Helper()
	u := base + "/api/v1/label/" + url.PathEscape(label) + "/values?" + url.Values{"match[]": {selector}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
		Error  string   `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, env.Error)
	}
	return env.Data
}

// The dashboards against the real thing: the collector (its in-process
// host metrics stand in for the agent until agent/main.go exists) loaded by
// the demo service, with a deploy recorded. Every panel, variable and
// annotation query returns data, and the deploy annotation query returns
// the deploy at its time.
func TestDashboardsAgainstRealCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the collector and the demo service")
	}
	_, err := os.Stat(filepath.Join(repoRoot, "agent", "main.go"))
	haveAgent := err == nil
	// The collector records its own metrics (-self-metrics) for the
	// Telltale dashboard, as it does by default.
	args := []string{"-host-metrics=true", "-host-metrics.interval=1s", "-self-metrics=true", "-self-metrics.interval=1s"}
	if haveAgent {
		args = []string{"-host-metrics=false", "-self-metrics=true", "-self-metrics.interval=1s"}
	}
	// The panels' recorded series every second, and an alert that always
	// fires, for the firing-alerts annotation.
	alertFile := filepath.Join(t.TempDir(), "e2e.rules.yml")
	if err := os.WriteFile(alertFile, []byte("groups:\n  - name: e2e\n    interval: 1s\n    rules:\n      - alert: E2EAlwaysFiring\n        expr: vector(1)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, "-rules.dashboards-interval=1s", "-rules.files", alertFile)
	col := collectortest.Start(t, args...)
	startProcess(t, collectortest.Build(t, "github.com/telltale-dev/telltale/instrument/demo"),
		"-collector", col.URL, "-listen", "127.0.0.1:0", "-service", "demo", "-env", "dev",
		"-version", "v1.2.3", "-commit", "abc123", "-interval", "1s", "-load", "20")
	if haveAgent {
		startProcess(t, collectortest.Build(t, "github.com/telltale-dev/telltale/agent"),
			"-collector", col.URL, "-root", "/", "-interval", "1s", "-spool-dir", t.TempDir())
	}
	deployAt := time.Now().Add(-30 * time.Second).Truncate(time.Millisecond)
	deployAPI := recordDeploy(t, col, deployAt)

	boards, err := board.All(board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	queries, err := board.Queries(boards)
	if err != nil {
		t.Fatal(err)
	}
	const step = 15 * time.Second
	vars := board.TestVars()
	vars["service"], vars["env"], vars["__interval"], vars["__range"] = "demo", "dev", "15s", "1h"

	// Panels fed only by parts that are not there yet wait for them.
	pending := map[string]string{}
	if !deployAPI {
		pending["Deploy deliveries"] = "the deploy API is not wired into the collector yet"
	}
	if !haveAgent {
		pending["Agent spool"] = "agent/main.go is not there yet"
		pending["Agent samples sent"] = "agent/main.go is not there yet"
	}

	// The duration heatmap's native query answers only for an app that
	// sends native histograms and no classic buckets; the demo sends
	// classic buckets (TestServiceLatencyClassicAndNative checks both).
	classicOnly := map[string]string{
		board.UIDService + " / panel Request duration heatmap / B": "the demo sends classic buckets, so the native half answers nothing",
	}

	// Poll until every query has data: rates need two samples, the demo
	// pushes every second, the deploy series are delivered asynchronously.
	ctx := t.Context()
	var missing []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing = missing[:0]
		now := time.Now()
		for _, q := range queries {
			if _, ok := pending[q.Panel]; ok {
				continue
			}
			if _, ok := classicOnly[q.String()]; ok {
				continue
			}
			expr, err := board.Expand(q.Expr, vars)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			switch {
			case q.Kind == board.KindVariable:
				n = len(labelValues(t, col.URL, q.Label, expr))
			case q.Instant:
				n = len(col.Query(ctx, expr, now))
			default:
				n = len(col.QueryRange(ctx, expr, now.Add(-5*time.Minute), now, step))
			}
			if n == 0 {
				missing = append(missing, q.String()+": "+expr)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for _, m := range missing {
		t.Errorf("no data: %s", m)
	}
	for q, why := range classicOnly {
		if !slices.ContainsFunc(queries, func(x board.Query) bool { return x.String() == q }) {
			t.Errorf("no query %q on the dashboards: update the exemption", q)
		}
		t.Logf("not checked here: %s (%s)", q, why)
	}
	for panel, why := range pending {
		t.Logf("not checked: panel %q (%s)", panel, why)
	}

	// The variables list what runs.
	for name, want := range map[string]string{"service": "demo", "env": "dev"} {
		found := false
		for _, q := range queries {
			if q.Dashboard == board.UIDService && q.Kind == board.KindVariable && q.Panel == name {
				sel, _ := board.Expand(q.Expr, vars)
				found = slices.Contains(labelValues(t, col.URL, q.Label, sel), want)
			}
		}
		if !found {
			t.Errorf("Service variable %s does not offer %q", name, want)
		}
	}

	// Each dashboard's deploy annotation returns the deploy at its time
	// (ms, as Grafana's "series value as timestamp" reads it) with the
	// labels its title and tags use.
	now := time.Now()
	for _, q := range queries {
		if q.Kind != board.KindAnnotation {
			continue
		}
		expr, _ := board.Expand(q.Expr, vars)
		if q.Panel == board.AlertsAnnotationName {
			// The firing alert as a region: a point at every step from when
			// it fired up to now, none missing. The poll above stops at its
			// first point; a region needs the second rule evaluation.
			at := now
			res := col.QueryRange(ctx, expr, at.Add(-time.Minute), at, time.Second)
			for wait := time.Now().Add(30 * time.Second); len(res) == 1 && len(res[0].Values) < 2 && time.Now().Before(wait); {
				time.Sleep(500 * time.Millisecond)
				at = time.Now()
				res = col.QueryRange(ctx, expr, at.Add(-time.Minute), at, time.Second)
			}
			if len(res) != 1 || res[0].Metric["alertname"] != "E2EAlwaysFiring" || len(res[0].Values) < 2 {
				t.Errorf("%s: %s: got %+v; want E2EAlwaysFiring with points", q, expr, res)
				continue
			}
			vals := res[0].Values
			last, _ := vals[len(vals)-1][0].(float64)
			first, _ := vals[0][0].(float64)
			if int(last-first)+1 != len(vals) || at.Sub(time.UnixMilli(int64(last*1000))) > time.Second {
				t.Errorf("%s: points %v; want one every second without a gap, up to now", q, vals)
			}
			continue
		}
		res := col.QueryRange(ctx, expr, deployAt.Add(-2*time.Minute), now, step)
		if len(res) == 0 {
			t.Errorf("%s: %s returns nothing; want the deploy", q, expr)
			continue
		}
		for _, r := range res {
			for k, v := range map[string]string{"service": "demo", "env": "dev", "version": "v1.2.3", "who": "alice", "commit": "abc123"} {
				if r.Metric[k] != v {
					t.Errorf("%s: series %v has %s=%q; want %q", q, r.Metric, k, r.Metric[k], v)
				}
			}
			if len(r.Values) == 0 {
				t.Errorf("%s: series %v has no points", q, r.Metric)
			}
			for _, p := range r.Values {
				v, err := strconv.ParseFloat(fmt.Sprint(p[1]), 64)
				if err != nil || math.Abs(v-float64(deployAt.UnixMilli())) > 1 {
					t.Errorf("%s: point %v; want the deploy time %d ms", q, p, deployAt.UnixMilli())
				}
			}
		}
	}

	// The last-deploy panel of each dashboard shows the deploy.
	for _, q := range queries {
		if q.Kind != board.KindPanel || q.Panel != "Last deploy" {
			continue
		}
		expr, _ := board.Expand(q.Expr, vars)
		res := col.Query(ctx, expr, now)
		if len(res) != 1 || res[0].Metric["who"] != "alice" || res[0].Metric["version"] != "v1.2.3" ||
			fmt.Sprint(res[0].Value[1]) != strconv.FormatInt(deployAt.UnixMilli(), 10) {
			t.Errorf("%s: got %+v; want alice's v1.2.3 at %d ms", q, res, deployAt.UnixMilli())
		}
	}
}
