package scenario

import (
	"bytes"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/bench/peer"
)

// buildTelltale builds the collector and the agent from the work tree.
func buildTelltale(t *testing.T) map[peer.Kind]string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir := t.TempDir()
	bins := map[peer.Kind]string{
		peer.Telltale: filepath.Join(dir, "collector"),
		peer.Agent:    filepath.Join(dir, "agent"),
	}
	for k, pkg := range map[peer.Kind]string{peer.Telltale: "./collector", peer.Agent: "./agent"} {
		if err := peer.Build(t.Context(), root, pkg, bins[k]); err != nil {
			t.Fatal(err)
		}
	}
	return bins
}

// TestSmokeAgainstTelltale runs every scenario once with tiny sizes against
// the real collector and agent (no peers: those runs belong to
// `go run ./bench run`), and checks that each stored everything it sent and
// produced every figure.
func TestSmokeAgainstTelltale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	var progress bytes.Buffer
	env := &Env{Bins: buildTelltale(t), WorkDir: t.TempDir(), Sizes: SmokeSizes(), Progress: &progress}
	scenarios, err := All(env.Sizes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(scenarios) != 9 {
		t.Fatalf("got %d scenarios; want 9 (ingest, text, query, query-8h, refresh, refresh-norules, memory, disk, agent)", len(scenarios))
	}
	rn := &Runner{Env: env, Scenarios: scenarios, Rounds: 1}
	results := rn.Run(t.Context())
	if len(results) != len(scenarios) {
		t.Fatalf("got %d results; want one per scenario (%d)\n%s", len(results), len(scenarios), progress.String())
	}
	for i, r := range results {
		s := scenarios[i]
		if r.Err != "" {
			t.Errorf("%s: %s", s.Name, r.Err)
			continue
		}
		if !r.Verified() {
			t.Errorf("%s: sent %d %s, stored %d", s.Name, r.Sent, r.VerifyUnit, r.Stored)
		}
		for _, m := range s.Metrics {
			v, ok := r.Values[m.Key]
			// CPU time has a 10 ms resolution in /proc (0 at smoke sizes),
			// and 500 series weigh less than what a GC gives back, so
			// bytes per series may even come out negative here.
			mayBeZero := strings.Contains(m.Key, "cpu")
			if m.Key == "bytes_per_series" {
				if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s: %s = %v (present %v); want a number", s.Name, m.Key, v, ok)
				}
				continue
			}
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v == 0 && !mayBeZero {
				t.Errorf("%s: %s = %v (present %v); want a positive number", s.Name, m.Key, v, ok)
			}
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", progress.String())
	}
	for _, r := range results {
		notes := strings.Join(r.Notes, " ")
		switch r.Scenario {
		case "disk": // a real block
			if !strings.Contains(notes, "block(s)") {
				t.Errorf("disk notes %q: want the block statistics", r.Notes)
			}
		case "refresh", "refresh-norules": // the dashboards got data, the cache answered
			if !strings.Contains(notes, "result cache over the run") || strings.Contains(notes, " 0 points") || strings.Contains(notes, " 0 steps from the cache") {
				t.Errorf("%s notes %q: want points and cached steps", r.Scenario, r.Notes)
			}
		}
	}
	if !strings.Contains(strings.Join(results[4].Notes, " "), "recorded series backfilled") {
		t.Errorf("refresh notes %q: want the recorded series backfilled", results[4].Notes)
	}
}

// TestProfile checks that -cpuprofile fetches the collector's profile during
// the measured pass and summarises it.
func TestProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	env := &Env{Bins: buildTelltale(t), WorkDir: t.TempDir(), Sizes: SmokeSizes()}
	file := filepath.Join(t.TempDir(), "cpu.pprof")
	_, r, top, err := Profile(t.Context(), env, 300, 60_000, nil, file)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified() || r.Sent != 60_300 {
		t.Fatalf("profiled run: sent %d, stored %d; want 60300 (300 series, then 60,000 samples)", r.Sent, r.Stored)
	}
	if !strings.Contains(top, "flat%") || strings.Count(top, "flat%") != 2 {
		t.Fatalf("pprof -top output lacks its two tables:\n%s", top)
	}
}

func TestAllRejectsUnknownScenario(t *testing.T) {
	_, err := All(SmokeSizes(), []string{"ingest", "latency"})
	if err == nil || !strings.Contains(err.Error(), `"latency"`) || !strings.Contains(err.Error(), "ingest,text,query") {
		t.Fatalf("got %v; want an error naming latency and the choices", err)
	}
	s, err := All(FullSizes(), []string{"ingest"})
	if err != nil || len(s) != 2 || s[0].Name != "ingest-10k" || s[1].Name != "ingest-100k" {
		t.Fatalf("got %v, %v; want ingest-10k and ingest-100k", s, err)
	}
}

func TestParsePeers(t *testing.T) {
	f := func(in string, want []peer.Kind, wantErr string) {
		t.Helper()
		got, err := ParsePeers(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("ParsePeers(%q): got %v; want error containing %q", in, err, wantErr)
			}
			return
		}
		if err != nil || len(got) != len(want) {
			t.Fatalf("ParsePeers(%q): got %v, %v; want %v", in, got, err, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("ParsePeers(%q): got %v; want %v", in, got, want)
			}
		}
	}
	f("vm,prometheus,node_exporter", []peer.Kind{peer.VictoriaMetrics, peer.Prometheus, peer.NodeExporter}, "")
	f(" vm, vm ,", []peer.Kind{peer.VictoriaMetrics}, "")
	f("", nil, "")
	f("vm,thanos", nil, `"thanos"`)
}

func TestQuantile(t *testing.T) {
	f := func(xs []float64, q, want float64) {
		t.Helper()
		if got := Quantile(xs, q); got != want {
			t.Fatalf("Quantile(%v, %v): got %v; want %v", xs, q, got, want)
		}
	}
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	f(xs, 0.5, 5.5)
	f(xs, 0.9, 9)
	f(xs, 1, 10)
	f(xs, 0, 1)
	f([]float64{3, 1, 2}, 0.5, 2)
	f(nil, 0.5, 0)
	if xs[0] != 5 {
		t.Fatalf("Quantile sorted its input: %v", xs)
	}
}

func TestFormatValue(t *testing.T) {
	f := func(v float64, want string) {
		t.Helper()
		if got := FormatValue(v); got != want {
			t.Fatalf("FormatValue(%v): got %q; want %q", v, got, want)
		}
	}
	f(1234567, "1,234,567")
	f(123456.7, "123,457")
	f(999.4, "999")
	f(12.34, "12.3")
	f(1.234, "1.23")
	f(0.01234, "0.0123")
	f(0, "0")
	f(73053, "73,053")
	if got := FormatCount(2010000); got != "2,010,000" {
		t.Fatalf("FormatCount: got %q", got)
	}
	if got := FormatCount(6); got != "6" {
		t.Fatalf("FormatCount(6): got %q", got)
	}
}

func TestMetricValue(t *testing.T) {
	text := []byte("# HELP x\ntelltale_agent_samples_sent_total_other 3\ntelltale_agent_samples_sent_total 1234 1700000000000\nup 1\n")
	if v, ok := metricValue(text, "telltale_agent_samples_sent_total"); !ok || v != 1234 {
		t.Fatalf("got %v, %v; want 1234", v, ok)
	}
	if _, ok := metricValue(text, "missing"); ok {
		t.Fatal("found a missing metric")
	}
}
