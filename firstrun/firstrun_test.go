package firstrun

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/console/consoletest"
)

func TestMain(m *testing.M) { collectortest.Main(m) }

const (
	module = "github.com/telltale-dev/telltale"
	// readmeURL is the collector URL the READMEs' commands use.
	readmeURL = "http://127.0.0.1:9470"
)

// command is one `go run ./<pkg> args...` line of a README.
type command struct {
	line string
	pkg  string // "./collector"
	args []string
}

// readmeCommands returns the `go run` lines of the first indented code
// block under the heading in the markdown file.
func readmeCommands(t *testing.T, file, heading string) []command {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []command
	in, block := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = line == heading
			continue
		}
		if !in {
			continue
		}
		code, ok := strings.CutPrefix(line, "    ")
		switch {
		case ok && strings.TrimSpace(code) != "":
			block = true
			code = strings.TrimSpace(code)
			if strings.ContainsAny(code, `"'$|&;<>`+"`") {
				t.Fatalf("%s: command %q needs a shell; this test runs plain commands: keep the README's first-run commands plain", file, code)
			}
			fields := strings.Fields(code)
			if len(fields) < 3 || fields[0] != "go" || fields[1] != "run" || !strings.HasPrefix(fields[2], "./") {
				t.Fatalf("%s: %q is not `go run ./<pkg> ...`", file, code)
			}
			cmds = append(cmds, command{line: code, pkg: fields[2], args: fields[3:]})
		case block:
			return cmds
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("%s: no `go run` code block under %q", file, heading)
	}
	return cmds
}

// find returns the README command of pkg, failing if there is none.
func find(t *testing.T, cmds []command, pkg string, firstArg string) command {
	t.Helper()
	for _, c := range cmds {
		if c.pkg == pkg && (firstArg == "" || len(c.args) > 0 && c.args[0] == firstArg) {
			return c
		}
	}
	t.Fatalf("the README's first screen has no `go run %s %s`; it must get a newcomer from clone to graphs with a deploy marker", pkg, firstArg)
	return command{}
}

// withURL replaces the READMEs' collector URL in args with url.
func withURL(args []string, url string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, readmeURL, url)
	}
	return out
}

// start runs bin in dir with env until the test ends.
func start(t *testing.T, dir, bin string, env []string, args ...string) *collectortest.Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	return collectortest.StartProcess(t, cmd)
}

// cleanEnv is the environment without Telltale's own variables, so the
// commands run as the README says and not as this machine's settings say.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TELLTALE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// waitReady waits for the collector's /readyz (or its exit).
func waitReady(t *testing.T, p *collectortest.Process, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.Exited():
			t.Fatalf("the collector exited:\n%s", p.Log())
		default:
		}
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector is not ready after 60s:\n%s", p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newestDeploy asks the collector's deploy log for its newest deploy.
func newestDeploy(t *testing.T, url string) (id, service, env, version string) {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/deploys?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			ID      string `json:"id"`
			Service string `json:"service"`
			Env     string `json:"env"`
			Version string `json:"version"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data) != 1 {
		t.Fatalf("GET /api/v1/deploys?limit=1: %v, %d deploys; want the README's deploy", err, len(body.Data))
	}
	d := body.Data[0]
	return d.ID, d.Service, d.Env, d.Version
}

type panelState struct {
	Title  string `json:"title"`
	Type   string `json:"type"`
	State  string `json:"state"`
	Series int    `json:"series"`
}

// panels returns the console's record of the panels of dashboard uid.
func panels(b *consoletest.Browser, uid string) []panelState {
	return consoletest.Eval[[]panelState](b, fmt.Sprintf(`Object.entries(__telltale.panels).filter(([k]) => k.startsWith(%q)).map(([, p]) => p)`, uid+"/"))
}

// reloadUntil reloads the console's view until every panel whose title is
// in want has data, or fails after a minute (the demo pushes every 10s;
// rates need two pushes).
func reloadUntil(t *testing.T, b *consoletest.Browser, uid string, want func(panelState) bool, what string) []panelState {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		loads := consoletest.Eval[int](b, `__telltale.loads`)
		b.Do(clickReload)
		b.Ready(loads)
		ps := panels(b, uid)
		var missing []string
		for _, p := range ps {
			if want(p) && p.State != "ok" {
				missing = append(missing, fmt.Sprintf("%s (%s)", p.Title, p.State))
			}
		}
		if len(missing) == 0 && len(ps) > 0 {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still without data after 90s: %s", what, strings.Join(missing, ", "))
		}
		time.Sleep(time.Second) // a poll interval, not a wait for something
	}
}

var clickReload = chromedpEval(`document.getElementById('reload').click()`)

// TestFirstRun does what the README's first screen says: start the
// collector, start the demo, record a deploy with the annotator; then,
// in headless Chromium on the console the README says to open, the Hosts
// graphs have data (the collector records its own host), the Service
// graphs have the demo's data, and the deploy is marked on every graph of
// the Service and Hosts dashboards and named by their "Last deploy" panel.
func TestFirstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and starts Chromium")
	}
	consoletest.Chromium(t)
	cmds := readmeCommands(t, "../README.md", "## Run")
	colCmd := find(t, cmds, "./collector", "")
	demoCmd := find(t, cmds, "./instrument/demo", "")
	deployCmd := find(t, cmds, "./annotator", "deploy")
	collector := collectortest.Build(t, module+"/collector")
	demo := collectortest.Build(t, module+"/instrument/demo")
	annotator := collectortest.Build(t, module+"/annotator")
	work := t.TempDir()

	// 1. The collector, as `go run ./collector`, on a free port.
	addr := collectortest.FreeAddr(t)
	url := "http://" + addr
	started := time.Now()
	col := start(t, work, collector, cleanEnv(), append(withURL(colCmd.args, url), "-listen", addr, "-data", filepath.Join(work, "telltale-data"))...)
	waitReady(t, col, url)
	// It says what to open and run next: the console and the README's
	// other commands.
	for _, want := range []string{"open      " + url + "/", "go run ./instrument/demo -collector " + url, "go run ./annotator deploy"} {
		if !strings.Contains(col.Log(), want) {
			t.Errorf("the collector's startup output lacks %q:\n%s", want, col.Log())
		}
	}

	b := consoletest.NewBrowser(t)
	// 2. Host graphs: the README's console URL shows the Hosts dashboard
	// (the first) with this machine's data, by condition: the core graphs
	// have data (how long it took is logged, not asserted: rates need the
	// second collection, 10s after the first).
	b.Open(url + "/")
	b.Ready(0)
	core := map[string]bool{"CPU by mode": true, "Load": true, "Memory": true, "Running processes": true}
	hostPanels := reloadUntil(t, b, "telltale-hosts", func(p panelState) bool { return core[p.Title] }, "Hosts graphs")
	t.Logf("host graphs (CPU by mode, Load, Memory, Running processes) had data %v after the collector started", time.Since(started).Round(100*time.Millisecond))
	for _, p := range hostPanels {
		if p.Type == "timeseries" && p.State != "ok" {
			t.Logf("Hosts %q: %s on this machine (e.g. no real filesystem or disk in a container)", p.Title, p.State)
		}
	}

	// 3. The demo, as the README says, on a free port.
	start(t, work, demo, cleanEnv(), append(withURL(demoCmd.args, url), "-listen", "127.0.0.1:0")...)

	// 4. The deploy, with the README's command, run as a newcomer runs it.
	cmd := exec.CommandContext(t.Context(), annotator, deployCmd.args...)
	cmd.Dir = work
	cmd.Env = cleanEnv("TELLTALE_COLLECTOR=" + url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", deployCmd.line, err, out)
	}
	id, service, env, version := newestDeploy(t, url)
	t.Logf("%s: %s\ndeploy %s: service %q env %q version %q", deployCmd.line, strings.TrimSpace(string(out)), id, service, env, version)

	// 5. The Service dashboard, at its defaults (range, service and env
	// variables): the demo's graphs have data and every graph marks the
	// deploy.
	b.Open(url + "/#/d/telltale-service")
	b.Ready(0)
	if r := consoletest.Eval[string](b, `document.getElementById('range').value`); r != "30m" {
		t.Errorf("the console's default range is %q; want 30m, like the dashboards (board.DefaultFrom)", r)
	}
	svcPanels := reloadUntil(t, b, "telltale-service", func(p panelState) bool { return p.Type == "timeseries" }, "Service graphs")
	checkMarked(t, b, "Service", id, svcPanels)
	checkLastDeploy(t, b, "Service", service, version)
	if dir := os.Getenv("TELLTALE_FIRSTRUN_SCREENSHOTS"); dir != "" {
		b.Screenshot(filepath.Join(dir, "service.png"), true)
	}

	b.Open(url + "/#/d/telltale-hosts")
	b.Ready(0)
	checkMarked(t, b, "Hosts", id, panels(b, "telltale-hosts"))
	checkLastDeploy(t, b, "Hosts", service, version)
	if dir := os.Getenv("TELLTALE_FIRSTRUN_SCREENSHOTS"); dir != "" {
		b.Screenshot(filepath.Join(dir, "hosts.png"), true)
	}
	if p := b.PageProblems(); len(p) > 0 {
		t.Errorf("the console page reported problems: %q", p)
	}
}

// checkMarked checks that every graph of the dashboard on screen marks the
// deploy id.
func checkMarked(t *testing.T, b *consoletest.Browser, dash, id string, ps []panelState) {
	t.Helper()
	graphs := 0
	for _, p := range ps {
		if p.Type == "timeseries" {
			graphs++
		}
	}
	type chart struct {
		Title  string `json:"title"`
		Marked bool   `json:"marked"`
	}
	charts := consoletest.Eval[[]chart](b, fmt.Sprintf(`[...document.querySelectorAll('.panel-timeseries')].map(p => ({
		title: p.querySelector('h3').textContent, marked: !!p.querySelector('.deploy-marker[data-deploy-id=%q]')}))`, id))
	if len(charts) == 0 || len(charts) != graphs {
		t.Errorf("%s: %d charts on screen, %d time series panels loaded; want every graph drawn", dash, len(charts), graphs)
	}
	for _, c := range charts {
		if !c.Marked {
			t.Errorf("%s graph %q does not mark the README's deploy %s", dash, c.Title, id)
		}
	}
}

// checkLastDeploy checks that the dashboard's "Last deploy" panel names the
// deploy's service and version.
func checkLastDeploy(t *testing.T, b *consoletest.Browser, dash, service, version string) {
	t.Helper()
	text := consoletest.Eval[string](b, `(() => { const h = [...document.querySelectorAll('.panel h3')].find(h => h.textContent === 'Last deploy');
		return h ? h.closest('.panel').textContent : ''; })()`)
	if !strings.Contains(text, service) || !strings.Contains(text, version) {
		t.Errorf("%s: the Last deploy panel reads %q; want it to name %s %s", dash, text, service, version)
	}
}

// TestHelpExitsZero runs every binary with -h: asking for help prints the
// usage and is no error (exit 0), and nothing prints "flag: help requested".
func TestHelpExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	for _, c := range []struct {
		pkg  string
		args []string
	}{
		{"collector", []string{"-h"}},
		{"collector", []string{"tail", "-h"}},
		{"collector", []string{"probe", "-h"}},
		{"agent", []string{"-h"}},
		{"annotator", []string{"-h"}},
		{"annotator", []string{"deploy", "-h"}},
		{"dashboards", []string{"-h"}},
		{"dashboards", []string{"generate", "-h"}},
		{"bench", []string{"-h"}},
		{"bench", []string{"run", "-h"}},
		{"instrument/demo", []string{"-h"}},
	} {
		bin := collectortest.Build(t, module+"/"+c.pkg)
		cmd := exec.CommandContext(t.Context(), bin, c.args...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s %q: %v; want exit 0\n%s", c.pkg, c.args, err, out)
		}
		if strings.Contains(string(out), "help requested") || !strings.Contains(strings.ToLower(string(out)), "usage") {
			t.Errorf("%s %q printed %q; want the usage and no \"help requested\"", c.pkg, c.args, out)
		}
	}
	// -log.level is the log flag of every binary that has one; the agent's
	// old -log-level still works, with a deprecation warning.
	for _, pkg := range []string{"collector", "agent"} {
		out, _ := exec.CommandContext(t.Context(), collectortest.Build(t, module+"/"+pkg), "-h").CombinedOutput()
		if !strings.Contains(string(out), "-log.level") {
			t.Errorf("%s -h does not list -log.level", pkg)
		}
	}
}

// TestAgentTryLocally follows agent/README.md's "Try it locally" next to a
// default collector: the agent runs without root and without flags (its
// spool in the working directory), the collector sees it and pauses its
// own copy of the host's metrics, so the host is recorded once.
func TestAgentTryLocally(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the collector and the agent")
	}
	cmds := readmeCommands(t, "../agent/README.md", "## Try it locally")
	agentCmd := find(t, cmds, "./agent", "")
	in := collectortest.Start(t, "-host-metrics=true")
	work := t.TempDir()
	// The README's command plus the test collector's address (the README's
	// agent finds the default collector at 127.0.0.1:9470).
	start(t, work, collectortest.Build(t, module+"/agent"), cleanEnv(), append(withURL(agentCmd.args, in.URL), "-collector", in.URL)...)
	waitFor(t, "the collector to pause its host metrics for the agent", func() bool {
		return in.Metric(t.Context(), "telltale_collector_host_metrics_paused") == 1
	})
	if !strings.Contains(in.Log(), "an agent records this host") {
		t.Errorf("the collector did not say that it paused its host metrics:\n%s", in.Log())
	}
	if fi, err := os.Stat(filepath.Join(work, "telltale-agent-spool")); err != nil || !fi.IsDir() {
		t.Errorf("the agent's default spool: %v; want ./telltale-agent-spool in its working directory", err)
	}
}

// waitFor polls cond every 100 ms for up to 90 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: gave up after 90s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func chromedpEval(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](js)
}
