package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRejectsBadInput(t *testing.T) {
	f := func(args []string, want string) {
		t.Helper()
		var stderr bytes.Buffer
		err := run(t.Context(), args, &stderr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("run %q: got %v; want an error containing %q", args, err, want)
		}
	}
	f(nil, "no command")
	f([]string{"bench"}, `unknown command "bench"`)
	f([]string{"run", "-rounds", "0"}, "-rounds=0")
	f([]string{"run", "-scenarios", "ingest,latency"}, `"latency"`)
	f([]string{"run", "-peers", "vm,influxdb"}, `"influxdb"`)
	f([]string{"run", "extra"}, `unexpected argument "extra"`)
	f([]string{"install", "-peers", "thanos"}, `"thanos"`)
	f([]string{"report", "-in", filepath.Join(t.TempDir(), "none.json")}, "bench run")
	f([]string{"dashboard", "-instances", "0"}, "-instances=0")
	// A results file to merge into that is not one fails before measuring.
	dir := t.TempDir()
	bad := filepath.Join(dir, "results.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	f([]string{"run", "-out", filepath.Join(dir, "RESULTS.md"), "-bin", dir}, "-merge=false")
}

func TestRunFlagsDefaultFilesNextToOut(t *testing.T) {
	c, err := parseRunFlags([]string{"-out", "/tmp/x/R.md"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.chart != "/tmp/x/results.png" || c.json != "/tmp/x/results.json" || c.rounds != 3 {
		t.Fatalf("got chart %q json %q rounds %d; want /tmp/x/results.png, /tmp/x/results.json, 3", c.chart, c.json, c.rounds)
	}
}

func TestReportCommandRewritesFromJSON(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("testdata", "results.json")
	out := filepath.Join(dir, "RESULTS.md")
	if err := os.WriteFile(out, []byte("<!-- analysis -->\nkept words\n<!-- /analysis -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"report", "-in", in, "-out", out}, &stderr); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kept words", "## Remote-write ingestion", "![Telltale against each peer, per figure](results.png)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "results.png")); err != nil {
		t.Errorf("no chart: %v", err)
	}
}
