// Package report turns bench/ results into bench/RESULTS.md (tables of
// medians with their min–max spread over rounds, Telltale/peer ratios, which
// direction is better, a plain "behind" where Telltale is behind, the
// verification of every run) and a PNG chart, and describes the machine the
// numbers come from.
//
// Promises: a figure appears only from runs that finished without error;
// a peer that did not run is named with the reason; the report keeps the
// hand-written analysis block of the previous RESULTS.md
// (between <!-- analysis --> and <!-- /analysis -->); a run of some
// scenarios merged into an earlier report (Merge) keeps the earlier
// sections it did not repeat, each named with the run it comes from.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/scenario"
)

// Report is everything RESULTS.md and the chart are made of; it is also
// saved as JSON so the Markdown can be regenerated without a new run.
type Report struct {
	Run
	// Skipped says which selected peers did not run and why.
	Skipped   []string            `json:"skipped,omitempty"`
	Scenarios []scenario.Scenario `json:"scenarios"`
	Results   []scenario.Result   `json:"results"`
	// Profile is `go tool pprof -top` of the collector under ingestion.
	Profile        string `json:"profile,omitempty"`
	ProfileCommand string `json:"profile_command,omitempty"`
	ProfileRun     string `json:"profile_run,omitempty"`
	// Earlier are the runs whose scenarios (and profile) this report
	// keeps because this run did not repeat them; see Merge.
	Earlier []Kept `json:"earlier,omitempty"`
}

// Run says where figures come from: one `bench run`.
type Run struct {
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	Rounds   int       `json:"rounds"`
	// Versions maps a system's title to what ran (module and version).
	Versions map[string]string `json:"versions"`
}

// Kept is an earlier run whose figures a report keeps.
type Kept struct {
	Run
	// Scenarios are the names of the scenarios kept from the run.
	Scenarios []string `json:"scenarios"`
	// Profile is true when the report's CPU profile comes from the run.
	Profile bool `json:"profile,omitempty"`
}

// Merge adds to r what old has and r does not: the scenarios r did not
// run, with their results, and old's profile when r has none. Each kept
// part is listed in r.Earlier with the run it comes from. Scenarios end up
// in the order of scenario.Groups.
func (r *Report) Merge(old *Report) {
	ran := map[string]bool{}
	for _, s := range r.Scenarios {
		ran[s.Name] = true
	}
	kept := map[string]bool{}
	for _, s := range old.Scenarios {
		if !ran[s.Name] {
			kept[s.Name] = true
			r.Scenarios = append(r.Scenarios, s)
		}
	}
	for _, res := range old.Results {
		if kept[res.Scenario] {
			r.Results = append(r.Results, res)
		}
	}
	keepProfile := r.Profile == "" && old.Profile != ""
	if keepProfile {
		r.Profile, r.ProfileCommand, r.ProfileRun = old.Profile, old.ProfileCommand, old.ProfileRun
	}
	// old's own run, then the runs old had kept, each with what is still kept.
	runs := append([]Kept{{Run: old.Run, Profile: keepProfile}}, old.Earlier...)
	claimed := map[string]bool{}
	for _, e := range old.Earlier {
		for _, n := range e.Scenarios {
			claimed[n] = true
		}
		if e.Profile {
			runs[0].Profile = false // the profile is the earlier run's
		}
	}
	for _, s := range old.Scenarios {
		if kept[s.Name] && !claimed[s.Name] {
			runs[0].Scenarios = append(runs[0].Scenarios, s.Name)
		}
	}
	for i := range runs {
		if i > 0 {
			runs[i].Scenarios = slices.DeleteFunc(slices.Clone(runs[i].Scenarios), func(n string) bool { return !kept[n] })
			runs[i].Profile = runs[i].Profile && keepProfile
		}
		if len(runs[i].Scenarios) > 0 || runs[i].Profile {
			r.Earlier = append(r.Earlier, runs[i])
		}
	}
	slices.SortStableFunc(r.Scenarios, func(a, b scenario.Scenario) int {
		return slices.Index(scenario.Groups, a.Group) - slices.Index(scenario.Groups, b.Group)
	})
}

// source returns the scenario whose results hold system k's figures for
// scenario s: s itself, or s.PeersFrom for its peers.
func source(s scenario.Scenario, k peer.Kind) string {
	if k != s.Subject && s.PeersFrom != "" {
		return s.PeersFrom
	}
	return s.Name
}

// WriteJSON saves r to file.
func (r *Report) WriteJSON(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write results: %w", err)
	}
	return nil
}

// ReadJSON loads a report saved by WriteJSON.
func ReadJSON(file string) (*Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read results: %w; run `go run ./bench run` first", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: not a bench/ results file: %w", file, err)
	}
	return &r, nil
}

// Stat is the aggregate of one metric of one system over rounds.
type Stat struct {
	Median, Min, Max float64
	N                int // rounds with a value
}

// Stat aggregates metric key of system k in scenario s over the runs that
// finished without error.
func (r *Report) Stat(s, key string, k peer.Kind) Stat {
	var xs []float64
	for _, res := range r.Results {
		if res.Scenario == s && res.System == k && res.Err == "" && res.Round >= 0 {
			if v, ok := res.Values[key]; ok && !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
	}
	if len(xs) == 0 {
		return Stat{}
	}
	return Stat{Median: scenario.Quantile(xs, 0.5), Min: slices.Min(xs), Max: slices.Max(xs), N: len(xs)}
}

// Comparison is Telltale against one peer on one metric.
type Comparison struct {
	Scenario, Metric string
	Label            string
	Peer             peer.Kind
	Lower            bool
	// Ratio is Telltale's median ÷ the peer's median.
	Ratio float64
	// Advantage is how many times better Telltale is (below 1: behind).
	Advantage float64
}

// Verdict words a comparison: "ahead 2.1×", "behind 1.3×" or "even"
// (within 5%).
func (c Comparison) Verdict() string {
	switch {
	case c.Advantage >= 1.05:
		return fmt.Sprintf("Telltale ahead %.2g×", c.Advantage)
	case c.Advantage <= 1/1.05:
		return fmt.Sprintf("**Telltale behind %.2g×**", 1/c.Advantage)
	}
	return "even (within 5%)"
}

// Comparisons returns every metric where both Telltale and a peer have a
// median, in scenario and metric order.
func (r *Report) Comparisons() []Comparison {
	var out []Comparison
	for _, s := range r.Scenarios {
		for _, m := range s.Metrics {
			t := r.Stat(s.Name, m.Key, s.Subject)
			if t.N == 0 {
				continue
			}
			for _, p := range s.Peers {
				ps := r.Stat(source(s, p), m.Key, p)
				if ps.N == 0 || ps.Median == 0 || t.Median == 0 {
					continue
				}
				c := Comparison{Scenario: s.Name, Metric: m.Key, Label: m.Label, Peer: p, Lower: m.Lower, Ratio: t.Median / ps.Median}
				c.Advantage = c.Ratio
				if m.Lower {
					c.Advantage = 1 / c.Ratio
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// ran returns the systems of scenario s that have results, subject first.
func (r *Report) ran(s scenario.Scenario) []peer.Kind {
	out := []peer.Kind{s.Subject}
	for _, p := range s.Peers {
		for _, res := range r.Results {
			if res.Scenario == source(s, p) && res.System == p {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Markdown renders RESULTS.md. analysis is the hand-written block to keep
// (see Analysis); chart is the PNG's file name relative to the Markdown.
func (r *Report) Markdown(analysis, chart string) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Telltale side by side: results\n\n")
	w("Generated by `go run ./bench` (see [README.md](README.md)); edit only the analysis block, the rest is rewritten by every run.\n\n")
	w("**Command:** `%s`  \n", r.Command)
	w("**When:** %s, %s  \n", r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Finished.Sub(r.Started).Round(time.Second))
	w("**Machine:** %s  \n", r.Machine)
	w("**Load from others on the machine:** loadavg %s at the start, %s at the end (this box is shared: wall-clock rates are noisy, "+
		"CPU-seconds per unit of work are the fair figure; systems alternate A B A B so drift hits all of them alike)  \n", r.Machine.LoadStart, r.Machine.LoadEnd)
	w("**Rounds:** %d; every figure is the median over rounds with the min–max spread in brackets.  \n", r.Rounds)
	var names []string
	for n := range r.Versions {
		names = append(names, n)
	}
	sort.Strings(names)
	w("**Versions:**")
	for _, n := range names {
		w(" %s: `%s`;", n, r.Versions[n])
	}
	w("\n\n")
	for _, e := range r.Earlier {
		what := "the sections " + "`" + strings.Join(e.Scenarios, "`, `") + "`"
		switch {
		case len(e.Scenarios) == 0:
			what = "the CPU profile"
		case e.Profile:
			what += " and the CPU profile"
		}
		var vs []string
		for _, n := range slices.Sorted(maps.Keys(e.Versions)) {
			vs = append(vs, fmt.Sprintf("%s `%s`", n, e.Versions[n]))
		}
		w("> Kept from an earlier run, which this one did not repeat: %s, from `%s` (%s, %s; %s; loadavg %s at the start, %s at the end; %d rounds; %s).\n\n",
			what, e.Command, e.Started.UTC().Format("2006-01-02 15:04 UTC"), e.Finished.Sub(e.Started).Round(time.Second),
			e.Machine, e.Machine.LoadStart, e.Machine.LoadEnd, e.Rounds, strings.Join(vs, ", "))
	}
	for _, s := range r.Skipped {
		w("> Not run: %s\n\n", s)
	}
	if chart != "" {
		w("![Telltale against each peer, per figure](%s)\n\n", chart)
	}

	w("## Where Telltale is behind\n\n")
	var behind []Comparison
	for _, c := range r.Comparisons() {
		if c.Advantage <= 1/1.05 {
			behind = append(behind, c)
		}
	}
	if len(behind) == 0 {
		w("Nowhere in this run (within 5%%).\n\n")
	}
	for _, c := range behind {
		w("- **%s**, %s: %.2g× behind %s\n", c.Scenario, c.Label, 1/c.Advantage, c.Peer.Title())
	}
	if len(behind) > 0 {
		w("\n")
	}
	if analysis != "" {
		w("%s\n\n", analysis)
	} else {
		w("%s\n_Why, and what would close each gap: write it here; runs keep this block._\n%s\n\n", analysisStart, analysisEnd)
	}

	for _, s := range r.Scenarios {
		r.scenarioMarkdown(&b, s)
	}
	r.failuresMarkdown(&b)
	if r.Profile != "" {
		w("## Where the collector's CPU goes under remote-write ingestion\n\n")
		w("`%s`, taken during %s. Summarised with `go tool pprof -top` (flat, then cumulative):\n\n", r.ProfileCommand, r.ProfileRun)
		w("```\n%s```\n\n", r.Profile)
	}
	return b.Bytes()
}

func (r *Report) scenarioMarkdown(b *bytes.Buffer, s scenario.Scenario) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## %s (`%s`)\n\n%s\n\n", s.Title, s.Name, strings.TrimSpace(s.What))
	systems := r.ran(s)
	w("| figure | better |")
	for i, k := range systems {
		w(" %s |", k.Title())
		if i > 0 {
			w(" %s / %s |", systems[0].Title(), k.Title())
		}
	}
	w("\n|---|---|")
	for i := range systems {
		w("---:|")
		if i > 0 {
			w("---|")
		}
	}
	w("\n")
	for _, m := range s.Metrics {
		better := "higher"
		if m.Lower {
			better = "lower"
		}
		w("| %s | %s |", m.Label, better)
		t := r.Stat(s.Name, m.Key, s.Subject)
		for i, k := range systems {
			st := r.Stat(source(s, k), m.Key, k)
			w(" %s |", st)
			if i == 0 {
				continue
			}
			if st.N == 0 || t.N == 0 || st.Median == 0 || t.Median == 0 {
				w(" n/a |")
				continue
			}
			c := Comparison{Ratio: t.Median / st.Median}
			c.Advantage = c.Ratio
			if m.Lower {
				c.Advantage = 1 / c.Ratio
			}
			w(" %.3g (%s) |", c.Ratio, c.Verdict())
		}
		w("\n")
	}
	w("| every sample stored | — |")
	for i, k := range systems {
		w(" %s |", r.verification(source(s, k), k))
		if i > 0 {
			w(" |")
		}
	}
	w("\n\n")
	for k, why := range s.NotComparable {
		w("Not compared with %s: %s.\n\n", k.Title(), why)
	}
	if s.PeersFrom != "" && len(systems) > 1 {
		var ps []string
		for _, k := range systems[1:] {
			ps = append(ps, k.Title())
		}
		w("%s: the runs of `%s` (the same work; see their notes there).\n\n", strings.Join(ps, " and "), s.PeersFrom)
	}
	notes := map[string][]string{}
	var order []string
	for _, res := range r.Results {
		if res.Scenario != s.Name || res.Round < 0 {
			continue
		}
		for _, n := range res.Notes {
			key := res.System.Title()
			if !slices.Contains(notes[key], n) {
				if len(notes[key]) == 0 {
					order = append(order, key)
				}
				notes[key] = append(notes[key], n)
			}
		}
	}
	for _, key := range order {
		w("- %s: %s\n", key, strings.Join(notes[key], "; "))
	}
	if len(order) > 0 {
		w("\n")
	}
}

// verification words whether every run of system k stored what it sent.
func (r *Report) verification(s string, k peer.Kind) string {
	runs, ok := 0, 0
	var sent []int64
	unit := "samples"
	for _, res := range r.Results {
		if res.Scenario != s || res.System != k || res.Round < 0 {
			continue
		}
		runs++
		if res.Verified() {
			ok++
		}
		if res.VerifyUnit != "" {
			unit = res.VerifyUnit
		}
		sent = append(sent, res.Sent)
	}
	if runs == 0 {
		return "—"
	}
	slices.Sort(sent)
	sent = slices.Compact(sent)
	what := fmt.Sprintf("%s %s", scenario.FormatCount(sent[0]), unit)
	if len(sent) > 1 {
		what = fmt.Sprintf("%s–%s %s", scenario.FormatCount(sent[0]), scenario.FormatCount(sent[len(sent)-1]), unit)
	}
	if ok == runs {
		return fmt.Sprintf("✓ %d/%d runs, %s each", ok, runs, what)
	}
	return fmt.Sprintf("**✗ %d/%d runs complete** (see failures)", ok, runs)
}

func (r *Report) failuresMarkdown(b *bytes.Buffer) {
	var failed []scenario.Result
	for _, res := range r.Results {
		if !res.Verified() && res.Round >= 0 {
			failed = append(failed, res)
		}
	}
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(b, "## Failed or unverified runs\n\n")
	for _, res := range failed {
		msg := res.Err
		if msg == "" {
			msg = fmt.Sprintf("sent %d %s, stored %d", res.Sent, res.VerifyUnit, res.Stored)
		}
		fmt.Fprintf(b, "- round %d, %s, %s: %s\n", res.Round+1, res.Scenario, res.System.Title(), strings.ReplaceAll(msg, "\n", " ⏎ "))
	}
	fmt.Fprintf(b, "\n")
}

// String formats a stat as "median (min–max)".
func (s Stat) String() string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return scenario.FormatValue(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", scenario.FormatValue(s.Median), scenario.FormatValue(s.Min), scenario.FormatValue(s.Max))
}

const (
	analysisStart = "<!-- analysis -->"
	analysisEnd   = "<!-- /analysis -->"
)

// Analysis returns the hand-written block of an existing RESULTS.md,
// markers included, or "" when it has none.
func Analysis(md []byte) string {
	s := string(md)
	i := strings.Index(s, analysisStart)
	j := strings.Index(s, analysisEnd)
	if i < 0 || j < i {
		return ""
	}
	return s[i : j+len(analysisEnd)]
}
