package console_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/impact"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/grafana/grafanatest"
)

// TestSwitchFlipEndToEnd is issue 18's "must show", with the real
// collector, the real demo, the real annotator CLI, headless Chromium and
// a fake Grafana that follows Grafana's HTTP API:
//
//   - flipping slow_checkout through the demo's own switch endpoint (with
//     the demo's switch token for alice and a reason) records a switch
//     change with who and why;
//   - the console's Service dashboard marks it on every graph at its time,
//     as an open band, in the switch lane and in the change log with its
//     kind;
//   - Grafana gets an annotation tagged switch at the same time;
//   - its impact report says regressed, on latency among others;
//   - flipping it back through the collector's relay (annotator switch, as
//     the console's button does) records the second flip and closes the
//     band: in the change log, in Grafana (a region) and on the graphs.
//
// The impact window is 2 minutes, so the test runs about 6 minutes.
func TestSwitchFlipEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the collector, the demo and a browser for about 6 minutes")
	}
	g := grafanatest.NewServer("grafana-token")
	t.Cleanup(g.Close)
	dir := t.TempDir()
	grafanaToken := filepath.Join(dir, "grafana-token")
	switchTokens := filepath.Join(dir, "switch-tokens")
	const aliceToken = "alice-switch-token-0123456789"
	if err := os.WriteFile(grafanaToken, []byte("grafana-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(switchTokens, []byte("# who may flip the demo's switches\nalice "+aliceToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	col := collectortest.Start(t, "-impact.window=2m", "-grafana.url", g.URL, "-grafana.token-file", grafanaToken)
	demo := collectortest.StartDemo(t, col.URL, "-switch.tokens-file", switchTokens) // service demo, env dev
	demoStart := time.Now()

	// A full before-window of traffic, then alice flips slow_checkout on
	// at the demo itself.
	// Real time on purpose: the demo binary produces the before-window's
	// traffic at wall-clock pace; nothing to wait for but the window's passing.
	time.Sleep(time.Until(demoStart.Add(2*time.Minute + 20*time.Second)))
	beforeFlip := time.Now().Truncate(time.Millisecond)
	code, body := httpDo(t, "POST", "http://"+demo+"/switches/slow_checkout", aliceToken,
		`{"on":true,"reason":"simulate a slow payment provider"}`)
	if code != 200 || !strings.Contains(body, `"enabled":true`) {
		t.Fatalf("flip at the demo: got %d %s; want 200 and the switch on", code, body)
	}
	if code, body := httpDo(t, "POST", "http://"+demo+"/switches/slow_checkout", "", `{"on":false}`); code != 401 {
		t.Fatalf("flip without a token: got %d %s; want 401", code, body)
	}
	on := waitChange(t, col, "?kind=switch&subject=slow_checkout", func(cs []changes.Change) bool { return len(cs) == 1 })[0]
	if on.Service != "demo" || on.Env != "dev" || on.Who != "alice" || on.Message != "simulate a slow payment provider" ||
		!on.Open() || on.Fields["state"] != "on" || on.Fields["default"] != "off" {
		t.Fatalf("the recorded flip: got %+v; want an open switch change of demo/dev by alice with her reason", on)
	}
	flipMs := on.Time.UnixMilli()
	if afterFlip := time.Now(); on.Time.Before(beforeFlip) || on.Time.After(afterFlip) {
		t.Fatalf("flip recorded at %v; want between the request (%v) and its answer (%v)", on.Time, beforeFlip, afterFlip)
	}

	t.Run("grafana annotation", func(t *testing.T) {
		a := waitAnnotation(t, g, "change-id:"+on.ID, func(a grafanatest.Annotation) bool { return true })
		if a.Time != flipMs || a.TimeEnd != flipMs {
			t.Errorf("annotation at %d..%d; want the flip's time %d", a.Time, a.TimeEnd, flipMs)
		}
		for _, tag := range []string{"switch", "service:demo", "env:dev", "subject:slow_checkout"} {
			if !slices.Contains(a.Tags, tag) {
				t.Errorf("annotation tags %v lack %q", a.Tags, tag)
			}
		}
		if !strings.Contains(a.Text, "Switch slow_checkout on (demo)") || !strings.Contains(a.Text, "by alice") || !strings.Contains(a.Text, "simulate a slow payment provider") {
			t.Errorf("annotation text %q; want what, who and why", a.Text)
		}
	})

	b := newBrowser(t)
	b.open(col.URL + "/#/d/telltale-service?range=15m&refresh=off&var-service=demo&var-env=dev")
	b.ready(0)
	t.Run("console marks the flip", func(t *testing.T) {
		checkMarkers(t, b, on.ID, flipMs, true)
		row := eval[[]string](b, fmt.Sprintf(`(() => { const tr = document.querySelector('#deploy-table tr[data-change-id=%q]');
			return tr ? [tr.dataset.kind, tr.querySelector('.kind-badge').textContent, tr.querySelector('.who').textContent, tr.querySelector('.what').textContent, tr.querySelector('.link').textContent] : []; })()`, on.ID))
		if !slices.Equal(row, []string{"switch", "switch", "alice", "simulate a slow payment provider", ""}) {
			t.Errorf("change log row: got %q; want kind switch, by alice, with the reason and no link", row)
		}
		lane := eval[[]string](b, `(() => { const l = document.querySelector('#switch-lanes .lane[data-switch="slow_checkout"]');
			if (!l) return []; const band = l.querySelector('.lane-band');
			return [l.dataset.state, band ? band.dataset.time : '', band && band.dataset.open ? 'open' : 'closed', l.querySelector('button.flip')?.textContent || '']; })()`)
		if !slices.Equal(lane, []string{"on", fmt.Sprint(flipMs), "open", "turn off"}) {
			t.Errorf("switch lane: got %q; want on, an open band from the flip, a turn-off button", lane)
		}
		legend := eval[string](b, `document.querySelector('#change-kinds .kind-switch')?.textContent || ''`)
		if legend != "switch 1" {
			t.Errorf("legend: got %q; want the switch kind counted", legend)
		}
		// Toggling the kind off hides its markers and rows.
		b.do(chromedpClick(`#change-kinds input[data-kind="switch"]`))
		if n := eval[int](b, `document.querySelectorAll('.deploy-marker[data-kind="switch"]').length + document.querySelectorAll('#deploy-table tr[data-kind="switch"]').length`); n != 0 {
			t.Errorf("switch kind off: %d markers and rows still shown", n)
		}
		b.do(chromedpClick(`#change-kinds input[data-kind="switch"]`))
		b.screenshot("switch-on", false)
	})

	t.Run("impact regressed on latency", func(t *testing.T) {
		ans, rep := waitChangeImpact(t, col, on.ID, time.Until(on.Time.Add(2*time.Minute+30*time.Second+2*time.Minute)))
		got := map[string]impact.Verdict{}
		for _, s := range rep.Signals {
			got[s.Name] = s.Verdict
		}
		if ans.Verdict != "regressed" || got[impact.SignalP99Latency] != impact.Regressed {
			t.Errorf("impact of the flip: got %s %q, signals %v; want regressed with p99 latency regressed", ans.Verdict, ans.Summary, got)
		}
		if rep.Kind != "switch" {
			t.Errorf("report kind: got %q; want switch", rep.Kind)
		}
		t.Logf("impact of the flip: %s", ans.Summary)
	})

	// Back through the collector's relay, as the console's button and
	// `annotator switch` do.
	out, err := annotatorCmd(t, "switch", "-collector", col.URL, "-service", "demo", "slow_checkout", "off", "-reason", "payment provider recovered")
	if err != nil || !strings.Contains(out, "switched slow_checkout of demo in dev off on 1 of 1 instances") {
		t.Fatalf("annotator switch: %v\n%s", err, out)
	}
	list := waitChange(t, col, "?kind=switch&subject=slow_checkout", func(cs []changes.Change) bool { return len(cs) == 2 && cs[0].EndTime != nil })
	ended, back := list[0], list[1]
	if back.Who != "ci-bot" || back.Message != "payment provider recovered" || back.Open() || back.Fields["state"] != "off" {
		t.Errorf("flip back: got %+v; want a point change by ci-bot with the reason", back)
	}
	endMs := back.Time.UnixMilli()
	if ended.ID != on.ID || ended.EndTime.UnixMilli() != endMs || ended.Status != changes.StatusSuccess {
		t.Errorf("the first flip after the second: got end %v status %s; want ended at %d", ended.EndTime, ended.Status, endMs)
	}

	t.Run("band closes", func(t *testing.T) {
		waitAnnotation(t, g, "change-id:"+on.ID, func(a grafanatest.Annotation) bool { return a.Time == flipMs && a.TimeEnd == endMs })
		loads := eval[int](b, `__telltale.loads`)
		b.do(chromedpClick(`#reload`))
		b.ready(loads)
		b.waitFor("the closed band", fmt.Sprintf(`document.querySelector('.panel-timeseries .change-band[data-deploy-id=%q]')?.dataset.end === %q`, on.ID, fmt.Sprint(endMs)), 30*time.Second)
		n := eval[int](b, fmt.Sprintf(`document.querySelectorAll('.panel-timeseries .change-band[data-deploy-id=%q][data-open]').length`, on.ID))
		if n != 0 {
			t.Errorf("%d charts still show the band open", n)
		}
		lane := eval[[]string](b, `(() => { const l = document.querySelector('#switch-lanes .lane[data-switch="slow_checkout"]');
			const band = l.querySelector('.lane-band'); return [l.dataset.state, band.dataset.end || '', l.querySelector('button.flip').textContent]; })()`)
		if !slices.Equal(lane, []string{"off", fmt.Sprint(endMs), "turn on"}) {
			t.Errorf("switch lane after the flip back: got %q; want off, the band ended at %d, a turn-on button", lane, endMs)
		}
		checkMarkers(t, b, back.ID, endMs, false)
		b.screenshot("switch-back", false)
	})

	t.Run("flip from the console", func(t *testing.T) {
		// The lane's button asks why and who (window.prompt, answered here)
		// and posts to the relay; the demo records the flip.
		b.do(chromedp.Evaluate[chromedp.Void](`window.prompt = msg => msg.startsWith('Turn slow_checkout on') ? 'rehearse the incident' : 'dave'`))
		loads := eval[int](b, `__telltale.loads`)
		b.do(chromedpClick(`#switch-lanes button.flip[data-switch="slow_checkout"]`))
		b.ready(loads)
		third := waitChange(t, col, "?kind=switch&subject=slow_checkout", func(cs []changes.Change) bool { return len(cs) == 3 })[2]
		if third.Who != "dave" || third.Message != "rehearse the incident" || !third.Open() || third.Fields["state"] != "on" {
			t.Errorf("flip from the console: got %+v; want an open flip by dave with the reason", third)
		}
		loads = eval[int](b, `__telltale.loads`)
		b.do(chromedpClick(`#reload`))
		b.ready(loads)
		b.waitFor("the lane on again", `document.querySelector('#switch-lanes .lane[data-switch="slow_checkout"]').dataset.state === 'on'`, 30*time.Second)
	})
	if p := b.pageProblems(); len(p) > 0 {
		t.Errorf("the page recorded problems: %q", p)
	}
}

// chromedpClick clicks the element sel selects.
func chromedpClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).click()`, sel))
}

// checkMarkers wants change id marked at ms on every chart of the page,
// at the right x, and (band) an open band from it on every chart.
func checkMarkers(t *testing.T, b *browser, id string, ms int64, band bool) {
	t.Helper()
	pos := eval[[]markerPos](b, fmt.Sprintf(`[...document.querySelectorAll('.panel-timeseries .deploy-marker[data-deploy-id=%q]')].map(m => {
		const chart = m.closest('.chart'), over = chart.querySelector('.u-over');
		const r = over.getBoundingClientRect(), mr = m.getBoundingClientRect();
		const xmin = +chart.dataset.xmin, xmax = +chart.dataset.xmax, t = +m.dataset.time;
		return {panel: m.closest('.panel').querySelector('h3').textContent, time: t,
			want: r.left + (t / 1000 - xmin / 1000) / ((xmax - xmin) / 1000) * r.width, got: mr.left + mr.width / 2};
	})`, id))
	charts := eval[int](b, `document.querySelectorAll('.panel-timeseries').length`)
	if len(pos) != charts || charts < 8 {
		t.Errorf("change %s marked on %d of %d charts; want all (at least 8)", id, len(pos), charts)
	}
	for _, p := range pos {
		if p.Time != ms {
			t.Errorf("chart %q: marker at %d; want %d", p.Panel, p.Time, ms)
		}
		if d := p.Got - p.Want; d < -1.5 || d > 1.5 {
			t.Errorf("chart %q: marker at x=%.1f px; want %.1f", p.Panel, p.Got, p.Want)
		}
	}
	if band {
		if n := eval[int](b, fmt.Sprintf(`document.querySelectorAll('.panel-timeseries .change-band.kind-switch[data-deploy-id=%q][data-open]').length`, id)); n != charts {
			t.Errorf("open band of %s on %d of %d charts", id, n, charts)
		}
	}
}

func httpDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitChange polls GET /api/v1/changes+query (oldest first) until ok.
func waitChange(t *testing.T, col *collectortest.Instance, query string, ok func([]changes.Change) bool) []changes.Change {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, body := get(t, col.URL, "/api/v1/changes"+query, nil)
		var env changes.Response[[]changes.Change]
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("GET /api/v1/changes%s: %v: %s", query, err, body)
		}
		slices.Reverse(env.Data)
		if ok(env.Data) {
			return env.Data
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/v1/changes%s: still %s after 30s", query, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitAnnotation(t *testing.T, g *grafanatest.Server, tag string, ok func(grafanatest.Annotation) bool) grafanatest.Annotation {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, a := range g.Annotations() {
			if slices.Contains(a.Tags, tag) && ok(a) {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no annotation tagged %s as wanted after 30s: %+v", tag, g.Annotations())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitChangeImpact(t *testing.T, col *collectortest.Instance, id string, within time.Duration) (changes.ImpactAnswer, impact.Report) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, _, body := get(t, col.URL, "/api/v1/changes/"+id+"/impact", nil)
		var env changes.Response[changes.ImpactAnswer]
		json.Unmarshal(body, &env)
		if env.Data.Status == changes.ImpactDone {
			var rep impact.Report
			if err := json.Unmarshal(env.Data.Report, &rep); err != nil {
				t.Fatalf("impact report: %v", err)
			}
			return env.Data, rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("impact of %s not done after %v: %s", id, within, body)
		}
		time.Sleep(time.Second)
	}
}

// annotatorCmd runs the real annotator CLI as the CI user ci-bot.
func annotatorCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := collectortest.Build(t, "github.com/telltale-dev/telltale/annotator")
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "USER=ci-bot"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
