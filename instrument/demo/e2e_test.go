package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/client"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/instrument"
)

func TestMain(m *testing.M) { collectortest.Main(m) }

// series is one series of an instant query.
type series struct {
	labels map[string]string // without __name__
	value  float64
}

// store is where the demo's pushes end up: the fake collector below, or a
// real collector's Prometheus API when TELLTALE_E2E_COLLECTOR is set.
type store interface {
	// pushURL is what the demo's -collector flag gets.
	pushURL() string
	// instant returns the series of metric name whose labels include match,
	// each with its latest value at or before at (zero: the latest of all).
	instant(t *testing.T, name string, match map[string]string, at time.Time) []series
	// switchChanges returns the switch changes recorded for service.
	switchChanges(t *testing.T, service string) []changes.Change
}

// TestDemoEndToEnd builds the demo, runs it with load against a collector,
// flips the slow_checkout switch and checks what arrived: request counts
// by route, method and code with the standard labels, histogram buckets
// that add up, build info, switch metrics, and a checkout error ratio and
// latency that rise with the switch.
//
// Set TELLTALE_E2E_COLLECTOR=http://host:port (and TELLTALE_E2E_TOKEN if
// the collector wants one, with write and read scope) to run it against a
// real collector: it then queries the collector's /api/v1/query.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binary for ~10s")
	}
	bin := collectortest.Build(t, ".")

	var st store
	token := os.Getenv("TELLTALE_E2E_TOKEN")
	if u := os.Getenv("TELLTALE_E2E_COLLECTOR"); u != "" {
		st = &realCollector{base: strings.TrimSuffix(u, "/"), token: token}
	} else {
		st = newFakeCollector(t)
	}
	service := fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	args := []string{
		"-collector", st.pushURL(), "-listen", "127.0.0.1:0",
		"-service", service, "-env", "test", "-version", "v1.2.3-e2e", "-commit", "abc123",
		"-interval", "200ms", "-load", "150",
	}
	if token != "" {
		tf := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-token-file", tf)
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs collectortest.SyncBuffer
	addrCh := make(chan string, 1)
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		addrRE := regexp.MustCompile(`msg=listening .*addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not report its listen address")
	}

	checkout := map[string]string{"service": service, "env": "test", "route": "/api/checkout", "method": "POST"}
	waitUntil(t, "100 checkouts before the flip", func() bool {
		return sumValues(st.instant(t, "http_requests_total", checkout, time.Time{})) >= 100
	})

	// flip: checkout gets 100ms slower and fails half the time
	flipAt := time.Now()
	resp, err := http.Post("http://"+addr+"/switches/slow_checkout", "application/json", strings.NewReader(`{"enabled":true,"error_rate":0.5,"latency_ms":100}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("flip: got %d %s; want 200", resp.StatusCode, body)
	}
	before := sumValues(st.instant(t, "http_requests_total", checkout, flipAt))
	waitUntil(t, "100 checkouts after the flip", func() bool {
		return sumValues(st.instant(t, "http_requests_total", checkout, time.Time{}))-before >= 100
	})

	// stop: the demo drains and pushes a last time
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { <-logsDone; waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		exited = true
		if err != nil {
			t.Fatalf("demo exited with %v; want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not exit after SIGTERM")
	}
	if strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "push failed") {
		t.Errorf("demo logged push trouble:\n%s", logs.String())
	}

	std := map[string]string{"service": service, "env": "test"}
	requests := st.instant(t, "http_requests_total", std, time.Time{})
	t.Run("routes", func(t *testing.T) {
		perRoute := map[string]float64{}
		for _, s := range requests {
			perRoute[s.labels["method"]+" "+s.labels["route"]] += s.value
		}
		for _, want := range []string{"GET /api/products", "GET /api/products/{id}", "GET /api/search", "POST /api/checkout", "POST /switches/{name}"} {
			if perRoute[want] <= 0 {
				t.Errorf("no requests for %s; got %v", want, perRoute)
			}
		}
		for rm := range perRoute {
			if strings.ContainsAny(rm, "0123456789") {
				t.Errorf("route %q looks like a raw path; want the ServeMux pattern", rm)
			}
		}
		// product ids up to 120 of 100: some 404s, on the pattern route
		if sumValues(filter(requests, map[string]string{"route": "/api/products/{id}", "code": "404"})) <= 0 {
			t.Errorf("no 404s for unknown product ids")
		}
	})

	t.Run("histogram", func(t *testing.T) {
		buckets := st.instant(t, "http_request_duration_seconds_bucket", std, time.Time{})
		counts := st.instant(t, "http_request_duration_seconds_count", std, time.Time{})
		wantLE := []string{"+Inf"}
		for _, b := range instrument.DefaultBuckets {
			wantLE = append(wantLE, strconv.FormatFloat(b, 'g', -1, 64))
		}
		slices.Sort(wantLE)
		for _, r := range requests {
			key := map[string]string{"route": r.labels["route"], "method": r.labels["method"], "code": r.labels["code"]}
			bs := filter(buckets, key)
			var les []string
			for _, b := range bs {
				les = append(les, b.labels["le"])
			}
			slices.Sort(les)
			if !slices.Equal(les, wantLE) {
				t.Errorf("%v: got le %v; want %v", key, les, wantLE)
				continue
			}
			slices.SortFunc(bs, func(a, b series) int { return cmpLE(a.labels["le"], b.labels["le"]) })
			for i := 1; i < len(bs); i++ {
				if bs[i].value < bs[i-1].value {
					t.Errorf("%v: bucket le=%s (%v) < le=%s (%v); want cumulative", key, bs[i].labels["le"], bs[i].value, bs[i-1].labels["le"], bs[i-1].value)
				}
			}
			inf := bs[len(bs)-1].value
			cnt := sumValues(filter(counts, key))
			if inf != r.value || cnt != r.value {
				t.Errorf("%v: +Inf bucket %v, _count %v; want both = http_requests_total %v", key, inf, cnt, r.value)
			}
		}
	})

	t.Run("switch changes checkout errors and latency", func(t *testing.T) {
		at := func(when time.Time) (total, errs, fast float64) {
			for _, s := range st.instant(t, "http_requests_total", checkout, when) {
				total += s.value
				if strings.HasPrefix(s.labels["code"], "5") {
					errs += s.value
				}
			}
			fastMatch := maps.Clone(checkout)
			fastMatch["le"] = "0.1"
			fast = sumValues(st.instant(t, "http_request_duration_seconds_bucket", fastMatch, when))
			return total, errs, fast
		}
		total1, errs1, fast1 := at(flipAt)
		totalEnd, errsEnd, fastEnd := at(time.Time{})
		total2, errs2, fast2 := totalEnd-total1, errsEnd-errs1, fastEnd-fast1
		if total1 < 50 || total2 < 50 {
			t.Fatalf("checkouts: %v before, %v after the flip; want >= 50 each", total1, total2)
		}
		ratio1, ratio2 := errs1/total1, errs2/total2
		t.Logf("checkout error ratio %.3f -> %.3f; share under 100ms %.3f -> %.3f", ratio1, ratio2, fast1/total1, fast2/total2)
		if ratio1 > 0.1 {
			t.Errorf("error ratio before the flip: got %.3f; want about 0.01", ratio1)
		}
		if ratio2 < 0.3 {
			t.Errorf("error ratio after the flip: got %.3f; want about 0.5", ratio2)
		}
		if fast1/total1 < 0.8 || fast2/total2 > 0.3 {
			t.Errorf("share of checkouts under 100ms: got %.3f before, %.3f after; want most before, few after (+100ms)", fast1/total1, fast2/total2)
		}
	})

	t.Run("build info and switches", func(t *testing.T) {
		bi := st.instant(t, "telltale_build_info", std, time.Time{})
		if len(bi) != 1 || bi[0].labels["version"] != "v1.2.3-e2e" || bi[0].labels["commit"] != "abc123" || bi[0].value != 1 {
			t.Errorf("telltale_build_info: got %v; want one series version=v1.2.3-e2e commit=abc123 = 1", bi)
		}
		sw := map[string]string{"service": service, "switch": "slow_checkout"}
		if v := st.instant(t, "telltale_switch_on", sw, time.Time{}); len(v) != 1 || v[0].value != 1 {
			t.Errorf("telltale_switch_on{switch=slow_checkout}: got %v; want 1", v)
		}
		if v := st.instant(t, "telltale_switch_flips_total", sw, time.Time{}); len(v) != 1 || v[0].value != 1 {
			t.Errorf("telltale_switch_flips_total{switch=slow_checkout}: got %v; want 1", v)
		}
		// The flip was recorded as a switch change, open while on.
		got := st.switchChanges(t, service)
		if len(got) != 1 || got[0].Kind != changes.KindSwitch || got[0].Subject != "slow_checkout" || got[0].Status != changes.StatusRunning ||
			got[0].Fields["state"] != "on" || got[0].Who != "anonymous" || got[0].Env != "test" {
			t.Errorf("switch changes: got %+v; want one open flip of slow_checkout to on", got)
		}
		if v := sumValues(st.instant(t, "demo_orders_placed_total", std, time.Time{})); v <= 0 {
			t.Errorf("demo_orders_placed_total: got %v; want > 0", v)
		}
		if v := st.instant(t, "process_start_time_seconds", std, time.Time{}); len(v) != 1 || v[0].value <= 0 {
			t.Errorf("process_start_time_seconds: got %v; want one positive series", v)
		}
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sumValues(ss []series) float64 {
	var v float64
	for _, s := range ss {
		v += s.value
	}
	return v
}

func matches(l, match map[string]string) bool {
	for k, v := range match {
		if l[k] != v {
			return false
		}
	}
	return true
}

func filter(ss []series, match map[string]string) []series {
	var out []series
	for _, s := range ss {
		if matches(s.labels, match) {
			out = append(out, s)
		}
	}
	return out
}

func cmpLE(a, b string) int {
	fa, _ := strconv.ParseFloat(a, 64) // "+Inf" parses as +Inf
	fb, _ := strconv.ParseFloat(b, 64)
	switch {
	case fa < fb:
		return -1
	case fa > fb:
		return 1
	}
	return 0
}

// fakeCollector accepts pushes like the collector's import endpoint and
// keeps every sample; a body that is not gzip or does not parse fails the
// test.
type fakeCollector struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	samples map[string][]tsample // by series key, in arrival order
	labels  map[string]map[string]string
	changes []changes.Change // recorded switch flips
}

type tsample struct {
	ts int64
	v  float64
}

func newFakeCollector(t *testing.T) *fakeCollector {
	fc := &fakeCollector{t: t, samples: map[string][]tsample{}, labels: map[string]map[string]string{}}
	fc.srv = httptest.NewServer(http.HandlerFunc(fc.serve))
	t.Cleanup(fc.srv.Close)
	return fc
}

func (fc *fakeCollector) pushURL() string { return fc.srv.URL }

func (fc *fakeCollector) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/v1/changes":
		req, err := changes.DecodeRequest(r.Body, time.Now())
		if err != nil {
			fc.t.Errorf("change record: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fc.mu.Lock()
		fc.changes = append(fc.changes, req.Change())
		fc.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		return
	case "/api/v1/switches/announce":
		var a changes.Announcement
		if err := changes.DecodeJSON(r.Body, &a, "service, env, instance, url, secret, interval_seconds, switches"); err != nil || a.Validate() != nil {
			fc.t.Errorf("announcement: %v %v", err, a.Validate())
		}
		return
	}
	if r.URL.Path != instrument.ImportPath || r.Header.Get("Content-Encoding") != "gzip" {
		fc.t.Errorf("got %s %s (Content-Encoding %q); want POST %s gzip", r.Method, r.URL.Path, r.Header.Get("Content-Encoding"), instrument.ImportPath)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		fc.t.Errorf("push is not gzip: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		fc.t.Errorf("cannot gunzip push: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := textparse.NewPromParser(text, labels.NewSymbolTable(), false)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fc.t.Errorf("push does not parse: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, ts, v := p.Series()
		if ts == nil {
			fc.t.Errorf("sample without timestamp in push")
			continue
		}
		var ls labels.Labels
		p.Labels(&ls)
		key := ls.String()
		if _, ok := fc.labels[key]; !ok {
			fc.labels[key] = ls.Map()
		}
		fc.samples[key] = append(fc.samples[key], tsample{*ts, v})
	}
	w.WriteHeader(http.StatusNoContent)
}

func (fc *fakeCollector) instant(t *testing.T, name string, match map[string]string, at time.Time) []series {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []series
	for key, l := range fc.labels {
		if l[labels.MetricName] != name || !matches(l, match) {
			continue
		}
		best, found := tsample{}, false
		for _, s := range fc.samples[key] {
			if (at.IsZero() || s.ts <= at.UnixMilli()) && (!found || s.ts >= best.ts) {
				best, found = s, true
			}
		}
		if found {
			ls := maps.Clone(l)
			delete(ls, labels.MetricName)
			out = append(out, series{labels: ls, value: best.v})
		}
	}
	return out
}

// realCollector reads back through a collector's Prometheus query API.
type realCollector struct {
	base, token string
}

func (rc *realCollector) pushURL() string { return rc.base }

func (rc *realCollector) switchChanges(t *testing.T, service string) []changes.Change {
	t.Helper()
	cl, err := client.New(rc.base, client.Options{Token: rc.token})
	if err != nil {
		t.Fatal(err)
	}
	list, err := cl.List(t.Context(), client.ListOptions{Kinds: []string{changes.KindSwitch}, Service: service, Limit: 100})
	if err != nil {
		t.Fatalf("list switch changes: %v", err)
	}
	return list
}

func (fc *fakeCollector) switchChanges(t *testing.T, service string) []changes.Change {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []changes.Change
	for _, c := range fc.changes {
		if c.Service == service {
			out = append(out, c)
		}
	}
	return out
}

func (rc *realCollector) instant(t *testing.T, name string, match map[string]string, at time.Time) []series {
	t.Helper()
	var sel strings.Builder
	sel.WriteString(name + "{")
	for i, k := range slices.Sorted(maps.Keys(match)) {
		if i > 0 {
			sel.WriteString(",")
		}
		fmt.Fprintf(&sel, "%s=%q", k, match[k])
	}
	sel.WriteString("}")
	q := url.Values{"query": {sel.String()}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	req, err := http.NewRequest(http.MethodGet, rc.base+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rc.token != "" {
		req.Header.Set("Authorization", "Bearer "+rc.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query %s: %v", sel.String(), err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("query %s: status %d, %v %s", sel.String(), resp.StatusCode, err, body.Error)
	}
	var out []series
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: bad value %v", sel.String(), r.Value)
		}
		delete(r.Metric, labels.MetricName)
		out = append(out, series{labels: r.Metric, value: v})
	}
	return out
}
