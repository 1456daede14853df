package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/retry"
)

func agentScenario(sz Sizes) Scenario {
	s := Scenario{Name: "agent", Group: "agent", Title: "Host agent footprint: Telltale agent vs node_exporter",
		What: fmt.Sprintf("The Telltale agent runs with `-interval %v`, collecting host metrics and pushing them (remote write) to a Telltale "+
			"collector; node_exporter (default collectors) is scraped every %v by a plain HTTP GET loop in bench/. After a second of warm-up "+
			"each is measured for %v (%d collections): *CPU-s per minute* is on-CPU time summed over the process' threads from /proc/<pid>/task/*/schedstat "+
			"(nanoseconds: both use less CPU than /proc/<pid>/stat's 10 ms ticks resolve over a minute), *RSS* the mean of VmRSS read every second. "+
			"The collector's and the scraper's own costs are not counted. Binary sizes are of `strip`ped copies. "+
			"Verification: for the agent, the samples it reports sent (`telltale_agent_samples_sent_total` on its -listen /metrics) equal "+
			"the samples the collector counts back; for node_exporter, every scrape answered 200. "+
			"*node_\\* names*: for node_exporter, the `node_*` metric names of its scrape; for the agent, how many of those same names "+
			"the collector stores from the agent (node_exporter is run once more after the agent's window to list them), so the ratio "+
			"is the share of node_exporter's default names the agent delivers on this host.",
			sz.AgentInterval, sz.AgentInterval, sz.AgentWindow, int(sz.AgentWindow/sz.AgentInterval)),
		Metrics: []Metric{
			{Key: "cpu_s_per_min", Label: "CPU-s per minute", Lower: true},
			{Key: "rss_mib", Label: "RSS, mean (MiB)", Lower: true},
			{Key: "binary_mib", Label: "stripped binary (MiB)", Lower: true},
			{Key: "node_names", Label: "node_* names of node_exporter's delivered", Lower: false},
		},
		Subject: peer.Agent, Peers: []peer.Kind{peer.NodeExporter}}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		bin, ok := env.Bins[k]
		if !ok {
			return r, fmt.Errorf("no binary for %s; run `go run ./bench install`", k.Title())
		}
		dir := env.runDir("agent", k)
		size, stripped, err := peer.StrippedSize(ctx, bin, env.WorkDir)
		if err != nil {
			return r, err
		}
		if !stripped {
			r.Notes = append(r.Notes, "strip not installed: binary size unstripped")
		}
		var p, verifySink *peer.Process
		var scraper *scrapeLoop
		switch k {
		case peer.Agent:
			// The count below sums series of many metrics that differ
			// only by name, which PromQL allows with delayed name removal.
			sink, err := peer.Start(ctx, peer.Spec{Kind: peer.Telltale, Binary: env.Bins[peer.Telltale], Dir: env.runDir("agent-sink", peer.Telltale),
				Args: []string{"-query.enable-feature=promql-delayed-name-removal", "-self-metrics=false"}})
			if err != nil {
				return r, err
			}
			defer sink.Stop()
			p, err = peer.Start(ctx, peer.Spec{Kind: peer.Agent, Binary: bin, Dir: dir, CollectorURL: sink.URL,
				Args: []string{"-interval", env.Sizes.AgentInterval.String(), "-instance", "bench-host"}})
			if err != nil {
				return r, err
			}
			defer p.Stop()
			verifySink = sink
		case peer.NodeExporter:
			p, err = peer.Start(ctx, peer.Spec{Kind: k, Binary: bin, Dir: dir})
			if err != nil {
				return r, err
			}
			defer p.Stop()
			scraper = &scrapeLoop{url: p.URL + "/metrics"}
		default:
			return r, fmt.Errorf("the agent scenario runs the agent and node_exporter, not %s", k.Title())
		}
		if err := retry.Sleep(ctx, time.Second); err != nil {
			return r, err
		}
		u0, err := p.Usage()
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		sctx, stopScraper := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if scraper != nil {
			wg.Go(func() { scraper.run(sctx, env.Sizes.AgentInterval/2, env.Sizes.AgentInterval) })
		}
		var rss []float64
		for time.Since(t0) < env.Sizes.AgentWindow {
			if err := retry.Sleep(ctx, min(time.Second, env.Sizes.AgentWindow/4)); err != nil {
				stopScraper()
				return r, err
			}
			u, err := p.Usage()
			if err != nil {
				stopScraper()
				return r, err
			}
			rss = append(rss, float64(u.RSS))
		}
		u1, err := p.Usage()
		el := time.Since(t0)
		stopScraper()
		wg.Wait()
		if err != nil {
			return r, err
		}
		var mean float64
		for _, v := range rss {
			mean += v / float64(len(rss))
		}
		r.Values = map[string]float64{
			"cpu_s_per_min": (u1.RunTime - u0.RunTime) / el.Minutes(),
			"rss_mib":       mean / mib,
			"binary_mib":    float64(size) / mib,
		}
		if verifySink != nil {
			if err := verifyAgent(ctx, p, verifySink, &r); err != nil {
				return r, err
			}
			return r, agentNames(ctx, env, verifySink, &r)
		}
		if scraper != nil {
			r.Sent, r.Stored, r.VerifyUnit = scraper.tries, scraper.ok, "scrapes"
			r.Values["node_names"] = float64(len(nodeNames(scraper.scrapeBuf.Bytes())))
			r.Notes = append(r.Notes, fmt.Sprintf("%d samples per scrape", scraper.samples))
			if scraper.err != nil {
				return r, scraper.err
			}
		}
		return r, nil
	}
	return s
}

// verifyAgent compares the samples the agent says it sent with those the
// collector stores. Both move every interval, so it reads the agent's
// counter before and after the count and retries when a push came between.
func verifyAgent(ctx context.Context, a, sink *peer.Process, r *Result) error {
	q := &load.QueryClient{Base: sink.URL}
	r.VerifyUnit = "samples"
	for range 5 {
		before, err := agentSent(ctx, a)
		if err != nil {
			return err
		}
		n, err := q.Sum(ctx, `sum(count_over_time({__name__=~".+"}[1h]))`, time.Now())
		if err != nil {
			return fmt.Errorf("cannot count the agent's samples in the collector: %w", err)
		}
		after, err := agentSent(ctx, a)
		if err != nil {
			return err
		}
		r.Sent, r.Stored = int64(after), int64(n)
		if before == after && r.Sent == r.Stored {
			return nil
		}
		if err := retry.Sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	if r.Sent == 0 {
		return fmt.Errorf("the agent sent nothing; its log ends:\n%s", a.LogTail(10))
	}
	return fmt.Errorf("the agent says it sent %d samples; the collector stores %d", r.Sent, r.Stored)
}

// agentNames counts the node_* names of node_exporter (run once more, with
// its defaults) that the collector stores from the agent, and notes the
// missing ones.
func agentNames(ctx context.Context, env *Env, sink *peer.Process, r *Result) error {
	got, err := storedNames(ctx, sink.URL)
	if err != nil {
		return err
	}
	bin, ok := env.Bins[peer.NodeExporter]
	if !ok {
		n := 0
		for name := range got {
			if strings.HasPrefix(name, "node_") {
				n++
			}
		}
		r.Values["node_names"] = float64(n)
		r.Notes = append(r.Notes, fmt.Sprintf("node_exporter not installed: the agent's %d node_* names counted, not compared", n))
		return nil
	}
	ne, err := peer.Start(ctx, peer.Spec{Kind: peer.NodeExporter, Binary: bin, Dir: env.runDir("agent-names", peer.NodeExporter)})
	if err != nil {
		return err
	}
	defer ne.Stop()
	sl := &scrapeLoop{url: ne.URL + "/metrics"}
	if err := sl.scrape(ctx); err != nil {
		return err
	}
	want := nodeNames(sl.scrapeBuf.Bytes())
	var missing []string
	for n := range want {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	delivered := len(want) - len(missing)
	r.Values["node_names"] = float64(delivered)
	r.Notes = append(r.Notes, fmt.Sprintf("delivers %d of node_exporter's %d node_* names (%.1f%%); missing: %s",
		delivered, len(want), 100*float64(delivered)/float64(max(1, len(want))), strings.Join(missing, ", ")))
	return nil
}

// nodeNames lists the node_* metric names of a text exposition.
func nodeNames(text []byte) map[string]bool {
	names := map[string]bool{}
	for line := range bytes.Lines(text) {
		if !bytes.HasPrefix(line, []byte("node_")) {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end > 0 {
			names[string(line[:end])] = true
		}
	}
	return names
}

// storedNames lists the metric names a Prometheus-compatible API stores.
func storedNames(ctx context.Context, base string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/label/__name__/values", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot list the collector's metric names: %w", err)
	}
	defer resp.Body.Close()
	var ans struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.Status != "success" {
		return nil, fmt.Errorf("cannot list the collector's metric names: %s %v", ans.Status, err)
	}
	names := map[string]bool{}
	for _, n := range ans.Data {
		names[n] = true
	}
	return names, nil
}

// agentSent reads telltale_agent_samples_sent_total from the agent's
// /metrics.
func agentSent(ctx context.Context, a *peer.Process) (float64, error) {
	var buf bytes.Buffer
	if err := a.Get(ctx, "/metrics", &buf); err != nil {
		return 0, fmt.Errorf("cannot read the agent's /metrics: %w", err)
	}
	v, ok := metricValue(buf.Bytes(), "telltale_agent_samples_sent_total")
	if !ok {
		return 0, fmt.Errorf("the agent's /metrics has no telltale_agent_samples_sent_total")
	}
	return v, nil
}

// metricValue returns the value of the first sample of metric name (without
// labels) in a text exposition.
func metricValue(text []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return f, err == nil
	}
	return 0, false
}

// scrapeLoop scrapes a /metrics URL at an interval, as Prometheus would.
type scrapeLoop struct {
	url              string
	tries, ok        int64
	samples          int
	err              error
	client           http.Client
	scrapeBuf        bytes.Buffer
	firstErrRecorded bool
}

func (s *scrapeLoop) run(ctx context.Context, first, every time.Duration) {
	wait := first
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = every
		s.tries++
		if err := s.scrape(ctx); err != nil {
			if ctx.Err() != nil {
				s.tries--
				return
			}
			if !s.firstErrRecorded {
				s.err, s.firstErrRecorded = err, true
			}
			continue
		}
		s.ok++
	}
}

func (s *scrapeLoop) scrape(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("scrape %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape %s: %s", s.url, resp.Status)
	}
	s.scrapeBuf.Reset()
	if _, err := s.scrapeBuf.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("scrape %s: %w", s.url, err)
	}
	n := 0
	for line := range bytes.Lines(s.scrapeBuf.Bytes()) {
		if len(bytes.TrimSpace(line)) > 0 && line[0] != '#' {
			n++
		}
	}
	s.samples = n
	return nil
}
