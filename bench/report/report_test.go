package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/scenario"
)

// sample builds a report with two rounds: Telltale ingests at 2M samples/s
// and 0.5 CPU-s/1M, VictoriaMetrics at 1M and 1.0 (Telltale ahead 2×);
// on disk Telltale needs 3 bytes/sample and VictoriaMetrics 1 (behind 3×).
func sample() *Report {
	scs := []scenario.Scenario{
		{Name: "ingest-10k", Title: "Ingest", What: "what ingest measures", Subject: peer.Telltale,
			Peers:   []peer.Kind{peer.VictoriaMetrics, peer.Prometheus},
			Metrics: []scenario.Metric{{Key: "rate", Label: "samples/s"}, {Key: "cpu", Label: "CPU-s per 1M", Lower: true}}},
		{Name: "disk", Title: "Disk", What: "what disk measures", Subject: peer.Telltale, Peers: []peer.Kind{peer.VictoriaMetrics},
			Metrics:       []scenario.Metric{{Key: "bps", Label: "bytes/sample", Lower: true}},
			NotComparable: map[peer.Kind]string{peer.Prometheus: "because"}},
	}
	res := func(s string, k peer.Kind, round int, vals map[string]float64) scenario.Result {
		return scenario.Result{Scenario: s, System: k, Round: round, Values: vals, Sent: 100, Stored: 100, VerifyUnit: "samples"}
	}
	r := &Report{Run: Run{Command: "go run ./bench run -rounds 2", Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Rounds: 2,
		Machine:  Machine{CPU: "Test CPU", Cores: 2, MemTotal: 8 << 30, Kernel: "6.1", GoVersion: "go1.26", LoadStart: "1.00 1.00 1.00", LoadEnd: "2.00 2.00 2.00"},
		Versions: map[string]string{"Telltale": "git abc", "VictoriaMetrics": "v1.151.0"}},
		Skipped: []string{"Prometheus is not installed"}, Scenarios: scs}
	r.Finished = r.Started.Add(20 * time.Minute)
	for round := range 2 {
		r.Results = append(r.Results,
			res("ingest-10k", peer.Telltale, round, map[string]float64{"rate": 2e6 + float64(round)*2e5, "cpu": 0.5}),
			res("ingest-10k", peer.VictoriaMetrics, round, map[string]float64{"rate": 1e6, "cpu": 1.0}),
			res("disk", peer.Telltale, round, map[string]float64{"bps": 3}),
			res("disk", peer.VictoriaMetrics, round, map[string]float64{"bps": 1}),
		)
	}
	return r
}

func TestMarkdown(t *testing.T) {
	r := sample()
	md := string(r.Markdown("", "results.png"))
	for _, want := range []string{
		"`go run ./bench run -rounds 2`",
		"Test CPU, 2 cores, 8.0 GiB RAM, Linux 6.1, go1.26",
		"loadavg 1.00 1.00 1.00 at the start, 2.00 2.00 2.00 at the end",
		"> Not run: Prometheus is not installed",
		"![Telltale against each peer, per figure](results.png)",
		"| samples/s | higher | 2,100,000 (2,000,000–2,200,000) | 1,000,000 | 2.1 (Telltale ahead 2.1×) |",
		"| CPU-s per 1M | lower | 0.5 | 1.00 | 0.5 (Telltale ahead 2×) |",
		"| bytes/sample | lower | 3.00 | 1.00 | 3 (**Telltale behind 3×**) |",
		"- **disk**, bytes/sample: 3× behind VictoriaMetrics",
		"✓ 2/2 runs, 100 samples each",
		"Not compared with Prometheus: because.",
		analysisStart, analysisEnd,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	// Prometheus has no results: no column for it.
	if strings.Contains(md, "| Prometheus |") {
		t.Errorf("Markdown has a Prometheus column without Prometheus results")
	}
	if strings.Contains(md, "Failed or unverified") {
		t.Errorf("Markdown lists failures where there are none")
	}
	if t.Failed() {
		t.Logf("Markdown:\n%s", md)
	}
}

func TestMarkdownKeepsAnalysisAndListsFailures(t *testing.T) {
	r := sample()
	r.Results[1].Stored = 90 // VictoriaMetrics lost 10 samples in round 1
	r.Results = append(r.Results, scenario.Result{Scenario: "disk", System: peer.Telltale, Round: 1, Err: "boom\nsecond line", Stored: -1})
	old := "# old\n" + analysisStart + "\nhand-written: the WAL is uncompressed\n" + analysisEnd + "\nrest\n"
	md := string(r.Markdown(Analysis([]byte(old)), ""))
	for _, want := range []string{
		"hand-written: the WAL is uncompressed",
		"**✗ 1/2 runs complete** (see failures)",
		"## Failed or unverified runs",
		"- round 1, ingest-10k, VictoriaMetrics: sent 100 samples, stored 90",
		"- round 2, disk, Telltale: boom ⏎ second line",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if strings.Contains(md, "write it here") {
		t.Errorf("the placeholder replaced the kept analysis")
	}
	if t.Failed() {
		t.Logf("Markdown:\n%s", md)
	}
}

func TestAnalysis(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := Analysis([]byte(in)); got != want {
			t.Fatalf("Analysis(%q): got %q; want %q", in, got, want)
		}
	}
	f("a "+analysisStart+" x "+analysisEnd+" b", analysisStart+" x "+analysisEnd)
	f("no block", "")
	f(analysisEnd+" "+analysisStart, "")
}

func TestComparisons(t *testing.T) {
	cs := sample().Comparisons()
	if len(cs) != 3 {
		t.Fatalf("got %d comparisons; want 3 (rate, cpu, bytes vs VictoriaMetrics)", len(cs))
	}
	f := func(c Comparison, ratio, adv float64, verdict string) {
		t.Helper()
		if c.Ratio != ratio || c.Advantage != adv || c.Verdict() != verdict {
			t.Fatalf("%s: got ratio %v advantage %v %q; want %v %v %q", c.Metric, c.Ratio, c.Advantage, c.Verdict(), ratio, adv, verdict)
		}
	}
	f(cs[0], 2.1, 2.1, "Telltale ahead 2.1×")
	f(cs[1], 0.5, 2, "Telltale ahead 2×")
	f(cs[2], 3, 1.0/3, "**Telltale behind 3×**")
	if v := (Comparison{Advantage: 1.04}).Verdict(); v != "even (within 5%)" {
		t.Fatalf("4%% apart: got %q; want even", v)
	}
}

func TestChartWritesAPNG(t *testing.T) {
	file := filepath.Join(t.TempDir(), "chart.png")
	if err := sample().Chart(file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w < 500 {
		t.Fatalf("chart is %d px wide; want a readable chart", w)
	}
	empty := &Report{}
	if err := empty.Chart(file); err == nil || !strings.Contains(err.Error(), "no comparisons") {
		t.Fatalf("empty report: got %v; want no comparisons", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "results.json")
	r := sample()
	if err := r.WriteJSON(file); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(back.Markdown("", "x.png")), string(r.Markdown("", "x.png")); got != want {
		t.Fatalf("Markdown after a JSON round trip differs:\n%s\nwant:\n%s", got, want)
	}
	if _, err := ReadJSON(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "bench run") {
		t.Fatalf("got %v; want a hint to run bench", err)
	}
}

func TestMachineParsers(t *testing.T) {
	f, err := os.Open("testdata/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := parseCPUModel(f), "Intel(R) Xeon(R) Processor"; got != want {
		t.Fatalf("cpu: got %q; want %q", got, want)
	}
	m, err := os.Open("testdata/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got, want := parseMemTotal(m), int64(24684084)<<10; got != want {
		t.Fatalf("MemTotal: got %d; want %d", got, want)
	}
	l, err := os.ReadFile("testdata/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parseLoadAvg(l), "1.53 4.92 6.61"; got != want {
		t.Fatalf("loadavg: got %q; want %q", got, want)
	}
	if got := parseCPUModel(strings.NewReader("processor: 0\n")); got != "unknown CPU" {
		t.Fatalf("no model name: got %q", got)
	}
	if got := parseMemTotal(strings.NewReader("MemTotal: lots kB\n")); got != 0 {
		t.Fatalf("bad MemTotal: got %d; want 0", got)
	}
	if got := parseLoadAvg([]byte("1.0")); got != "unknown" {
		t.Fatalf("short loadavg: got %q", got)
	}
}

// FuzzMachineParsers feeds arbitrary text to the /proc parsers: no panics,
// and a MemTotal is never negative.
func FuzzMachineParsers(f *testing.F) {
	for _, name := range []string{"cpuinfo", "meminfo", "loadavg"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseCPUModel(bytes.NewReader(b))
		_ = parseLoadAvg(b)
		if n := parseMemTotal(bytes.NewReader(b)); n < 0 {
			t.Fatalf("MemTotal %d < 0", n)
		}
	})
}

// TestMerge checks that a run of some scenarios keeps the others from the
// earlier report, with the run each comes from, in the groups' order.
func TestMerge(t *testing.T) {
	old := sample() // ingest-10k and disk, with a profile
	old.Profile, old.ProfileCommand, old.ProfileRun = "flat% top", "GET /debug/pprof/profile", "an extra run"
	old.Scenarios[0].Group, old.Scenarios[1].Group = "ingest", "disk"
	earlier := Kept{Run: Run{Command: "go run ./bench run -scenarios agent", Rounds: 1}, Scenarios: []string{"agent", "memory"}}
	old.Earlier = []Kept{earlier}
	old.Scenarios = append(old.Scenarios, scenario.Scenario{Name: "agent", Group: "agent", Title: "Agent", Subject: peer.Agent})
	old.Results = append(old.Results, scenario.Result{Scenario: "agent", System: peer.Agent, Values: map[string]float64{"cpu": 1}, Sent: 1, Stored: 1})

	r := &Report{Run: Run{Command: "go run ./bench run -scenarios disk,refresh", Rounds: 1},
		Scenarios: []scenario.Scenario{
			{Name: "refresh", Group: "refresh", Title: "Refresh", Subject: peer.Telltale, Peers: []peer.Kind{peer.VictoriaMetrics},
				Metrics: []scenario.Metric{{Key: "cpu", Label: "CPU-ms", Lower: true}}},
			{Name: "disk", Group: "disk", Title: "Disk again", Subject: peer.Telltale, Peers: []peer.Kind{peer.VictoriaMetrics},
				Metrics: []scenario.Metric{{Key: "bps", Label: "bytes/sample", Lower: true}}},
		},
		Results: []scenario.Result{
			{Scenario: "disk", System: peer.Telltale, Values: map[string]float64{"bps": 2}, Sent: 5, Stored: 5},
			{Scenario: "disk", System: peer.VictoriaMetrics, Values: map[string]float64{"bps": 1}, Sent: 5, Stored: 5},
		}}
	r.Merge(old)
	var names []string
	for _, s := range r.Scenarios {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "ingest-10k,refresh,disk,agent"; got != want {
		t.Fatalf("scenarios: got %s; want %s (the groups' order, this run's disk)", got, want)
	}
	if st := r.Stat("disk", "bps", peer.Telltale); st.Median != 2 || st.N != 1 {
		t.Fatalf("disk: got %+v; want this run's 2 only", st)
	}
	if st := r.Stat("ingest-10k", "cpu", peer.Telltale); st.N != 2 {
		t.Fatalf("ingest-10k kept: got %+v; want the 2 earlier rounds", st)
	}
	if len(r.Earlier) != 2 {
		t.Fatalf("got %d earlier runs; want 2: %+v", len(r.Earlier), r.Earlier)
	}
	if e := r.Earlier[0]; e.Command != old.Command || strings.Join(e.Scenarios, ",") != "ingest-10k" || !e.Profile {
		t.Fatalf("earlier[0]: got %+v; want old's command with ingest-10k and the profile", e)
	}
	if e := r.Earlier[1]; e.Command != earlier.Command || strings.Join(e.Scenarios, ",") != "agent" || e.Profile {
		t.Fatalf("earlier[1]: got %+v; want the agent run with agent only (memory is not in old)", e)
	}
	if r.Profile != "flat% top" {
		t.Fatalf("profile not kept")
	}
	md := string(r.Markdown("", ""))
	for _, want := range []string{
		"> Kept from an earlier run, which this one did not repeat: the sections `ingest-10k` and the CPU profile, from `go run ./bench run -rounds 2`",
		"> Kept from an earlier run, which this one did not repeat: the sections `agent`, from `go run ./bench run -scenarios agent`",
		"## Disk again (`disk`)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("Markdown:\n%s", md)
	}
	// Merging again keeps nothing twice.
	r2 := &Report{Run: Run{Command: "again"}, Scenarios: []scenario.Scenario{{Name: "agent", Group: "agent", Subject: peer.Agent}}}
	r2.Merge(r)
	if len(r2.Earlier) != 2 || r2.Earlier[0].Command != r.Command || strings.Join(r2.Earlier[1].Scenarios, ",") != "ingest-10k" {
		t.Fatalf("second merge: got %+v; want this run's refresh and disk, then ingest-10k from the first", r2.Earlier)
	}
}

// TestPeersFrom checks a scenario compared with another one's peer runs.
func TestPeersFrom(t *testing.T) {
	m := []scenario.Metric{{Key: "cpu", Label: "CPU-ms", Lower: true}}
	r := &Report{Run: Run{Command: "x", Rounds: 1}, Scenarios: []scenario.Scenario{
		{Name: "refresh", Title: "With", Subject: peer.Telltale, Peers: []peer.Kind{peer.VictoriaMetrics}, Metrics: m},
		{Name: "refresh-norules", Title: "Without", Subject: peer.Telltale, Peers: []peer.Kind{peer.VictoriaMetrics}, Metrics: m, PeersFrom: "refresh"},
	}, Results: []scenario.Result{
		{Scenario: "refresh", System: peer.Telltale, Values: map[string]float64{"cpu": 10}, Sent: 1, Stored: 1},
		{Scenario: "refresh", System: peer.VictoriaMetrics, Values: map[string]float64{"cpu": 40}, Sent: 1, Stored: 1},
		{Scenario: "refresh-norules", System: peer.Telltale, Values: map[string]float64{"cpu": 80}, Sent: 1, Stored: 1},
	}}
	cs := r.Comparisons()
	if len(cs) != 2 || cs[1].Scenario != "refresh-norules" || cs[1].Ratio != 2 {
		t.Fatalf("got %+v; want refresh-norules at 80/40 = 2 against refresh's VictoriaMetrics run", cs)
	}
	md := string(r.Markdown("", ""))
	for _, want := range []string{
		"| CPU-ms | lower | 80.0 | 40.0 | 2 (**Telltale behind 2×**) |",
		"VictoriaMetrics: the runs of `refresh`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}
