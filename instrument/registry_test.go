package instrument

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// rawValue returns the value of one series as the registry's Set writes it
// (without the standard labels), or -1 if the series is absent.
func rawValue(t *testing.T, reg *Registry, series string) float64 {
	t.Helper()
	var b bytes.Buffer
	reg.set.WritePrometheus(&b)
	for line := range strings.Lines(b.String()) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("series %s: cannot parse value %q: %v", series, rest, err)
			}
			return v
		}
	}
	return -1
}

func TestValidNames(t *testing.T) {
	f := func(name string, metric, label bool) {
		t.Helper()
		if got := validMetricName(name); got != metric {
			t.Errorf("validMetricName(%q): got %v; want %v", name, got, metric)
		}
		if got := validLabelName(name); got != label {
			t.Errorf("validLabelName(%q): got %v; want %v", name, got, label)
		}
	}
	f("", false, false)
	f("a", true, true)
	f("_a9", true, true)
	f("a:b", true, false)
	f(":a", true, false)
	f("9a", false, false)
	f("a.b", false, false)
	f("a-b", false, false)
	f("é", false, false)
}

func TestSanitizeLabelValue(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := sanitizeLabelValue(in); got != want {
			t.Errorf("sanitizeLabelValue(%q): got %q; want %q", in, got, want)
		}
	}
	f("book", "book")
	f("", "")
	f("a\xffb", "a\uFFFDb")
	f(strings.Repeat("x", 300), strings.Repeat("x", 256))
	// cut at a rune boundary: 255 x then a 2-byte rune would end at 257
	f(strings.Repeat("x", 255)+"é", strings.Repeat("x", 255))
}

func TestAppendLabelValue(t *testing.T) {
	got := string(appendLabelValue(nil, "a\"b\\c\nd"))
	if want := `a\"b\\c\nd`; got != want {
		t.Errorf("got %s; want %s", got, want)
	}
}

func TestCheckLabelArgsPanics(t *testing.T) {
	f := func(metric string, labels []string, extra, wantInMsg string) {
		t.Helper()
		defer func() {
			t.Helper()
			p := recover()
			if p == nil {
				t.Errorf("checkLabelArgs(%q, %q): no panic; want one mentioning %q", metric, labels, wantInMsg)
				return
			}
			if msg := fmt.Sprint(p); !strings.Contains(msg, wantInMsg) {
				t.Errorf("checkLabelArgs(%q, %q): got panic %q; want it to mention %q", metric, labels, msg, wantInMsg)
			}
		}()
		checkLabelArgs("Counter", metric, labels, extra)
	}
	f("bad-name", nil, "", "invalid metric name")
	f("x_total", []string{"kind"}, "", "odd number")
	f("x_total", []string{"bad-label", "v"}, "", "invalid label name")
	f("x_total", []string{"service", "v"}, "", "Options.Service")
	f("x_total", []string{"env", "v"}, "", "Options.Service/Options.Env")
	f("x_total", []string{"a", "1", "a", "2"}, "", "given twice")
	f("x_seconds", []string{"le", "1"}, "le", "reserved")
}

func TestGuard(t *testing.T) {
	reg := NewRegistry(RegistryOptions{MaxLabelValues: 2})
	g := reg.guard("m", "l")
	f := func(in, want string) {
		t.Helper()
		if got := g.admit(in); got != want {
			t.Errorf("admit(%q): got %q; want %q", in, got, want)
		}
	}
	f("a", "a")
	f("b", "b")
	f("c", OtherValue)
	f("a", "a") // known values stay admitted
	f("d", OtherValue)
	f("b", "b")
	if got := rawValue(t, reg, `telltale_instrument_label_overflow_total{metric="m",label="l"}`); got != 2 {
		t.Errorf("overflow counter: got %v; want 2", got)
	}
	if reg.guard("m", "l") != g {
		t.Errorf("guard(m, l) returned a new guard; want the existing one")
	}
}

// TestCounterCardinalityCap checks that a label with more distinct values
// than the limit is capped at "other" and the overflow is counted.
func TestCounterCardinalityCap(t *testing.T) {
	reg := NewRegistry(RegistryOptions{MaxLabelValues: 3})
	for i := range 10 {
		reg.Counter("orders_placed_total", "kind", fmt.Sprintf("k%d", i), "shop", "main").Inc()
	}
	f := func(series string, want float64) {
		t.Helper()
		if got := rawValue(t, reg, series); got != want {
			t.Errorf("%s: got %v; want %v", series, got, want)
		}
	}
	f(`orders_placed_total{kind="k0",shop="main"}`, 1)
	f(`orders_placed_total{kind="k2",shop="main"}`, 1)
	f(`orders_placed_total{kind="k3",shop="main"}`, -1)
	f(`orders_placed_total{kind="other",shop="main"}`, 7)
	f(`telltale_instrument_label_overflow_total{metric="orders_placed_total",label="kind"}`, 7)
	// the other label is unaffected, and other metrics have their own budget
	f(`telltale_instrument_label_overflow_total{metric="orders_placed_total",label="shop"}`, 0)
	reg.Counter("refunds_total", "kind", "k9").Inc()
	f(`refunds_total{kind="k9"}`, 1)
}

func TestHelpers(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	reg.Counter("c_total", "a", "x\"y").Add(3)
	reg.FloatCounter("fc_seconds_total").Add(1.5)
	reg.Gauge("g", "a", "1").Set(-2)
	reg.GaugeFunc("gf", func() float64 { return 42 })
	h := reg.Histogram("h_seconds", []float64{0.1, 1}, "op", "read")
	h.Update(0.05)
	h.Update(0.5)
	h.Update(5)
	f := func(series string, want float64) {
		t.Helper()
		if got := rawValue(t, reg, series); got != want {
			t.Errorf("%s: got %v; want %v", series, got, want)
		}
	}
	f(`c_total{a="x\"y"}`, 3)
	f(`fc_seconds_total`, 1.5)
	f(`g{a="1"}`, -2)
	f(`gf`, 42)
	f(`h_seconds_bucket{op="read",le="0.1"}`, 1)
	f(`h_seconds_bucket{op="read",le="1"}`, 2)
	f(`h_seconds_bucket{op="read",le="+Inf"}`, 3)
	f(`h_seconds_count{op="read"}`, 3)
	// same name and labels: same metric
	if reg.Counter("c_total", "a", "x\"y") != reg.Counter("c_total", "a", "x\"y") {
		t.Errorf("Counter returned different metrics for the same series")
	}
}

func TestStartLabelsAndHandler(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	reg.Counter("orders_placed_total", "kind", "book").Inc()

	// before Start: no standard labels
	if got := string(reg.AppendPrometheus(nil)); !strings.Contains(got, "orders_placed_total{kind=\"book\"} 1\n") {
		t.Errorf("before Start: got\n%s\nwant orders_placed_total{kind=\"book\"} 1", got)
	}
	stop, err := reg.Start(t.Context(), Options{Service: "shop", Env: "prod", Version: "1.2.3", Commit: "abc", Labels: map[string]string{"region": "eu", "az": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type: got %q; want text/plain; version=0.0.4", ct)
	}
	samples, err := parseText(body)
	if err != nil {
		t.Fatalf("handler output does not parse: %v\n%s", err, body)
	}
	var sawOrders, sawBuild bool
	for _, s := range samples {
		if s.labels["service"] != "shop" || s.labels["env"] != "prod" || s.labels["region"] != "eu" || s.labels["az"] != "b" {
			t.Errorf("%s%v: lacks service=shop env=prod region=eu az=b", s.name, s.labels)
		}
		if s.hasTS {
			t.Errorf("%s: has a timestamp; pull output must leave it to the scraper", s.name)
		}
		if _, ok := s.labels["instance"]; ok {
			t.Errorf("%s: has an instance label; pull output must leave it to the scraper", s.name)
		}
		switch s.name {
		case "orders_placed_total":
			sawOrders = s.value == 1 && s.labels["kind"] == "book"
		case "telltale_build_info":
			sawBuild = s.value == 1 && s.labels["version"] == "1.2.3" && s.labels["commit"] == "abc" && strings.HasPrefix(s.labels["goversion"], "go")
		}
	}
	if !sawOrders || !sawBuild {
		t.Errorf("got orders=%v build_info=%v; want both in\n%s", sawOrders, sawBuild, body)
	}

	// a second Start with other labels is refused; the same labels are fine
	if _, err := reg.Start(t.Context(), Options{Service: "other", Env: "prod"}); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("Start with another service: got err %v; want 'already started'", err)
	}
	stop2, err := reg.Start(t.Context(), Options{Service: "shop", Env: "prod", Labels: map[string]string{"az": "b", "region": "eu"}})
	if err != nil {
		t.Errorf("Start with the same labels: got %v; want nil", err)
	} else {
		stop2()
	}
}

func TestProcessMetrics(t *testing.T) {
	reg := NewRegistry(RegistryOptions{ProcessMetrics: true})
	if _, err := reg.Start(t.Context(), Options{Service: "s", Env: "e"}); err != nil {
		t.Fatal(err)
	}
	out := reg.AppendPrometheus(nil)
	samples, err := parseText(out)
	if err != nil {
		t.Fatalf("output does not parse: %v", err)
	}
	want := map[string]bool{"process_start_time_seconds": false, "go_goroutines": false, "process_resident_memory_bytes": false, "telltale_build_info": false}
	for _, s := range samples {
		if _, ok := want[s.name]; ok {
			want[s.name] = true
			if s.labels["service"] != "s" {
				t.Errorf("%s: got service=%q; want s", s.name, s.labels["service"])
			}
		}
	}
	for name, ok := range want {
		if !ok {
			t.Errorf("%s missing from the exposition", name)
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	f := func(o Options, wantInErr string) {
		t.Helper()
		err := o.fill()
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("fill(%+v): got %v; want an error mentioning %q", o, err, wantInErr)
		}
	}
	f(Options{Env: "e"}, "Options.Service")
	f(Options{Service: "s"}, "Options.Env")
	f(Options{Service: "s", Env: "e", Collector: "127.0.0.1:9470"}, "Options.Collector")
	f(Options{Service: "s", Env: "e", Collector: "ftp://x"}, "Options.Collector")
	f(Options{Service: "s", Env: "e", Interval: -1}, "Options.Interval")
	f(Options{Service: "s", Env: "e", RetryMin: 2e9, RetryMax: 1e9}, "RetryMax")
	f(Options{Service: "s", Env: "e", BufferBytes: -1}, "Options.BufferBytes")
	f(Options{Service: "s", Env: "e", Labels: map[string]string{"bad-name": "x"}}, "invalid label name")
	f(Options{Service: "s", Env: "e", Labels: map[string]string{"instance": "x"}}, "Options.Service/Env/Instance")
	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprintf("l%d", i)] = "x"
	}
	f(Options{Service: "s", Env: "e", Labels: many}, "limit 16")
}

func TestOptionsDefaults(t *testing.T) {
	f := func(collector, want string) {
		t.Helper()
		o := Options{Service: "s", Env: "e", Collector: collector}
		if err := o.fill(); err != nil {
			t.Fatal(err)
		}
		if o.Collector != want {
			t.Errorf("Collector %q: got push URL %q; want %q", collector, o.Collector, want)
		}
		if o.Interval != DefaultInterval || o.BufferBytes != DefaultBufferBytes || o.Instance == "" || o.Version == "" || o.Commit == "" {
			t.Errorf("defaults not set: %+v", o)
		}
	}
	f("http://127.0.0.1:9470", "http://127.0.0.1:9470/api/v1/import/prometheus")
	f("http://c:9470/", "http://c:9470/api/v1/import/prometheus")
	f("https://c/prefix/api/v1/import/prometheus?extra_label=team=a", "https://c/prefix/api/v1/import/prometheus?extra_label=team=a")
}
