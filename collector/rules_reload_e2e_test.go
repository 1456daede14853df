package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

const oneRule = `groups:
  - name: e2e
    interval: 1s
    rules:
      - record: e2e:one
        expr: vector(1)
`

const twoRules = oneRule + `      - record: e2e:two
        expr: vector(2)
`

const badRule = `groups:
  - name: e2e
    interval: 1s
    rules:
      - record: e2e:one
        expr: vector(1
`

// newestSample returns the timestamp of the newest sample of a recorded
// series, zero if it has none.
func newestSample(t *testing.T, in *collectortest.Instance, name string) time.Time {
	t.Helper()
	res := in.Query(t.Context(), "timestamp("+name+")", time.Time{})
	if len(res) != 1 {
		return time.Time{}
	}
	var f float64
	if _, err := fmt.Sscan(res[0].Value[1].(string), &f); err != nil {
		t.Fatal(err)
	}
	return time.UnixMilli(int64(f * 1000))
}

// TestRulesReload: the recording rule records through the write path;
// POST /-/reload with a broken file answers 400 naming the file, line and
// why and keeps the rules running; SIGHUP with a good file loads its new
// rule.
func TestRulesReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "e2e.rules.yml")
	os.WriteFile(file, []byte(oneRule), 0o600)
	in := collectortest.Start(t, "-rules.files", filepath.Join(dir, "*.rules.yml"), "-rules.dashboards=false")
	waitUntil(t, time.Minute, "the first recorded sample", func() bool { return !newestSample(t, in, "e2e:one").IsZero() })
	if n := in.Metric(t.Context(), "telltale_rules_samples_written_total"); n < 1 {
		t.Errorf("telltale_rules_samples_written_total: got %v; want the recorded samples counted", n)
	}

	os.WriteFile(file, []byte(badRule), 0o600)
	status, body := in.Post(t.Context(), "/-/reload", nil, nil)
	wantMsg := file + `:6: group "e2e", rule "e2e:one": could not parse expression: 1:9: parse error: unclosed left parenthesis`
	if status != http.StatusBadRequest || !strings.Contains(body, wantMsg) || !strings.HasSuffix(body, "(the rules loaded before stay in effect)\n") {
		t.Fatalf("reload with a broken file: got %d %q; want 400 naming %q and that the old rules stay", status, body, wantMsg)
	}
	failedAt := time.Now()
	waitUntil(t, time.Minute, "the old rule to keep recording after the failed reload", func() bool {
		return newestSample(t, in, "e2e:one").After(failedAt)
	})

	os.WriteFile(file, []byte(twoRules), 0o600)
	in.Signal(syscall.SIGHUP)
	waitUntil(t, time.Minute, "the rule SIGHUP added", func() bool { return !newestSample(t, in, "e2e:two").IsZero() })
	if got := in.Metric(t.Context(), "telltale_rules_last_reload_successful"); got != 1 {
		t.Errorf("telltale_rules_last_reload_successful: got %v; want 1", got)
	}
	if status, body := in.Post(t.Context(), "/-/reload", nil, nil); status != 200 || body != "rules reloaded: 1 files, 1 groups, 2 rules\n" {
		t.Errorf("reload: got %d %q; want 200 with what was loaded", status, body)
	}
}

// TestRulesReloadNeedsAdmin: /-/reload changes what the collector does, so
// it takes the admin scope.
func TestRulesReloadNeedsAdmin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "e2e.rules.yml"), []byte(oneRule), 0o600)
	tokens := filepath.Join(dir, "tokens.yml")
	os.WriteFile(tokens, []byte("tokens:\n  - name: reader\n    token: reader-token-0123456789\n    scopes: [read]\n  - name: admin\n    token: admin-token-0123456789\n    scopes: [admin]\n"), 0o600)
	in := collectortest.Start(t, "-auth.tokens-file", tokens, "-rules.files", filepath.Join(dir, "e2e.rules.yml"))
	f := func(method, token string, want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, in.URL+"/-/reload", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s /-/reload with %q: got %d; want %d", method, token, resp.StatusCode, want)
		}
	}
	f("POST", "", 401)
	f("POST", "reader-token-0123456789", 403)
	f("GET", "admin-token-0123456789", 405)
	f("POST", "admin-token-0123456789", 200)
}

// TestRulesBadFileAtStart: a rule file that does not load stops the start
// with its file, line and why.
func TestRulesBadFileAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.rules.yml")
	os.WriteFile(file, []byte(badRule), 0o600)
	f := func(pattern, want string) {
		t.Helper()
		cmd := exec.Command(collectortest.Binary(t), "-listen", collectortest.FreeAddr(t), "-data", t.TempDir(), "-host-metrics=false", "-rules.files", pattern)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
			t.Errorf("start with -rules.files=%s: got %v and\n%s\nwant exit 1 and %q", pattern, err, out, want)
		}
	}
	f(file, "collector: -rules.files: invalid rule file:\n"+file+`:6: group "e2e", rule "e2e:one": could not parse expression`)
	f(filepath.Join(dir, "nothing-*.yml"), `-rules.files="`+filepath.Join(dir, "nothing-*.yml")+`" matches no file; check the path`)
}

// TestCheckRulesCommand: collector check-rules prints like promtool check
// rules and exits with its codes: 0 good, 1 a file does not load, 3 lint
// findings with -lint-fatal.
func TestCheckRulesCommand(t *testing.T) {
	t.Parallel()
	bin := collectortest.Binary(t)
	good := filepath.Join("rules", "testdata", "good", "shop.rules.yml")
	bad := filepath.Join("rules", "testdata", "bad", "bad_promql.yml")
	dup := filepath.Join("rules", "testdata", "bad", "duplicate_rule.yml")
	f := func(wantCode int, wantOut, wantErr string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"check-rules"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != wantCode || !strings.Contains(stdout.String(), wantOut) || !strings.Contains(stderr.String(), wantErr) {
			t.Errorf("check-rules %v: got exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				args, code, stdout.String(), stderr.String(), wantCode, wantOut, wantErr)
		}
	}
	f(0, "Checking "+good+"\n  SUCCESS: 2 rules found\n", "", good)
	f(1, "Checking "+bad, "  FAILED:\n"+bad+`:5: group "shop", rule "job:http_requests:rate5m": could not parse expression`, good, bad)
	f(0, "Checking "+dup, "duplicate rule", dup)
	f(3, "Checking "+dup, "duplicate rule", "-lint-fatal", dup)
	f(0, "  SUCCESS: 2 rules found", "", "-lint=none", "-lint-fatal", dup)
	f(1, "Checking "+filepath.Join("rules", "testdata", "bad", "missing.yml"), "no such file or directory", filepath.Join("rules", "testdata", "bad", "missing.yml"))
	for _, shipped := range []string{"telltale.rules.yml", "slo.rules.yml"} {
		f(0, "SUCCESS", "", filepath.Join("..", "rules", shipped))
	}
}
