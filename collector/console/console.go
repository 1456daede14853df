// Package console is the collector's web console: one page a newcomer opens
// to see what Flickr's ops and devs saw. The change log sits on top of every
// page (every kind — deploys, switch flips, config changes, incidents, notes,
// alerts — with who, when, what, the impact verdict and the link to the
// change, newest first, a kind legend that toggles kinds, and a search box);
// below it the shared dashboards (the same Go definitions as
// dashboards/board, rendered to Grafana JSON at start) are drawn with uPlot,
// every graph with the changes in its range marked as vertical lines in
// their kind's colour and their durations as bands, the Service dashboard
// with its contingency switches as lanes (flippable with a reason); and a
// live view streams the websocket tail.
//
// What it promises:
//   - Every asset is embedded (go:embed) and served by the collector: no
//     build step, no Node.js at run time, no CDN. Responses carry a
//     Content-Security-Policy (ContentSecurityPolicy) that forbids loading
//     anything from elsewhere, inline scripts and framing.
//   - The page and its assets hold no data, so they are served without
//     auth. The data comes from the collector's APIs, which the browser
//     calls with the read-scope token the viewer enters once (kept in
//     localStorage; sent as Authorization: Bearer, and as ?access_token= on
//     the tail websocket, which cannot carry headers).
//   - The Handler answers only GET and HEAD of "/" and of "/static/<file>";
//     mount it on exactly those patterns so unknown paths (and /api/...)
//     still get the mux's 404.
//   - Assets are rendered once in New and are immutable for the process's
//     lifetime; they are served with an ETag (304 on revalidation) and
//     gzip when the client accepts it. The Handler is safe for concurrent
//     use.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

//go:embed static/*.html static/*.js static/*.css static/*.svg static/uPlot.LICENSE
var staticFS embed.FS

// ContentSecurityPolicy is sent with every console response: scripts,
// styles, images and connections only from the collector itself (the
// websocket tail included), no inline scripts, no plugins, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// DashboardsPath is where the dashboards' JSON is served: an array of
// {"uid","title","dashboard"} with the Grafana dashboard model as is.
const DashboardsPath = "/static/dashboards.json"

// Dashboard is one dashboard the console shows.
type Dashboard struct {
	UID   string
	Title string
	// JSON is the Grafana dashboard model (what dashboards/board renders).
	JSON []byte
}

// Options configure New.
type Options struct {
	// Dashboards are shown in order; the first is the home page. Each JSON
	// must be a JSON object.
	Dashboards []Dashboard
	// GrafanaURL is Grafana's base URL (the collector's -grafana.url); when
	// set, every panel links to its query in Grafana's Explore. "" for none.
	GrafanaURL string
	// GrafanaDatasourceUID is the uid of the Telltale data source in Grafana
	// for those links; default "telltale".
	GrafanaDatasourceUID string
	// TraceURL (-console.trace-url) is a URL template of a trace in the
	// tracing UI: {{name}} is replaced by the exemplar label name's value
	// (URL-escaped), e.g. https://tempo.example.com/trace/{{trace_id}}.
	// When set, the charts fetch their queries' exemplars
	// (/api/v1/query_exemplars) and draw them as points linking to it; ""
	// draws none.
	TraceURL string
	// AuthEnabled tells the page that the APIs want a token, so it asks for
	// one up front instead of after the first 401.
	AuthEnabled bool
	// Version is the collector's version, shown in the page footer.
	Version string
	Logger  *slog.Logger // nil means slog.Default()
	Metrics *metrics.Set // default: a new set nobody scrapes
}

// Console serves the web console. Create it with New.
type Console struct {
	assets   map[string]*asset // by URL path: "/" and "/static/<name>"
	log      *slog.Logger
	served   *metrics.Counter
	notFound *metrics.Counter
}

type asset struct {
	body, gz    []byte // gz is nil when compressing does not pay
	contentType string
	etag        string
}

// config is what the page reads from its <script id="telltale-config">.
type config struct {
	Version              string   `json:"version"`
	AuthEnabled          bool     `json:"authEnabled"`
	GrafanaURL           string   `json:"grafanaURL,omitempty"`
	GrafanaDatasourceUID string   `json:"grafanaDatasourceUID"`
	TraceURL             string   `json:"traceURL,omitempty"`
	Dashboards           []navRef `json:"dashboards"`
}

type navRef struct {
	UID   string `json:"uid"`
	Title string `json:"title"`
}

// traceVarRE matches a {{label}} of Options.TraceURL (as chart.js's
// traceLink replaces them).
var traceVarRE = regexp.MustCompile(`\{\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\}\}`)

// configMarker is replaced in index.html by the config JSON.
const configMarker = "{{CONFIG}}"

// New checks opts and renders every asset.
func New(opts Options) (*Console, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.GrafanaDatasourceUID == "" {
		opts.GrafanaDatasourceUID = "telltale"
	}
	if opts.GrafanaURL != "" {
		u, err := url.Parse(opts.GrafanaURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("console: -grafana.url=%q is not an absolute http(s) URL: set it like https://grafana.example.com or leave it empty", opts.GrafanaURL)
		}
		opts.GrafanaURL = strings.TrimRight(opts.GrafanaURL, "/")
	}
	if opts.TraceURL != "" {
		u, err := url.Parse(strings.NewReplacer("{{", "", "}}", "").Replace(opts.TraceURL))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !traceVarRE.MatchString(opts.TraceURL) {
			return nil, fmt.Errorf("console: -console.trace-url=%q is not an absolute http(s) URL with a {{label}} in it: set it like https://tempo.example.com/trace/{{trace_id}} or leave it empty", opts.TraceURL)
		}
	}
	if len(opts.Dashboards) == 0 {
		return nil, fmt.Errorf("console: no dashboards to show: pass the dashboards/board dashboards in Options.Dashboards")
	}
	c := &Console{
		assets:   map[string]*asset{},
		log:      opts.Logger.With("component", "console"),
		served:   opts.Metrics.NewCounter(`telltale_console_requests_total{outcome="served"}`),
		notFound: opts.Metrics.NewCounter(`telltale_console_requests_total{outcome="not_found"}`),
	}

	cfg := config{Version: opts.Version, AuthEnabled: opts.AuthEnabled, GrafanaURL: opts.GrafanaURL,
		GrafanaDatasourceUID: opts.GrafanaDatasourceUID, TraceURL: opts.TraceURL}
	type boardJSON struct {
		UID       string          `json:"uid"`
		Title     string          `json:"title"`
		Dashboard json.RawMessage `json:"dashboard"`
	}
	boards := make([]boardJSON, 0, len(opts.Dashboards))
	seen := map[string]bool{}
	for i, d := range opts.Dashboards {
		if d.UID == "" || seen[d.UID] {
			return nil, fmt.Errorf("console: dashboard %d (%q) has an empty or repeated uid %q: give every dashboard its own uid", i, d.Title, d.UID)
		}
		seen[d.UID] = true
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(d.JSON, &obj); err != nil {
			return nil, fmt.Errorf("console: dashboard %s is not a JSON object: %w; render it with dashboards/board", d.UID, err)
		}
		boards = append(boards, boardJSON{UID: d.UID, Title: d.Title, Dashboard: json.RawMessage(d.JSON)})
		cfg.Dashboards = append(cfg.Dashboards, navRef{UID: d.UID, Title: d.Title})
	}
	dj, err := json.Marshal(boards)
	if err != nil {
		return nil, fmt.Errorf("BUG: cannot render dashboards JSON: %w", err)
	}
	c.add(DashboardsPath, "application/json", dj)

	err = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		if name == "index.html" {
			cj, err := json.Marshal(cfg) // escapes <, > and &: safe inside <script>
			if err != nil {
				return err
			}
			if bytes.Count(b, []byte(configMarker)) != 1 {
				return fmt.Errorf("BUG: index.html must hold %s exactly once", configMarker)
			}
			c.add("/", "text/html; charset=utf-8", bytes.Replace(b, []byte(configMarker), cj, 1))
			return nil
		}
		c.add("/static/"+name, contentType(name), b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: cannot load embedded assets: %w", err)
	}
	if c.assets["/"] == nil {
		return nil, fmt.Errorf("BUG: console: index.html is not embedded")
	}
	return c, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".LICENSE", ".md":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func (c *Console) add(urlPath, contentType string, body []byte) {
	sum := sha256.Sum256(body)
	a := &asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if len(body) > 1024 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		if buf.Len() < len(body)*9/10 {
			a.gz = buf.Bytes()
		}
	}
	c.assets[urlPath] = a
}

// Paths lists the URL paths the console serves ("/" and "/static/...").
func (c *Console) Paths() []string {
	out := make([]string, 0, len(c.assets))
	for p := range c.assets {
		out = append(out, p)
	}
	return out
}

// Handler serves the console: GET or HEAD of "/" and "/static/<file>".
// Anything else is 404 (405 for other methods on a known path).
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(c.serve)
}

func (c *Console) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	a := c.assets[r.URL.Path]
	if a == nil {
		c.notFound.Inc()
		http.Error(w, fmt.Sprintf("%s not found: the console is at /, its files under /static/", r.URL.Path), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("method %s not allowed on %s: use GET", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
		return
	}
	c.served.Inc()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache") // revalidate with the ETag: a new collector version shows at once
	h.Set("ETag", a.etag)
	h.Add("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (present and not with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		params = strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
	}
	return false
}
