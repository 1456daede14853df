package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	f([]string{"-config", noJob}, "scrape_configs[0]", "job_name is missing")
	f([]string{"-config", noUnit}, "line 4", "time.Duration", "with a unit, e.g. 30s")
	f([]string{"-config", longTimeout}, "scrape_configs[0] (job app).scrape_timeout 20s", "lower the timeout")
	for doc, want := range map[string][]string{
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n  - job_name: a\n    static_configs: [{targets: [h:2]}]\n": {"scrape_configs[1] (job a)", "used twice"},
		"scrape_configs:\n  - job_name: a\n":                                                                                                    {"no targets", "static_configs"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1/metrics]}]\n":                                                    {"must be host:port", "metrics_path"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n    relabel_configs: [{action: hashmod, target_label: x}]\n": {"relabel_configs[0]", "non-zero modulus"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n    metric_relabel_configs: [{action: drop, regex: '('}]\n":  {"metric_relabel_configs[0]", "does not compile"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n    relabel_configs: [{sorce_labels: [a]}]\n":                {`unknown key "sorce_labels"`},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1], lables: {}}]\n":                                                {`unknown key "lables"`, "a static_configs entry"},
		"scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [targets.txt]}]\n":                                                     {"file_sd_configs", ".json, .yml or .yaml"},
		"scrape_configs:\n  - job_name: a\n    http_sd_configs: [{url: 'localhost/sd'}]\n":                                                      {"http_sd_configs", "not an absolute"},
		"scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: [{role: node, api_server: 'https://k8s'}]\n":                              {"role \"node\"", "pod and endpoints"},
		"scrape_configs:\n  - job_name: a\n    consul_sd_configs: [{server: 'http://c:8500'}]\n":                                                {"consul_sd_configs", "host:port"},
		"scrape_configs:\n  - job_name: a\n    docker_sd_configs: [{host: 'ftp://x'}]\n":                                                        {"docker_sd_configs", "unix://"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n    scrape_interval: 1x\n":                                   {"line 4", "not a valid duration", "30s"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n    body_size_limit: lots\n":                                 {"body_size_limit", "not a size"},
		"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [h:1]}]\n    sample_limit: -1\n":                                      {"sample_limit -1"},
		"scrape_configs:\n  - job_name: a\n    job: b\n    url: http://h:1/metrics\n":                                                           {"both job and job_name"},
	} {
		f([]string{"-config", write("case.yaml", doc, 0o644)}, want...)
	}
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
		f([]string{"-token-file", unreadable}, "-token-file", "permission denied", "readable by this program's user")
	}
	f([]string{"-tls.ca-file", notPEM}, "-tls.ca-file", "no PEM certificate")
	f([]string{"-remote-write-version", "3"}, "-remote-write-version=3", "use 1 or 2")
	f([]string{"-interval", "10ms"}, "-interval=10ms", "at least 100ms")
	f([]string{"-spool-max-bytes", "lots"}, "spool-max-bytes", "not a size")
	f([]string{"-root", dir}, "-root", "no proc directory")
	f([]string{"-log.level", "loud"}, "-log.level=\"loud\"", "use debug, info")
	f([]string{"-log-level", "loud"}, "-log.level=\"loud\"") // the deprecated spelling names the new one
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
	for _, want := range []string{"configuration OK", "https://collector.example:9470/api/v1/write", "2 labels", "1 scrape jobs (2 static targets, 0 service discovery configs)", "instance web-1", "max 1073741824 bytes"} {
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
	if len(c.jobs) != 1 || c.jobs[0].Timeout.Seconds() != 10 || c.jobs[0].Interval.Seconds() != 30 || c.jobs[0].Static[0].Labels["team"] != "x" ||
		len(c.jobs[0].Static[0].Targets) != 2 || c.jobs[0].Static[0].Targets[1]["__address__"] != "127.0.0.1:8081" {
		t.Errorf("jobs = %+v; want one with 2 targets, a 10s default timeout and team=x", c.jobs)
	}
}

// TestPrometheusShapedConfig: a scrape config as Prometheus writes it.
func TestPrometheusShapedConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte(`scrape_configs:
  - job_name: node
    scrape_interval: 1m
    scrape_timeout: 15s
    metrics_path: /probe
    scheme: https
    params: {module: [http_2xx]}
    honor_labels: true
    honor_timestamps: false
    sample_limit: 1000
    label_limit: 30
    label_name_length_limit: 100
    label_value_length_limit: 200
    body_size_limit: 10MB
    static_configs:
      - targets: [a:9100, b:9100]
        labels: {dc: fra1}
    file_sd_configs:
      - files: [`+dir+`/targets/*.json]
        refresh_interval: 1m
    http_sd_configs:
      - url: http://sd.example/targets
    relabel_configs:
      - source_labels: [__address__]
        regex: '([^:]+):.*'
        target_label: host
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
`), 0o644)
	c, err := parseConfig([]string{"-config", cfg}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	j := c.jobs[0]
	if j.Interval != time.Minute || j.Timeout != 15*time.Second || j.MetricsPath != "/probe" || j.Scheme != "https" ||
		j.Params.Get("module") != "http_2xx" || !j.HonorLabels || j.HonorTimestamps || j.SampleLimit != 1000 || j.LabelLimit != 30 ||
		j.LabelNameLengthLimit != 100 || j.LabelValueLengthLimit != 200 || j.BodySizeLimit != 10<<20 ||
		len(j.Relabel) != 1 || len(j.MetricRelabel) != 1 || len(j.Static) != 1 || len(j.Static[0].Targets) != 2 {
		t.Errorf("job = %+v", j)
	}
	if len(c.discovery) != 2 || c.discovery[0].file == nil || c.discovery[1].http == nil || c.discovery[0].job != "node" {
		t.Errorf("discovery = %+v; want the file and http configs of job node", c.discovery)
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

func TestCollectorReplicas(t *testing.T) {
	cfg, err := parseConfig([]string{"-collector", "http://c1:9470, http://c2:9470/", "-spool-dir", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.collector != "http://c1:9470/api/v1/write" || len(cfg.collectorReplicas) != 1 || cfg.collectorReplicas[0] != "http://c2:9470/api/v1/write" {
		t.Errorf("collector %q, replicas %q; want c1 then c2", cfg.collector, cfg.collectorReplicas)
	}
	if _, err := parseConfig([]string{"-collector", "http://c1:9470,c2:9470"}, io.Discard); err == nil || !strings.Contains(err.Error(), `"c2:9470"`) {
		t.Errorf("a bad replica URL: %v; want an error naming it", err)
	}
}
