package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/enginetest"
	tailclient "github.com/telltale-dev/telltale/collector/tail/client"
	"github.com/telltale-dev/telltale/grafana/grafanatest"
	"github.com/telltale-dev/telltale/samples"
)

// sender is an rwload-like remote write sender: it writes nSeries series,
// one sample each per request, to the collector replicas through the
// agent's client (failover between replicas), and remembers which
// timestamps were acknowledged.
type sender struct {
	name    string
	client  *push.Client
	nSeries int

	mu    sync.Mutex
	acked []int64 // timestamps of acknowledged requests
	sent  int
}

func newSender(t *testing.T, name string, nSeries int, urls ...string) *sender {
	t.Helper()
	c, err := push.New(push.Options{URL: urls[0] + "/api/v1/write", URLs: suffix(urls[1:], "/api/v1/write"),
		Timeout: 5 * time.Second, MaxBackoff: 200 * time.Millisecond, MaxAttempts: 50})
	if err != nil {
		t.Fatal(err)
	}
	return &sender{name: name, client: c, nSeries: nSeries}
}

func suffix(us []string, s string) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u + s
	}
	return out
}

// run sends a request every 20ms until ctx is done.
func (s *sender) run(ctx context.Context) {
	enc := push.Encoder{Version: push.V1, MaxSamples: 10000}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		ts := time.Now().UnixMilli()
		var b samples.Batch
		for i := range s.nSeries {
			b.StartSeries(nil)
			b.AddLabel("__name__", "scaleout_load")
			b.AddLabel("sender", s.name)
			b.AddLabel("series", strconv.Itoa(i))
			b.AddSample(ts, float64(ts%100000))
		}
		var err error
		_ = enc.Encode(&b, func(body []byte, _ int) error { err = s.client.Send(context.WithoutCancel(ctx), body); return nil })
		s.mu.Lock()
		s.sent++
		if err == nil {
			s.acked = append(s.acked, ts)
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// rawSamples returns the sample timestamps of every series matching sel
// in the last window, by series label value of label.
func rawSamples(t *testing.T, base, sel, label string, window time.Duration) map[string]map[int64]bool {
	t.Helper()
	q := fmt.Sprintf("%s[%dms]", sel, window.Milliseconds())
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []collectortest.Result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("%s: %v %s", q, err, env.Error)
	}
	out := map[string]map[int64]bool{}
	for _, r := range env.Data.Result {
		m := map[int64]bool{}
		for _, v := range r.Values {
			f, _ := v[0].(float64)
			m[int64(f*1000+0.5)] = true
		}
		out[r.Metric[label]] = m
	}
	return out
}

// backlog is the records a forward-mode collector still has queued.
func backlog(t *testing.T, in *collectortest.Instance, target string) float64 {
	return in.Metric(t.Context(), `telltale_forward_spool_records{target="`+target+`"}`)
}

// TestScaleOutCortex is the scale-out must-show: two collector replicas in
// forward mode on a three-node Cortex (replication factor 3), under load
// from the real agent and remote write senders that fail over between the
// replicas. One replica is killed with -9 (its queue holds acknowledged
// samples Cortex does not have yet) and restarted; one Cortex node is
// killed with -9 and restarted. Afterwards every acknowledged sample is
// queryable through either replica, counted back one by one, and the
// agent's collection counter has no gap.
func TestScaleOutCortex(t *testing.T) {
	cx := enginetest.StartCortex(t, 3, 3)
	target := strings.NewReplacer(".", "_", ":", "_").Replace(strings.TrimPrefix(cx.Balancer.URL, "http://"))
	args := append(forwardArgs(cx.Write, cx.API), "-forward.shutdown-drain=0s")
	addr1, addr2 := collectortest.FreeAddr(t), collectortest.FreeAddr(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	c1 := collectortest.StartOn(t, addr1, dir1, args...)
	c2 := collectortest.StartOn(t, addr2, dir2, args...)

	// The real agent, failing over between the replicas.
	agentBin := collectortest.Build(t, "github.com/telltale-dev/telltale/agent")
	agentAddr := collectortest.FreeAddr(t)
	agent := enginetest.Start(t, "agent", t.TempDir(), agentBin, "-collector", c1.URL+","+c2.URL, "-listen", agentAddr,
		"-interval", "500ms", "-instance", "scaleout-agent", "-spool-dir", t.TempDir(), "-retry-max-backoff", "200ms")
	agent.WaitHTTP("http://"+agentAddr+"/healthz", time.Minute)

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	senders := []*sender{newSender(t, "a", 20, c1.URL, c2.URL), newSender(t, "b", 20, c2.URL, c1.URL)}
	for _, s := range senders {
		wg.Go(func() { s.run(ctx) })
	}
	acked := func() int {
		n := 0
		for _, s := range senders {
			s.mu.Lock()
			n += len(s.acked)
			s.mu.Unlock()
		}
		return n
	}
	waitAcked := func(n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for acked() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d requests acknowledged; want %d", acked(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(50)

	// The engine cannot be reached: the replicas keep acknowledging writes,
	// which wait in their queues. Replica 1 is killed with -9 then, with
	// acknowledged samples that exist only in its queue.
	cx.Balancer.SetUnavailable(true)
	waitAcked(acked() + 50)
	if n := backlog(t, c1, target); n <= 0 {
		t.Fatalf("replica 1 queues %v records while the engine is unreachable; want some", n)
	}
	c1.Kill()
	waitAcked(acked() + 50) // the senders and the agent fail over to replica 2
	cx.Balancer.SetUnavailable(false)
	c1 = collectortest.StartOn(t, addr1, dir1, args...)
	waitAcked(acked() + 50)
	// A Cortex node dies and comes back: with RF 3 writes and reads go on.
	cx.Kill(1)
	waitAcked(acked() + 100)
	cx.Restart(1)
	waitAcked(acked() + 50)
	stopLoad()
	wg.Wait()
	// The agent delivers what it spooled during the failovers, then stops.
	deadline := time.Now().Add(time.Minute)
	for agentMetric(t, agentAddr, "telltale_agent_spool_records") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent's spool did not drain in 1m")
		}
		time.Sleep(50 * time.Millisecond)
	}
	agent.Stop()

	// Both queues drain.
	deadline = time.Now().Add(2 * time.Minute)
	for backlog(t, c1, target) != 0 || backlog(t, c2, target) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queues not drained after 2m: replica 1 %v, replica 2 %v records", backlog(t, c1, target), backlog(t, c2, target))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every acknowledged sample, through either replica.
	for _, in := range []*collectortest.Instance{c1, c2} {
		for _, s := range senders {
			got := rawSamples(t, in.URL, `scaleout_load{sender="`+s.name+`"}`, "series", time.Hour)
			missing := 0
			for i := range s.nSeries {
				for _, ts := range s.acked {
					if !got[strconv.Itoa(i)][ts] {
						missing++
					}
				}
			}
			if missing > 0 {
				t.Errorf("through %s: sender %s: %d of %d acknowledged samples missing", in.URL, s.name, missing, len(s.acked)*s.nSeries)
			}
			t.Logf("through %s: sender %s: %d requests sent, %d acknowledged, all %d samples counted back", in.URL, s.name, s.sent, len(s.acked), len(s.acked)*s.nSeries)
		}
		// The agent's collection counter counts 1, 2, 3 ... one sample per
		// cycle: every value up to the last stored one is there.
		vals := agentCounter(t, in.URL)
		last := 0
		for v := range vals {
			last = max(last, v)
		}
		for v := 1; v <= last; v++ {
			if !vals[v] {
				t.Errorf("through %s: the agent's cycle %d of %d is missing", in.URL, v, last)
			}
		}
		if last < 10 {
			t.Errorf("through %s: only %d agent cycles stored", in.URL, last)
		}
	}
}

// agentCounter returns the values of the agent's collection counter.
func agentCounter(t *testing.T, base string) map[int]bool {
	t.Helper()
	q := `telltale_agent_collections_total{instance="scaleout-agent"}[1h]`
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			Result []collectortest.Result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Data.Result) != 1 {
		t.Fatalf("%s: %v, %d series; want one", q, err, len(env.Data.Result))
	}
	out := map[int]bool{}
	for _, v := range env.Data.Result[0].Values {
		n, _ := strconv.Atoi(v[1].(string))
		out[n] = true
	}
	return out
}

// agentMetric reads a metric of the agent's /metrics (-1 when absent).
func agentMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// TestReplicasOverNATS: two forward-mode replicas connected over NATS
// (replica 1 embeds the server). A live-tail client of replica 1 sees the
// samples written to replica 2 and the deploy recorded there; a late
// sample written through replica 2 drops what replica 1's result cache
// holds, so replica 1 answers what the engine answers.
func TestReplicasOverNATS(t *testing.T) {
	t.Parallel()
	prom := enginetest.StartPrometheus(t)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	args := append(forwardArgs(prom.Write, prom.API), "-query.cache-freshness=1m")
	c1 := collectortest.Start(t, append(args, "-nats.listen="+natsAddr)...)
	c2 := collectortest.Start(t, append(args, "-nats.url=nats://"+natsAddr)...)

	conn, err := tailclient.Dial(t.Context(), tailclient.Options{URL: c1.URL, Selectors: []string{`fanout_e2e{job="api"}`}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Replica 2 learns of the subscription over NATS, then publishes.
	deadline := time.Now().Add(30 * time.Second)
	for c2.Metric(t.Context(), "telltale_fanout_remote_replicas") != 1 || !hasInterest(t, c2) {
		if time.Now().After(deadline) {
			t.Fatal("replica 2 never learned replica 1's tail selectors")
		}
		time.Sleep(20 * time.Millisecond)
	}
	now := time.Now().Truncate(time.Second)
	var b samples.Batch
	for _, job := range []string{"api", "db"} {
		b.StartSeries(nil)
		b.AddLabel("__name__", "fanout_e2e")
		b.AddLabel("job", job)
		b.AddSample(now.UnixMilli(), 42)
	}
	if status, body, _ := postRemoteWrite(t, c2, &b, 1); status != http.StatusNoContent {
		t.Fatalf("write to replica 2: %d %s", status, body)
	}
	status, body := c2.Post(t.Context(), "/api/v1/deploys", []byte(`{"service":"api","env":"prod","version":"v2","id":"api-v2"}`), map[string]string{"Content-Type": "application/json"})
	if status != http.StatusCreated {
		t.Fatalf("deploy on replica 2: %d %s", status, body)
	}
	var gotSample, gotDeploy bool
	for !gotSample || !gotDeploy {
		m, _, err := conn.Next()
		if err != nil {
			t.Fatalf("tail on replica 1: %v (sample %v, deploy %v)", err, gotSample, gotDeploy)
		}
		switch m.Type {
		case "samples":
			for _, s := range m.Samples {
				if s.Labels["job"] != "api" {
					t.Errorf("tail got %v; want only job=api", s.Labels)
				}
				gotSample = true
			}
		case "deploy":
			gotDeploy = strings.Contains(string(m.Deploy), `"api-v2"`)
		}
	}

	// The cache: replica 1 caches a range query; a late sample through
	// replica 2 must drop it once the engine has the sample.
	checkCacheSeesLateWrite(t, prom.API, c1, c2, "fanout_cache")
}

// hasInterest reports whether in publishes tail samples to others (some
// other replica announced selectors).
func hasInterest(t *testing.T, in *collectortest.Instance) bool {
	return in.Metric(t.Context(), `telltale_fanout_received_total{kind="interest"}`) > 0
}

// TestSharedChangeLogPostgres: two replicas share one change log in
// PostgreSQL. Deploys recorded on either replica are in the log once and
// seen by both; Grafana is down while they are recorded, a replica is
// killed with -9 holding some of the deliveries, and every deploy still
// gets its annotation, once.
func TestSharedChangeLogPostgres(t *testing.T) {
	t.Parallel()
	pg := enginetest.StartPostgres(t)
	url := pg.Database(t, "changes")
	prom := enginetest.StartPrometheus(t)
	g := grafanatest.NewServer("grafana-token")
	t.Cleanup(g.Close)
	tokenFile := filepath.Join(t.TempDir(), "grafana-token")
	os.WriteFile(tokenFile, []byte("grafana-token\n"), 0o600)
	args := append(forwardArgs(prom.Write, prom.API), "-changes.postgres-url="+url, "-changes.claim-timeout=3s",
		"-grafana.url="+g.URL, "-grafana.token-file="+tokenFile, "-impact.enabled=false")
	addr1, dir1 := collectortest.FreeAddr(t), t.TempDir()
	c1 := collectortest.StartOn(t, addr1, dir1, args...)
	c2 := collectortest.Start(t, args...)

	g.SetFailure(http.StatusServiceUnavailable)
	const n = 10
	for i := range n {
		in := []*collectortest.Instance{c1, c2}[i%2]
		body := fmt.Sprintf(`{"service":"api","env":"prod","version":"v%d","id":"dep-%d"}`, i, i)
		if status, resp := in.Post(t.Context(), "/api/v1/deploys", []byte(body), map[string]string{"Content-Type": "application/json"}); status != http.StatusCreated {
			t.Fatalf("deploy %d: %d %s", i, status, resp)
		}
	}
	// Both replicas' Grafana workers have tried (and failed) by now.
	deadline := time.Now().Add(time.Minute)
	for g.Requests() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no replica tried Grafana")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c1.Kill() // it may hold claims: they pass to replica 2 after -changes.claim-timeout
	g.SetFailure(0)
	deadline = time.Now().Add(2 * time.Minute)
	for len(g.Annotations()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d annotations after 2m", len(g.Annotations()), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c1 = collectortest.StartOn(t, addr1, dir1, args...)
	for _, in := range []*collectortest.Instance{c1, c2} {
		deadline = time.Now().Add(time.Minute)
		for in.Metric(t.Context(), "telltale_changes_outbox_pending") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: outbox still pending after 1m", in.URL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Each deploy once in the log, on both replicas.
	for _, in := range []*collectortest.Instance{c1, c2} {
		ds := listDeploys(t, in, "?service=api&limit=100")
		seen := map[string]int{}
		for _, d := range ds {
			seen[d.ID]++
		}
		if len(ds) != n || len(seen) != n {
			t.Errorf("%s lists %d deploys (%d distinct); want %d, each once", in.URL, len(ds), len(seen), n)
		}
	}
	// Each annotation once.
	tags := map[string]int{}
	for _, a := range g.Annotations() {
		for _, tag := range a.Tags {
			if strings.HasPrefix(tag, "deploy-id:") {
				tags[tag]++
			}
		}
	}
	if len(tags) != n || g.Creates() != n {
		t.Errorf("grafana holds annotations for %d deploys after %d creates; want %d and %d", len(tags), g.Creates(), n, n)
	}
	for tag, k := range tags {
		if k != 1 {
			t.Errorf("%s annotated %d times; want once", tag, k)
		}
	}
}

// TestMigrateChangesToPostgres: the change log of a single collector,
// copied with `collector migrate-changes`, is what a collector on the
// PostgreSQL log lists.
func TestMigrateChangesToPostgres(t *testing.T) {
	t.Parallel()
	pg := enginetest.StartPostgres(t)
	url := pg.Database(t, "changes")
	dir := t.TempDir()
	in := collectortest.StartIn(t, dir, "-impact.enabled=false")
	for i := range 3 {
		body := fmt.Sprintf(`{"service":"api","env":"prod","version":"v%d","id":"mig-%d"}`, i, i)
		if status, resp := in.Post(t.Context(), "/api/v1/deploys", []byte(body), map[string]string{"Content-Type": "application/json"}); status != http.StatusCreated {
			t.Fatalf("deploy %d: %d %s", i, status, resp)
		}
	}
	in.Stop()
	out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), "migrate-changes", "-data", dir, "-changes.postgres-url", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copied 3 changes") {
		t.Fatalf("migrate-changes: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), collectortest.Binary(t), "migrate-changes", "-data", dir, "-changes.postgres-url", url).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already holds 3 changes") {
		t.Errorf("a second migrate-changes: %v\n%s; want a refusal", err, out)
	}
	pgIn := collectortest.Start(t, "-changes.postgres-url="+url, "-impact.enabled=false")
	ds := listDeploys(t, pgIn, "?service=api")
	if len(ds) != 3 || ds[0].ID != "mig-2" || ds[2].ID != "mig-0" {
		t.Errorf("the collector on PostgreSQL lists %+v; want mig-2, mig-1, mig-0", ds)
	}
}

// TestForwardModeAgainstThanos: a forward-mode collector writes remote
// write 1.0 to Thanos receive; Thanos Query's own API has every sample
// (with the labels receive adds); the collector reads through Thanos
// Query's query API (it has no remote read: auto mode finds out) and,
// with -storage.query-drop-labels, serves the series as they were written.
func TestForwardModeAgainstThanos(t *testing.T) {
	t.Parallel()
	th := enginetest.StartThanos(t)
	in := collectortest.Start(t, "-storage.remote-write-url="+th.Write, "-storage.query-url="+th.API,
		"-storage.query-drop-labels=receive_cluster,tenant_id", "-impact.enabled=false")
	now := time.Now().Truncate(time.Second)
	b := testBatch("fwd_thanos", 5, 30, now)
	if status, body, _ := postRemoteWrite(t, in, b, 1); status != http.StatusNoContent {
		t.Fatalf("write: %d %s", status, body)
	}
	waitQuery(t, th.API, `sum(count_over_time(fwd_thanos{receive_cluster="eu1",tenant_id="default-tenant"}[1h]))`, 150)
	checkStored(t, in, b, now)
	res := in.Query(t.Context(), "fwd_thanos", time.Time{})
	for _, r := range res {
		if _, ok := r.Metric["receive_cluster"]; ok {
			t.Errorf("series %v carries receive_cluster; -storage.query-drop-labels should drop it", r.Metric)
		}
	}
	if !strings.Contains(in.Log(), "serves no remote read") {
		t.Error("the collector did not report falling back to the query API")
	}
}
