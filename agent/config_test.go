package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfiguration runs run() with broken settings: each must fail at
// start with a message naming the flag or YAML key and how to fix it.
func TestBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownTop := write("top.yaml", "labels: {env: prod}\nscrape_intervall: 10s\n", 0o644)
	unknownKey := write("key.yaml", "scrape_configs:\n  - job: app\n    url: http://127.0.0.1:8080/metrics\n    intervall: 30s\n", 0o644)
	badURL := write("url.yaml", "scrape_configs:\n  - job: app\n    urls: [\"localhost:8080/metrics\"]\n", 0o644)
	noJob := write("nojob.yaml", "scrape_configs:\n  - url: http://127.0.0.1:8080/metrics\n", 0o644)
	noUnit := write("nounit.yaml", "scrape_configs:\n  - job: app\n    url: http://127.0.0.1:8080/metrics\n    interval: 30\n", 0o644)
	longTimeout := write("timeout.yaml", "scrape_configs:\n  - job: app\n    url: http://127.0.0.1:8080/metrics\n    timeout: 20s\n", 0o644)
	badYAMLLabel := write("label.yaml", "labels: {\"bad-name\": x}\n", 0o644)
	notYAML := write("bad.yaml", "scrape_configs: [\n", 0o644)
	emptyToken := write("empty-token", "\n", 0o600)
	notPEM := write("ca.pem", "not a certificate", 0o644)
	unreadable := write("secret-token", "tok", 0o000)

	f := func(args []string, wantAll ...string) {
		t.Helper()
		var stderr bytes.Buffer
		err := run(t.Context(), append(args, "-spool-dir", filepath.Join(dir, "spool")), &stderr)
		if err == nil {
			t.Errorf("run(%q): got nil error; want one mentioning %q", args, wantAll)
			return
		}
		for _, want := range wantAll {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("run(%q) error:\n  %v\nwant it to contain %q", args, err, want)
			}
		}
	}
	f([]string{"-config", unknownTop}, `unknown key "scrape_intervall"`, "line 2", "valid keys are labels, scrape_configs")
	f([]string{"-config", unknownKey}, `unknown key "intervall"`, "line 4", "a scrape_configs entry", "interval")
	f([]string{"-config", badURL}, "scrape_configs[0]", `"localhost:8080/metrics"`, "write it like http://")
	f([]string{"-config", noJob}, "scrape_configs[0]", "job is missing")
	f([]string{"-config", noUnit}, "line 4", "time.Duration", "with a unit, e.g. 30s")
	f([]string{"-config", longTimeout}, "scrape_configs[0].timeout 20s", "lower the timeout")
	f([]string{"-config", badYAMLLabel}, "-config labels", `"bad-name"`)
	f([]string{"-config", notYAML}, "-config "+notYAML)
	f([]string{"-config", filepath.Join(dir, "missing.yaml")}, "-config", "no such file")
	f([]string{"-collector", "127.0.0.1:9470"}, "-collector", "write it like http://127.0.0.1:9470")
	f([]string{"-label", "env"}, `-label "env"`, "want name=value")
	f([]string{"-label", "1env=prod"}, `label name "1env"`, "[a-zA-Z_]")
	f([]string{"-label", "__name__=x"}, "reserves")
	f([]string{"-token-file", filepath.Join(dir, "nope")}, "-token-file", "no such file", "fix the path")
	f([]string{"-token-file", emptyToken}, "-token-file", "is empty")
	if os.Geteuid() != 0 { // root reads mode 000 files
		f([]string{"-token-file", unreadable}, "-token-file", "permission denied", "readable by the agent's user")
	}
	f([]string{"-tls.ca-file", notPEM}, "-tls.ca-file", "no PEM certificate")
	f([]string{"-remote-write-version", "3"}, "-remote-write-version=3", "use 1 or 2")
	f([]string{"-interval", "10ms"}, "-interval=10ms", "at least 100ms")
	f([]string{"-spool-max-bytes", "lots"}, "spool-max-bytes", "not a size")
	f([]string{"-root", dir}, "-root", "no proc directory")
	f([]string{"-log-level", "loud"}, "-log-level")
	f([]string{"-no-such-flag"}, "no-such-flag")
	f([]string{"extra-arg"}, `unexpected argument "extra-arg"`)
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("labels: {env: prod, dc: fra1}\nscrape_configs:\n  - job: app\n    urls: [http://127.0.0.1:8080/metrics, http://127.0.0.1:8081/metrics]\n    interval: 30s\n    labels: {team: x}\n"), 0o644)
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"-check-config", "-config", cfg, "-label", "env=staging", "-instance", "web-1", "-spool-max-bytes", "1GiB",
		"-collector", "https://collector.example:9470"}, &stderr)
	if err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
	for _, want := range []string{"configuration OK", "https://collector.example:9470/api/v1/write", "2 labels", "2 scrape targets", "instance web-1", "max 1073741824 bytes"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("check-config output %q lacks %q", stderr.String(), want)
		}
	}
	c, err := parseConfig([]string{"-config", cfg, "-label", "env=staging"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.labels; len(got) != 2 || got[0].Name != "dc" || got[1].Value != "staging" {
		t.Errorf("labels = %v; want dc=fra1 and env=staging (the flag wins)", got)
	}
	if len(c.targets) != 2 || c.targets[1].Timeout.Seconds() != 10 || c.targets[0].Labels[0].Value != "x" {
		t.Errorf("targets = %+v; want 2 with a 10s default timeout and team=x", c.targets)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512MiB": 512 << 20, "1GB": 1e9, "64 KiB": 64 << 10, "1.5GiB": 3 << 29} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "12XB", "-5"} {
		if _, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q): got nil error", in)
		}
	}
}

func TestCollectorURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9470":             "http://127.0.0.1:9470/api/v1/write",
		"http://127.0.0.1:9470/":            "http://127.0.0.1:9470/api/v1/write",
		"https://vm:8428/api/v1/write":      "https://vm:8428/api/v1/write",
		"http://prom:9090/api/v1/write?x=1": "http://prom:9090/api/v1/write?x=1",
	} {
		if got, err := collectorURL(in); err != nil || got != want {
			t.Errorf("collectorURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
