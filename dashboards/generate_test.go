package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/dashboards/provision"
)

// The committed JSON and provisioning files are what the code generates:
// change the Go code, regenerate, commit both.
func TestCommittedFilesAreFresh(t *testing.T) {
	tmp := t.TempDir()
	var log bytes.Buffer
	if err := run(t.Context(), []string{"generate", "-out", tmp}, &log); err != nil {
		t.Fatalf("generate: %v\n%s", err, log.String())
	}
	generated := map[string]bool{}
	err := filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(tmp, p)
		generated[filepath.ToSlash(name)] = true
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(name) // the test runs in dashboards/
		if err != nil {
			t.Errorf("%s is not committed: run go run ./dashboards generate", name)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dashboards/%s is stale: run go run ./dashboards generate", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) != 7 {
		t.Errorf("generated %d files; want 4 dashboards, 2 provisioning files and the recording rules", len(generated))
	}
	committed, _ := filepath.Glob(filepath.Join(provision.JSONDir, "*.json"))
	for _, p := range committed {
		if !generated[filepath.ToSlash(p)] {
			t.Errorf("dashboards/%s is committed but not generated any more: run go run ./dashboards generate", p)
		}
	}
}

func TestGenerateCheck(t *testing.T) {
	tmp := t.TempDir()
	var log bytes.Buffer
	if err := run(t.Context(), []string{"generate", "-out", tmp, "-check"}, &log); err == nil || !strings.Contains(err.Error(), "run go run ./dashboards generate") {
		t.Fatalf("check on an empty folder: got %v; want stale files and the hint", err)
	}
	if err := run(t.Context(), []string{"generate", "-out", tmp}, &log); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"generate", "-out", tmp, "-check"}, &log); err != nil {
		t.Fatalf("check after generate: %v", err)
	}
	// Another collector URL changes the dashboards.
	err := run(t.Context(), []string{"generate", "-out", tmp, "-check", "-collector.public-url", "https://telltale.example.com"}, &log)
	if err == nil || !strings.Contains(err.Error(), "json/telltale-hosts.json") {
		t.Fatalf("check with another collector URL: got %v; want the dashboards stale", err)
	}
	extra := filepath.Join(tmp, provision.JSONDir, "gone.json")
	os.WriteFile(extra, []byte("{}"), 0o644)
	err = run(t.Context(), []string{"generate", "-out", tmp, "-check"}, &log)
	if err == nil || !strings.Contains(err.Error(), "gone.json (not generated any more)") {
		t.Fatalf("check with an extra dashboard: got %v; want it reported", err)
	}
}

func TestGenerateErrors(t *testing.T) {
	f := func(args []string, wantInErr string) {
		t.Helper()
		var log bytes.Buffer
		err := run(t.Context(), args, &log)
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Fatalf("run %q: got %v; want an error containing %q", args, err, wantInErr)
		}
	}
	// The test runs in dashboards/, where ./dashboards/board does not exist.
	f([]string{"generate"}, "run from the repository root or pass -out")
	f([]string{"generate", "-out", t.TempDir(), "-datasource.url", "collector:9470"}, "-datasource.url")
	f([]string{"generate", "-out", t.TempDir(), "-collector.public-url", "nope"}, "-collector.public-url")
	f([]string{"generate", "-out", t.TempDir(), "extra"}, `unexpected argument "extra"`)
	f([]string{}, "no command")
	f([]string{"deploy"}, `unknown command "deploy"`)
}
