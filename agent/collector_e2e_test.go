package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// startRealAgent runs the real agent binary against collectorURL, with its
// own /metrics on listen.
func startRealAgent(t *testing.T, bin, collectorURL, spool, cfg, listen string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-collector", collectorURL, "-interval", "1s", "-spool-dir", spool,
		"-config", cfg, "-instance", "e2e-host", "-label", "run=real", "-listen", listen)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})
	return cmd
}

// TestAgentToRealCollector: the real agent pushes host metrics and a
// scraped app endpoint to the real collector; both are queryable with
// node_exporter's names and labels. Then the collector is down for 30 s
// (30 intervals) and comes back: every interval's samples arrive, none lost.
func TestAgentToRealCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage; skipped with -short")
	}
	t.Parallel()
	bin := buildAgent(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE shop_orders_total counter\nshop_orders_total{kind=\"book\"} 42")
	}))
	defer app.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("scrape_configs:\n  - job: shop\n    url: "+app.URL+"/metrics\n"), 0o600)

	data := filepath.Join(dir, "data")
	// A fixed port, so the restarted collector is where the agent sends.
	addr := collectortest.FreeAddr(t)
	in := collectortest.StartOn(t, addr, data)
	agentMetrics := "http://" + collectortest.FreeAddr(t)
	startRealAgent(t, bin, in.URL, filepath.Join(dir, "spool"), cfg, strings.TrimPrefix(agentMetrics, "http://"))
	agentMetrics += "/metrics"

	query := func(in *collectortest.Instance, q string) []collectortest.Result {
		return in.Query(t.Context(), q, time.Time{})
	}
	waitUntil(t, "host and app metrics are queryable", 60*time.Second, func() bool {
		return len(query(in, `node_cpu_seconds_total{job="node",instance="e2e-host",mode="idle"}`)) > 0 &&
			len(query(in, `shop_orders_total{job="shop",kind="book"}`)) == 1
	})
	for _, q := range []string{
		`node_memory_MemAvailable_bytes{instance="e2e-host",job="node",run="real"}`,
		`node_memory_MemTotal_bytes{instance="e2e-host"}`,
		`node_load1{instance="e2e-host"}`,
		`node_filesystem_avail_bytes{instance="e2e-host",mountpoint!=""}`,
		`node_network_receive_bytes_total{instance="e2e-host",device=~".+"}`,
		`node_boot_time_seconds{instance="e2e-host"}`,
		`node_uname_info{instance="e2e-host"}`,
		`up{job="shop"} == 1`,
		`scrape_duration_seconds{job="shop"}`,
	} {
		if len(query(in, q)) == 0 {
			t.Errorf("%s: no series", q)
		}
	}
	if res := query(in, `shop_orders_total{job="shop"}`); len(res) != 1 || res[0].Value[1] != "42" ||
		res[0].Metric["instance"] != strings.TrimPrefix(app.URL, "http://") {
		t.Errorf("scraped app metric: got %v; want 42 with instance %s", res, strings.TrimPrefix(app.URL, "http://"))
	}

	// Outage: 30 collections at a 1 s interval, counted at the agent (so a
	// busy machine makes it longer, never shorter).
	in.Stop()
	collections := func() int {
		v, err := collectortest.MetricAt(t.Context(), agentMetrics, "telltale_agent_collections_total")
		if err != nil {
			t.Fatal(err)
		}
		return int(v)
	}
	before := collections()
	after := before + 30
	waitUntil(t, "30 collections during the outage", 5*time.Minute, func() bool { return collections() >= after })
	in2 := collectortest.StartOn(t, addr, data)
	// Live data goes first and the spool is replayed beside it: wait until
	// the replay filled the outage, i.e. as many cycles are stored as the
	// newest cycle's number.
	// On timeout the check below names the first missing cycle.
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		last := lastCycle(t, query(in2, `telltale_agent_collections_total{run="real"}`))
		stored := lastCycle(t, query(in2, `count_over_time(telltale_agent_collections_total{run="real"}[10m])`))
		if last >= after+3 && stored >= last {
			break
		}
	}
	// Every cycle from the first to now is stored exactly once: the counter's
	// samples over the whole run are 1, 2, 3, ... without a hole.
	raw := in2.Query(t.Context(), `telltale_agent_collections_total{run="real"}[10m]`, time.Time{})
	if len(raw) != 1 {
		t.Fatalf("got %d series of telltale_agent_collections_total; want 1", len(raw))
	}
	var prev int
	for i, p := range raw[0].Values {
		v, _ := strconv.Atoi(p[1].(string))
		if i > 0 && v != prev+1 {
			t.Fatalf("cycle %d follows cycle %d: a hole or a duplicate in the stored samples (outage from cycle %d)", v, prev, before)
		}
		prev = v
	}
	if prev < after {
		t.Fatalf("stored cycles end at %d; want at least %d", prev, after)
	}
	t.Logf("cycles 1..%d stored without a hole across an outage of cycles %d..%d", prev, before+1, after)
}

func lastCycle(t *testing.T, res []collectortest.Result) int {
	t.Helper()
	if len(res) != 1 {
		return 0
	}
	v, _ := strconv.Atoi(res[0].Value[1].(string))
	return v
}

// app is a scrape target whose exposition the test changes.
type app struct {
	mu      sync.Mutex
	body    string
	scrapes int
	srv     *httptest.Server
}

func newApp(t *testing.T, body string) *app {
	a := &app{body: body}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.scrapes++
		fmt.Fprintf(w, "%sapp_scrapes_total %d\n", a.body, a.scrapes)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) set(body string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.body = body
	return a.scrapes
}

func (a *app) host() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// TestStalenessInRealCollector: targets found through file_sd, scraped by
// the real agent, stored in the real collector. A series that vanishes, a
// target that stops answering and a target that leaves the targets file
// all stop showing in instant queries at once (stale markers), not five
// minutes later (the lookback without them).
func TestStalenessInRealCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	t.Parallel()
	bin := buildAgent(t)
	in := collectortest.Start(t)
	one := newApp(t, "shop_orders_total{kind=\"book\"} 42\nshop_carts 3\n")
	two := newApp(t, "shop_orders_total{kind=\"book\"} 7\n")
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets", "shop.json")
	os.MkdirAll(filepath.Dir(targets), 0o755)
	writeTargets := func(hosts ...string) {
		t.Helper()
		data, _ := json.Marshal([]map[string]any{{"targets": hosts, "labels": map[string]string{"team": "sales"}}})
		tmp := targets + ".tmp"
		os.WriteFile(tmp, data, 0o644)
		if err := os.Rename(tmp, targets); err != nil {
			t.Fatal(err)
		}
	}
	writeTargets(one.host(), two.host())
	cfg := filepath.Join(dir, "agent.yaml")
	// A refresh interval of an hour: changes to the file must come through
	// the watch.
	os.WriteFile(cfg, []byte("scrape_configs:\n  - job_name: shop\n    file_sd_configs:\n      - files: ["+filepath.Join(dir, "targets", "*.json")+"]\n        refresh_interval: 1h\n"), 0o600)
	agentMetrics := "http://" + collectortest.FreeAddr(t)
	startRealAgent(t, bin, in.URL, filepath.Join(dir, "spool"), cfg, strings.TrimPrefix(agentMetrics, "http://"))
	agentMetrics += "/metrics"

	count := func(q string) int { return len(in.Query(t.Context(), q, time.Time{})) }
	value := func(q string) float64 {
		res := in.Query(t.Context(), q, time.Time{})
		if len(res) != 1 {
			return -1
		}
		v, _ := strconv.ParseFloat(res[0].Value[1].(string), 64)
		return v
	}
	sel := func(a *app) string { return `{job="shop",instance="` + a.host() + `",team="sales"}` }
	waitUntil(t, "both targets are stored", 60*time.Second, func() bool {
		return count(`shop_orders_total`+sel(one)) == 1 && count(`shop_carts`+sel(one)) == 1 && count(`shop_orders_total`+sel(two)) == 1
	})

	// 1. A series vanishes from a target: once a later scrape is stored,
	// instant queries no longer return it.
	n := one.set("shop_orders_total{kind=\"book\"} 43\n")
	waitUntil(t, "a scrape after shop_carts vanished is stored", 60*time.Second, func() bool {
		return value(`app_scrapes_total`+sel(one)) > float64(n)
	})
	if c := count(`shop_carts` + sel(one)); c != 0 {
		t.Errorf("shop_carts still returned by an instant query after it vanished (%d series): no stale marker", c)
	}
	if value(`shop_orders_total`+sel(one)) != 43 {
		t.Errorf("shop_orders_total of the live target: %v; want 43", value(`shop_orders_total`+sel(one)))
	}

	// 2. A target stops answering: the failed scrape (up 0) comes with stale
	// markers for all its series.
	one.srv.Close()
	waitUntil(t, "the failed scrape is stored", 60*time.Second, func() bool { return value(`up`+sel(one)) == 0 })
	for _, q := range []string{`shop_orders_total`, `app_scrapes_total`} {
		if c := count(q + sel(one)); c != 0 {
			t.Errorf("%s of the stopped target still returned by an instant query (%d series): no stale marker", q, c)
		}
	}

	// 3. A target leaves the targets file: its series and its up go stale.
	writeTargets(one.host())
	waitUntil(t, "the removed target's up is stale", 60*time.Second, func() bool { return count(`up`+sel(two)) == 0 })
	if c := count(`shop_orders_total` + sel(two)); c != 0 {
		t.Errorf("shop_orders_total of the removed target still returned (%d series): no stale marker", c)
	}
	// Its data is still there for range queries: staleness ends series, it
	// does not delete them.
	if c := count(`shop_orders_total` + sel(two) + `[10m]`); c != 1 {
		t.Errorf("range query over the removed target: %d series; want its past samples", c)
	}
}
