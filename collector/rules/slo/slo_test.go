package slo

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/collector/rules"
)

var update = flag.Bool("update", false, "rewrite the shipped rules/slo.rules.yml from rules/slo.yml")

// TestShippedRules: rules/slo.rules.yml is what rules/slo.yml generates,
// and it passes the rule check. go test ./collector/rules/slo -update
// regenerates it.
func TestShippedRules(t *testing.T) {
	root := filepath.Join("..", "..", "..", "rules")
	src, err := os.ReadFile(filepath.Join(root, "slo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.Render("rules/slo.yml")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "slo.rules.yml")
	if *update {
		if err := os.WriteFile(out, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("rules/slo.rules.yml is stale: regenerate it with go run ./collector slo-rules rules/slo.yml > rules/slo.rules.yml (or go test ./collector/rules/slo -update)")
	}
	if r := rules.CheckBytes(out, got, nil); len(r.Problems) > 0 || r.Rules != 18 {
		t.Fatalf("generated rules: got %d rules, problems %v; want 18 rules, none", r.Rules, r.Problems)
	}
}

// TestGenerated checks the shape of the generated rules: one recording rule
// per SLO and window, one alert per SLO and severity reading only them.
func TestGenerated(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Groups()
	if len(g.Groups) != 1 || g.Groups[0].Name != "slo-shop-e2e" || g.Groups[0].Interval.String() != "1s" {
		t.Fatalf("groups: got %+v; want one group slo-shop-e2e evaluated every 1s", g.Groups)
	}
	var names []string
	for _, r := range g.Groups[0].Rules {
		names = append(names, r.Record+r.Alert)
	}
	want := "service_env:slo_errors:ratio_rate10s service_env:slo_errors:ratio_rate1m service_env:slo_slow_requests:ratio_rate10s service_env:slo_slow_requests:ratio_rate1m SLOErrorBudgetBurn SLOLatencyBudgetBurn"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("rules: got %s; want %s", got, want)
	}
	lat := g.Groups[0].Rules[5]
	wantExpr := "(\n  service_env:slo_slow_requests:ratio_rate1m{service=\"shop\",env=\"e2e\"} > (2 * 0.1)\nand\n  service_env:slo_slow_requests:ratio_rate10s{service=\"shop\",env=\"e2e\"} > (2 * 0.1)\n)"
	if lat.Expr != wantExpr || lat.For.String() != "5s" || lat.Labels["severity"] != "page" || lat.Labels["slo"] != "latency" {
		t.Errorf("latency alert: got %+v; want expr %q, for 5s, severity page, slo latency", lat, wantExpr)
	}
	if !strings.Contains(g.Groups[0].Rules[2].Expr, `le="0.25"`) {
		t.Errorf("slow ratio: got %q; want the le=\"0.25\" bucket", g.Groups[0].Rules[2].Expr)
	}
	if got := leMatcher(1); got != `le=~"1|1\\.0"` {
		t.Errorf("leMatcher(1): got %s; want both spellings of a whole bound", got)
	}
}

// TestParseErrors is the table of bad SLO files and their messages.
func TestParseErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): got %v; want an error containing %q", in, err, want)
		}
	}
	f("services: []", "services is empty")
	f("services: [{service: shop}]", "services[0] (shop): no objective: set availability")
	f("services: [{service: shop, availability: 100}]", "availability 100 is not a percentage above 0 and below 100")
	f("services: [{service: shop, availability: 0.995}]\nwindows: [{severity: page, long: 5m, short: 1h, burn_rate: 2}]", "windows[0]: want 0 < short < long")
	f("services: [{service: shop, latency: {threshold: 0, target: 99}}]", "latency threshold 0 must be a positive number of seconds")
	f("services: [{service: shop, latency: {threshold: 0.25, target: 101}}]", "latency target 101 is not a percentage")
	f("services: [{service: shop, availabilty: 99}]", "field availabilty not found")
	f("services: [{service: 'my shop', availability: 99}]", "service must be the service label's value")
	f("services: [{service: shop, availability: 99}, {service: shop, availability: 98}]", "listed twice")
	f("services: [{service: shop, availability: 99}]\nwindows: [{severity: page, long: 1h, short: 5m, burn_rate: -1}]", "burn_rate -1 must be a positive number")
	f("interval: 5 minutes", `unknown unit " minutes"`)
}

// FuzzParse: any input is refused with an error or gives rules that pass
// the rule check.
func FuzzParse(f *testing.F) {
	for _, p := range []string{filepath.Join("testdata", "test.yml"), filepath.Join("..", "..", "..", "rules", "slo.yml")} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<14 {
			return
		}
		c, err := Parse(data)
		if err != nil {
			return
		}
		if len(c.Services) > 20 || len(c.Windows) > 20 {
			return
		}
		out, err := c.Render("fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if r := rules.CheckBytes("fuzz", out, nil); r.Failed() {
			t.Fatalf("config %q generates rules that do not load: %v", data, r.Problems)
		}
	})
}
