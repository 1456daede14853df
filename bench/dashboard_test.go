package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDashboardCommandSmoke runs the dashboard measurement at toy size: it
// builds and loads a collector, backfills the recorded series and refreshes
// both dashboards both ways; the command itself fails unless both ways
// return the same points. No figure is asserted.
func TestDashboardCommandSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	out := filepath.Join(t.TempDir(), "DASHBOARDS.md")
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"dashboard", "-services", "1", "-instances", "1", "-hosts", "1", "-span", "10m", "-runs", "1", "-out", out}, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Requests: the variables' lookups, two annotations and every panel
	// target (recorded ones in brackets).
	for _, want := range []string{"| telltale-service | `service=cart env=prod route=.*` | 25 (11) |", "| telltale-hosts | `host=.*` | 27 (3) |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestDashboardCommandRejectsBadInput(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"dashboard", "-runs", "0"}, &stderr); err == nil || !strings.Contains(err.Error(), "-runs must be at least 1") {
		t.Fatalf("got %v; want the flag named", err)
	}
}
