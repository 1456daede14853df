// Package scenario runs bench/'s comparisons: remote-write and text-format
// ingestion, query_range latency, memory per active series, disk bytes per
// sample and the agent's footprint, each against Telltale and the peers that
// can take part, each in a fresh process with a fresh data directory, with
// the same generated data for every system.
//
// Promises: every run counts back what it sent through the system's own
// Prometheus-compatible query API (Result.Sent and Result.Stored), so a
// figure never comes from a run that lost data unnoticed; CPU figures are
// the server process' own user+system time from /proc, so they hold on a
// shared machine where wall-clock rates do not; a failing run is recorded
// with its error and the other runs go on.
package scenario

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
)

// Sizes are the sizes of the generated loads.
type Sizes struct {
	Senders    int // concurrent senders (remote-write shards)
	PerRequest int // samples per request

	IngestSeries  []int // series of each remote-write ingestion scenario, multiples of 100
	IngestSamples int   // samples measured per ingestion run, after the first pass created the series

	TextSeries, TextSamples int

	QuerySeries int
	QuerySpan   time.Duration // data loaded before the queries run
	QueryRuns   int           // timed runs per query and system
	QueryStep   time.Duration

	// The query-8h scenario: cold queries over a long range of many series.
	LongQuerySeries int
	LongQuerySpan   time.Duration // data loaded; the queries cover the last LongQueryRange of it
	LongQueryRange  time.Duration
	LongQueryStep   time.Duration
	LongQueryRuns   int

	// The refresh scenarios: the provisioned dashboards refreshed over a
	// fleet's series while it keeps sending.
	Fleet        load.FleetSize
	RefreshRange time.Duration // the dashboards' time range
	RefreshEvery time.Duration // a refresh every so often after the cold one ...
	RefreshFor   time.Duration // ... for so long

	MemorySeries int
	MemorySteps  int
	Settle       time.Duration // wait after a forced GC before RSS is read

	DiskSeries int
	DiskSpan   time.Duration // must exceed 3 h so the TSDB head cuts a block

	AgentWindow   time.Duration // how long the agent and node_exporter are measured
	AgentInterval time.Duration
}

// FullSizes are the sizes of a full run (about 13 minutes on 2 cores with all
// three peers).
func FullSizes() Sizes {
	return Sizes{
		Senders: 4, PerRequest: 2000,
		IngestSeries: []int{10_000, 100_000}, IngestSamples: 2_000_000,
		TextSeries: 10_000, TextSamples: 1_000_000,
		QuerySeries: 2_000, QuerySpan: time.Hour + 5*time.Minute, QueryRuns: 20, QueryStep: 15 * time.Second,
		// Grafana's step for 8 h on a 1200 px panel: 24 s, rounded to 20 s.
		LongQuerySeries: 10_000, LongQuerySpan: 8*time.Hour + 10*time.Minute, LongQueryRange: 8 * time.Hour, LongQueryStep: 20 * time.Second, LongQueryRuns: 10,
		Fleet:        load.FleetSize{Services: 5, Instances: 4, Hosts: 40},
		RefreshRange: 30 * time.Minute, RefreshEvery: 15 * time.Second, RefreshFor: 5 * time.Minute,
		MemorySeries: 100_000, MemorySteps: 3, Settle: 10 * time.Second,
		DiskSeries: 2_000, DiskSpan: 3*time.Hour + 30*time.Minute,
		AgentWindow: 60 * time.Second, AgentInterval: 10 * time.Second,
	}
}

// SmokeSizes are tiny sizes for tests: every code path in seconds.
func SmokeSizes() Sizes {
	return Sizes{
		Senders: 2, PerRequest: 150,
		IngestSeries: []int{300}, IngestSamples: 30_000,
		TextSeries: 200, TextSamples: 20_000,
		QuerySeries: 200, QuerySpan: 15 * time.Minute, QueryRuns: 3, QueryStep: time.Minute,
		LongQuerySeries: 200, LongQuerySpan: 40 * time.Minute, LongQueryRange: 30 * time.Minute, LongQueryStep: time.Minute, LongQueryRuns: 2,
		Fleet:        load.FleetSize{Services: 1, Instances: 1, Hosts: 1},
		RefreshRange: 10 * time.Minute, RefreshEvery: time.Second, RefreshFor: 3 * time.Second,
		MemorySeries: 500, MemorySteps: 2, Settle: 100 * time.Millisecond,
		DiskSeries: 100, DiskSpan: 3*time.Hour + 20*time.Minute,
		AgentWindow: 3 * time.Second, AgentInterval: time.Second,
	}
}

// Env is what runs share.
type Env struct {
	// Bins maps each system to its binary.
	Bins    map[peer.Kind]string
	WorkDir string // fresh directories for every run go below it
	Sizes   Sizes
	// Base is the end of all generated data: every run's samples lie before
	// it, within every system's out-of-order window and retention. Zero
	// means five minutes before the first use.
	Base     time.Time
	Progress io.Writer
	// ProfileFile, when set, receives a CPU profile of Telltale's collector
	// (/debug/pprof/profile) taken over ProfileSeconds of the measured pass
	// of every remote-write ingestion run against Telltale.
	ProfileFile    string
	ProfileSeconds int

	mu      sync.Mutex
	streams map[string][]load.Stream
	runs    int
}

// Metric is one figure a scenario reports.
type Metric struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	// Lower is true when a lower value is better (CPU, bytes, latency).
	Lower bool `json:"lower"`
}

// Result is one run of one scenario against one system.
type Result struct {
	Scenario string             `json:"scenario"`
	System   peer.Kind          `json:"system"`
	Round    int                `json:"round"`
	Values   map[string]float64 `json:"values,omitempty"`
	// Sent is what the run delivered and Stored what the system's query API
	// counted back afterwards, in VerifyUnit (samples, or scrapes for
	// node_exporter). Stored is -1 when nothing was counted.
	Sent       int64    `json:"sent"`
	Stored     int64    `json:"stored"`
	VerifyUnit string   `json:"verify_unit,omitempty"`
	Notes      []string `json:"notes,omitempty"`
	Err        string   `json:"error,omitempty"`
	Seconds    float64  `json:"seconds"`
}

// Verified reports whether the run stored everything it sent.
func (r Result) Verified() bool { return r.Err == "" && r.Sent > 0 && r.Stored == r.Sent }

// Scenario is one comparison.
type Scenario struct {
	Name  string `json:"name"`  // e.g. ingest-10k
	Group string `json:"group"` // what -scenarios selects, e.g. ingest
	Title string `json:"title"`
	// What says exactly what is measured, in Markdown.
	What    string   `json:"what"`
	Metrics []Metric `json:"metrics"`
	// Subject is the Telltale side (the collector, or the agent).
	Subject peer.Kind `json:"subject"`
	// Peers are the systems the subject is compared with, among those
	// selected; a scenario without peers runs only in smoke tests.
	Peers []peer.Kind `json:"peers"`
	// NotComparable says why a selected peer cannot take part.
	NotComparable map[peer.Kind]string `json:"not_comparable,omitempty"`
	// PeersFrom names the scenario whose peer runs this one compares with:
	// only the subject differs between the two (Telltale with and without
	// its dashboards' recording rules), so the peers do the same work and
	// run once, in PeersFrom. Empty: the scenario runs its own peers.
	PeersFrom string `json:"peers_from,omitempty"`

	run func(ctx context.Context, env *Env, k peer.Kind) (Result, error)
}

// Groups lists the scenario groups -scenarios runs by default.
var Groups = []string{"ingest", "text", "query", "query-8h", "refresh", "memory", "disk", "agent"}

// OptionalGroups are the groups -scenarios accepts besides Groups, run
// only when named: forward needs a Cortex build (.ci/run makes it) and
// starts a three-node cluster per run.
var OptionalGroups = []string{"forward"}

// All returns the scenarios of the given groups (all when empty), in a
// fixed order.
func All(sizes Sizes, groups []string) ([]Scenario, error) {
	for _, g := range groups {
		if !slices.Contains(Groups, g) && !slices.Contains(OptionalGroups, g) {
			return nil, fmt.Errorf("unknown scenario %q in -scenarios: want some of %s", g, strings.Join(append(slices.Clone(Groups), OptionalGroups...), ","))
		}
	}
	want := func(g string) bool { return len(groups) == 0 || slices.Contains(groups, g) }
	stores := []peer.Kind{peer.VictoriaMetrics, peer.Prometheus}
	var out []Scenario
	if want("ingest") {
		for _, n := range sizes.IngestSeries {
			out = append(out, ingestScenario(sizes, n, load.RemoteWrite, stores))
		}
	}
	if want("text") {
		s := ingestScenario(sizes, sizes.TextSeries, load.Text, []peer.Kind{peer.VictoriaMetrics})
		s.NotComparable = map[peer.Kind]string{peer.Prometheus: "Prometheus has no push endpoint for the text format (it only scrapes; the Pushgateway is a separate service and out of scope)"}
		out = append(out, s)
	}
	if want("query") {
		out = append(out, queryScenario(sizes, stores))
	}
	if want("query-8h") {
		out = append(out, longQueryScenario(sizes, stores))
	}
	if want("refresh") {
		out = append(out, refreshScenario(sizes, true, stores), refreshScenario(sizes, false, stores))
	}
	if want("memory") {
		out = append(out, memoryScenario(sizes, stores))
	}
	if want("disk") {
		out = append(out, diskScenario(sizes, stores))
	}
	if want("agent") {
		out = append(out, agentScenario(sizes))
	}
	if slices.Contains(groups, "forward") {
		out = append(out, forwardIngestScenario(sizes), forwardQueryScenario(sizes))
	}
	return out, nil
}

// Systems returns the subject and the scenario's peers among selected
// (only the subject when the peers run in PeersFrom).
func (s *Scenario) Systems(selected []peer.Kind) []peer.Kind {
	out := []peer.Kind{s.Subject}
	if s.PeersFrom != "" {
		return out
	}
	for _, k := range s.Peers {
		if slices.Contains(selected, k) {
			out = append(out, k)
		}
	}
	return out
}

// Run runs the scenario once against system k and returns its result; a
// failure is returned as a Result with Err set.
func (s *Scenario) Run(ctx context.Context, env *Env, k peer.Kind, round int) Result {
	start := time.Now()
	r, err := s.run(ctx, env, k)
	r.Scenario, r.System, r.Round = s.Name, k, round
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// runDir returns a fresh directory for one run.
func (env *Env) runDir(scenario string, k peer.Kind) string {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.runs++
	return filepath.Join(env.WorkDir, fmt.Sprintf("%03d-%s-%s", env.runs, scenario, k))
}

func (env *Env) base() time.Time {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.Base.IsZero() {
		env.Base = time.Now().Add(-5 * time.Minute).Truncate(10 * time.Second)
	}
	return env.Base
}

// plan returns the encoded streams of p, generating them once per key so
// every system and round gets the same bytes.
func (env *Env) plan(key string, p load.Plan) ([]load.Stream, error) {
	env.mu.Lock()
	defer env.mu.Unlock()
	if st, ok := env.streams[key]; ok {
		return st, nil
	}
	st, err := p.Streams()
	if err != nil {
		return nil, err
	}
	if env.streams == nil {
		env.streams = map[string][]load.Stream{}
	}
	env.streams[key] = st
	return st, nil
}

// start starts system k for a run of scenario with args added to its
// command line.
func (env *Env) start(ctx context.Context, scenario string, k peer.Kind, args ...string) (*peer.Process, error) {
	bin, ok := env.Bins[k]
	if !ok {
		return nil, fmt.Errorf("no binary for %s; run `go run ./bench install`", k.Title())
	}
	return peer.Start(ctx, peer.Spec{Kind: k, Binary: bin, Dir: env.runDir(scenario, k), Args: args})
}

func (env *Env) logf(format string, args ...any) {
	if env.Progress != nil {
		fmt.Fprintf(env.Progress, format+"\n", args...)
	}
}

// Quantile returns the q-quantile (0..1) of xs by nearest rank, or NaN-free
// 0 for no values. xs is not modified.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 0 && q == 0.5 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
