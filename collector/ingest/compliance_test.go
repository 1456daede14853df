package ingest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// complianceModule is the public remote-write receiver compliance suite
// (Go tests of package main; its go.mod declares another path, so it is run
// where the module proxy unpacks it rather than imported).
const complianceModule = "github.com/prometheus/compliance/remotewrite/receiver@v0.0.0-20260806071727-67b8327a2e93"

// complianceKnownFailures are the suite's cases the collector fails, each
// with the reason. The test fails if another case fails, or if one of
// these starts passing (then remove it here).
var complianceKnownFailures = map[string]string{
	// An exemplar for a series that was never written: the TSDB's
	// exemplar storage keeps exemplars of series in the head only, and a
	// series cannot be created without a sample, so the exemplar is not
	// kept (counted as exemplar_not_kept, Exemplars-Written: 0, 204).
	// Prometheus' head fails the same way (AppendExemplars: ErrNotFound).
	"TestEdgeCaseCombinations/exemplars_without_data/telltale": "exemplar of a series with no sample",
}

// TestRemoteWriteCompliance runs the public remote-write receiver
// compliance suite against the real collector and then checks, beyond the
// suite (which accepts a 400 for native histograms), that the histograms it
// sent are stored and queryable. It needs the module proxy: it runs under
// CI=true (.ci/run) or with TELLTALE_RW_COMPLIANCE=1, and is skipped
// otherwise.
func TestRemoteWriteCompliance(t *testing.T) {
	if testing.Short() || (os.Getenv("CI") != "true" && os.Getenv("TELLTALE_RW_COMPLIANCE") == "") {
		t.Skip("runs the remote-write compliance suite from the module proxy; set TELLTALE_RW_COMPLIANCE=1 (CI=true runs it)")
	}
	in := collectortest.Start(t)

	dl := exec.CommandContext(t.Context(), "go", "mod", "download", "-json", complianceModule)
	dl.Dir = t.TempDir()
	out, err := dl.Output()
	if err != nil {
		t.Fatalf("cannot download the compliance suite %s from the module proxy: %v\n%s", complianceModule, err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download said %s: %v", out, err)
	}
	suite := filepath.Join(t.TempDir(), "suite")
	if err := os.CopyFS(suite, os.DirFS(mod.Dir)); err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(suite, func(p string, d fs.DirEntry, _ error) error { return os.Chmod(p, 0o755) })
	cfg := filepath.Join(suite, "telltale.yml")
	if err := os.WriteFile(cfg, []byte("remote_write:\n  - name: telltale\n    url: "+in.URL+"/api/v1/write\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run := exec.CommandContext(t.Context(), "go", "test", "-count=1", "-json", ".")
	run.Dir = suite
	run.Env = append(os.Environ(), "PROMETHEUS_RW2_COMPLIANCE_CONFIG_FILE="+cfg, "GOFLAGS=-mod=mod", "CI=")
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, runErr := run.Output()

	results := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ Action, Test string }
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Test != "" && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip") {
			results[ev.Test] = ev.Action
		}
	}
	if len(results) == 0 {
		t.Fatalf("the compliance suite ran no test (%v):\n%s\n%s", runErr, stderr.String(), out)
	}
	isParent := func(name string) bool {
		for other := range results {
			if strings.HasPrefix(other, name+"/") {
				return true
			}
		}
		return false
	}
	var failed, unexpected []string
	passed := 0
	for name, action := range results {
		switch action {
		case "pass":
			passed++
			if _, known := complianceKnownFailures[name]; known {
				unexpected = append(unexpected, name+" passes now: remove it from complianceKnownFailures")
			}
		case "fail":
			failed = append(failed, name)
			_, known := complianceKnownFailures[name]
			if !known && !isParent(name) {
				unexpected = append(unexpected, name+" fails")
			}
		}
	}
	sort.Strings(failed)
	t.Logf("compliance suite: %d of %d cases passed in %s; failed: %v (known: %v)", passed, len(results), time.Since(start).Round(time.Second), failed, complianceKnownFailures)
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		t.Fatalf("compliance suite: %s\n(the suite's output is in the -json stream; rerun with TELLTALE_RW_COMPLIANCE=1 -v)", strings.Join(unexpected, "; "))
	}

	// The suite tolerates a 400 for native histograms; check they are
	// stored and queryable as native histograms.
	for _, name := range []string{"hist1", "hist2", "test_histogram", "request_duration_seconds", "http_request_duration_seconds"} {
		// histogram_count of a float series is empty: a result means a
		// stored native histogram.
		if res := in.Query(t.Context(), "histogram_count("+name+")", time.Time{}); len(res) == 0 {
			t.Errorf("native histogram %s from the suite is not queryable", name)
		}
	}
	if n := in.Metric(t.Context(), "telltale_ingest_committed_exemplars_total"); n < 1 {
		t.Errorf("the suite's exemplars were not stored: telltale_ingest_committed_exemplars_total = %v", n)
	}
}
