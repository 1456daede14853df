package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// startPrometheus runs Prometheus with rule file rules, evaluating every
// second, and returns its base URL.
func startPrometheus(t *testing.T, rules, externalURL string) string {
	t.Helper()
	bin := collectortest.Peer(t, "prometheus", "TELLTALE_PROMETHEUS", "run go run ./bench install -peers prometheus (about 15 min)")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  evaluation_interval: 1s\nrule_files:\n  - %q\n", rules)), 0o600)
	addr := collectortest.FreeAddr(t)
	return startPeer(t, "prometheus", addr, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.external-url="+externalURL)
}

func getJSON(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}

// normalized decodes an API answer with the values that depend on when
// each server evaluated (evaluationTime, lastEvaluation, activeAt) blanked,
// and the alerts of /api/v1/alerts sorted.
func normalized(t *testing.T, body []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				switch k {
				case "evaluationTime":
					x[k] = 0.0
				case "lastEvaluation", "activeAt":
					x[k] = "<time>"
				default:
					x[k] = walk(e)
				}
			}
			if alerts, ok := x["alerts"].([]any); ok {
				slices.SortFunc(alerts, func(a, b any) int {
					return strings.Compare(fmt.Sprint(a.(map[string]any)["labels"]), fmt.Sprint(b.(map[string]any)["labels"]))
				})
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	return walk(v)
}

// TestRulesAPIMatchesPrometheus is the differential test of the rules API:
// the collector and Prometheus v0.316.0 load the same rule file (recording
// rules, alerts firing, pending and inactive, group labels and limit,
// keep_firing_for, templates); once both have evaluated it, /api/v1/rules
// (with each filter Grafana and people use) and /api/v1/alerts and
// /api/v1/alertmanagers answer the same JSON, field for field, except the
// evaluation times.
func TestRulesAPIMatchesPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and the collector")
	}
	t.Parallel()
	rules, err := filepath.Abs(filepath.Join("testdata", "compat.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const external = "http://telltale.compat:9470"
	prom := startPrometheus(t, rules, external)
	in := collectortest.Start(t, "-rules.files", rules, "-rules.dashboards=false", "-rules.external-url", external)

	// Both have evaluated every group (each on its own schedule) when every
	// rule is healthy, and restored their for state when the firing alert
	// shows as firing and the pending one as pending.
	for _, base := range []string{prom, in.URL} {
		waitUntil(t, time.Minute, base+" evaluating the rules", func() bool {
			var r struct {
				Data struct {
					Groups []struct {
						Rules []struct {
							Health string
							State  string
							Name   string
						}
					}
				}
			}
			json.Unmarshal(getJSON(t, base+"/api/v1/rules"), &r)
			states := map[string]string{}
			for _, g := range r.Data.Groups {
				for _, x := range g.Rules {
					if x.Health != "ok" {
						return false
					}
					states[x.Name] = x.State
				}
			}
			return len(states) == 5 && states["CompatFiring"] == "firing" && states["CompatPending"] == "pending"
		})
	}
	for _, path := range []string{
		"/api/v1/rules",
		"/api/v1/rules?type=alert",
		"/api/v1/rules?type=record",
		"/api/v1/rules?rule_name[]=CompatFiring&rule_name[]=compat:one",
		"/api/v1/rules?group_name[]=compat-recording",
		"/api/v1/rules?file[]=" + url.QueryEscape(rules),
		"/api/v1/rules?exclude_alerts=true",
		"/api/v1/rules?match[]=" + url.QueryEscape(`{severity="page"}`),
		"/api/v1/alerts",
		"/api/v1/alertmanagers",
	} {
		want, got := getJSON(t, prom+path), getJSON(t, in.URL+path)
		if !reflect.DeepEqual(normalized(t, got), normalized(t, want)) {
			t.Errorf("GET %s:\ncollector  %s\nprometheus %s", path, got, want)
		}
	}
	// Rejected the same way: a bad filter.
	for _, path := range []string{"/api/v1/rules?type=nonsense", "/api/v1/rules?match[]=" + url.QueryEscape("{")} {
		code := func(base string) int {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if got, want := code(in.URL), code(prom); got != want {
			t.Errorf("GET %s: got %d; want %d as Prometheus", path, got, want)
		}
	}
}
