package discovery

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	// Write and rename, as tools that update target files do, so a reader
	// never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileDiscovery(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	writeFile(t, a, `[{"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"env": "prod"}}]`)
	opts, set := testOptions()
	// A long refresh interval: changes must arrive through the watch.
	d, err := NewFile(FileConfig{Files: []string{filepath.Join(dir, "*.json"), filepath.Join(dir, "*.yml")}, RefreshInterval: scrape.Duration(time.Hour)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, d)
	s.waitFor(t, "10.0.0.1:9100", "10.0.0.2:9100")
	checkLabels(t, s.target("10.0.0.1:9100"), map[string]string{"env": "prod", "__meta_filepath": a})

	// A target goes, a group and a YAML file come.
	writeFile(t, a, `[{"targets": ["10.0.0.1:9100"]}, {"targets": ["10.0.0.3:8080"], "labels": {"team": "shop"}}]`)
	s.waitFor(t, "10.0.0.1:9100", "10.0.0.3:8080")
	if got := s.target("10.0.0.1:9100")["env"]; got != "" {
		t.Errorf("env = %q after the file dropped the label", got)
	}
	b := filepath.Join(dir, "b.yml")
	writeFile(t, b, "- targets: ['db:9187']\n  labels: {role: db}\n")
	s.waitFor(t, "10.0.0.1:9100", "10.0.0.3:8080", "db:9187")
	checkLabels(t, s.target("db:9187"), map[string]string{"role": "db", "__meta_filepath": b})

	// A broken file keeps its targets (and counts a failure).
	writeFile(t, a, `[{"targets": [`)
	// Every read reports the good file's groups again, after counting the
	// failure: wait for that.
	deadline := time.After(30 * time.Second)
	for failures(set, "file") == 0 {
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatal("the broken file was not read (no failure counted)")
		}
	}
	if got := s.addresses(); strings.Join(got, ",") != "10.0.0.1:9100,10.0.0.3:8080,db:9187" {
		t.Errorf("after a bad write: %v; want the targets kept", got)
	}
	// A file that goes away takes its targets along.
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "db:9187")
}

func TestParseGroups(t *testing.T) {
	f := func(data string, yamlFormat bool, want string) {
		t.Helper()
		_, err := parseGroups([]byte(data), yamlFormat, "src", "__meta_x", "y")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseGroups(%q) = %v; want an error with %q", data, err, want)
		}
	}
	f(`[null]`, false, "nil target group")
	f(`[{"targets": ["a"], "labels": {"": "x"}}]`, false, "not a valid label name")
	f(`{"targets": []}`, false, "cannot unmarshal")
	f("- targets: [a]\n  lables: {}\n", true, "lables")
	gs, err := parseGroups([]byte(`[{"targets":["a:1"]},{"targets":[]}]`), false, "f.json", "__meta_filepath", "f.json")
	if err != nil || len(gs) != 2 || gs[1].Source != "f.json:1" || gs[0].Labels["__meta_filepath"] != "f.json" {
		t.Errorf("parseGroups = %+v, %v", gs, err)
	}
}

func TestNewFileErrors(t *testing.T) {
	for _, files := range [][]string{nil, {"targets.txt"}, {"/etc/*/t.json"}, {"/etc/[.json"}} {
		if _, err := NewFile(FileConfig{Files: files}, Options{}); err == nil {
			t.Errorf("NewFile(%q): got nil error", files)
		}
	}
}

// FuzzParseGroups: target group files and HTTP SD answers, JSON and YAML.
func FuzzParseGroups(f *testing.F) {
	f.Add([]byte(`[{"targets": ["a:1"], "labels": {"x": "y"}}]`), false)
	f.Add([]byte("- targets: ['db:9187']\n  labels: {role: db}\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, yamlFormat bool) {
		gs, err := parseGroups(data, yamlFormat, "src", "__meta_filepath", "f")
		if err != nil {
			return
		}
		for i, g := range gs {
			if g.Source != fmt.Sprintf("src:%d", i) || g.Labels["__meta_filepath"] != "f" {
				t.Fatalf("group %d: %+v", i, g)
			}
			for _, tl := range g.Targets {
				if len(tl) != 1 {
					t.Fatalf("target %v: want only __address__", tl)
				}
			}
		}
	})
}
