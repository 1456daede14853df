package host

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// The parity test runs the real node_exporter v1.12.1 and the Collector on
// the same fixture tree and compares what each reports: metric names,
// HELP and TYPE, label sets and values.

// nodeExporterPath finds node_exporter: $TELLTALE_NODE_EXPORTER, else
// $TELLTALE_TOOLS/node_exporter, else ~/.cache/telltale/bin/node_exporter
// (where `go run ./bench install` and .ci/run put it). Outside CI a missing
// binary skips the test; under CI=true it fails.
func nodeExporterPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TELLTALE_NODE_EXPORTER")
	if p == "" {
		dir := os.Getenv("TELLTALE_TOOLS")
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, ".cache", "telltale", "bin")
		}
		p = filepath.Join(dir, "node_exporter")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node_exporter not found at %s; .ci/run installs it (GOBIN=$TOOLS go install github.com/prometheus/node_exporter@v1.12.1)", p)
		}
		t.Skipf("node_exporter not found at %s; run `go run ./bench install` or: GOBIN=~/.cache/telltale/bin go install github.com/prometheus/node_exporter@v1.12.1", p)
	}
	return p
}

// scrapeNodeExporter runs node_exporter on root and returns one scrape.
func scrapeNodeExporter(t *testing.T, root, textfileDir string) []byte {
	t.Helper()
	bin := nodeExporterPath(t)
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	root = abs(root)
	addr := collectortest.FreeAddr(t)
	cmd := exec.Command(bin, "--web.listen-address="+addr,
		"--path.procfs="+root+"/proc", "--path.sysfs="+root+"/sys", "--path.rootfs="+root,
		"--path.udev.data="+root+"/run/udev/data",
		// Read the files, not the kernel over netlink: the fixture is files.
		"--no-collector.arp.netlink", "--no-collector.netdev.netlink",
		"--collector.textfile.directory="+abs(textfileDir))
	var log collectortest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.Env = append(os.Environ(), "TZ=UTC")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("node_exporter log:\n%s", log.String())
		}
	})
	// Wait until it serves, or gives up (a listen failure ends the process).
	exited := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(exited) }()
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == 200 {
				return body
			}
		}
		select {
		case <-exited:
			t.Fatalf("node_exporter exited before serving: %s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exposition is what one source reported: series (name{sorted labels}) to
// value, and each family's TYPE and HELP.
type exposition struct {
	series map[string]float64
	names  map[string]bool
	meta   map[string]samples.Metadata
}

func seriesKey(ls []samples.Label) string {
	var sb strings.Builder
	name := ""
	var parts []string
	for _, l := range ls {
		if l.Name == "__name__" {
			name = l.Value
			continue
		}
		parts = append(parts, l.Name+"="+strconv.Quote(l.Value))
	}
	sb.WriteString(name)
	sb.WriteString("{" + strings.Join(parts, ",") + "}")
	return sb.String()
}

// fromBatch renders b; with target set, each series first gets the target's
// labels as a Prometheus scrape would give them (honor_labels false).
func fromBatch(t *testing.T, b *samples.Batch, target []samples.Label) exposition {
	t.Helper()
	e := exposition{series: map[string]float64{}, names: map[string]bool{}, meta: map[string]samples.Metadata{}}
	var rb relabel.Builder
	for i := range b.Series {
		s := &b.Series[i]
		var ls []samples.Label
		for _, l := range b.SeriesLabels(s) {
			if l.Value != "" { // empty is absent, as Prometheus stores it
				ls = append(ls, l)
			}
		}
		slices.SortFunc(ls, func(x, y samples.Label) int { return strings.Compare(x.Name, y.Name) })
		if target != nil {
			rb.Reset(ls)
			rb.MergeTarget(target, false)
			ls = rb.Labels(nil)
		}
		k := seriesKey(ls)
		if _, dup := e.series[k]; dup {
			t.Errorf("series %s reported twice", k)
		}
		e.series[k] = b.SeriesSamples(s)[0].V
		e.names[b.Name(s)] = true
	}
	for _, m := range b.Metadata {
		e.meta[m.Name] = m
	}
	return e
}

// liveFamily reports whether a family's values come from the running
// system rather than from the fixture files, for one or both sides.
func liveFamily(name string) bool {
	switch {
	case name == "node_time_seconds", name == "node_scrape_collector_duration_seconds",
		strings.HasPrefix(name, "node_timex_"),
		// node_exporter calls uname(2); the Collector reads Root's /proc/sys/kernel.
		name == "node_uname_info",
		// node_exporter asks the running system about SELinux.
		strings.HasPrefix(name, "node_selinux_"):
		return true
	}
	return false
}

// statfsFamily reports the filesystem values that move while the two
// sides call statfs(2) on the same live directory a moment apart.
func statfsFamily(name string) bool {
	switch name {
	case "node_filesystem_free_bytes", "node_filesystem_avail_bytes", "node_filesystem_files_free":
		return true
	}
	return false
}

func nameOf(series string) string { return series[:strings.IndexByte(series, '{')] }

func TestNodeExporterParity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node_exporter; skipped with -short")
	}
	textfiles, err := filepath.Abs("testdata/textfile")
	if err != nil {
		t.Fatal(err)
	}
	body := scrapeNodeExporter(t, fixtureRoot, textfiles)

	var neBatch samples.Batch
	var p promtext.Parser
	if err := p.Parse(body, 1, &neBatch); err != nil {
		t.Fatalf("cannot parse node_exporter's output: %v", err)
	}
	target := []samples.Label{{Name: "instance", Value: "fixture"}, {Name: "job", Value: "node"}}
	ne := fromBatch(t, &neBatch, target)

	c := New(Options{Root: fixtureRoot, Instance: "fixture", TextfileDir: textfiles})
	var b samples.Batch
	err = c.Collect(time.Now(), &b)
	if err == nil || !strings.Contains(err.Error(), "stale.prom") {
		t.Errorf("Collect: got error %v; want one naming the textfile with timestamps", err)
	}
	c.Metadata(&b)
	ag := fromBatch(t, &b, nil)

	// 1. Metric names: node_exporter's node_* names the agent delivers.
	var neNames, missing []string
	for n := range ne.names {
		if !strings.HasPrefix(n, "node_") {
			continue
		}
		neNames = append(neNames, n)
		if !ag.names[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	delivered := len(neNames) - len(missing)
	ratio := float64(delivered) / float64(len(neNames))
	t.Logf("node_* names: node_exporter %d, the agent delivers %d of them (%.1f%%); missing: %v", len(neNames), delivered, 100*ratio, missing)
	if ratio < 0.95 {
		t.Errorf("the agent delivers %.1f%% of node_exporter's node_* names; want at least 95%%", 100*ratio)
	}
	var extra []string
	for n := range ag.names {
		if strings.HasPrefix(n, "node_") && !ne.names[n] {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	t.Logf("node_* names only the agent reports: %v", extra)

	// 2. HELP and TYPE of every family both report.
	for _, n := range neNames {
		want, ok := ne.meta[n]
		if !ok || !ag.names[n] {
			continue
		}
		got, ok := ag.meta[n]
		wantType := want.Type
		if wantType == "untyped" {
			wantType = "unknown" // remote write's name for it
		}
		if !ok {
			t.Errorf("%s: no metadata; want TYPE %s HELP %q", n, wantType, want.Help)
			continue
		}
		if got.Type != wantType || got.Help != want.Help {
			t.Errorf("%s: TYPE %s HELP %q; want TYPE %s HELP %q", n, got.Type, got.Help, wantType, want.Help)
		}
	}

	// 3. Series and values. node_exporter's collectors the agent does not
	// have are not compared here (the name count above covers them).
	agCollectors := map[string]bool{}
	for k := range ag.series {
		if strings.HasPrefix(k, "node_scrape_collector_success{") {
			agCollectors[k[strings.Index(k, `collector="`)+len(`collector="`):][:strings.IndexByte(k[strings.Index(k, `collector="`)+len(`collector="`):], '"')]] = true
		}
	}
	var diffs []string
	compared := 0
	for k, want := range ne.series {
		n := nameOf(k)
		if !strings.HasPrefix(n, "node_") || !ag.names[n] || liveFamily(n) {
			continue
		}
		if n == "node_scrape_collector_success" {
			coll := k[strings.Index(k, `collector="`)+len(`collector="`):]
			if !agCollectors[coll[:strings.IndexByte(coll, '"')]] {
				continue
			}
		}
		got, ok := ag.series[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s (node_exporter: %v)", k, want))
		case statfsFamily(n):
			// Within what a busy disk changes between the two calls.
			if d := got - want; d > 1<<30 || d < -(1<<30) {
				diffs = append(diffs, fmt.Sprintf("%s = %v; node_exporter %v", k, got, want))
			}
		case got != want:
			diffs = append(diffs, fmt.Sprintf("%s = %v; node_exporter %v", k, got, want))
		}
		compared++
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	t.Logf("compared %d series with node_exporter's, %d differ", compared, len(diffs))
	if compared < 300 {
		t.Errorf("compared only %d series; the fixture should give node_exporter more to report", compared)
	}
}
