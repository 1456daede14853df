package console_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/console"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// closedPort returns a loopback URL nothing listens on: -grafana.url for
// tests, so deploy deliveries to "Grafana" fail fast without leaving the
// machine.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// The collector binary serves the console on / and /static/ only: other
// paths, unknown API paths included, still 404; every console answer has
// the CSP; the dashboards are the ones dashboards/ generates.
func TestCollectorServesConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collector")
	}
	col := collectortest.Start(t)
	f := func(method, path string, want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, col.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s: got %d; want %d", method, path, resp.StatusCode, want)
		}
		isConsole := path == "/" || strings.HasPrefix(path, "/static/")
		if want == 200 && isConsole && resp.Header.Get("Content-Security-Policy") != console.ContentSecurityPolicy {
			t.Errorf("%s %s: got CSP %q; want the console's", method, path, resp.Header.Get("Content-Security-Policy"))
		}
	}
	f("GET", "/", 200)
	f("HEAD", "/", 200)
	f("GET", "/static/app.js", 200)
	f("GET", "/static/uPlot.iife.min.js", 200)
	f("POST", "/", 405)
	f("GET", "/nope", 404)
	f("GET", "/static/nope.js", 404)
	f("GET", "/api/nope", 404)
	f("GET", "/api/v2/nope", 404)
	f("GET", "/api/v1/nope", 404)
	f("GET", "/api/v1/query?query=1", 200)
	f("GET", "/healthz", 200)

	// One source of truth: the dashboards the console draws are the
	// Grafana dashboards dashboards/json holds, built with raw queries
	// where Grafana's panels read recorded series (board.Options.RawQueries:
	// the console shows late and backfilled data too).
	code, _, body := get(t, col.URL, console.DashboardsPath, nil)
	if code != 200 {
		t.Fatalf("GET %s: %d", console.DashboardsPath, code)
	}
	var served []struct {
		UID       string          `json:"uid"`
		Dashboard json.RawMessage `json:"dashboard"`
	}
	if err := json.Unmarshal(body, &served); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../dashboards/json/*.json")
	if len(served) == 0 || len(served) != len(files) {
		t.Fatalf("console serves %d dashboards; dashboards/json has %d files", len(served), len(files))
	}
	raw, err := board.All(board.Options{RawQueries: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range served {
		if _, err := os.Stat(filepath.Join("../../dashboards/json", s.UID+".json")); err != nil {
			t.Errorf("console serves dashboard %s that dashboards/json does not have: %v", s.UID, err)
			continue
		}
		i := slices.IndexFunc(raw, func(b board.Board) bool { return b.UID == s.UID })
		if i < 0 {
			t.Errorf("console serves dashboard %s that dashboards/board does not build", s.UID)
			continue
		}
		want, err := raw[i].JSON()
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		json.Unmarshal(s.Dashboard, &a)
		json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("dashboard %s differs from dashboards/board's built with RawQueries", s.UID)
		}
	}
}

type markerPos struct {
	Panel string  `json:"panel"`
	Time  int64   `json:"time"`
	Want  float64 `json:"want"`
	Got   float64 `json:"got"`
}

// The whole console in a real browser against a real collector loaded with
// app metrics, host metrics and deploys.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collector and Chromium")
	}
	chromium(t)
	grafanaURL := closedPort(t)
	tokenFile := filepath.Join(t.TempDir(), "grafana-token")
	os.WriteFile(tokenFile, []byte("glsa_test_token_not_used"), 0o600)
	col := collectortest.Start(t, "-host-metrics=true", "-host-metrics.interval=1s",
		"-grafana.url", grafanaURL, "-grafana.token-file", tokenFile)

	now := time.Now().Truncate(time.Millisecond)
	deployAt := now.Add(-6 * time.Minute)
	push(t, col, appMetrics(appShape{service: "shop", env: "prod", routes: []string{"/", "/cart", "/checkout"},
		deployAt: deployAt, old: "v1.4.1", new: "v1.4.2", histograms: true}, now.Add(-15*time.Minute), now.Add(-2*time.Second)))
	// A second host, shaped like the agent's, with 15 minutes of history;
	// the collector's own host is the first.
	push(t, col, hostMetrics("web-1", now.Add(-15*time.Minute), now.Add(-2*time.Second), deployAt))
	recordDeploy(t, col, deploy{Service: "shop", Env: "prod", Version: "v1.4.1", Commit: "3e1f00d", Who: "bob",
		Message: "Cache the cart for 30s", Link: "https://example.com/shop/commit/3e1f00d"}, now.Add(-13*time.Minute), "")
	recordDeploy(t, col, deploy{Service: "search", Env: "prod", Version: "v0.9.0", Commit: "77ab210", Who: "carol",
		Message: "Reindex nightly", Link: "https://example.com/search/commit/77ab210"}, now.Add(-9*time.Minute), "")
	want := deploy{Service: "shop", Env: "prod", Version: "v1.4.2", Commit: "9fceb02", Who: "alice",
		Message: "Move checkout to the new payment client", Link: "https://example.com/shop/commit/9fceb02"}
	id := recordDeploy(t, col, want, deployAt, "")
	waitSeries(t, col, `telltale_deploy_info{service="shop",version="v1.4.2"}`)

	b := newBrowser(t)
	start := time.Now()
	b.open(col.URL + "/#/d/telltale-service?range=15m&refresh=off&var-service=shop&var-env=prod")
	b.ready(0)
	t.Logf("Service dashboard loaded in %v (in page: %v ms)", time.Since(start).Round(time.Millisecond), eval[int](b, `__telltale.loadMs`))

	t.Run("deploy log", func(t *testing.T) {
		type row struct{ Who, Service, Env, Version, Commit, What, Link, Time string }
		r := eval[*row](b, fmt.Sprintf(`(() => {
			const tr = document.querySelector('#deploy-table tr[data-deploy-id=%q]');
			if (!tr) return null;
			const c = tr.querySelectorAll('td');
			return {Who: c[1].textContent, Service: c[2].textContent, Env: c[3].textContent, Version: c[4].textContent,
				Commit: c[5].textContent, What: c[7].textContent, Link: c[8].querySelector('a')?.href || '', Time: tr.dataset.time};
		})()`, id))
		if r == nil {
			t.Fatalf("no deploy log row for deploy %s", id)
		}
		wantRow := row{Who: "alice", Service: "shop", Env: "prod", Version: "v1.4.2", Commit: "9fceb02", What: want.Message, Link: want.Link, Time: fmt.Sprint(deployAt.UnixMilli())}
		if *r != wantRow {
			t.Errorf("deploy log row: got %+v; want %+v", *r, wantRow)
		}
		order := eval[[]string](b, `[...document.querySelectorAll('#deploy-table tbody tr')].map(tr => tr.querySelector('.version').textContent)`)
		if !reflect.DeepEqual(order, []string{"v1.4.2", "v0.9.0", "v1.4.1"}) {
			t.Errorf("deploy log order: got versions %v; want newest first [v1.4.2 v0.9.0 v1.4.1]", order)
		}
		last := eval[string](b, `document.getElementById('last-deploy').textContent`)
		if !strings.Contains(last, "shop v1.4.2 by alice") {
			t.Errorf("last deploy line: got %q; want it to name shop v1.4.2 by alice", last)
		}
		// The service filter asks the API for that service only.
		b.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('deploy-service'); s.value = 'search'; s.dispatchEvent(new Event('change')); })()`))
		b.waitFor("the filtered deploy log", `[...document.querySelectorAll('#deploy-table tbody tr')].map(tr => tr.querySelector('.service').textContent).join() === 'search'`, 10*time.Second)
		b.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('deploy-service'); s.value = ''; s.dispatchEvent(new Event('change')); })()`))
		b.waitFor("the unfiltered deploy log", `!__telltale.busy && document.querySelectorAll('#deploy-table tbody tr').length === 3`, 10*time.Second)
	})

	t.Run("every panel has data", func(t *testing.T) {
		type panel struct {
			Title, Type, State string
			Series, Points     int
			Cells              int
		}
		panels := eval[[]panel](b, `[...document.querySelectorAll('.panel')].map(p => ({Title: p.querySelector('h3').textContent,
			Type: p.dataset.type, State: p.dataset.state, Series: +(p.dataset.series || 0), Points: +(p.querySelector('.chart')?.dataset.points || 0),
			Cells: +(p.querySelector('.chart')?.dataset.cells || 0)}))`)
		charts, heatmaps := 0, 0
		for _, p := range panels {
			if p.State != "ok" {
				t.Errorf("panel %q (%s): got state %q; want ok (drawn with data)", p.Title, p.Type, p.State)
			}
			if p.Type == "heatmap" {
				heatmaps++
				if p.Series == 0 || p.Cells == 0 {
					t.Errorf("heatmap %q: got %d buckets, %d cells; want the duration buckets drawn", p.Title, p.Series, p.Cells)
				}
			}
			if p.Type == "timeseries" {
				charts++
				if p.Series == 0 || p.Points == 0 {
					t.Errorf("chart %q: got %d series, %d points; want data", p.Title, p.Series, p.Points)
				}
			}
		}
		if heatmaps != 1 {
			t.Errorf("got %d heatmaps on the Service dashboard; want 1 (request duration)", heatmaps)
		}
		if charts < 8 {
			t.Errorf("got %d charts on the Service dashboard; want at least 8", charts)
		}
	})

	t.Run("deploy markers", func(t *testing.T) {
		pos := eval[[]markerPos](b, fmt.Sprintf(`[...document.querySelectorAll('.panel-timeseries .deploy-marker[data-deploy-id=%q]')].map(m => {
			const chart = m.closest('.chart'), over = chart.querySelector('.u-over');
			const r = over.getBoundingClientRect(), mr = m.getBoundingClientRect();
			const xmin = +chart.dataset.xmin, xmax = +chart.dataset.xmax, t = +m.dataset.time;
			return {panel: m.closest('.panel').querySelector('h3').textContent, time: t,
				want: r.left + (t / 1000 - xmin / 1000) / ((xmax - xmin) / 1000) * r.width, got: mr.left + mr.width / 2};
		})`, id))
		charts := eval[int](b, `document.querySelectorAll('.panel-timeseries').length`)
		if len(pos) != charts {
			t.Errorf("got the deploy marked on %d charts; want all %d", len(pos), charts)
		}
		for _, p := range pos {
			if p.Time != deployAt.UnixMilli() {
				t.Errorf("chart %q: marker data-time %d; want the deploy time %d", p.Panel, p.Time, deployAt.UnixMilli())
			}
			if d := p.Got - p.Want; d < -1.5 || d > 1.5 {
				t.Errorf("chart %q: marker at x=%.1f px; want %.1f (the deploy time on the time axis)", p.Panel, p.Got, p.Want)
			}
		}
		// Hovering the marker says who deployed what.
		xy := eval[[]float64](b, fmt.Sprintf(`(() => { const m = document.querySelector('.panel-timeseries .deploy-marker[data-deploy-id=%q]');
			m.scrollIntoView({block: 'center'}); const r = m.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`, id))
		b.do(chromedp.MouseEvent(chromedp.MouseMoved, xy[0]-20, xy[1]), chromedp.MouseEvent(chromedp.MouseMoved, xy[0], xy[1]))
		b.waitFor("the deploy tooltip", `!document.getElementById('tooltip').hidden`, 5*time.Second)
		tip := eval[string](b, `document.getElementById('tooltip').textContent`)
		for _, w := range []string{"shop v1.4.2 by alice", "prod", "commit 9fceb02", want.Message} {
			if !strings.Contains(tip, w) {
				t.Errorf("deploy tooltip %q lacks %q", tip, w)
			}
		}
		b.screenshot("deploy-tooltip", false)
		b.do(chromedp.MouseEvent(chromedp.MouseMoved, 5, 5))
	})

	t.Run("grafana links", func(t *testing.T) {
		href := eval[string](b, `[...document.querySelectorAll('.panel')].find(p => p.querySelector('h3').textContent === 'Request rate by route').querySelector('a.explore')?.href || ''`)
		u, err := url.Parse(href)
		if err != nil || !strings.HasPrefix(href, grafanaURL+"/explore?") {
			t.Fatalf("Grafana link %q; want %s/explore?...", href, grafanaURL)
		}
		var panes map[string]struct {
			Queries []struct{ Expr string } `json:"queries"`
		}
		if err := json.Unmarshal([]byte(u.Query().Get("panes")), &panes); err != nil || len(panes["a"].Queries) != 1 {
			t.Fatalf("Grafana link panes %q: %v; want one query", u.Query().Get("panes"), err)
		}
		if q := panes["a"].Queries[0].Expr; !strings.Contains(q, `service=~"shop"`) || strings.Contains(q, "$") {
			t.Errorf("Grafana link query %q; want the panel's query with the variables filled in (service=~\"shop\")", q)
		}
	})

	b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.screenshot("service", false)

	t.Run("hosts", func(t *testing.T) {
		loads := eval[int](b, `__telltale.loads`)
		b.do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/d/telltale-hosts?range=15m&refresh=off'`))
		b.ready(loads)
		type chart struct {
			Title  string
			Series int
		}
		charts := eval[[]chart](b, `[...document.querySelectorAll('.panel-timeseries')].map(p => ({Title: p.querySelector('h3').textContent, Series: +p.dataset.series}))`)
		got := map[string]int{}
		for _, c := range charts {
			got[c.Title] = c.Series
		}
		// The collector's own host (in-process host metrics) is on every
		// chart beside the pushed web-1.
		var self string
		for _, r := range col.Query(t.Context(), `node_uname_info`, time.Time{}) {
			if r.Metric["instance"] != "web-1" {
				self = r.Metric["instance"]
			}
		}
		if self == "" {
			t.Fatalf("the collector stored no host metrics of its own (-host-metrics=true)")
		}
		legends := eval[map[string][]string](b, `Object.fromEntries([...document.querySelectorAll('.panel-timeseries')].map(p =>
			[p.querySelector('h3').textContent, [...p.querySelectorAll('.u-legend .u-series .u-label')].map(l => l.textContent)]))`)
		for _, title := range []string{"CPU by mode", "Load", "Memory", "Running processes", "Network received"} {
			var hosts []string
			for _, host := range []string{self, "web-1"} {
				if slices.ContainsFunc(legends[title], func(l string) bool { return strings.HasPrefix(l, host+" ") || l == host }) {
					hosts = append(hosts, host)
				}
			}
			if len(hosts) != 2 {
				t.Errorf("hosts chart %q shows hosts %v (legend %q); want %s and web-1", title, hosts, legends[title], self)
			}
		}
		t.Logf("hosts charts and their series: %v", got)
		if t.Failed() {
			t.Logf("panels: %s", eval[string](b, `JSON.stringify(__telltale.panels)`))
		}
		b.screenshot("hosts", false)
	})

	// Every dashboard draws without a failing query or variable.
	t.Run("all dashboards", func(t *testing.T) {
		for _, uid := range []string{"telltale-deploys", "telltale-self", "telltale-service", "telltale-hosts"} {
			loads := eval[int](b, `__telltale.loads`)
			b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = '#/d/%s?range=15m&refresh=off'`, uid)))
			b.ready(loads)
			type panel struct{ Title, State, Error string }
			bad := eval[[]panel](b, `Object.values(__telltale.panels).filter(p => p.state === 'error').map(p => ({Title: p.title, State: p.state, Error: p.error}))`)
			for _, p := range bad {
				t.Errorf("dashboard %s, panel %q: %s", uid, p.Title, p.Error)
			}
			if errs := eval[[]string](b, `[...document.querySelectorAll('.var-error select')].map(s => s.dataset.var + ': ' + s.title)`); len(errs) > 0 {
				t.Errorf("dashboard %s: variables failed: %q", uid, errs)
			}
			if uid == "telltale-deploys" {
				b.screenshot("deploys", false)
			}
		}
	})

	t.Run("live", func(t *testing.T) {
		b.do(chromedp.Evaluate[chromedp.Void](`location.hash = '#/live?match=' + encodeURIComponent('{__name__=~"console_e2e_live|node_load1"}')`))
		b.waitFor("the live tail to subscribe", `__telltale.live && __telltale.live.status === 'subscribed'`, 15*time.Second)
		// The pushed sample shows up (waited for, not timed). How long it
		// took is logged, not asserted: on a busy machine the browser can
		// stall at any moment. The page stamps each row with its arrival
		// (Date.now()); the same machine's clock stamps the acknowledgement.
		value := "42.001"
		push(t, col, []byte(`console_e2e_live{probe="live"} `+value+"\n"))
		ack := time.Now().UnixMilli()
		sel := fmt.Sprintf(`#live-table tr[data-series='console_e2e_live{probe="live"}'][data-value=%q]`, value)
		b.waitFor("the pushed sample in the live view", fmt.Sprintf(`document.querySelector(%q)`, sel), 30*time.Second)
		received := eval[int64](b, fmt.Sprintf(`+document.querySelector(%q).dataset.received`, sel))
		t.Logf("live view: sample on screen %d ms after the write was acknowledged", received-ack)
		if n := eval[int](b, `document.querySelectorAll('#live-series .spark-row').length`); n == 0 {
			t.Errorf("no sparkline rows in the live view")
		}
		// A few more samples, so the screenshot's sparklines move.
		if *updateScreenshots {
			for i := range 12 {
				push(t, col, []byte(fmt.Sprintf("console_e2e_live{probe=\"live\"} %.3f\nconsole_e2e_live{probe=\"other\"} %.3f\n",
					40+5*math.Sin(float64(i)/2), 10+float64(i%4))))
				time.Sleep(300 * time.Millisecond) // -update-screenshots only: a live graph needs samples spread in real time
			}
		}
		// A deploy shows up live too, and on top of the deploy log.
		did := recordDeploy(t, col, deploy{Service: "shop", Env: "prod", Version: "v1.4.3", Commit: "b7d2c4e", Who: "dave",
			Message: "Roll back the payment client timeout", Link: "https://example.com/shop/commit/b7d2c4e"}, time.Now().Truncate(time.Millisecond), "")
		b.waitFor("the deploy in the live view", fmt.Sprintf(`document.querySelector('#live-table tr.deploy[data-deploy-id=%q]')`, did), 10*time.Second)
		b.waitFor("the deploy on top of the deploy log", fmt.Sprintf(`document.querySelector('#deploy-table tbody tr')?.dataset.deployId === %q`, did), 5*time.Second)
		b.screenshot("live", false)
	})

	if p := b.pageProblems(); len(p) > 0 {
		t.Errorf("the page recorded problems: %q", p)
	}
}

// At 200 series on a chart and 100 deploys in the range the console stays
// usable: this logs how long loading and drawing take (no assertions on
// time; see the test log).
func TestConsoleScale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collector and Chromium")
	}
	chromium(t)
	col := collectortest.Start(t)
	now := time.Now().Truncate(time.Millisecond)
	routes := make([]string, 200)
	for i := range routes {
		routes[i] = fmt.Sprintf("/api/v1/items/%03d", i)
	}
	push(t, col, appMetrics(appShape{service: "big", env: "prod", routes: routes, deployAt: now.Add(-7 * time.Minute),
		old: "v1", new: "v2"}, now.Add(-15*time.Minute), now.Add(-2*time.Second)))
	for i := range 100 {
		recordDeploy(t, col, deploy{ID: fmt.Sprintf("big-%03d", i), Service: "big", Env: "prod", Version: fmt.Sprintf("v2.%d", i),
			Who: "load-test", Link: "https://example.com/big"}, now.Add(-14*time.Minute+time.Duration(i)*8*time.Second), "")
	}

	b := newBrowser(t)
	start := time.Now()
	b.open(col.URL + "/#/d/telltale-service?range=15m&refresh=off&var-service=big&var-env=prod")
	b.ready(0)
	wall := time.Since(start)
	firstInPage := eval[int](b, `__telltale.loadMs`)
	type info struct {
		Series, Points, Deploys int
		DrawMs                  float64
		LoadMs                  int
	}
	rate := eval[info](b, `(() => { const p = [...document.querySelectorAll('.panel')].find(p => p.querySelector('h3').textContent === 'Request rate by route');
		const c = p.querySelector('.chart'); const i = Object.values(__telltale.panels).find(x => x.title === 'Request rate by route');
		return {Series: +c.dataset.series, Points: +c.dataset.points, Deploys: +c.dataset.deploys, DrawMs: i.drawMs, LoadMs: i.loadMs}; })()`)
	if rate.Series != 200 {
		t.Errorf("Request rate by route: got %d series; want 200", rate.Series)
	}
	if rate.Deploys != 100 {
		t.Errorf("Request rate by route: got %d deploy markers; want 100", rate.Deploys)
	}
	if n := eval[int](b, `document.querySelectorAll('#deploy-table tbody tr[data-deploy-id]').length`); n != 100 {
		t.Errorf("deploy log: got %d rows; want 100", n)
	}
	b.screenshot("scale", false)
	redraw := eval[float64](b, `(() => { __telltale.redrawAll(); const t0 = performance.now(); for (let i = 0; i < 5; i++) __telltale.redrawAll(); return (performance.now() - t0) / 5; })()`)
	loads := eval[int](b, `__telltale.loads`)
	t1 := time.Now()
	b.do(chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('range'); s.value = '1h'; s.dispatchEvent(new Event('change')); })()`))
	b.ready(loads)
	reload := time.Since(t1)
	t.Logf("200 series and 100 deploys on a chart (%d points): first load %v (in page %d ms), chart %q fetched and drawn in %d ms (uPlot setData %.1f ms), "+
		"redraw of all %d charts %.1f ms, reload for a new range %v (in page %d ms)",
		rate.Points, wall.Round(time.Millisecond), firstInPage, "Request rate by route", rate.LoadMs, rate.DrawMs,
		eval[int](b, `document.querySelectorAll('.panel-timeseries').length`), redraw, reload.Round(time.Millisecond), eval[int](b, `__telltale.loadMs`))
	if p := b.pageProblems(); len(p) > 0 {
		t.Errorf("the page recorded problems: %q", p)
	}
}

// With -auth.tokens-file the page is public but the data is not: the
// console asks for a token, says why a token was refused, and works with a
// read token (fetches with Authorization, the websocket with access_token).
func TestConsoleAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collector and Chromium")
	}
	chromium(t)
	const readToken, writeToken = "console-read-token-0123456789", "console-write-token-0123456789"
	tokens := filepath.Join(t.TempDir(), "tokens.yml")
	os.WriteFile(tokens, []byte(fmt.Sprintf("tokens:\n  - name: viewer\n    token: %q\n    scopes: [read]\n  - name: pusher\n    token: %q\n    scopes: [write]\n", readToken, writeToken)), 0o600)
	col := collectortest.Start(t, "-auth.tokens-file", tokens, "-host-metrics=true", "-host-metrics.interval=1s")

	for _, p := range []string{"/", "/static/app.js", "/static/uPlot.iife.min.js", console.DashboardsPath} {
		if code, _, _ := get(t, col.URL, p, nil); code != 200 {
			t.Errorf("GET %s without a token: got %d; want 200 (the console holds no data)", p, code)
		}
	}
	if code, _, _ := get(t, col.URL, "/api/v1/query?query=up", nil); code != 401 {
		t.Errorf("GET /api/v1/query without a token: got %d; want 401", code)
	}

	b := newBrowser(t)
	b.open(col.URL + "/#/d/telltale-hosts?range=15m&refresh=off")
	b.waitFor("the token prompt", `!document.getElementById('auth').hidden`, 10*time.Second)
	b.ready(0)
	if n := eval[int](b, `document.querySelectorAll('.panel[data-state="error"]').length`); n == 0 {
		t.Errorf("without a token no panel shows an error; want the 401s shown")
	}
	b.screenshot("auth", false)

	enter := func(token string) {
		t.Helper()
		loads := eval[int](b, `__telltale.loads`)
		b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { document.getElementById('auth-token').value = %q; document.getElementById('auth-form').requestSubmit(); })()`, token)))
		b.ready(loads)
	}
	enter(writeToken)
	b.waitFor("the prompt to say the token was refused", `!document.getElementById('auth').hidden && /refused/.test(document.getElementById('auth-title').textContent)`, 10*time.Second)
	if msg := eval[string](b, `document.getElementById('auth-message').textContent`); !strings.Contains(msg, "403") || !strings.Contains(msg, `lacks scope "read"`) {
		t.Errorf("prompt for a write-only token says %q; want 403 and that it lacks scope \"read\"", msg)
	}

	enter(readToken)
	if hidden := eval[bool](b, `document.getElementById('auth').hidden`); !hidden {
		t.Errorf("the token prompt is still shown after a good token: %q", eval[string](b, `document.getElementById('auth').textContent`))
	}
	if n := eval[int](b, `document.querySelectorAll('.panel[data-state="error"]').length`); n != 0 {
		t.Errorf("with the read token %d panels show errors; want none", n)
	}
	if n := eval[int](b, `document.querySelectorAll('.panel-timeseries[data-state="ok"]').length`); n == 0 {
		t.Errorf("with the read token no chart has data")
	}
	if got := eval[string](b, `localStorage.getItem('telltale.token')`); got != readToken {
		t.Errorf("localStorage token: got %q; want the read token", got)
	}
	// The token survives a reload and opens the websocket.
	b.open(col.URL + "/?reload=1#/live?match=node_load1")
	b.waitFor("the live tail to subscribe with the token", `__telltale.live && __telltale.live.status === 'subscribed'`, 15*time.Second)
	if hidden := eval[bool](b, `document.getElementById('auth').hidden`); !hidden {
		t.Errorf("after a reload with a saved token the prompt is shown")
	}
}

// The console shows the rules engine's alerts: the alert firing on top of
// the page with the deploy of its service that preceded it, and its firing
// time as a region on the service's charts.
func TestConsoleShowsAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collector and Chromium")
	}
	chromium(t)
	rules := filepath.Join(t.TempDir(), "console.rules.yml")
	os.WriteFile(rules, []byte(`groups:
  - name: console
    interval: 1s
    rules:
      - alert: CheckoutSlow
        expr: vector(1)
        labels: {service: shop, env: prod, severity: page}
        annotations: {summary: checkout takes 2 s}
`), 0o600)
	col := collectortest.Start(t, "-rules.files", rules)
	now := time.Now().Truncate(time.Millisecond)
	push(t, col, appMetrics(appShape{service: "shop", env: "prod", routes: []string{"/", "/checkout"}, deployAt: now.Add(-5 * time.Minute),
		old: "v1", new: "v2"}, now.Add(-15*time.Minute), now.Add(-2*time.Second)))
	recordDeploy(t, col, deploy{Service: "shop", Env: "prod", Version: "v2", Who: "carol", Link: "https://example.com/shop/2"}, now.Add(-5*time.Minute), "")

	b := newBrowser(t)
	b.open(col.URL + "/#/d/telltale-service?range=15m&refresh=10s&var-service=shop&var-env=prod")
	b.ready(0)
	b.waitFor("the firing alert with its deploy on top of the page",
		`[...document.querySelectorAll('#alerts li[data-alertname="CheckoutSlow"][data-state="firing"] .alert-changes')].some(e => e.textContent.includes('after deploy shop v2 to prod by carol: https://example.com/shop/2'))`, 30*time.Second)
	if got := eval[string](b, `document.querySelector('#alerts li[data-alertname="CheckoutSlow"] .alert-summary').textContent`); got != "checkout takes 2 s" {
		t.Errorf("alert summary: got %q; want the rule's", got)
	}
	// The region needs two evaluations in the range: wait for a refresh
	// that has it.
	b.waitFor("the firing region on the service's charts",
		`[...document.querySelectorAll('.panel-timeseries .chart')].some(c => +c.dataset.alerts > 0 && c.querySelector('.alert-region[data-alertname="CheckoutSlow"]'))`, 45*time.Second)
	b.screenshot("alerts", false)
	if p := b.pageProblems(); len(p) > 0 {
		t.Errorf("the page recorded problems: %q", p)
	}
}
