package console_test

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"

	"github.com/telltale-dev/telltale/collector/console"
)

// consolePage opens a console with one empty dashboard in Chromium, for
// tests of its JavaScript modules.
func consolePage(t *testing.T) *browser {
	t.Helper()
	chromium(t)
	c, err := console.New(console.Options{Dashboards: []console.Dashboard{{UID: "x", Title: "X", JSON: []byte(`{"uid":"x","panels":[]}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.open(srv.URL + "/")
	return b
}

// The console's pure JavaScript (template variables, intervals, variable
// queries, legends, units, relative times, safe links and Markdown) run in
// Chromium as the page loads them: each case evaluates an expression over
// the modules and compares its JSON.
func TestJavaScriptModules(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := consolePage(t)
	eval[bool](b, `(async () => {
		const [V, U, F, C, L, A] = await Promise.all(['vars', 'units', 'format', 'chart', 'live', 'alerts'].map(m => import('/static/' + m + '.js')));
		Object.assign(window, {V, U, F, C, L, A});
		return true;
	})()`)

	f := func(expr, want string) {
		t.Helper()
		got := eval[json.RawMessage](b, `JSON.stringify(`+expr+`)`)
		var s string
		if err := json.Unmarshal(got, &s); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if s != want {
			t.Errorf("%s:\ngot  %s\nwant %s", expr, s, want)
		}
	}
	// Template variables, escaped as Grafana does for Prometheus.
	multi := `{values: ['a.b', 'c'], options: ['a.b', 'c', 'd'], multi: true, includeAll: true}`
	f(`V.interpolate('rate(x{a=~"$v"}[$__rate_interval])', {v: `+multi+`, __rate_interval: '40s'})`, `"rate(x{a=~\"(a\\\\.b|c)\"}[40s])"`)
	f(`V.interpolate('x{a=~"${v}"}', {v: {values: ['a.b'], multi: true}})`, `"x{a=~\"a\\\\.b\"}"`)
	f(`V.interpolate('x{a=~"[[v]]"}', {v: {all: true, allValue: '.*', options: ['p', 'q'], values: ['p', 'q'], multi: true, includeAll: true}})`, `"x{a=~\".*\"}"`)
	f(`V.interpolate('$v', {v: {all: true, allValue: null, options: ['p', 'q'], multi: true, includeAll: true}})`, `"(p|q)"`)
	f(`V.interpolate('x{s=~"$service"}', {service: {values: ['shop']}})`, `"x{s=~\"shop\"}"`)
	f(`V.interpolate("x{s='$service'}", {service: {values: ["it's"]}})`, `"x{s='it\\\\'s'}"`)
	f(`V.interpolate('${v:csv}|${v:pipe}|${v:regex}', {v: `+multi+`})`, `"a.b,c|a.b|c|(a\\.b|c)"`)
	f(`V.interpolate('$nope ${nope} $__interval', {__interval: '10s'})`, `"$nope ${nope} 10s"`)
	f(`V.interpolate('$servicex', {service: {values: ['shop']}})`, `"$servicex"`)
	f(`V.builtins(0, 15 * 60e3, 10e3)`, `{"__interval":"10s","__interval_ms":"10000","__rate_interval":"40s","__rate_interval_ms":"40000","__range":"15m","__range_s":"900","__range_ms":"900000"}`)
	f(`V.builtins(0, 24 * 3600e3, 120e3).__rate_interval`, `"130s"`)
	f(`[V.intervalFor(15 * 60e3, 600), V.intervalFor(6 * 3600e3, 600), V.intervalFor(24 * 3600e3, 1200), V.intervalFor(3600e3, 0)]`, `[10000,30000,60000,10000]`)
	f(`[V.promDuration(90000), V.promDuration(3600000), V.promDuration(500), V.promDuration(86400000), V.promDuration(60000)]`, `["90s","1h","500ms","1d","1m"]`)
	// label_values() variable queries.
	f(`V.parseVariableQuery('label_values(telltale_build_info{service=~"$service"}, env)')`, `{"kind":"label_values","label":"env","selector":"telltale_build_info{service=~\"$service\"}"}`)
	f(`V.parseVariableQuery({query: 'label_values(instance)'})`, `{"kind":"label_values","label":"instance","selector":""}`)
	f(`V.parseVariableQuery('label_values(up{a="x,y", b=~"(p,q)"}, job)')`, `{"kind":"label_values","label":"job","selector":"up{a=\"x,y\", b=~\"(p,q)\"}"}`)
	f(`(() => { try { V.parseVariableQuery('query_result(up)'); return 'no error'; } catch (e) { return e.message; } })()`, `"variable query \"query_result(up)\" is not supported by the console: use label_values(selector, label)"`)
	f(`(() => { try { V.parseVariableQuery('label_values(up, bad-label)'); return 'no error'; } catch (e) { return e.message; } })()`, `"variable query \"label_values(up, bad-label)\": \"bad-label\" is not a label name"`)
	// Legends.
	f(`V.legend('{{instance}} {{ mode }}', {instance: 'vm', mode: 'user'}, 'e')`, `"vm user"`)
	f(`V.legend('', {__name__: 'up', job: 'a', instance: 'b'}, 'e')`, `"up{instance=\"b\", job=\"a\"}"`)
	f(`V.legend('__auto', {}, 'sum(x)')`, `"sum(x)"`)
	f(`V.legend('{{missing}}', {__name__: 'up'}, 'e')`, `"up"`)
	// Units.
	f(`[0.1234, 0.0123, 1].map(v => U.format(v, 'percentunit'))`, `["12.3%","1.23%","100%"]`)
	f(`[512, 1536, 3 * 1024 ** 3].map(v => U.format(v, 'bytes'))`, `["512 B","1.5 KiB","3 GiB"]`)
	f(`[2048, 5e6].map(v => U.format(v, 'Bps'))`, `["2 KiB/s","4.77 MiB/s"]`)
	f(`[0.25, 90, 5e-7, 0, 7200].map(v => U.format(v, 's'))`, `["250 ms","1.5 min","500 ns","0 s","2 hour"]`)
	f(`[1234567, 25.4, 0.5, 0].map(v => U.format(v, 'short'))`, `["1.23 M","25.4","0.5","0"]`)
	f(`[U.format(25.4, 'reqps'), U.format(1500, 'ops'), U.format('7', 'none')]`, `["25.4 req/s","1.5 K ops/s","7"]`)
	f(`[U.format(NaN), U.format(null), U.format(Infinity), U.format(-Infinity)]`, `["NaN","-","+Inf","-Inf"]`)
	// Live view values: the unit from the metric name's suffix.
	f(`[L.liveValue('node_memory_MemTotal_bytes{instance="a"}', 8 * 1024 ** 3), L.liveValue('node_network_receive_bytes_total', 123456789), L.liveValue('process_cpu_seconds_total', 90), L.liveValue('http_requests_total{code="200"}', 1234567), L.liveValue('up', 1)]`,
		`["8 GiB","118 MiB","1.5 min","1.23 M","1"]`)
	if got := eval[string](b, `U.format(1714564800000, 'dateTimeAsIso')`); !regexp.MustCompile(`^2024-05-0[12] \d\d:\d\d:00$`).MatchString(got) {
		t.Errorf("format(1714564800000, dateTimeAsIso): got %q; want 2024-05-01 12:00:00 in local time", got)
	}
	// Relative times, links, Markdown.
	f(`[F.relTime(1e6 - 5 * 60e3, 1e6), F.relTime(1e6 - 3e3, 1e6), F.relTime(1e6 + 120e3, 1e6), F.relTime(0, 3 * 86400e3), F.relTime(0, 7200e3), F.relTime(0, 42e3)]`,
		`["5m ago","just now","in 2m","3d ago","2h ago","42s ago"]`)
	f(`[F.safeURL('javascript:alert(1)'), F.safeURL('https://x.example/y?z=1'), F.safeURL('data:text/html,x'), F.safeURL('/api/v1/deploys', 'http://h:1/')]`,
		`[null,"https://x.example/y?z=1",null,"http://h:1/api/v1/deploys"]`)
	f(`(() => { const d = document.createElement('div'); d.append(F.markdown('**b** and *i* [l](javascript:x) [ok](https://e.example) `+"`c`"+`\nnext\n\n- item')); return d.innerHTML; })()`,
		`"<p><strong>b</strong> and <em>i</em> l <a href=\"https://e.example/\" target=\"_blank\" rel=\"noopener noreferrer\">ok</a> <code>c</code><br>next</p><p>• item</p>"`)
	f(`(() => { const d = document.createElement('div'); d.append(F.markdown('<img src=x onerror=alert(1)>')); return d.innerHTML; })()`,
		`"<p>&lt;img src=x onerror=alert(1)&gt;</p>"`)
	// Deploy texts on markers.
	f(`C.deployTitle({service: 'api', version: 'v1.4.2', who: 'octocat'})`, `"api v1.4.2 by octocat"`)
	f(`C.deployTitle({service: 'api'})`, `"api (no version)"`)
	f(`C.deployText({service: 'api', version: 'v1', who: 'me', env: 'prod', commit: 'abc', status: 'failed', message: 'Fix it', time: '2024-05-01T12:00:00Z', end_time: '2024-05-01T12:07:00Z'}, Date.parse('2024-05-01T12:10:00Z')).replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'T')`,
		`"api v1 by me\nprod · commit abc · failed\nT (10m ago), took 7 min\nFix it"`)
	// A change without a link has none: an empty link would resolve to the console itself.
	f(`[F.safeURL(''), F.safeURL('  '), F.safeURL(undefined)]`, `[null,null,null]`)
	// Other kinds of change.
	f(`C.changeTitle({kind: 'switch', service: 'demo', subject: 'slow_checkout', fields: {state: 'on'}, who: 'alice'})`, `"switch slow_checkout on (demo) by alice"`)
	f(`C.changeTitle({kind: 'note', service: 'demo', who: 'bob'})`, `"note demo by bob"`)
	f(`C.changeTitle({kind: 'deploy', service: 'api', version: 'v2'})`, `"api v2"`)
	f(`C.deployText({kind: 'incident', service: 'shop', subject: 'checkout', status: 'running', message: 'errors', time: '2024-05-01T12:00:00Z'}, Date.parse('2024-05-01T12:10:00Z')).replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'T')`,
		`"incident checkout (shop)\nrunning\nT (10m ago), still running\nerrors"`)
	// Exemplar links from the -console.trace-url template.
	f(`[C.traceLink('https://tempo.example/trace/{{trace_id}}?span={{ span_id }}', {trace_id: 'a b/c', span_id: '7'}), C.traceLink('https://t.example/{{trace_id}}', {}), C.traceLink('', {trace_id: 'x'})]`,
		`["https://tempo.example/trace/a%20b%2Fc?span=7","",""]`)
	// Exemplar points on a chart: inside the range and the y scale, a
	// link where the template fills, a plain point where it does not.
	if got, want := eval[string](b, `(async () => {
		const d = document.createElement('div');
		d.style.cssText = 'width: 400px; height: 200px';
		document.body.append(d);
		const c = new C.Chart(d, {unit: 's', traceURL: 'https://tempo.example/trace/{{trace_id}}'});
		c.setData([100, 150, 200], [{label: 'p99', values: [0.1, 0.5, 0.2]}], 100e3, 200e3);
		c.setExemplars([{t: 150, value: 0.3, labels: {trace_id: 't1'}}, {t: 160, value: 0.2, labels: {}}, {t: 50, value: 0.3, labels: {trace_id: 'old'}}, {t: 170, value: 99, labels: {trace_id: 'high'}}]);
		await new Promise(r => setTimeout(r, 0));
		const pts = [...d.querySelectorAll('.exemplar')].map(e => [e.tagName, e.dataset.traceUrl || '', e.dataset.time, e.getAttribute('aria-label').split('\n')[1] || '']);
		const out = [d.dataset.exemplars, pts];
		c.destroy(); d.remove();
		return JSON.stringify(out);
	})()`), `["2",[["A","https://tempo.example/trace/t1","150000","trace_id=t1"],["SPAN","","160000",""]]]`; got != want {
		t.Errorf("exemplar points:\ngot  %s\nwant %s", got, want)
	}
	// Firing regions from ALERTS: a gap longer than 1.5 steps splits one.
	f(`A.alertRegions([{metric: {__name__: 'ALERTS', alertname: 'Slow', alertstate: 'firing', service: 'shop'}, values: [[100, '1'], [110, '1'], [125, '1'], [200, '1'], [210, '1']]}, {metric: {alertname: 'Down', alertstate: 'firing'}, values: [[90, '1']]}], 10)`,
		`[{"alertname":"Down","labels":{"alertname":"Down"},"start":90,"end":90},{"alertname":"Slow","labels":{"alertname":"Slow","service":"shop"},"start":100,"end":125},{"alertname":"Slow","labels":{"alertname":"Slow","service":"shop"},"start":200,"end":210}]`)
	f(`[A.alertRegions(null, 10).length, A.stepFor(0, 15 * 60e3), A.stepFor(0, 24 * 3600e3)]`, `[0,10,288]`)
	f(`A.regionText({alertname: 'Slow', labels: {service: 'shop', env: 'prod', severity: 'page'}, start: 1714564800, end: 1714565100}).replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, 'T')`,
		`"Slow firing · shop prod\nT – T\nseverity page"`)
}

// The heatmap (heatmap.js) in Chromium: a known native-histogram range
// result (Prometheus' "histograms" JSON) and classic le series become
// the expected buckets and cells, and the canvas holds those cells: a
// coloured pixel at the centre of every non-empty cell, nothing at an
// empty one, the highest rate brightest, the lowest bucket at the bottom,
// and the bucket bounds as axis labels.
func TestJavaScriptHeatmap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	b := consolePage(t)
	eval[bool](b, `(async () => { window.H = await import('/static/heatmap.js'); return true; })()`)

	// Steps at 100 s, 110 s, 120 s (start 100e3 ms, 10 s apart). The
	// sample at 50 s is outside the steps; zero counts draw nothing.
	const native = `[{metric: {}, histograms: [
		[50, {count: '9', sum: '1', buckets: [[0, '0.1', '0.2', '9']]}],
		[100, {count: '6', sum: '0.9', buckets: [[0, '0.1', '0.2', '5'], [0, '0.2', '0.4', '1']]}],
		[110, {count: '2', sum: '0.6', buckets: [[0, '0.2', '0.4', '2'], [0, '0.4', '0.8', '0']]}]]}]`
	f := func(expr, want string) {
		t.Helper()
		if got := eval[string](b, `JSON.stringify(`+expr+`)`); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", expr, got, want)
		}
	}
	f(`H.heatmapCells(`+native+`, 100e3, 10e3, 3)`,
		`{"buckets":[{"lo":0.1,"hi":0.2},{"lo":0.2,"hi":0.4}],"cells":[{"i":0,"b":0,"v":5},{"i":0,"b":1,"v":1},{"i":1,"b":1,"v":2}]}`)
	// Two series of the same histogram are summed.
	f(`H.heatmapCells([...`+native+`, ...`+native+`], 100e3, 10e3, 3).cells.map(c => c.v)`, `[10,2,4]`)
	// Classic buckets: cumulative le series, two instances summed, become
	// the count between each le and the next lower one (from 0); the +Inf
	// bucket adds nothing when it equals the highest le.
	f(`H.heatmapCells([
		{metric: {le: '0.1'}, values: [[100, '1'], [110, '0']]},
		{metric: {le: '0.5'}, values: [[100, '2.5'], [110, '2']]},
		{metric: {le: '0.5'}, values: [[100, '1.5']]},
		{metric: {le: '+Inf'}, values: [[100, '4'], [110, '3']]}], 100e3, 10e3, 3)`,
		`{"buckets":[{"lo":0,"hi":0.1},{"lo":0.1,"hi":0.5},{"lo":0.5,"hi":null}],"cells":[{"i":0,"b":0,"v":1},{"i":0,"b":1,"v":3},{"i":1,"b":1,"v":2},{"i":1,"b":2,"v":1}]}`)

	type drawn struct {
		Cells, Buckets string
		Px             map[string][4]int // cell "i,b" -> RGBA at its centre
		Y              map[string]float64
		Labels         []string
	}
	got := eval[drawn](b, `(() => {
		const d = document.createElement('div');
		d.style.cssText = 'position: relative; width: 400px; height: 200px';
		document.body.append(d);
		const labels = [];
		const fill = CanvasRenderingContext2D.prototype.fillText;
		CanvasRenderingContext2D.prototype.fillText = function (s, ...rest) { labels.push(s); return fill.call(this, s, ...rest); };
		const h = new H.Heatmap(d, {unit: 's', cellUnit: 'reqps'});
		h.setData(H.heatmapCells(`+native+`, 100e3, 10e3, 3), 100e3, 10e3, 95e3, 125e3);
		CanvasRenderingContext2D.prototype.fillText = fill;
		const ctx = h.canvas.getContext('2d'), dpr = window.devicePixelRatio || 1;
		const px = {}, y = {};
		for (const [i, b] of [[0, 0], [0, 1], [1, 1], [1, 0], [2, 0], [2, 1]]) {
			const [x, yy] = h.cellAt(i, b);
			px[i + ',' + b] = [...ctx.getImageData(Math.round(x * dpr), Math.round(yy * dpr), 1, 1).data];
			y[i + ',' + b] = yy;
		}
		const out = {Cells: d.dataset.cells, Buckets: d.dataset.buckets, Px: px, Y: y, Labels: labels};
		h.destroy(); d.remove();
		return out;
	})()`)
	if got.Cells != "3" || got.Buckets != "2" {
		t.Errorf("drawn: got data-cells %s, data-buckets %s; want 3 cells in 2 buckets", got.Cells, got.Buckets)
	}
	bright := func(c [4]int) int { return c[0] + c[1] + c[2] }
	for _, k := range []string{"0,0", "0,1", "1,1"} {
		if got.Px[k][3] != 255 || bright(got.Px[k]) == 0 {
			t.Errorf("cell %s: got pixel %v; want an opaque colour (a drawn cell)", k, got.Px[k])
		}
	}
	for _, k := range []string{"1,0", "2,0", "2,1"} {
		if got.Px[k][3] != 0 {
			t.Errorf("empty cell %s: got pixel %v; want nothing drawn", k, got.Px[k])
		}
	}
	// Rates 5 > 2 > 1: brighter as the rate grows.
	if !(bright(got.Px["0,0"]) > bright(got.Px["1,1"]) && bright(got.Px["1,1"]) > bright(got.Px["0,1"])) {
		t.Errorf("cell colours: got %v (rate 5), %v (rate 2), %v (rate 1); want brighter for higher rates", got.Px["0,0"], got.Px["1,1"], got.Px["0,1"])
	}
	if got.Y["0,0"] <= got.Y["0,1"] {
		t.Errorf("rows: bucket 0.1-0.2 s at y %v, 0.2-0.4 s at y %v; want the lower bucket below", got.Y["0,0"], got.Y["0,1"])
	}
	for _, want := range []string{"200 ms", "400 ms"} {
		if !slices.Contains(got.Labels, want) {
			t.Errorf("axis labels: got %q; want the bucket bound %q", got.Labels, want)
		}
	}
}
