package scenario

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/retry"
)

// The forward scenarios put Telltale in front of a distributed engine (a
// three-node Cortex with replication factor 3 on loopback, started fresh
// for every run): forward-ingest compares the collector in forward mode
// with vmagent forwarding to the same cluster; forward-query compares
// dashboard refreshes through the collector (the engine's query
// front-end, with its result cache) with the same queries asked of
// Cortex directly.

// cortexCluster is a fresh Cortex cluster of one run.
type cortexCluster struct {
	nodes []*peer.Process
}

func (c *cortexCluster) stop() {
	for _, n := range c.nodes {
		n.Stop()
	}
}

// startCortex starts n nodes with replication factor n and waits until
// every node sees every ingester ACTIVE.
func startCortex(ctx context.Context, env *Env, scenario string, n int) (*cortexCluster, error) {
	bin, ok := env.Bins[peer.Cortex]
	if !ok {
		return nil, fmt.Errorf("no Cortex binary; .ci/run builds it into the binary cache")
	}
	dir := env.runDir(scenario, peer.Cortex)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "cortex.yaml")
	if err := os.WriteFile(cfg, []byte(peer.CortexConfig(n, filepath.Join(dir, "blocks"))), 0o644); err != nil {
		return nil, err
	}
	grpc, gossip := make([]int, n), make([]int, n)
	for i := range n {
		var err error
		if grpc[i], err = peer.FreePort(); err != nil {
			return nil, err
		}
		if gossip[i], err = peer.FreePort(); err != nil {
			return nil, err
		}
	}
	c := &cortexCluster{}
	for i := range n {
		p, err := peer.Start(ctx, peer.Spec{Kind: peer.Cortex, Binary: bin, Dir: filepath.Join(dir, fmt.Sprintf("node%d", i)),
			Args: peer.CortexArgs(cfg, i, grpc[i], gossip[i], gossip)})
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, p)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, p := range c.nodes {
		for !peer.CortexRingActive(ctx, p.URL, n) {
			if time.Now().After(deadline) {
				c.stop()
				return nil, fmt.Errorf("cortex ring not complete after 2m")
			}
			if err := retry.Sleep(ctx, 200*time.Millisecond); err != nil {
				c.stop()
				return nil, err
			}
		}
	}
	return c, nil
}

// countIn waits until Cortex counts want generated samples in the steps
// of set, or 3 minutes passed, and returns what it counts.
func countIn(ctx context.Context, c *cortexCluster, set load.Set, steps int, want int64) (int64, time.Time, error) {
	q := &load.QueryClient{Base: c.nodes[0].APIURL()}
	at := time.UnixMilli(set.Time(steps - 1))
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := q.Sum(ctx, load.CountQuery(set.Selectors()[0], time.Duration(steps)*10*time.Second), at)
		if err == nil && int64(n) >= want {
			return int64(n), time.Now(), nil
		}
		if time.Now().After(deadline) {
			return int64(n), time.Now(), err
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return 0, time.Now(), err
		}
	}
}

// startForwarder starts the system under test in front of c: the
// collector in forward mode, or vmagent.
func startForwarder(ctx context.Context, env *Env, scenario string, k peer.Kind, c *cortexCluster) (*peer.Process, error) {
	bin, ok := env.Bins[k]
	if !ok {
		return nil, fmt.Errorf("no binary for %s", k.Title())
	}
	spec := peer.Spec{Kind: k, Binary: bin, Dir: env.runDir(scenario, k)}
	switch k {
	case peer.Telltale:
		spec.Args = []string{"-storage.remote-write-url=" + c.nodes[0].WriteURL(), "-storage.query-url=" + c.nodes[0].APIURL(),
			"-impact.enabled=false", "-self-metrics=false"}
	case peer.VMAgent:
		spec.Args = []string{"-remoteWrite.url=" + c.nodes[0].WriteURL()}
	}
	return peer.Start(ctx, spec)
}

func forwardIngestScenario(sz Sizes) Scenario {
	series := sz.IngestSeries[0]
	steps := 1 + max(sz.IngestSamples/series, 1)
	measured := series * (steps - 1)
	s := Scenario{
		Name: "forward-ingest", Group: "forward", Title: fmt.Sprintf("Forwarding remote write to a 3-node Cortex, %s series", seriesName(series)),
		What: fmt.Sprintf("A fresh three-node Cortex (replication factor 3, memberlist, loopback) per run; in front of it the collector in "+
			"forward mode (every write on its disk queue before the 2xx, then drained to Cortex) or vmagent (`-remoteWrite.url`, its own "+
			"disk-backed queue). %d senders post remote-write bodies of %d samples: a first pass creates %d series, then %d samples are "+
			"measured. *samples/s* is wall clock from the first measured request until Cortex counts every sample "+
			"(`%s` on a Cortex node), so it includes the forwarding; *CPU-s per 1M samples* is the forwarder process' user+system time "+
			"over the same span (Cortex' own CPU is not counted: it is the same for both).",
			sz.Senders, sz.PerRequest, series, measured, load.CountQuery(load.Set{}.Selectors()[0], time.Duration(steps)*10*time.Second)),
		Metrics: []Metric{
			{Key: "samples_per_s", Label: "samples/s through to Cortex (wall)"},
			{Key: "cpu_s_per_1m", Label: "forwarder CPU-s per 1M samples", Lower: true},
			{Key: "rss_mib", Label: "forwarder RSS after the load (MiB)", Lower: true},
		},
		Subject: peer.Telltale, Peers: []peer.Kind{peer.VMAgent},
	}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(series, steps)
		warm, err := env.plan("forward-ingest/warm", load.Plan{Set: set, Senders: env.Sizes.Senders, Steps: 1, PerRequest: env.Sizes.PerRequest})
		if err != nil {
			return r, err
		}
		main, err := env.plan("forward-ingest/main", load.Plan{Set: set, Senders: env.Sizes.Senders, FromStep: 1, Steps: steps - 1, PerRequest: env.Sizes.PerRequest})
		if err != nil {
			return r, err
		}
		c, err := startCortex(ctx, env, "forward-ingest", 3)
		if err != nil {
			return r, err
		}
		defer c.stop()
		p, err := startForwarder(ctx, env, "forward-ingest", k, c)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		ws, err := send(ctx, p, load.RemoteWrite, env.Sizes.Senders, warm)
		r.Sent += ws.Samples
		if err != nil {
			return r, fmt.Errorf("first pass: %w", err)
		}
		if _, _, err := countIn(ctx, c, set, steps, r.Sent); err != nil {
			return r, err
		}
		u0, err := p.Usage()
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		st, err := send(ctx, p, load.RemoteWrite, env.Sizes.Senders, main)
		r.Sent += st.Samples
		if err != nil {
			return r, err
		}
		stored, done, err := countIn(ctx, c, set, steps, r.Sent)
		r.Stored, r.VerifyUnit = stored, "samples"
		if err != nil {
			return r, fmt.Errorf("cannot count the samples in Cortex: %w", err)
		}
		u1, err := p.Usage()
		if err != nil {
			return r, err
		}
		r.Values = map[string]float64{
			"samples_per_s": float64(st.Samples) / done.Sub(t0).Seconds(),
			"cpu_s_per_1m":  (u1.CPU - u0.CPU) / (float64(st.Samples) / 1e6),
			"rss_mib":       float64(u1.RSS) / mib,
		}
		if r.Stored != r.Sent {
			return r, fmt.Errorf("sent %d samples; Cortex counts %d", r.Sent, r.Stored)
		}
		return r, nil
	}
	return s
}

func forwardQueryScenario(sz Sizes) Scenario {
	steps := int(sz.QuerySpan / (10 * time.Second))
	s := Scenario{
		Name: "forward-query", Group: "forward", Title: "Dashboard refresh: through the collector vs Cortex directly",
		What: fmt.Sprintf("%d series are loaded for %v through the collector in forward mode into a fresh three-node Cortex (counted back). "+
			"Then a dashboard of the query scenario's three panels is refreshed %d times, the last hour at a %v step, the window moving "+
			"one step per refresh as Grafana's does: against the collector (its result cache on: a refresh computes only the newest steps, "+
			"reading raw samples from Cortex by remote read) and against Cortex' own query API. Figures: median and p90 wall time of one "+
			"whole refresh (three queries), measured by the client.", sz.QuerySeries, sz.QuerySpan, sz.QueryRuns, sz.QueryStep),
		Metrics: []Metric{
			{Key: "refresh_p50_ms", Label: "dashboard refresh: median ms", Lower: true},
			{Key: "refresh_p90_ms", Label: "dashboard refresh: p90 ms", Lower: true},
		},
		Subject: peer.Telltale, Peers: []peer.Kind{peer.Cortex},
	}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		set := env.set(sz.QuerySeries, steps)
		streams, err := env.plan("query", load.Plan{Set: set, Senders: env.Sizes.Senders, Steps: steps, PerRequest: env.Sizes.PerRequest})
		if err != nil {
			return r, err
		}
		c, err := startCortex(ctx, env, "forward-query", 3)
		if err != nil {
			return r, err
		}
		defer c.stop()
		p, err := startForwarder(ctx, env, "forward-query", peer.Telltale, c)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		st, err := send(ctx, p, load.RemoteWrite, env.Sizes.Senders, streams)
		r.Sent = st.Samples
		if err != nil {
			return r, err
		}
		if r.Stored, _, err = countIn(ctx, c, set, steps, r.Sent); err != nil || r.Stored != r.Sent {
			return r, fmt.Errorf("sent %d samples; Cortex counts %d (%v)", r.Sent, r.Stored, err)
		}
		r.VerifyUnit = "samples"
		base := p.APIURL()
		if k == peer.Cortex {
			base = c.nodes[0].APIURL()
		}
		qc := &load.QueryClient{Base: base}
		end := time.UnixMilli(set.Time(steps - 1)).Truncate(sz.QueryStep).Add(-time.Duration(sz.QueryRuns) * sz.QueryStep)
		var ms []float64
		for i := 0; i <= sz.QueryRuns; i++ {
			e := end.Add(time.Duration(i) * sz.QueryStep)
			t0 := time.Now()
			for _, q := range queries {
				if _, _, err := qc.Range(ctx, q.q, e.Add(-time.Hour), e, sz.QueryStep); err != nil {
					return r, err
				}
			}
			if i > 0 { // the first refresh fills caches and is not timed
				ms = append(ms, float64(time.Since(t0).Microseconds())/1e3)
			}
		}
		r.Values = map[string]float64{"refresh_p50_ms": Quantile(ms, 0.5), "refresh_p90_ms": Quantile(ms, 0.9)}
		return r, nil
	}
	return s
}
