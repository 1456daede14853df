package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/agent/push"
)

func TestLoadForward(t *testing.T) {
	cfg, err := parseFlags([]string{"-data", t.TempDir(), "-storage.remote-config", filepath.Join("testdata", "remote-config.yaml"),
		"-storage.remote-write-url", "http://10.0.0.1:9009/api/v1/push", "-storage.remote-write-version", "2", "-storage.query-read", "query-api"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.forwardMode() {
		t.Fatal("forwardMode() = false with targets")
	}
	s, err := cfg.loadForward()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range s.targets {
		got = append(got, tg.Name+" "+tg.URL+" "+map[push.Version]string{push.V1: "1.0", push.V2: "2.0"}[tg.Version]+" "+tg.Headers["X-Scope-OrgID"])
	}
	want := []string{
		"cortex http://cortex:9009/api/v1/push 1.0 team-a",
		"thanos-receive_19291 http://thanos-receive:19291/api/v1/receive 1.0 ",
		"10_0_0_1_9009 http://10.0.0.1:9009/api/v1/push 2.0 ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.targets[0].Headers["X-Extra"] != "value" {
		t.Errorf("headers of cortex = %v; want X-Extra", s.targets[0].Headers)
	}
	q := s.query
	if q.URL != "http://cortex:9009/prometheus" || q.Read != "query-api" || q.Headers["X-Scope-OrgID"] != "team-a" || strings.Join(q.DropLabels, ",") != "receive_cluster,tenant_id" {
		t.Errorf("query = %+v; want the file's, read from the flag", q)
	}
}

func TestForwardConfigErrors(t *testing.T) {
	f := func(args []string, file, want string) {
		t.Helper()
		dir := t.TempDir()
		args = append([]string{"-data", dir}, args...)
		if file != "" {
			p := filepath.Join(dir, "remote.yaml")
			os.WriteFile(p, []byte(file), 0o600)
			args = append(args, "-storage.remote-config", p)
		}
		cfg, err := parseFlags(args, os.Stderr)
		if err == nil {
			_, err = cfg.loadForward()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v %q: %v; want an error containing %q", args, file, err, want)
		}
	}
	f([]string{"-storage.remote-write-url", "http://x/api/v1/push"}, "", "-storage.query-url")
	f([]string{"-storage.query-url", "http://x/prometheus"}, "", "forward-mode flag")
	f([]string{"-storage.remote-write-url", "http://x", "-storage.remote-write-version", "3"}, "", "want 1 or 2")
	f(nil, "remote_write:\n  - url: http://x\n    protocol: \"3.0\"\n", `want "1.0" or "2.0"`)
	f(nil, "remote_write:\n  - urll: http://x\n", "field urll not found")
	f(nil, "remote_write:\n  - name: a\n", "url is empty")
	f(nil, "query:\n  url: http://x\n", "without a target")
	f(nil, "remote_write:\n  - url: http://x\n    tls_ca_file: /nonexistent\n", "tls_ca_file")
}

// FuzzRemoteConfig: any file either parses or is an error; none panics.
func FuzzRemoteConfig(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "remote-config.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("remote_write: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseRemoteConfig(data)
		if err != nil {
			return
		}
		for _, rw := range c.RemoteWrite {
			if rw.URL == "" {
				t.Fatalf("parsed a target without url: %+v", rw)
			}
			if _, err := protocolVersion(rw.Protocol); err != nil {
				t.Fatalf("parsed a target with protocol %q", rw.Protocol)
			}
		}
	})
}
