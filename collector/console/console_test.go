package console

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func testDashboards() []Dashboard {
	return []Dashboard{
		{UID: "a", Title: "A", JSON: []byte(`{"uid":"a","title":"A","panels":[]}`)},
		{UID: "b", Title: "B </script><script>alert(1)</script>", JSON: []byte(`{"uid":"b","title":"B","panels":[{"type":"timeseries"}]}`)},
	}
}

func newTest(t *testing.T, opts Options) (*Console, *metrics.Set) {
	t.Helper()
	if opts.Dashboards == nil {
		opts.Dashboards = testDashboards()
	}
	set := metrics.NewSet()
	opts.Metrics = set
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, set
}

func do(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServesPageAndAssets(t *testing.T) {
	c, _ := newTest(t, Options{Version: "v9.9.9"})
	h := c.Handler()
	f := func(path, wantType string) {
		t.Helper()
		w := do(t, h, http.MethodGet, path, nil)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: got status %d; want 200: %s", path, w.Code, w.Body)
		}
		if got := w.Header().Get("Content-Type"); got != wantType {
			t.Errorf("GET %s: got Content-Type %q; want %q", path, got, wantType)
		}
		if got := w.Header().Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: got CSP %q; want %q", path, got, ContentSecurityPolicy)
		}
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: got X-Content-Type-Options %q; want nosniff", path, got)
		}
		if w.Body.Len() == 0 {
			t.Errorf("GET %s: empty body", path)
		}
	}
	f("/", "text/html; charset=utf-8")
	f("/static/app.js", "text/javascript; charset=utf-8")
	f("/static/dashboard.js", "text/javascript; charset=utf-8")
	f("/static/uPlot.iife.min.js", "text/javascript; charset=utf-8")
	f("/static/uPlot.min.css", "text/css; charset=utf-8")
	f("/static/style.css", "text/css; charset=utf-8")
	f("/static/favicon.svg", "image/svg+xml")
	f("/static/uPlot.LICENSE", "text/plain; charset=utf-8")
	f(DashboardsPath, "application/json")
}

// The CSP forbids loading anything from elsewhere; the page must not need
// to: every src/href in index.html is local and no script is inline.
func TestPageLoadsNothingFromElsewhere(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("CSP %q lacks %q", ContentSecurityPolicy, want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") || strings.Contains(ContentSecurityPolicy, "http") || strings.Contains(ContentSecurityPolicy, "*") {
		t.Errorf("CSP %q allows unsafe or outside sources", ContentSecurityPolicy)
	}
	c, _ := newTest(t, Options{})
	for _, p := range c.Paths() {
		body := do(t, c.Handler(), http.MethodGet, p, nil).Body.String()
		for _, m := range regexp.MustCompile(`(?:src|href)\s*=\s*["']([^"']+)["']`).FindAllStringSubmatch(body, -1) {
			if !strings.HasPrefix(m[1], "/static/") && !strings.HasPrefix(m[1], "#") {
				t.Errorf("%s loads %q: every asset must come from /static/", p, m[1])
			}
		}
		if strings.HasSuffix(p, ".js") && regexp.MustCompile(`(?:from|import)\s*\(?\s*['"]https?:`).MatchString(body) {
			t.Errorf("%s imports a module from elsewhere", p)
		}
	}
	page := do(t, c.Handler(), http.MethodGet, "/", nil).Body.String()
	for _, m := range regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if strings.TrimSpace(m[2]) != "" && !strings.Contains(m[1], `type="application/json"`) {
			t.Errorf("index.html has an inline script %q: CSP forbids it", m[0])
		}
	}
}

func TestConfigInPage(t *testing.T) {
	c, _ := newTest(t, Options{GrafanaURL: "https://grafana.example.com/", AuthEnabled: true, Version: "v1.2.3",
		TraceURL: "https://tempo.example.com/trace/{{trace_id}}"})
	page := do(t, c.Handler(), http.MethodGet, "/", nil).Body.String()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="telltale-config">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no config script in page:\n%s", page)
	}
	var cfg config
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v: %s", err, m[1])
	}
	if cfg.GrafanaURL != "https://grafana.example.com" || !cfg.AuthEnabled || cfg.Version != "v1.2.3" || cfg.GrafanaDatasourceUID != "telltale" {
		t.Errorf("got config %+v; want grafana URL without trailing slash, auth on, version v1.2.3, datasource telltale", cfg)
	}
	if cfg.TraceURL != "https://tempo.example.com/trace/{{trace_id}}" {
		t.Errorf("got trace URL %q; want the template as given", cfg.TraceURL)
	}
	if len(cfg.Dashboards) != 2 || cfg.Dashboards[0].UID != "a" || cfg.Dashboards[1].Title != "B </script><script>alert(1)</script>" {
		t.Errorf("got dashboards %+v; want a, b in order with titles intact", cfg.Dashboards)
	}
	// A title with </script> must not end the JSON block early.
	if strings.Count(page, "</script>") != strings.Count(string(mustRead(t, "static/index.html")), "</script>") {
		t.Errorf("a dashboard title broke out of the config script:\n%s", m[1])
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := staticFS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDashboardsJSON(t *testing.T) {
	c, _ := newTest(t, Options{})
	w := do(t, c.Handler(), http.MethodGet, DashboardsPath, nil)
	var got []struct {
		UID       string          `json:"uid"`
		Title     string          `json:"title"`
		Dashboard json.RawMessage `json:"dashboard"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("dashboards.json: %v", err)
	}
	want := testDashboards()
	if len(got) != len(want) {
		t.Fatalf("got %d dashboards; want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].UID != want[i].UID || got[i].Title != want[i].Title || !bytes.Equal(got[i].Dashboard, want[i].JSON) {
			t.Errorf("dashboard %d: got %s %q %s; want %s %q %s", i, got[i].UID, got[i].Title, got[i].Dashboard, want[i].UID, want[i].Title, want[i].JSON)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	c, set := newTest(t, Options{})
	h := c.Handler()
	f := func(method, path string, want int) {
		t.Helper()
		w := do(t, h, method, path, nil)
		if w.Code != want {
			t.Errorf("%s %s: got status %d; want %d", method, path, w.Code, want)
		}
	}
	f(http.MethodGet, "/index.html", 404)
	f(http.MethodGet, "/static/", 404)
	f(http.MethodGet, "/static/nope.js", 404)
	f(http.MethodGet, "/static/README.md", 404) // not embedded
	f(http.MethodGet, "/static/../console.go", 404)
	f(http.MethodGet, "/api/v2/nope", 404)
	f(http.MethodPost, "/", 405)
	f(http.MethodDelete, "/static/app.js", 405)
	f(http.MethodHead, "/", 200)
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `telltale_console_requests_total{outcome="not_found"} 6`) {
		t.Errorf("got metrics\n%s\nwant 6 not_found requests counted", buf.String())
	}
}

func TestHeadHasNoBody(t *testing.T) {
	c, _ := newTest(t, Options{})
	w := do(t, c.Handler(), http.MethodHead, "/static/app.js", nil)
	if w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: got body %d bytes, Content-Length %q; want no body and a length", w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

func TestGzipAndETag(t *testing.T) {
	c, _ := newTest(t, Options{})
	h := c.Handler()
	plain := do(t, h, http.MethodGet, "/static/uPlot.iife.min.js", nil)
	if plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("no Accept-Encoding: got Content-Encoding %q; want none", plain.Header().Get("Content-Encoding"))
	}
	gz := do(t, h, http.MethodGet, "/static/uPlot.iife.min.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if gz.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Accept-Encoding gzip: got Content-Encoding %q; want gzip", gz.Header().Get("Content-Encoding"))
	}
	if gz.Body.Len() >= plain.Body.Len() {
		t.Errorf("gzip body %d bytes; want fewer than plain %d", gz.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	un, _ := io.ReadAll(zr)
	if !bytes.Equal(un, plain.Body.Bytes()) {
		t.Errorf("gunzipped body differs from the plain one")
	}
	if q0 := do(t, h, http.MethodGet, "/static/uPlot.iife.min.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); q0.Header().Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0: got Content-Encoding %q; want none", q0.Header().Get("Content-Encoding"))
	}
	etag := plain.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
		if w := do(t, h, http.MethodGet, "/static/uPlot.iife.min.js", map[string]string{"If-None-Match": inm}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: got %d with %d bytes; want 304 and no body", inm, w.Code, w.Body.Len())
		}
	}
	if w := do(t, h, http.MethodGet, "/static/uPlot.iife.min.js", map[string]string{"If-None-Match": `"other"`}); w.Code != http.StatusOK {
		t.Errorf("stale If-None-Match: got %d; want 200", w.Code)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	f := func(opts Options, wantInErr string) {
		t.Helper()
		_, err := New(opts)
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("New(%+v): got error %v; want one containing %q", opts, err, wantInErr)
		}
	}
	ds := testDashboards()
	f(Options{Dashboards: ds, GrafanaURL: "grafana:3000"}, "-grafana.url")
	f(Options{Dashboards: ds, GrafanaURL: "ftp://grafana"}, "absolute http(s) URL")
	f(Options{Dashboards: ds, TraceURL: "tempo/trace/{{trace_id}}"}, "-console.trace-url")
	f(Options{Dashboards: ds, TraceURL: "https://tempo.example.com/trace/"}, "with a {{label}} in it")
	f(Options{}, "no dashboards")
	f(Options{Dashboards: []Dashboard{ds[0], ds[0]}}, "repeated uid")
	f(Options{Dashboards: []Dashboard{{UID: "", JSON: []byte(`{}`)}}}, "empty or repeated uid")
	f(Options{Dashboards: []Dashboard{{UID: "x", JSON: []byte(`[1]`)}}}, "not a JSON object")
	f(Options{Dashboards: []Dashboard{{UID: "x", JSON: []byte(`{`)}}}, "not a JSON object")
}

func TestAcceptsGzip(t *testing.T) {
	f := func(h string, want bool) {
		t.Helper()
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q): got %v; want %v", h, got, want)
		}
	}
	f("", false)
	f("gzip", true)
	f("GZIP", true)
	f("deflate, gzip;q=0.8", true)
	f("gzip;q=0", false)
	f("gzip; q=0.000", false)
	f("br", false)
	f("xgzip", false)
}
