package scenario

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/refresh"
	"github.com/telltale-dev/telltale/retry"
)

// seriesName writes 10000 as 10k.
func seriesName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// set returns the series of a run with steps steps that end at env's base.
func (env *Env) set(series, steps int) load.Set {
	return load.Set{Instances: series / load.PerInstance,
		Start: env.base().Add(-time.Duration(steps) * 10 * time.Second)}
}

// send posts streams to the system's endpoint for format f.
func send(ctx context.Context, p *peer.Process, f load.Format, senders int, streams []load.Stream) (load.SendStats, error) {
	url := p.WriteURL()
	if f == load.Text {
		url = p.TextURL()
	}
	if url == "" {
		return load.SendStats{}, fmt.Errorf("%s takes no %v", p.Kind.Title(), f)
	}
	return load.Send(ctx, load.Target{URL: url, Format: f, Client: load.NewClient(senders)}, streams)
}

// verify counts the generated samples the system stores in steps 0 to
// steps-1 of set and fills r.Stored.
func verify(ctx context.Context, p *peer.Process, set load.Source, steps int, r *Result) error {
	if err := p.Flush(ctx); err != nil {
		return err
	}
	q := &load.QueryClient{Base: p.URL, Params: p.QueryParams()}
	at := time.UnixMilli(set.Time(steps - 1))
	window := time.Duration(set.Time(steps)-set.Time(0)) * time.Millisecond
	var n float64
	for _, sel := range set.Selectors() {
		c, err := q.Sum(ctx, load.CountQuery(sel, window), at)
		if err != nil {
			return fmt.Errorf("cannot count the stored samples: %w", err)
		}
		n += c
	}
	r.Stored, r.VerifyUnit = int64(n), "samples"
	if r.Stored != r.Sent {
		return fmt.Errorf("sent %d samples; %s stores %d", r.Sent, p.Kind.Title(), r.Stored)
	}
	return nil
}

// waitIdle waits until p uses less than 5% of a core (background merges and
// flushes the load started are done), for up to max.
func waitIdle(ctx context.Context, p *peer.Process, max time.Duration) (peer.Usage, error) {
	deadline := time.Now().Add(max)
	u, err := p.Usage()
	if err != nil {
		return u, err
	}
	for {
		if err := retry.Sleep(ctx, 500*time.Millisecond); err != nil {
			return u, err
		}
		v, err := p.Usage()
		if err != nil {
			return u, err
		}
		if v.CPU-u.CPU < 0.025 || time.Now().After(deadline) {
			return v, nil
		}
		u = v
	}
}

const mib = 1 << 20

func ingestScenario(sz Sizes, series int, f load.Format, peers []peer.Kind) Scenario {
	steps := 1 + max(sz.IngestSamples/series, 1)
	name := "ingest-" + seriesName(series)
	title := fmt.Sprintf("Remote-write ingestion, %s series", seriesName(series))
	if f == load.Text {
		steps = 1 + max(sz.TextSamples/series, 1)
		name = "text-" + seriesName(series)
		title = fmt.Sprintf("Text-format push ingestion (/api/v1/import/prometheus), %s series", seriesName(series))
	}
	measured := series * (steps - 1)
	s := Scenario{
		Name: name, Group: map[load.Format]string{load.RemoteWrite: "ingest", load.Text: "text"}[f], Title: title,
		What: fmt.Sprintf("%d senders, each owning a quarter of %d series as Prometheus' remote-write shards do, post %s bodies of %d samples "+
			"(one sample per series per request, 10 s apart). A first pass creates the series (%d samples, timed as *new series/s*); "+
			"then %d samples are measured: *samples/s* is wall clock over the measured pass, *CPU-s per 1M samples* is the server process' "+
			"user+system time (/proc/<pid>/stat) from the first measured request until the process is idle again (background flushes and merges included). "+
			"Every sample is then counted back with `%s`.",
			sz.Senders, series, f, sz.PerRequest, series, measured, load.CountQuery(load.Set{}.Selectors()[0], time.Duration(steps)*10*time.Second)),
		Metrics: []Metric{
			{Key: "samples_per_s", Label: "samples/s (wall)"},
			{Key: "cpu_s_per_1m", Label: "server CPU-s per 1M samples", Lower: true},
			{Key: "series_per_s", Label: "new series/s (first pass, wall)"},
			{Key: "rss_mib", Label: "server RSS after the load (MiB)", Lower: true},
		},
		Subject: peer.Telltale, Peers: peers,
	}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(series, steps)
		name := name
		if env.ProfileFile != "" {
			name += "-profile"
		}
		warm, err := env.plan(name+"/warm", load.Plan{Set: set, Senders: env.Sizes.Senders, Steps: 1, PerRequest: env.Sizes.PerRequest, Format: f})
		if err != nil {
			return r, err
		}
		main, err := env.plan(name+"/main", load.Plan{Set: set, Senders: env.Sizes.Senders, FromStep: 1, Steps: steps - 1, PerRequest: env.Sizes.PerRequest, Format: f})
		if err != nil {
			return r, err
		}
		p, err := env.start(ctx, name, k)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		ws, err := send(ctx, p, f, env.Sizes.Senders, warm)
		r.Sent += ws.Samples
		if err != nil {
			return r, fmt.Errorf("first pass: %w", err)
		}
		if _, err := waitIdle(ctx, p, 10*time.Second); err != nil {
			return r, err
		}
		u0, err := p.Usage()
		if err != nil {
			return r, err
		}
		var profiled chan error
		if env.ProfileFile != "" && k == peer.Telltale {
			profiled = make(chan error, 1)
			go func() { profiled <- fetchProfile(ctx, p, env.ProfileSeconds, env.ProfileFile) }()
			if err := retry.Sleep(ctx, 200*time.Millisecond); err != nil { // let the profile start
				return r, err
			}
		}
		st, err := send(ctx, p, f, env.Sizes.Senders, main)
		r.Sent += st.Samples
		if err != nil {
			return r, err
		}
		if profiled != nil {
			if err := <-profiled; err != nil {
				return r, err
			}
		}
		u1, err := waitIdle(ctx, p, 15*time.Second)
		if err != nil {
			return r, err
		}
		r.Values = map[string]float64{
			"samples_per_s": float64(st.Samples) / st.Elapsed.Seconds(),
			"cpu_s_per_1m":  (u1.CPU - u0.CPU) / (float64(st.Samples) / 1e6),
			"series_per_s":  float64(series) / ws.Elapsed.Seconds(),
			"rss_mib":       float64(u1.RSS) / mib,
		}
		if n := ws.Retries + st.Retries; n > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d requests retried after 5xx", n))
		}
		return r, verify(ctx, p, set, steps, &r)
	}
	return s
}

// Dashboard queries over the loaded hour.
var queries = []struct{ key, label, q string }{
	{"q_rate", "rate, sum by (path, status)", `sum by (path, status) (rate(bench_http_requests_total[5m]))`},
	{"q_hist", "histogram_quantile(0.99) over le", `histogram_quantile(0.99, sum by (le, path) (rate(bench_http_request_duration_seconds_bucket[5m])))`},
	{"q_topk", "topk(5) CPU by instance", `topk(5, sum by (instance) (rate(bench_node_cpu_seconds_total{mode!="idle"}[5m])))`},
}

func queryScenario(sz Sizes, peers []peer.Kind) Scenario {
	steps := int(sz.QuerySpan / (10 * time.Second))
	var what strings.Builder
	fmt.Fprintf(&what, "%d series (%d instances: request counters, 12-bucket latency histograms, CPU seconds) are loaded for %v at 10 s resolution "+
		"(%d samples, counted back); then each query runs once untimed and %d times timed, one after another, as `query_range` over the last hour "+
		"at a %v step (what a Grafana panel asks). Figures are the median and p90 of the wall time per call measured by the client, "+
		"and the server process' CPU time over the timed runs ÷ runs (steadier than wall time on a shared machine; a system that "+
		"evaluates on both cores spends more CPU than wall time). "+
		"Telltale and VictoriaMetrics get `nocache=1` so their result caches do not answer. Queries:\n",
		sz.QuerySeries, sz.QuerySeries/load.PerInstance, sz.QuerySpan, sz.QuerySeries*steps, sz.QueryRuns, sz.QueryStep)
	s := Scenario{Name: "query", Group: "query", Title: "query_range latency over a loaded hour", What: what.String(),
		Metrics: queryMetrics(&what), Subject: peer.Telltale, Peers: peers}
	s.What = what.String()
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(sz.QuerySeries, steps)
		streams, err := env.plan("query", load.Plan{Set: set, Senders: env.Sizes.Senders, Steps: steps, PerRequest: env.Sizes.PerRequest})
		if err != nil {
			return r, err
		}
		p, err := env.load(ctx, "query", k, [][]load.Stream{streams}, &r)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		if err := verify(ctx, p, set, steps, &r); err != nil {
			return r, err
		}
		end := time.UnixMilli(set.Time(steps - 1))
		return r, timeQueries(ctx, env, p, end.Add(-time.Hour), end, env.Sizes.QueryStep, env.Sizes.QueryRuns, &r)
	}
	return s
}

// longQueryScenario is query-8h: the dashboard queries of `query`, cold,
// over hours of many series, where the cost per sample decoded dominates.
func longQueryScenario(sz Sizes, peers []peer.Kind) Scenario {
	steps := int(sz.LongQuerySpan / (10 * time.Second))
	var what strings.Builder
	fmt.Fprintf(&what, "%d series (%d instances: request counters, 12-bucket latency histograms, CPU seconds) are loaded for %v at 10 s resolution "+
		"(%d samples, counted back; the senders wait for each other every 30 min of data so no sample arrives out of order), "+
		"and the systems compact them as they would after hours of running (Telltale and Prometheus cut 2 h blocks from the head and merge them, bench/ "+
		"waits until the data directory holds still; VictoriaMetrics gets `force_merge`). "+
		"Then each query runs once untimed and %d times timed as `query_range` over the last %v at a %v step "+
		"(Grafana's step for that range on a 1200 px panel), **cold**: Telltale and VictoriaMetrics get `nocache=1`, so every step is evaluated "+
		"(Telltale with its default flags: a range query is evaluated in time slices over every core, `-query.parallel`; VictoriaMetrics spreads series over the cores). "+
		"Figures as in `query`: median and p90 wall time per call, server CPU time (/proc/<pid>/stat) over the timed runs ÷ runs. Queries:\n",
		sz.LongQuerySeries, sz.LongQuerySeries/load.PerInstance, sz.LongQuerySpan, sz.LongQuerySeries*steps, sz.LongQueryRuns, refresh.Duration(sz.LongQueryRange), refresh.Duration(sz.LongQueryStep))
	s := Scenario{Name: "query-8h", Group: "query-8h", Title: fmt.Sprintf("Cold query_range over %s of %s series", refresh.Duration(sz.LongQueryRange), seriesName(sz.LongQuerySeries)),
		Metrics: queryMetrics(&what), Subject: peer.Telltale, Peers: peers}
	s.What = what.String()
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(sz.LongQuerySeries, steps)
		phases, err := env.phases("query-8h", set, steps)
		if err != nil {
			return r, err
		}
		p, err := env.load(ctx, "query-8h", k, phases, &r)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		if err := verify(ctx, p, set, steps, &r); err != nil {
			return r, err
		}
		if sz.LongQuerySpan > 3*time.Hour {
			if err := p.Compact(ctx, 5*time.Minute); err != nil {
				return r, err
			}
		}
		if _, err := waitIdle(ctx, p, 30*time.Second); err != nil {
			return r, err
		}
		end := time.UnixMilli(set.Time(steps - 1))
		return r, timeQueries(ctx, env, p, end.Add(-sz.LongQueryRange), end, sz.LongQueryStep, sz.LongQueryRuns, &r)
	}
	return s
}

// queryMetrics lists the queries into what and returns their figures.
func queryMetrics(what *strings.Builder) []Metric {
	var metrics []Metric
	for _, q := range queries {
		fmt.Fprintf(what, "- %s: `%s`\n", q.label, q.q)
		metrics = append(metrics,
			Metric{Key: q.key + "_p50_ms", Label: q.label + ": median ms", Lower: true},
			Metric{Key: q.key + "_p90_ms", Label: q.label + ": p90 ms", Lower: true},
			Metric{Key: q.key + "_cpu_ms", Label: q.label + ": server CPU-ms per query", Lower: true})
	}
	return metrics
}

// timeQueries runs each of queries once untimed, then runs times timed,
// as query_range over [start, end] at step, and fills r with the median
// and p90 wall time and the server's CPU time per query.
func timeQueries(ctx context.Context, env *Env, p *peer.Process, start, end time.Time, step time.Duration, runs int, r *Result) error {
	qc := &load.QueryClient{Base: p.URL, Params: p.QueryParams()}
	r.Values = map[string]float64{}
	for _, q := range queries {
		var ms []float64
		var series int
		var u0 peer.Usage
		var err error
		for i := 0; i <= runs; i++ {
			if i == 1 {
				if u0, err = p.Usage(); err != nil {
					return err
				}
			}
			t0 := time.Now()
			n, _, err := qc.Range(ctx, q.q, start, end, step)
			if err != nil {
				return err
			}
			if i > 0 { // the first run warms caches and is not timed
				ms = append(ms, float64(time.Since(t0).Microseconds())/1e3)
			}
			series = n
		}
		u1, err := p.Usage()
		if err != nil {
			return err
		}
		r.Values[q.key+"_cpu_ms"] = (u1.CPU - u0.CPU) * 1e3 / float64(runs)
		r.Values[q.key+"_p50_ms"] = Quantile(ms, 0.5)
		r.Values[q.key+"_p90_ms"] = Quantile(ms, 0.9)
		r.Values[q.key+"_series"] = float64(series)
		r.Notes = append(r.Notes, fmt.Sprintf("%s returned %d series", q.key, series))
	}
	return nil
}

// load starts system k for a run of scenario (with args) and sends it
// the phases' streams by remote write, one phase after another, adding what
// it delivered to r.Sent. On an error the process is stopped.
func (env *Env) load(ctx context.Context, scenario string, k peer.Kind, phases [][]load.Stream, r *Result, args ...string) (*peer.Process, error) {
	p, err := env.start(ctx, scenario, k, args...)
	if err != nil {
		return nil, err
	}
	for _, streams := range phases {
		st, err := send(ctx, p, load.RemoteWrite, env.Sizes.Senders, streams)
		r.Sent += st.Samples
		if err != nil {
			p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// phases returns the streams of set's steps in phases of 30 min of data:
// the senders wait for each other after each, so no sample arrives older
// than the head of a TSDB allows (a long load otherwise lets one sender
// fall behind a head compaction).
func (env *Env) phases(key string, set load.Set, steps int) ([][]load.Stream, error) {
	const phase = 180 // steps (30 min of data)
	var out [][]load.Stream
	for from := 0; from < steps; from += phase {
		st, err := env.plan(fmt.Sprintf("%s/%d", key, from), load.Plan{Set: set, Senders: env.Sizes.Senders,
			FromStep: from, Steps: min(phase, steps-from), PerRequest: env.Sizes.PerRequest})
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func memoryScenario(sz Sizes, peers []peer.Kind) Scenario {
	s := Scenario{Name: "memory", Group: "memory", Title: "Memory per active series",
		What: fmt.Sprintf("A fresh process is started, asked for a GC (`/debug/pprof/heap?gc=1`, which all three serve) and its idle RSS read "+
			"(VmRSS, /proc/<pid>/status) after %v; then %d series get %d samples each (remote write, counted back), the process is asked for a "+
			"GC again and its RSS read after another %v. *Bytes per series* is (RSS after − idle RSS) ÷ series.",
			sz.Settle, sz.MemorySeries, sz.MemorySteps, sz.Settle),
		Metrics: []Metric{
			{Key: "bytes_per_series", Label: "RSS bytes per active series", Lower: true},
			{Key: "rss_mib", Label: "RSS with the series loaded (MiB)", Lower: true},
			{Key: "idle_rss_mib", Label: "idle RSS before loading (MiB)", Lower: true},
		},
		Subject: peer.Telltale, Peers: peers}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(sz.MemorySeries, sz.MemorySteps)
		streams, err := env.plan("memory", load.Plan{Set: set, Senders: env.Sizes.Senders, Steps: sz.MemorySteps, PerRequest: env.Sizes.PerRequest})
		if err != nil {
			return r, err
		}
		p, err := env.start(ctx, "memory", k)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		settled := func() (peer.Usage, error) {
			if err := p.ForceGC(ctx); err != nil {
				return peer.Usage{}, fmt.Errorf("cannot force a GC: %w", err)
			}
			if err := retry.Sleep(ctx, env.Sizes.Settle); err != nil {
				return peer.Usage{}, err
			}
			return p.Usage()
		}
		idle, err := settled()
		if err != nil {
			return r, err
		}
		st, err := send(ctx, p, load.RemoteWrite, env.Sizes.Senders, streams)
		r.Sent = st.Samples
		if err != nil {
			return r, err
		}
		if err := verify(ctx, p, set, sz.MemorySteps, &r); err != nil {
			return r, err
		}
		u, err := settled()
		if err != nil {
			return r, err
		}
		r.Values = map[string]float64{
			"bytes_per_series": float64(u.RSS-idle.RSS) / float64(sz.MemorySeries),
			"rss_mib":          float64(u.RSS) / mib,
			"idle_rss_mib":     float64(idle.RSS) / mib,
		}
		return r, nil
	}
	return s
}

func diskScenario(sz Sizes, peers []peer.Kind) Scenario {
	steps := int(sz.DiskSpan / (10 * time.Second))
	s := Scenario{Name: "disk", Group: "disk", Title: "Disk bytes per sample",
		What: fmt.Sprintf("%d series are loaded for %v at 10 s resolution from a 2 h boundary on (%d samples; the senders wait for each other every 30 min of data so "+
			"no sample arrives out of order), counted back, then compacted: Telltale and Prometheus cut a 2 h block from the head by themselves "+
			"once it spans more than 3 h, here the first 2 h (bench/ waits for it); VictoriaMetrics gets `/internal/force_flush` and `/internal/force_merge`. "+
			"bench/ then waits until the data directory stops changing and measures allocated bytes (du).\n"+
			"- *compacted bytes/sample*: Telltale and Prometheus: the bytes of the persisted block(s) (chunks + index + meta) ÷ the samples the "+
			"blocks' meta.json counts; the rest of the data is still in the head and WAL. VictoriaMetrics: the whole -storageDataPath "+
			"(data parts + indexdb) ÷ all samples.\n"+
			"- *data dir bytes/sample*: the whole data directory ÷ all samples: for Telltale and Prometheus that includes the WAL and head "+
			"chunks still holding the last hours (and Telltale's deploy log, a few KiB), which a long-running system amortises.",
			sz.DiskSeries, sz.DiskSpan, sz.DiskSeries*steps),
		Metrics: []Metric{
			{Key: "compacted_bytes_per_sample", Label: "compacted bytes/sample", Lower: true},
			{Key: "dir_bytes_per_sample", Label: "data dir bytes/sample (all files)", Lower: true},
		},
		Subject: peer.Telltale, Peers: peers}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(sz.DiskSeries, steps)
		// Start on a 2 h boundary so the first block holds a full 2 h.
		set.Start = set.Start.Truncate(2 * time.Hour)
		phases, err := env.phases("disk", set, steps)
		if err != nil {
			return r, err
		}
		p, err := env.load(ctx, "disk", k, phases, &r)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		if err := verify(ctx, p, set, steps, &r); err != nil {
			return r, err
		}
		if err := p.Compact(ctx, 3*time.Minute); err != nil {
			return r, err
		}
		total, err := peer.DiskUsage(p.DataDir)
		if err != nil {
			return r, err
		}
		r.Values = map[string]float64{"dir_bytes_per_sample": float64(total) / float64(r.Stored)}
		parts, err := breakdown(p.DataDir)
		if err != nil {
			return r, err
		}
		r.Notes = append(r.Notes, "data dir: "+parts)
		switch k {
		case peer.Telltale, peer.Prometheus:
			blocks, err := peer.Blocks(p.DataDir)
			if err != nil {
				return r, err
			}
			var bytes, samples, chunks, index int64
			for _, b := range blocks {
				bytes += b.Bytes
				samples += b.Samples
				chunks += b.ChunkBytes
				index += b.IndexBytes
			}
			if samples == 0 {
				return r, fmt.Errorf("%s's blocks hold no samples", k.Title())
			}
			r.Values["compacted_bytes_per_sample"] = float64(bytes) / float64(samples)
			r.Notes = append(r.Notes, fmt.Sprintf("%d block(s): %d samples in %d bytes (chunks %.2f bytes/sample, index %.2f)",
				len(blocks), samples, bytes, float64(chunks)/float64(samples), float64(index)/float64(samples)))
		default:
			r.Values["compacted_bytes_per_sample"] = r.Values["dir_bytes_per_sample"]
		}
		return r, nil
	}
	return s
}

// breakdown lists the top-level entries of dir with their sizes, largest
// first, e.g. "wal 12.1 MiB, 01J... 3.2 MiB".
func breakdown(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	type part struct {
		name string
		size int64
	}
	var parts []part
	for _, e := range ents {
		n, err := peer.DiskUsage(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		name := e.Name()
		if len(name) == 26 && e.IsDir() { // a block ULID: differs every run
			name = "block"
		}
		parts = append(parts, part{name, n})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].size > parts[j].size })
	var out []string
	for _, p := range parts {
		if p.size == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s", p.name, humanBytes(p.size)))
	}
	return strings.Join(out, ", "), nil
}

func humanBytes(n int64) string {
	switch {
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	case n >= 1024:
		return fmt.Sprintf("%.0f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%d B", n)
}
