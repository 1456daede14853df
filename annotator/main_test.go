package main

// End-to-end tests of the annotator binary: it is built once into a temp
// dir and run against an httptest server that mounts the real deploy API
// (annotator/changelog on a SQLite file in t.TempDir).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/collector/collectortest"
)

func TestMain(m *testing.M) { collectortest.Main(m) }

// annotatorBin builds the annotator once per test process.
func annotatorBin(t *testing.T) string {
	t.Helper()
	return collectortest.Build(t, ".")
}

// collector is an httptest server mounting the real deploy API.
type collector struct {
	*httptest.Server
	svc      *changelog.Service
	mu       sync.Mutex
	auth     []string
	recorded []string // id/status per OnRecorded call
	fail503  atomic.Int32
}

func newCollector(t *testing.T) *collector {
	return newCollectorWith(t, nil)
}

// newCollectorWith is newCollector with impact analysis on impact (nil:
// off); the outbox runs in the background then.
func newCollectorWith(t *testing.T, im *changelog.ImpactOptions) *collector {
	t.Helper()
	c := &collector{}
	svc, err := changelog.Open(t.Context(), changelog.Options{
		DBPath: filepath.Join(t.TempDir(), "deploys.db"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnRecorded: func(d changes.Change) {
			c.mu.Lock()
			c.recorded = append(c.recorded, d.ID+"/"+d.Status)
			c.mu.Unlock()
		},
		Impact: im,
	})
	if err != nil {
		t.Fatal(err)
	}
	if im != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { svc.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	c.svc = svc
	h := svc.Handler()
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.auth = append(c.auth, r.Header.Get("Authorization"))
		c.mu.Unlock()
		if c.fail503.Load() > 0 {
			c.fail503.Add(-1)
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"status":"error","errorType":"unavailable","error":"storage busy"}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		c.Close()
		svc.Close()
	})
	return c
}

func (c *collector) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.recorded...)
}

func (c *collector) deploys(t *testing.T) []changes.Change {
	t.Helper()
	resp, err := http.Get(c.URL + "/api/v1/deploys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct{ Data []changes.Change }
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	return env.Data
}

type result struct {
	code           int
	stdout, stderr string
}

// annotator runs the binary with a clean environment plus env.
func annotator(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), annotatorBin(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running annotator: %v", err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
		t.Fatalf("got exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout containing %q, stderr containing %q", r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestDeployCommand(t *testing.T) {
	c := newCollector(t)
	r := annotator(t, []string{"TELLTALE_TOKEN=sekret"}, "deploy", "-collector", c.URL, "-service", "api", "-env", "prod", "-version", "1.2.3",
		"-who", "alice", "-message", "fix login", "-link", "https://ci.example.com/1", "-commit", "abc123", "-id", "my-1", "-json")
	r.want(t, 0, `"id": "my-1"`, "")
	var d changes.Change
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("-json output: %v: %s", err, r.stdout)
	}
	if d.Service != "api" || d.Env != "prod" || d.Version != "1.2.3" || d.Who != "alice" || d.Message != "fix login" ||
		d.Link != "https://ci.example.com/1" || d.Commit != "abc123" || d.Status != "success" {
		t.Fatalf("recorded %+v; want the flags' values", d)
	}
	c.mu.Lock()
	auth := c.auth[0]
	c.mu.Unlock()
	if auth != "Bearer sekret" {
		t.Fatalf("Authorization: got %q; want %q", auth, "Bearer sekret")
	}
	r = annotator(t, nil, "deploy", "-collector", c.URL, "-service", "api", "-env", "prod", "-version", "1.2.3",
		"-who", "alice", "-message", "fix login", "-link", "https://ci.example.com/1", "-commit", "abc123", "-id", "my-1")
	r.want(t, 0, "deploy my-1 was already recorded: api 1.2.3 to prod by alice (success)", "")
	if n := len(c.deploys(t)); n != 1 {
		t.Fatalf("deploys after a retried command: got %d; want 1", n)
	}
	// TELLTALE_COLLECTOR stands in for -collector.
	annotator(t, []string{"TELLTALE_COLLECTOR=" + c.URL}, "deploy", "-service", "web").want(t, 0, "recorded deploy cli-", "")
}

func TestDeployCIDefaults(t *testing.T) {
	c := newCollector(t)
	gh := []string{"GITHUB_ACTIONS=true", "GITHUB_SHA=9fceb02d0ae598e95dc970b74767f19372d61af8", "GITHUB_ACTOR=octocat",
		"GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=acme/api", "GITHUB_RUN_ID=555", "GITHUB_RUN_ATTEMPT=1",
		"GITHUB_REF_NAME=v2.0.0", "GITHUB_REF_TYPE=tag", "USER=runner"}
	for range 2 { // a retried step
		annotator(t, gh, "deploy", "-collector", c.URL, "-service", "api", "-env", "prod").want(t, 0, "gh-555-1-api-prod", "")
	}
	list := c.deploys(t)
	if len(list) != 1 {
		t.Fatalf("deploys: got %d; want 1 (the retry is idempotent)", len(list))
	}
	d := list[0]
	if d.ID != "gh-555-1-api-prod" || d.Commit != "9fceb02d0ae598e95dc970b74767f19372d61af8" || d.Who != "octocat" ||
		d.Link != "https://github.com/acme/api/actions/runs/555" || d.Version != "v2.0.0" {
		t.Fatalf("CI defaults: got %+v", d)
	}
	// flags win over CI defaults
	annotator(t, gh, "deploy", "-collector", c.URL, "-service", "web", "-who", "ops-bot", "-json").want(t, 0, `"who": "ops-bot"`, "")
}

func TestRunCommand(t *testing.T) {
	c := newCollector(t)
	r := annotator(t, nil, "run", "-collector", c.URL, "-service", "api", "-id", "r1", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	r.want(t, 3, "out", "err")
	r.want(t, 3, "", "deploy r1 finished: failed (exit code 3)")
	if got := strings.Join(c.calls(), ","); got != "r1/running,r1/failed" {
		t.Fatalf("recorded: got %s; want r1/running,r1/failed (start, then end)", got)
	}
	d := c.deploys(t)[0]
	if d.EndTime == nil || d.EndTime.Before(d.Time) {
		t.Fatalf("run r1: got end %v start %v; want an end after the start", d.EndTime, d.Time)
	}

	annotator(t, nil, "run", "-collector", c.URL, "-service", "api", "-id", "r2", "--", "sh", "-c", "exit 0").
		want(t, 0, "", "deploy r2 finished: success (exit code 0)")
	annotator(t, nil, "run", "-collector", c.URL, "-service", "api", "-id", "r3", "--", "/nonexistent/deploy.sh").
		want(t, 127, "", `cannot start "/nonexistent/deploy.sh"`)
	got := map[string]string{}
	for _, d := range c.deploys(t) {
		got[d.ID] = d.Status
	}
	if got["r2"] != "success" || got["r3"] != "failed" {
		t.Fatalf("statuses: got %v; want r2 success, r3 failed", got)
	}
	annotator(t, nil, "run", "-collector", c.URL, "-service", "api").want(t, 2, "", "missing command")
}

func TestRunForwardsSignals(t *testing.T) {
	c := newCollector(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd := exec.CommandContext(t.Context(), annotatorBin(t), "run", "-collector", c.URL, "-service", "api", "-id", "sig", "--",
		"sh", "-c", `trap 'exit 7' TERM; touch `+ready+`; while :; do sleep 0.05; done`)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the wrapped command did not start; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Fatalf("exit code: got %d; want 7 (the command's, after it got the forwarded SIGTERM); stderr: %s", code, stderr.String())
	}
	if got := strings.Join(c.calls(), ","); got != "sig/running,sig/cancelled" {
		t.Fatalf("recorded: got %s; want sig/running,sig/cancelled", got)
	}
}

func TestRunCollectorDown(t *testing.T) {
	r := annotator(t, nil, "run", "-collector", closedPort(t), "-retries", "0", "-service", "api", "--", "sh", "-c", "echo deployed")
	r.want(t, 0, "deployed", "warning: cannot record the start of deploy")
	r.want(t, 0, "", "is it running?")
}

func TestDeploysTable(t *testing.T) {
	c := newCollector(t)
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "api", "-env", "prod", "-version", "1.0", "-who", "alice",
		"-message", "a very long message that goes on and on about what changed in this deploy\nsecond line", "-link", "https://ci/1").want(t, 0, "", "")
	annotator(t, nil, "run", "-collector", c.URL, "-service", "api", "-env", "prod", "-version", "1.1", "--", "true").want(t, 0, "", "")
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "web").want(t, 0, "", "")

	r := annotator(t, nil, "deploys", "-collector", c.URL, "-service", "api")
	r.want(t, 0, "TIME", "")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("table: got %d lines; want header + 2:\n%s", len(lines), r.stdout)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "TIME SERVICE ENV VERSION WHO STATUS IMPACT MESSAGE LINK" {
		t.Fatalf("header: got %q", lines[0])
	}
	if !strings.Contains(lines[1], "1.1") || !strings.Contains(lines[1], "success (") {
		t.Fatalf("newest row %q: want version 1.1 and a success with duration", lines[1])
	}
	for _, want := range []string{"api", "prod", "1.0", "alice", "a very long message that goes on and on…", "https://ci/1"} {
		if !strings.Contains(lines[2], want) {
			t.Fatalf("row %q: want it to contain %q", lines[2], want)
		}
	}
	if strings.Contains(r.stdout, "second line") || strings.Contains(r.stdout, "web") {
		t.Fatalf("table shows the second message line or another service:\n%s", r.stdout)
	}
	r = annotator(t, nil, "deploys", "-collector", c.URL, "-limit", "2", "-json")
	var list []changes.Change
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 || list[0].Service != "web" {
		t.Fatalf("-json -limit 2: got %v %v; want 2 deploys, web first", list, err)
	}
	annotator(t, nil, "deploys", "-collector", c.URL, "-service", "nothing").want(t, 0, "no deploys found", "")
}

func TestUnreachable(t *testing.T) {
	url := closedPort(t)
	annotator(t, nil, "deploy", "-collector", url, "-service", "api", "-retries", "0").want(t, 3, "",
		"cannot reach collector at "+url+": connection refused; is it running? set -collector or TELLTALE_COLLECTOR")
	annotator(t, []string{"TELLTALE_COLLECTOR=" + url}, "deploys", "-retries", "1").want(t, 3, "", "cannot reach collector at "+url)
}

func TestRejectedAndServerErrors(t *testing.T) {
	c := newCollector(t)
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "api", "-link", "notaurl").
		want(t, 4, "", `collector answered HTTP 400: "link" "notaurl" is not an absolute http(s) URL`)
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "my api").want(t, 4, "", `"service" "my api" has characters outside`)

	c.fail503.Store(2)
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "api", "-id", "after-503", "-retries", "3").want(t, 0, "recorded deploy after-503", "")
	c.fail503.Store(100)
	annotator(t, nil, "deploy", "-collector", c.URL, "-service", "api", "-retries", "1").want(t, 5, "", "collector answered HTTP 503: storage busy")
}

func TestUsage(t *testing.T) {
	annotator(t, nil, "-h").want(t, 0, "Exit codes:", "")
	annotator(t, nil).want(t, 2, "", "missing command")
	annotator(t, nil, "ship").want(t, 2, "", `unknown command "ship"`)
	annotator(t, nil, "deploy", "-collector", "http://127.0.0.1:1").want(t, 2, "", "missing -service")
	annotator(t, nil, "deploy", "-nope").want(t, 2, "", "flag provided but not defined: -nope")
	annotator(t, nil, "deploy", "-service", "api", "-collector", "collector:9470").want(t, 2, "", "not an absolute http(s) URL")
	annotator(t, nil, "deploy", "-h").want(t, 0, "", "-service")
}

// TestBinaryStaysSmall: the CLI runs in every CI job; it must not pull in
// the collector-side packages (SQLite, Grafana client, metrics, Prometheus).
func TestBinaryStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, banned := range []string{"modernc.org/sqlite", "github.com/grafana/", "github.com/prometheus/", "github.com/VictoriaMetrics/",
		"github.com/telltale-dev/telltale/annotator/changelog"} {
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("annotator imports %s (banned prefix %s): keep the CLI on annotator/client", dep, banned)
			}
		}
	}
}
