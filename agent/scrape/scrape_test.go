package scrape

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/telltale-dev/telltale/samples"
)

const appMetrics = `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",job="scraped-job-label"} 1027
http_requests_total{code="500"} 3
# TYPE temperature gauge
temperature 21.5
`

func series(b *samples.Batch) map[string]float64 {
	m := map[string]float64{}
	for i := range b.Series {
		s := &b.Series[i]
		ls := slices.Clone(b.SeriesLabels(s))
		slices.SortFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
		var parts []string
		for _, l := range ls {
			if l.Name != "__name__" {
				parts = append(parts, l.Name+"="+l.Value)
			}
		}
		m[b.Name(s)+"{"+strings.Join(parts, ",")+"}"] = b.SeriesSamples(s)[0].V
	}
	return m
}

func newScraper(t *testing.T, targets ...Target) (*Scraper, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	s, err := New(Options{Targets: targets, Labels: []samples.Label{{Name: "env", Value: "prod"}, {Name: "team", Value: "global"}},
		Metrics: set, Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return s, set
}

func host(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestScrapeTargets(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "2" {
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

	s, set := newScraper(t,
		Target{Job: "app", URL: good.URL + "/metrics", Timeout: 2 * time.Second, Labels: []samples.Label{{Name: "team", Value: "payments"}}},
		Target{Job: "slow", URL: slow.URL, Timeout: 100 * time.Millisecond},
		Target{Job: "broken", URL: broken.URL, Timeout: time.Second},
		Target{Job: "big", URL: big.URL, Timeout: time.Second},
		Target{Job: "garbage", URL: garbage.URL, Timeout: time.Second},
	)
	var b samples.Batch
	now := time.Now()
	s.Scrape(t.Context(), now, &b)
	got := series(&b)

	gi := host(t, good.URL)
	f := func(k string, want float64) {
		t.Helper()
		v, ok := got[k]
		if !ok {
			t.Errorf("series %s missing", k)
		} else if v != want {
			t.Errorf("%s = %v; want %v", k, v, want)
		}
	}
	app := "env=prod,instance=" + gi + ",job=app,team=payments"
	// The scraped job label is replaced by the target's.
	f(`http_requests_total{code=200,`+app+`}`, 1027)
	f(`http_requests_total{code=500,`+app+`}`, 3)
	f(`temperature{`+app+`}`, 21.5)
	f(`up{`+app+`}`, 1)
	f(`scrape_samples_scraped{`+app+`}`, 3)
	if d := got[`scrape_duration_seconds{`+app+`}`]; d <= 0 {
		t.Errorf("scrape_duration_seconds = %v; want > 0", d)
	}
	for _, job := range []string{"slow", "broken", "big", "garbage"} {
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
		l := "env=prod,instance=" + host(t, srv) + ",job=" + job + ",team=global"
		f(`up{`+l+`}`, 0)
		f(`scrape_samples_scraped{`+l+`}`, 0)
		if c := set.GetOrCreateCounter(`telltale_agent_scrape_errors_total{job="` + job + `"}`).Get(); c != 1 {
			t.Errorf("scrape_errors_total{job=%q} = %d; want 1", job, c)
		}
	}
	if n := len(got); n != 3+3+4*3 {
		t.Errorf("got %d series; want 3 app series and 3 synthetic per target (18): %v", n, got)
	}
	for i := range b.Series {
		if ts := b.SeriesSamples(&b.Series[i])[0].T; ts < now.UnixMilli() || ts > now.Add(time.Minute).UnixMilli() {
			t.Errorf("sample timestamp %d not at the scrape start (%d)", ts, now.UnixMilli())
		}
	}
	if len(b.Metadata) != 2 {
		t.Errorf("metadata %v; want the 2 families of the good target", b.Metadata)
	}
	for _, tg := range s.targets {
		want := map[string]string{"slow": "timed out", "broken": "500", "big": "-scrape-max-body-bytes", "garbage": "cannot parse"}[tg.Job]
		if want != "" && (tg.err == nil || !strings.Contains(tg.err.Error(), want)) {
			t.Errorf("job %s error = %v; want it to mention %q", tg.Job, tg.err, want)
		}
	}
}

func TestScrapeInterval(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hits %d\n", n.Add(1)) }))
	defer srv.Close()
	s, _ := newScraper(t,
		Target{Job: "every", URL: srv.URL + "/a", Timeout: time.Second},
		Target{Job: "slow_interval", URL: srv.URL + "/b", Timeout: time.Second, Interval: 30 * time.Second})
	now := time.Now()
	counts := map[string]int{}
	for i := range 7 {
		var b samples.Batch
		s.Scrape(t.Context(), now.Add(time.Duration(i)*10*time.Second), &b)
		for k := range series(&b) {
			if strings.HasPrefix(k, "up{") {
				counts[strings.Split(strings.Split(k, "job=")[1], ",")[0]]++
			}
		}
	}
	// 0s, 10s ... 60s: the 30s target is due at 0, 30 and 60.
	if counts["every"] != 7 || counts["slow_interval"] != 3 {
		t.Errorf("scrapes per job = %v; want every:7 slow_interval:3", counts)
	}
}

func TestOpenMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		fmt.Fprint(w, "# TYPE jobs counter\njobs_total 5 1700000000.5\njobs_created 1600000000\n# EOF\n")
	}))
	defer srv.Close()
	s, _ := newScraper(t, Target{Job: "om", URL: srv.URL, Timeout: time.Second})
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
}

func TestNewErrors(t *testing.T) {
	f := func(tg Target, want string) {
		t.Helper()
		_, err := New(Options{Targets: []Target{tg}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) = %v; want an error containing %q", tg, err, want)
		}
	}
	f(Target{Job: "a", URL: "localhost:8080/metrics", Timeout: time.Second}, "not an absolute http")
	f(Target{URL: "http://x/metrics", Timeout: time.Second}, "job is empty")
	f(Target{Job: "a", URL: "http://x/metrics"}, "timeout must be positive")
}
