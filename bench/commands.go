package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/report"
	"github.com/telltale-dev/telltale/bench/scenario"
)

type runConfig struct {
	scenarios, peers string
	rounds           int
	out, chart, json string
	binDir, workDir  string
	keep, smoke      bool
	merge            bool
	cpuProfile       string
	noInstall        bool
}

func parseRunFlags(args []string, stderr io.Writer) (*runConfig, error) {
	c := &runConfig{}
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench run [flags]\n\nRuns each scenario against Telltale and each peer in turn (A B A B), in fresh processes with fresh data directories, counts back every sample, and writes the report.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.scenarios, "scenarios", strings.Join(scenario.Groups, ","), "scenarios to run, comma-separated: "+strings.Join(scenario.Groups, ","))
	fs.StringVar(&c.peers, "peers", "vm,prometheus,node_exporter,vmagent,cortex", "peers to compare with, comma-separated: vm, prometheus, node_exporter, vmagent, cortex (the last two in -scenarios=forward); a peer not installed is skipped with a note (vm, node_exporter and vmagent are installed on the fly; Cortex is built by .ci/run)")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; every figure is the median over rounds, with the min–max spread")
	fs.StringVar(&c.out, "out", "bench/RESULTS.md", "Markdown report to write; its analysis block is kept")
	fs.StringVar(&c.chart, "chart", "", "PNG chart to write; default results.png next to -out")
	fs.StringVar(&c.json, "json", "", "raw results to write (for `bench report`); default results.json next to -out")
	fs.StringVar(&c.binDir, "bin", peer.DefaultBinDir(), "binary cache: peers are installed here, Telltale's collector and agent are built here ($TELLTALE_TOOLS overrides the default)")
	fs.StringVar(&c.workDir, "work", "", "directory for the runs' data directories; default a new temporary directory, removed afterwards unless -keep")
	fs.BoolVar(&c.keep, "keep", false, "keep the runs' data directories and logs")
	fs.BoolVar(&c.smoke, "smoke", false, "tiny sizes: checks the whole path in a minute; the figures mean nothing")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "after the rounds, run remote-write ingestion (10k series) once more against Telltale while fetching the collector's CPU profile (/debug/pprof/profile) into this file, and summarise it in the report")
	fs.BoolVar(&c.noInstall, "no-install", false, "do not install missing peers; skip them")
	fs.BoolVar(&c.merge, "merge", true, "keep from the existing -json the scenarios this run does not repeat (and its CPU profile when this run takes none), each named in the report with the run it comes from; false: the report holds this run only")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; all settings are flags, see -h", fs.Arg(0))
	}
	if c.rounds < 1 {
		return nil, fmt.Errorf("-rounds=%d: want at least 1", c.rounds)
	}
	if c.chart == "" {
		c.chart = filepath.Join(filepath.Dir(c.out), "results.png")
	}
	if c.json == "" {
		c.json = filepath.Join(filepath.Dir(c.out), "results.json")
	}
	return c, nil
}

func runCommand(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	// Fail before an hour of measuring, not after it, when -out's folder is missing.
	for _, f := range []string{c.out, c.chart, c.json} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return fmt.Errorf("cannot create the folder of %s: %w", f, err)
		}
	}
	// The report to merge into is read now, so a broken one fails the run
	// before an hour of measuring, not after it.
	var old *report.Report
	if c.merge {
		if old, err = report.ReadJSON(c.json); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w; -merge=false writes a report of this run alone", err)
			}
			old = nil
		}
	}
	sizes := scenario.FullSizes()
	if c.smoke {
		sizes = scenario.SmokeSizes()
	}
	groups := splitList(c.scenarios)
	scenarios, err := scenario.All(sizes, groups)
	if err != nil {
		return err
	}
	selected, err := scenario.ParsePeers(c.peers)
	if err != nil {
		return err
	}
	rep := &report.Report{Run: report.Run{Command: "go run ./bench run " + strings.Join(args, " "), Started: time.Now(),
		Machine: report.DescribeMachine(), Rounds: c.rounds, Versions: map[string]string{}}}
	rep.Command = strings.TrimSpace(rep.Command)
	fmt.Fprintf(stderr, "bench: %s; loadavg %s\n", rep.Machine, rep.Machine.LoadStart)

	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	bins := map[peer.Kind]string{}
	tv := telltaleVersion(ctx, root)
	fmt.Fprintf(stderr, "bench: building the collector (%s)\n", tv)
	bins[peer.Telltale] = filepath.Join(c.binDir, "telltale-collector")
	if err := peer.Build(ctx, root, "./collector", bins[peer.Telltale]); err != nil {
		return fmt.Errorf("cannot build the collector: %w", err)
	}
	rep.Versions[peer.Telltale.Title()] = tv
	if slices.ContainsFunc(scenarios, func(s scenario.Scenario) bool { return s.Subject == peer.Agent }) {
		bins[peer.Agent] = filepath.Join(c.binDir, "telltale-agent")
		if err := peer.Build(ctx, root, "./agent", bins[peer.Agent]); err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("the agent scenario: the agent does not build (%v)", firstLine(err.Error())))
			scenarios = slices.DeleteFunc(scenarios, func(s scenario.Scenario) bool { return s.Subject == peer.Agent })
		} else {
			rep.Versions[peer.Agent.Title()] = tv
		}
	}
	// The peers the chosen scenarios need, installed or skipped.
	var peers []peer.Kind
	for _, k := range selected {
		if !slices.ContainsFunc(scenarios, func(s scenario.Scenario) bool { return slices.Contains(s.Peers, k) }) {
			continue
		}
		m, _ := peer.ModuleFor(k)
		if !m.Installed(c.binDir) {
			if k == peer.Prometheus || k == peer.Cortex || c.noInstall {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s is not installed in %s; `go run ./bench install -peers %s` builds it from %s (about %s on 2 cores), then run again",
					k.Title(), c.binDir, k, m.Path, m.About))
				continue
			}
			if err := peer.Install(ctx, c.binDir, m, stderr); err != nil {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s did not install: %v", k.Title(), firstLine(err.Error())))
				continue
			}
		}
		bins[k] = filepath.Join(c.binDir, m.Binary)
		v, err := peer.ModuleVersion(ctx, bins[k])
		if err != nil {
			v = m.Path
		}
		rep.Versions[k.Title()] = v
		peers = append(peers, k)
	}
	// The forward scenarios run on a Cortex cluster whatever they compare.
	if slices.ContainsFunc(scenarios, func(s scenario.Scenario) bool { return s.Group == "forward" }) {
		m, _ := peer.ModuleFor(peer.Cortex)
		if m.Installed(c.binDir) {
			bins[peer.Cortex] = filepath.Join(c.binDir, m.Binary)
		} else {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("the forward scenarios: Cortex is not in %s; .ci/run builds it (%s)", c.binDir, m.About))
			scenarios = slices.DeleteFunc(scenarios, func(s scenario.Scenario) bool { return s.Group == "forward" })
		}
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "bench: not run: %s\n", s)
	}

	work := c.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "telltale-bench-"); err != nil {
			return fmt.Errorf("cannot create a work directory: %w", err)
		}
	}
	if !c.keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintf(stderr, "bench: keeping data directories and logs in %s\n", work)
	}
	env := &scenario.Env{Bins: bins, WorkDir: work, Sizes: sizes, Progress: stderr}
	rn := &scenario.Runner{Env: env, Scenarios: scenarios, Peers: peers, Rounds: c.rounds}
	rep.Scenarios = scenarios
	rep.Results = rn.Run(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.cpuProfile != "" {
		// Three times the samples of a measured pass: a few seconds of
		// profile even when ingestion runs at millions of samples/s.
		series, samples := sizes.IngestSeries[0], 3*sizes.IngestSamples
		fmt.Fprintf(stderr, "bench: profiling the collector under remote-write ingestion (%d series, %d samples)\n", series, samples)
		ps, r, top, err := scenario.Profile(ctx, env, series, samples, rep.Results, c.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "bench: no profile: %v\n", err)
		} else {
			rep.Profile = top
			rep.ProfileRun = fmt.Sprintf("an extra remote-write ingestion run against Telltale: %d series, %d measured samples, %s",
				series, samples, strings.ReplaceAll(strings.ReplaceAll(scenario.Summary(ps, r), "\n", " "), "; ", ", "))
			rep.ProfileCommand = fmt.Sprintf("GET <collector>/debug/pprof/profile?seconds=%d", env.ProfileSeconds)
		}
	}
	rep.Finished = time.Now()
	rep.Machine.LoadEnd = report.LoadAvg()
	if old != nil {
		rep.Merge(old)
	}
	if err := writeReport(rep, c.out, c.chart, c.json); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: wrote %s, %s and %s; loadavg %s at the end\n", c.out, c.chart, c.json, rep.Machine.LoadEnd)
	failed := 0
	for _, r := range rep.Results {
		if !r.Verified() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d runs failed or lost data; see %s", failed, c.out)
	}
	return nil
}

// writeReport writes the JSON, the Markdown (keeping the analysis block of
// the existing file) and the chart.
func writeReport(rep *report.Report, out, chart, jsonFile string) error {
	if err := rep.WriteJSON(jsonFile); err != nil {
		return err
	}
	old, _ := os.ReadFile(out)
	rel, err := filepath.Rel(filepath.Dir(out), chart)
	if err != nil {
		rel = chart
	}
	if err := rep.Chart(chart); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		rel = ""
	}
	if err := os.WriteFile(out, rep.Markdown(report.Analysis(old), rel), 0o644); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	return nil
}

func installCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	peers := fs.String("peers", "vm,node_exporter", "peers to install, comma-separated: vm, node_exporter, prometheus (Prometheus takes about 15 min on 2 cores)")
	binDir := fs.String("bin", peer.DefaultBinDir(), "binary cache to install into")
	force := fs.Bool("force", false, "reinstall peers already in the cache")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench install [flags]\n\nInstalls the pinned peers with go install from the Go module proxy:\n")
		for _, m := range peer.Modules {
			fmt.Fprintf(stderr, "  %-14s %s\n", m.Kind, m.Path)
		}
		fmt.Fprintf(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	kinds, err := scenario.ParsePeers(*peers)
	if err != nil {
		return err
	}
	for _, k := range kinds {
		m, _ := peer.ModuleFor(k)
		if m.Installed(*binDir) && !*force {
			fmt.Fprintf(stderr, "%s: already in %s (-force reinstalls)\n", m.Binary, *binDir)
			continue
		}
		if err := peer.Install(ctx, *binDir, m, stderr); err != nil {
			return err
		}
	}
	if !slices.Contains(kinds, peer.Prometheus) {
		fmt.Fprintf(stderr, "Prometheus is optional: `go run ./bench install -peers prometheus` builds it (about 15 min on 2 cores).\n")
	}
	return nil
}

func reportCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "bench/results.json", "results written by `bench run`")
	out := fs.String("out", "bench/RESULTS.md", "Markdown report to write; its analysis block is kept")
	chart := fs.String("chart", "", "PNG chart; default results.png next to -out")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *chart == "" {
		*chart = filepath.Join(filepath.Dir(*out), "results.png")
	}
	rep, err := report.ReadJSON(*in)
	if err != nil {
		return err
	}
	old, _ := os.ReadFile(*out)
	rel, err := filepath.Rel(filepath.Dir(*out), *chart)
	if err != nil {
		rel = *chart
	}
	if err := rep.Chart(*chart); err != nil {
		return err
	}
	if err := os.WriteFile(*out, rep.Markdown(report.Analysis(old), rel), 0o644); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s and %s\n", *out, *chart)
	return nil
}

// moduleRoot returns the directory of Telltale's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside Telltale's module: run bench from the repository, e.g. `go run ./bench run`")
	}
	return filepath.Dir(gomod), nil
}

// telltaleVersion describes the work tree: commit and whether it has
// uncommitted changes.
func telltaleVersion(ctx context.Context, root string) string {
	b, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "work tree"
	}
	return "git " + strings.TrimSpace(string(b))
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
