package scrape

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/samples"
)

const appMetrics = `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",job="scraped-job-label"} 1027
http_requests_total{code="500"} 3
# TYPE temperature gauge
temperature 21.5
`

// seriesKeyOf renders labels as name{a=b,...} sorted by name.
func seriesKeyOf(name string, ls []samples.Label) string {
	ls = slices.Clone(ls)
	slices.SortFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	var parts []string
	for _, l := range ls {
		if l.Name != "__name__" {
			parts = append(parts, l.Name+"="+l.Value)
		}
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// seriesOf returns series -> value of b (NaN markers as "stale" in a second map).
func seriesOf(b *samples.Batch) (vals map[string]float64, stale map[string]int64) {
	vals, stale = map[string]float64{}, map[string]int64{}
	for i := range b.Series {
		s := &b.Series[i]
		k := seriesKeyOf(b.Name(s), b.SeriesLabels(s))
		x := b.SeriesSamples(s)[0]
		if IsStaleNaN(x.V) {
			stale[k] = x.T
			continue
		}
		vals[k] = x.V
	}
	return vals, stale
}

func rules(t *testing.T, doc string) []*relabel.Rule {
	t.Helper()
	var cfgs []relabel.Config
	if err := yaml.Unmarshal([]byte(doc), &cfgs); err != nil {
		t.Fatal(err)
	}
	var out []*relabel.Rule
	for _, c := range cfgs {
		r, err := relabel.Compile(c, relabel.UTF8)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// staticJob is a job with one static target per URL.
func staticJob(t *testing.T, name string, urls ...string) Job {
	t.Helper()
	j := Job{Name: name, Interval: 10 * time.Second, Timeout: 2 * time.Second, HonorTimestamps: true}
	g := Group{}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		tl := map[string]string{"__address__": u.Host}
		if u.Path != "" {
			tl["__metrics_path__"] = u.Path
		}
		g.Targets = append(g.Targets, tl)
	}
	j.Static = []Group{g}
	return j
}

func newScraper(t *testing.T, jobs ...Job) (*Scraper, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	s, err := New(Options{Jobs: jobs, Labels: []samples.Label{{Name: "env", Value: "prod"}, {Name: "team", Value: "global"}},
		Metrics: set, Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return s, set
}

func hostOf(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func errorsOf(set *metrics.Set, job, reason string) uint64 {
	return set.GetOrCreateCounter(`telltale_agent_scrape_errors_total{job="` + job + `",reason="` + reason + `"}`).Get()
}

func TestScrapeTargets(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "2" || r.URL.Path != "/metrics" {
			http.Error(w, "no timeout header", 400)
			return
		}
		fmt.Fprint(w, appMetrics)
	}))
	defer good.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) }))
	defer broken.Close()
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 1000 {
			fmt.Fprintf(w, "m%d 1\n", i)
		}
	}))
	defer big.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok 1\nnot a { metric\n") }))
	defer garbage.Close()

	app := staticJob(t, "app", good.URL)
	app.Static[0].Labels = map[string]string{"team": "payments"}
	slowJob := staticJob(t, "slow", slow.URL)
	slowJob.Timeout = 100 * time.Millisecond
	s, set := newScraper(t, app, slowJob, staticJob(t, "broken", broken.URL), staticJob(t, "big", big.URL), staticJob(t, "garbage", garbage.URL))
	var b samples.Batch
	now := time.Now()
	s.Scrape(t.Context(), now, &b)
	got, stale := seriesOf(&b)

	f := func(k string, want float64) {
		t.Helper()
		v, ok := got[k]
		if !ok {
			t.Errorf("series %s missing", k)
		} else if v != want {
			t.Errorf("%s = %v; want %v", k, v, want)
		}
	}
	al := "env=prod,instance=" + hostOf(t, good.URL) + ",job=app,team=payments"
	// The scraped job label is kept as exported_job (honor_labels false).
	f(`http_requests_total{code=200,env=prod,exported_job=scraped-job-label,instance=`+hostOf(t, good.URL)+`,job=app,team=payments}`, 1027)
	f(`http_requests_total{code=500,`+al+`}`, 3)
	f(`temperature{`+al+`}`, 21.5)
	f(`up{`+al+`}`, 1)
	f(`scrape_samples_scraped{`+al+`}`, 3)
	f(`scrape_samples_post_metric_relabeling{`+al+`}`, 3)
	f(`scrape_series_added{`+al+`}`, 3)
	if d := got[`scrape_duration_seconds{`+al+`}`]; d <= 0 {
		t.Errorf("scrape_duration_seconds = %v; want > 0", d)
	}
	for job, reason := range map[string]string{"slow": "timeout", "broken": "status", "big": "body_size_limit", "garbage": "parse"} {
		var srv string
		switch job {
		case "slow":
			srv = slow.URL
		case "broken":
			srv = broken.URL
		case "big":
			srv = big.URL
		case "garbage":
			srv = garbage.URL
		}
		l := "env=prod,instance=" + hostOf(t, srv) + ",job=" + job + ",team=global"
		f(`up{`+l+`}`, 0)
		f(`scrape_samples_scraped{`+l+`}`, 0)
		if c := errorsOf(set, job, reason); c != 1 {
			t.Errorf("scrape_errors_total{job=%q,reason=%q} = %d; want 1", job, reason, c)
		}
	}
	if n := len(got); n != 3+5+4*5 {
		t.Errorf("got %d series; want 3 app series and 5 report series per target (28): %v", n, got)
	}
	if len(stale) != 0 {
		t.Errorf("stale markers on the first scrape: %v", stale)
	}
	for i := range b.Series {
		if ts := b.SeriesSamples(&b.Series[i])[0].T; ts != now.UnixMilli() {
			t.Errorf("sample timestamp %d not at the scrape's time (%d)", ts, now.UnixMilli())
		}
	}
	if len(b.Metadata) != 2 {
		t.Errorf("metadata %v; want the 2 families of the good target", b.Metadata)
	}
	for _, j := range s.jobs {
		for _, l := range j.targets {
			want := map[string]string{"slow": "timed out", "broken": "500", "big": "body size limit exceeded", "garbage": "cannot parse"}[j.Name]
			if want != "" && (l.err == nil || !strings.Contains(l.err.Error(), want)) {
				t.Errorf("job %s error = %v; want it to mention %q", j.Name, l.err, want)
			}
		}
	}
}

// endpoint serves whatever text is set, or fails with status when set.
type endpoint struct {
	mu     sync.Mutex
	body   string
	status int
	srv    *httptest.Server
}

func newEndpoint(t *testing.T, body string) *endpoint {
	e := &endpoint{body: body}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.status != 0 {
			http.Error(w, "down", e.status)
			return
		}
		fmt.Fprint(w, e.body)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) set(body string, status int) {
	e.mu.Lock()
	e.body, e.status = body, status
	e.mu.Unlock()
}

func TestStaleness(t *testing.T) {
	e := newEndpoint(t, "a 1\nb{x=\"1\"} 2\nc 3 1700000000000\n")
	s, _ := newScraper(t, staticJob(t, "app", e.srv.URL))
	inst := "env=prod,instance=" + hostOf(t, e.srv.URL) + ",job=app,team=global"
	t0 := time.UnixMilli(1_800_000_000_000)
	scrape := func(at time.Time) (map[string]float64, map[string]int64) {
		var b samples.Batch
		s.Scrape(t.Context(), at, &b)
		return seriesOf(&b)
	}
	_, stale := scrape(t0)
	if len(stale) != 0 {
		t.Fatalf("first scrape: stale markers %v", stale)
	}
	// b vanishes: a stale marker at the next scrape's time; c has its own
	// timestamps, so it is not tracked (as in Prometheus).
	e.set("a 1\n", 0)
	t1 := t0.Add(10 * time.Second)
	got, stale := scrape(t1)
	if len(stale) != 1 || stale[`b{`+inst+`,x=1}`] != t1.UnixMilli() {
		t.Errorf("after b vanished: stale = %v; want b{%s,x=1} at %d", stale, inst, t1.UnixMilli())
	}
	if got[`a{`+inst+`}`] != 1 || got[`up{`+inst+`}`] != 1 {
		t.Errorf("after b vanished: %v", got)
	}
	// The target fails: all its series (a) are stale at once, up is 0.
	e.set("", 503)
	t2 := t1.Add(10 * time.Second)
	got, stale = scrape(t2)
	if len(stale) != 1 || stale[`a{`+inst+`}`] != t2.UnixMilli() || got[`up{`+inst+`}`] != 0 {
		t.Errorf("failed scrape: got %v stale %v; want a stale at %d and up 0", got, stale, t2.UnixMilli())
	}
	// Still failing: nothing more to mark.
	_, stale = scrape(t2.Add(10 * time.Second))
	if len(stale) != 0 {
		t.Errorf("second failed scrape: stale %v; want none", stale)
	}
	// Back: a returns, series_added counts it as new.
	e.set("a 5\n", 0)
	t3 := t2.Add(20 * time.Second)
	got, stale = scrape(t3)
	if got[`a{`+inst+`}`] != 5 || got[`scrape_series_added{`+inst+`}`] != 1 || len(stale) != 0 {
		t.Errorf("recovered: got %v stale %v", got, stale)
	}
	// Discovery drops the target: stale markers for its series and its
	// report series at the next Scrape.
	s.Sync("app", []Group{{Source: "static/0"}})
	t4 := t3.Add(10 * time.Second)
	got, stale = scrape(t4)
	if len(got) != 0 {
		t.Errorf("after the target was removed: samples %v", got)
	}
	for _, name := range append([]string{"a"}, reportNames[:]...) {
		if stale[name+`{`+inst+`}`] != t4.UnixMilli() {
			t.Errorf("after the target was removed: no stale marker for %s at %d: %v", name, t4.UnixMilli(), stale)
		}
	}
	if len(s.jobs[0].targets) != 0 {
		t.Errorf("%d targets left", len(s.jobs[0].targets))
	}
}

func TestHonorLabelsAndRelabel(t *testing.T) {
	e := newEndpoint(t, "# TYPE m gauge\nm{job=\"inner\",instance=\"i\",pod_template_hash=\"abc\",code=\"200\"} 1\ngo_goroutines 7\nm{job=\"inner\",instance=\"i\",code=\"200\",dup=\"\"} 2\n")
	honor := staticJob(t, "honor", e.srv.URL)
	honor.HonorLabels = true
	honor.MetricRelabel = rules(t, `
- source_labels: [__name__]
  regex: go_.*
  action: drop
- action: labeldrop
  regex: pod_template_hash
`)
	plain := staticJob(t, "plain", e.srv.URL)
	s, _ := newScraper(t, honor, plain)
	var b samples.Batch
	s.Scrape(t.Context(), time.Now(), &b)
	got, _ := seriesOf(&b)
	h := hostOf(t, e.srv.URL)
	f := func(k string, want float64) {
		t.Helper()
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", k, v, ok, want)
		}
	}
	// honor_labels: the scraped job and instance stay; the two lines are
	// one series after labeldrop, so the second is a duplicate and dropped.
	f(`m{code=200,env=prod,instance=i,job=inner,team=global}`, 1)
	f(`scrape_samples_scraped{env=prod,instance=`+h+`,job=honor,team=global}`, 3)
	f(`scrape_samples_post_metric_relabeling{env=prod,instance=`+h+`,job=honor,team=global}`, 2)
	if _, ok := got[`go_goroutines{env=prod,instance=i,job=inner,team=global}`]; ok {
		t.Error("go_goroutines kept; metric_relabel_configs dropped it")
	}
	// Without honor_labels: exported_job, exported_instance.
	f(`m{code=200,env=prod,exported_instance=i,exported_job=inner,instance=`+h+`,job=plain,pod_template_hash=abc,team=global}`, 1)
	f(`m{code=200,env=prod,exported_instance=i,exported_job=inner,instance=`+h+`,job=plain,team=global}`, 2)
	f(`go_goroutines{env=prod,instance=`+h+`,job=plain,team=global}`, 7)
}

func TestTargetRelabel(t *testing.T) {
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.String(), true)
		fmt.Fprint(w, "x 1\n")
	}))
	defer srv.Close()
	addr := hostOf(t, srv.URL)
	j := Job{Name: "sd", Interval: 10 * time.Second, Timeout: time.Second, Params: url.Values{"format": {"prometheus"}},
		Relabel: rules(t, `
- source_labels: [__meta_app_scrape]
  regex: "true"
  action: keep
- source_labels: [__meta_app_path]
  target_label: __metrics_path__
- source_labels: [__meta_app_name]
  target_label: app
- source_labels: [__meta_app_module]
  target_label: __param_module
- action: labelmap
  regex: __meta_app_label_(.+)
`),
		Static: []Group{{Targets: []map[string]string{
			{"__address__": addr, "__meta_app_scrape": "true", "__meta_app_path": "/probe", "__meta_app_name": "shop", "__meta_app_module": "http_2xx", "__meta_app_label_tier": "web"},
			{"__address__": addr, "__meta_app_scrape": "false", "__meta_app_name": "skipped"},
			{"__address__": "bad/address", "__meta_app_scrape": "true"},
		}}}}
	s, _ := newScraper(t, j)
	var b samples.Batch
	s.Scrape(t.Context(), time.Now(), &b)
	got, _ := seriesOf(&b)
	k := `x{app=shop,env=prod,instance=` + addr + `,job=sd,team=global,tier=web}`
	if got[k] != 1 || len(got) != 6 {
		t.Errorf("got %v; want %s and the 5 report series", got, k)
	}
	if _, ok := paths.Load("/probe?format=prometheus&module=http_2xx"); !ok {
		var seen []string
		paths.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
		t.Errorf("requests %v; want /probe?format=prometheus&module=http_2xx", seen)
	}
	if len(s.jobs[0].bad) != 1 {
		t.Errorf("bad targets %v; want the one with a slash in its address", s.jobs[0].bad)
	}
}

func TestLimits(t *testing.T) {
	f := func(limits func(*Job), body, reason, wantErr string) {
		t.Helper()
		e := newEndpoint(t, "ok 1\n")
		j := staticJob(t, "j", e.srv.URL)
		limits(&j)
		s, set := newScraper(t, j)
		inst := "env=prod,instance=" + hostOf(t, e.srv.URL) + ",job=j,team=global"
		var b samples.Batch
		s.Scrape(t.Context(), time.UnixMilli(1000), &b)
		e.set(body, 0)
		b.Reset()
		s.Scrape(t.Context(), time.UnixMilli(20000), &b)
		got, stale := seriesOf(&b)
		if got[`up{`+inst+`}`] != 0 || stale[`ok{`+inst+`}`] != 20000 {
			t.Errorf("%s: got %v stale %v; want up 0 and ok stale at 20000 (the scrape failed whole)", reason, got, stale)
		}
		if n := len(got); n != 5 {
			t.Errorf("%s: %d series; want only the 5 report series: %v", reason, n, got)
		}
		l := s.jobs[0].targets[slices.Collect(mapKeys(s.jobs[0].targets))[0]]
		if l.err == nil || !strings.Contains(l.err.Error(), wantErr) {
			t.Errorf("%s: error %v; want %q", reason, l.err, wantErr)
		}
		if c := errorsOf(set, "j", reason); c != 1 {
			t.Errorf("scrape_errors_total{reason=%q} = %d; want 1", reason, c)
		}
	}
	f(func(j *Job) { j.SampleLimit = 2 }, "ok 1\na 1\nb 1\n", "sample_limit", "sample limit exceeded: 3 samples after metric relabeling, sample_limit 2")
	f(func(j *Job) { j.LabelLimit = 5 }, "ok{a=\"1\",b=\"2\"} 1\n", "label_limit", "label_limit exceeded (metric: ok, number of labels: 7, limit: 5)")
	f(func(j *Job) { j.LabelNameLengthLimit = 10 }, "ok{very_long_name=\"1\"} 1\n", "label_limit", "label_name_length_limit exceeded (metric: ok, label name: very_long_name, length: 14, limit: 10)")
	f(func(j *Job) { j.LabelValueLengthLimit = 20 }, "ok{a=\""+strings.Repeat("v", 25)+"\"} 1\n", "label_limit",
		`label_value_length_limit exceeded (metric: ok, label name: a, value: "`+strings.Repeat("v", 25)+`", length: 25, limit: 20)`)
	f(func(j *Job) { j.BodySizeLimit = 10 }, "ok 1\n"+strings.Repeat("#", 20)+"\n", "body_size_limit", "body size limit exceeded")
	f(func(j *Job) {
		j.MetricRelabel = rules(t, "- source_labels: [__name__]\n  regex: bad\n  target_label: __name__\n  replacement: ''\n")
	}, "ok 1\nbad 2\n", "invalid_series", "missing metric name (__name__ label)")
	// Under the limits, nothing fails.
	e := newEndpoint(t, "ok 1\na 1\n")
	j := staticJob(t, "j", e.srv.URL)
	j.SampleLimit, j.LabelLimit = 2, 6
	s, _ := newScraper(t, j)
	var b samples.Batch
	s.Scrape(t.Context(), time.Now(), &b)
	if got, _ := seriesOf(&b); got[`up{env=prod,instance=`+hostOf(t, e.srv.URL)+`,job=j,team=global}`] != 1 {
		t.Errorf("at the limits: %v; want up 1", got)
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestScrapeInterval(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hits %d\n", n.Add(1)) }))
	defer srv.Close()
	every := staticJob(t, "every", srv.URL+"/a")
	slow := staticJob(t, "slow_interval", srv.URL+"/b")
	slow.Interval = 30 * time.Second
	// A target may set its own interval through __scrape_interval__.
	own := staticJob(t, "own", srv.URL+"/c")
	own.Static[0].Targets[0]["__scrape_interval__"] = "20s"
	s, _ := newScraper(t, every, slow, own)
	now := time.Now()
	counts := map[string]int{}
	for i := range 7 {
		var b samples.Batch
		s.Scrape(t.Context(), now.Add(time.Duration(i)*10*time.Second), &b)
		got, _ := seriesOf(&b)
		for k := range got {
			if strings.HasPrefix(k, "up{") {
				counts[strings.Split(strings.Split(k, "job=")[1], ",")[0]]++
			}
		}
	}
	// 0s, 10s ... 60s: the 30s target is due at 0, 30 and 60, the 20s one at 0, 20, 40, 60.
	if counts["every"] != 7 || counts["slow_interval"] != 3 || counts["own"] != 4 {
		t.Errorf("scrapes per job = %v; want every:7 slow_interval:3 own:4", counts)
	}
}

func TestOpenMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		fmt.Fprint(w, "# TYPE jobs counter\njobs_total 5 1700000000.5\njobs_created 1600000000\n# EOF\n")
	}))
	defer srv.Close()
	s, _ := newScraper(t, staticJob(t, "om", srv.URL))
	var b samples.Batch
	s.Scrape(t.Context(), time.Now(), &b)
	found := false
	for i := range b.Series {
		sr := &b.Series[i]
		if b.Name(sr) == "jobs_total" {
			found = true
			if ts := b.SeriesSamples(sr)[0].T; ts != 1700000000500 {
				t.Errorf("OpenMetrics timestamp = %d; want 1700000000500 (float seconds)", ts)
			}
		}
		if b.Name(sr) == "jobs_created" {
			t.Error("jobs_created kept; OpenMetrics _created series are skipped")
		}
	}
	if !found {
		t.Error("jobs_total missing")
	}
	// honor_timestamps false: the scrape's time.
	j := staticJob(t, "om", srv.URL)
	j.HonorTimestamps = false
	s, _ = newScraper(t, j)
	b.Reset()
	now := time.Now()
	s.Scrape(t.Context(), now, &b)
	for i := range b.Series {
		if ts := b.SeriesSamples(&b.Series[i])[0].T; ts != now.UnixMilli() {
			t.Errorf("honor_timestamps false: %s at %d; want %d", b.Name(&b.Series[i]), ts, now.UnixMilli())
		}
	}
}

func TestNewErrors(t *testing.T) {
	f := func(j Job, want string) {
		t.Helper()
		_, err := New(Options{Jobs: []Job{j, {Name: "dup", Interval: time.Second, Timeout: time.Second}}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) = %v; want an error containing %q", j, err, want)
		}
	}
	f(Job{Interval: time.Second, Timeout: time.Second}, "job_name is empty")
	f(Job{Name: "a", Interval: time.Second}, "scrape_timeout")
	f(Job{Name: "a", Interval: time.Second, Timeout: 2 * time.Second}, "scrape_timeout")
	f(Job{Name: "dup", Interval: time.Second, Timeout: time.Second}, `job "dup" twice`)
}

func TestDurations(t *testing.T) {
	for d, s := range map[time.Duration]string{30 * time.Second: "30s", 90 * time.Second: "1m30s", time.Hour: "1h", 36 * time.Hour: "1d12h", 1500 * time.Millisecond: "1s500ms", 0: "0s"} {
		if got := FormatDuration(d); got != s {
			t.Errorf("FormatDuration(%v) = %q; want %q", d, got, s)
		}
		if got, err := ParseDuration(s); err != nil || got != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, d)
		}
	}
	for _, s := range []string{"", "1", "s", "1s1m", "1x", "-1s", "1.5s"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q): got nil error", s)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1m30s", "1d12h", "1s500ms", "0", "5y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil || d < 0 {
			return
		}
		// Round trip: what FormatDuration writes parses back the same.
		if d2, err := ParseDuration(FormatDuration(d)); err != nil || d2 != d {
			t.Fatalf("ParseDuration(%q) = %v; FormatDuration gives %q which parses as %v, %v", s, d, FormatDuration(d), d2, err)
		}
	})
}
