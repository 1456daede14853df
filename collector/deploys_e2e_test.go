package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/grafana/grafanatest"
)

// annotatorBinary builds the real annotator CLI once per test process.
func annotatorBinary(t *testing.T) string {
	t.Helper()
	return collectortest.Build(t, "github.com/telltale-dev/telltale/annotator")
}

// annotate runs the annotator CLI with a clean CI environment.
func annotate(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), annotatorBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "USER=ci-bot"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run annotator: %v", err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// eventually polls f every 200 ms until it returns "" or 60 s passed.
func eventually(t *testing.T, what string, f func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after 60s", what, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type deployJSON struct {
	ID       string `json:"id"`
	Service  string `json:"service"`
	Env      string `json:"env"`
	Version  string `json:"version"`
	Who      string `json:"who"`
	Link     string `json:"link"`
	Delivery *struct {
		Grafana *struct {
			Status string `json:"status"`
		} `json:"grafana"`
	} `json:"delivery"`
}

func listDeploys(t *testing.T, in *collectortest.Instance, query string) []deployJSON {
	t.Helper()
	resp, err := http.Get(in.URL + "/api/v1/deploys" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string       `json:"status"`
		Data   []deployJSON `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("GET /api/v1/deploys: status %q, %v", env.Status, err)
	}
	return env.Data
}

func startWithGrafana(t *testing.T, dir string) (*collectortest.Instance, *grafanatest.Server, []string) {
	t.Helper()
	g := grafanatest.NewServer("grafana-token")
	t.Cleanup(g.Close)
	tokenFile := filepath.Join(t.TempDir(), "grafana-token")
	os.WriteFile(tokenFile, []byte("grafana-token\n"), 0o600)
	args := []string{"-grafana.url", g.URL, "-grafana.token-file", tokenFile}
	return collectortest.StartIn(t, dir, args...), g, args
}

// TestDeployCLIToGrafanaAndPromQL: the annotator CLI records a deploy in the
// real collector; it lands in the deploy log, as deploy series in PromQL and
// as an annotation in (a fake) Grafana; Grafana being down loses nothing and
// duplicates nothing.
func TestDeployCLIToGrafanaAndPromQL(t *testing.T) {
	t.Parallel()
	in, g, _ := startWithGrafana(t, t.TempDir())
	code, out := annotate(t, "deploy", "-collector", in.URL, "-service", "web", "-env", "prod",
		"-version", "v1.2.3", "-who", "alice", "-message", "faster checkout", "-link", "https://git.example.com/pr/7")
	if code != 0 {
		t.Fatalf("annotator deploy: exit %d: %s", code, out)
	}
	ds := listDeploys(t, in, "?service=web")
	if len(ds) != 1 || ds[0].Version != "v1.2.3" || ds[0].Who != "alice" || ds[0].Link != "https://git.example.com/pr/7" {
		t.Fatalf("deploy log: got %+v; want the one deploy of v1.2.3 by alice", ds)
	}
	eventually(t, "deploy series", func() string {
		res := in.Query(t.Context(), `telltale_deploys_total{service="web",env="prod"}`, time.Time{})
		if len(res) != 1 || res[0].Value[1] != "1" {
			return "telltale_deploys_total missing"
		}
		info := in.Query(t.Context(), `telltale_deploy_info{service="web",version="v1.2.3",who="alice"}`, time.Time{})
		if len(info) != 1 {
			return "telltale_deploy_info missing"
		}
		return ""
	})
	eventually(t, "grafana annotation", func() string {
		as := g.Annotations()
		if len(as) != 1 {
			return "no annotation"
		}
		tags := strings.Join(as[0].Tags, ",")
		if !strings.Contains(tags, "deploy") || !strings.Contains(tags, "service:web") || !strings.Contains(tags, "env:prod") ||
			!strings.Contains(as[0].Text, "alice") || !strings.Contains(as[0].Text, "v1.2.3") {
			t.Fatalf("annotation %+v lacks tags deploy, service:web, env:prod or who/version in text", as[0])
		}
		return ""
	})

	// Grafana down: deploys are still accepted, then delivered once each.
	g.SetFailure(http.StatusServiceUnavailable)
	failedBefore := g.Requests()
	for _, v := range []string{"v1.2.4", "v1.2.5", "v1.2.6"} {
		if code, out := annotate(t, "deploy", "-collector", in.URL, "-service", "web", "-env", "prod", "-version", v, "-id", "web-"+v); code != 0 {
			t.Fatalf("annotator deploy %s while Grafana is down: exit %d: %s", v, code, out)
		}
	}
	// A retried CI step with the same id does not create a second deploy.
	if code, out := annotate(t, "deploy", "-collector", in.URL, "-service", "web", "-env", "prod", "-version", "v1.2.6", "-id", "web-v1.2.6"); code != 0 {
		t.Fatalf("retried deploy: exit %d: %s", code, out)
	}
	// Each of the three was tried and refused before Grafana comes back.
	eventually(t, "delivery attempts while Grafana is down", func() string {
		if n := g.Requests() - failedBefore; n < 3 {
			return fmt.Sprintf("%d attempts, want 3", n)
		}
		return ""
	})
	g.SetFailure(0)
	eventually(t, "annotations after Grafana is back", func() string {
		if n := len(g.Annotations()); n != 4 {
			return fmt.Sprintf("%d annotations, want 4", n)
		}
		return ""
	})
	// All four Grafana deliveries are done, so no duplicate can still come.
	eventually(t, "four Grafana deliveries", func() string {
		if n := in.Metric(t.Context(), `telltale_change_deliveries_total{target="grafana",outcome="delivered"}`); n != 4 {
			return fmt.Sprintf("%v delivered", n)
		}
		return ""
	})
	if c := g.Creates(); c != 4 {
		t.Fatalf("got %d annotations created; want 4 (no duplicates)", c)
	}
	if n := len(listDeploys(t, in, "?service=web")); n != 4 {
		t.Fatalf("got %d deploys in the log; want 4", n)
	}

	// Bad input through the CLI: a clear message and the rejected exit code.
	code, out = annotate(t, "deploy", "-collector", in.URL, "-service", "web", "-link", "not a url")
	if code != 4 || !strings.Contains(out, "link") {
		t.Fatalf("bad link: got exit %d %q; want 4 naming the link", code, out)
	}
	code, out = annotate(t, "deploys", "-collector", in.URL, "-service", "web")
	if code != 0 || !strings.Contains(out, "v1.2.5") {
		t.Fatalf("annotator deploys: exit %d: %s", code, out)
	}
}

// TestDeployKill9: a deploy answered 201 survives kill -9 of the collector,
// and its annotation is still delivered after the restart.
func TestDeployKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, g, args := startWithGrafana(t, dir)
	g.SetFailure(http.StatusServiceUnavailable)
	body := []byte(`{"service":"api","env":"prod","version":"v9","who":"bob","id":"api-v9"}`)
	resp, err := http.Post(in.URL+"/api/v1/deploys", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/deploys: got %d; want 201", resp.StatusCode)
	}
	in.Kill()
	g.SetFailure(0)
	in2 := collectortest.StartIn(t, dir, args...)
	ds := listDeploys(t, in2, "?service=api")
	if len(ds) != 1 || ds[0].ID != "api-v9" {
		t.Fatalf("after kill -9: got %+v; want deploy api-v9", ds)
	}
	eventually(t, "annotation after restart", func() string {
		if len(g.Annotations()) != 1 {
			return "no annotation"
		}
		return ""
	})
}
