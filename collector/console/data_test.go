package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// step is the sample interval of the generated app metrics, as
// instrument's default push interval.
const step = 10 * time.Second

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// appShape describes one service's traffic for pushAppMetrics.
type appShape struct {
	service, env string
	routes       []string
	// deployAt splits the window: before it version old, after it new;
	// /checkout gets slower and fails more after it (what the deploy did).
	deployAt time.Time
	old, new string
	// histograms adds latency histograms and runtime metrics (the full
	// Service dashboard); false sends only http_requests_total.
	histograms bool
}

// appMetrics renders the metrics the instrument library would have pushed
// every step over [from, to], with timestamps, in the text exposition
// format: http_requests_total{service,env,route,method,code},
// http_request_duration_seconds_bucket{le,...}, _sum, _count,
// http_requests_in_flight, telltale_build_info{service,env,version},
// process and Go runtime metrics, and a feature switch.
func appMetrics(s appShape, from, to time.Time) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	type key struct{ route, code string }
	counts := map[key]float64{}
	hist := map[string][]float64{}
	sums := map[string]float64{}
	hcount := map[string]float64{}
	cpu, gc := 0.0, 0.0
	lbl := func(extra string) string {
		l := fmt.Sprintf(`service=%q,env=%q`, s.service, s.env)
		if extra != "" {
			l += "," + extra
		}
		return "{" + l + "}"
	}
	for t := from; !t.After(to); t = t.Add(step) {
		ms := t.UnixMilli()
		after := !t.Before(s.deployAt)
		for i, r := range s.routes {
			rate := 20.0 / float64(i+1)
			if strings.HasSuffix(r, "checkout") {
				rate = 3
			}
			rate *= 0.85 + 0.3*rng.Float64()
			errRate := 0.01
			mean := 0.04 + 0.01*float64(i%5)
			if after && strings.HasSuffix(r, "checkout") {
				errRate, mean = 0.15, 0.35
			}
			method := "GET"
			if strings.HasSuffix(r, "checkout") {
				method = "POST"
			}
			inc := rate * step.Seconds()
			counts[key{r, "200"}] += inc * (1 - errRate)
			counts[key{r, "500"}] += inc * errRate
			for _, code := range []string{"200", "500"} {
				fmt.Fprintf(&b, "http_requests_total%s %.3f %d\n",
					lbl(fmt.Sprintf(`route=%q,method=%q,code=%q`, r, method, code)), counts[key{r, code}], ms)
			}
			if !s.histograms {
				continue
			}
			if hist[r] == nil {
				hist[r] = make([]float64, len(buckets))
			}
			rl := fmt.Sprintf(`route=%q,method=%q`, r, method)
			for j, le := range buckets {
				hist[r][j] += inc * (1 - math.Exp(-le/mean)) // exponential latencies with that mean
				fmt.Fprintf(&b, "http_request_duration_seconds_bucket%s %.3f %d\n", lbl(rl+fmt.Sprintf(`,le="%g"`, le)), hist[r][j], ms)
			}
			hcount[r] += inc
			sums[r] += inc * mean
			fmt.Fprintf(&b, "http_request_duration_seconds_bucket%s %.3f %d\n", lbl(rl+`,le="+Inf"`), hcount[r], ms)
			fmt.Fprintf(&b, "http_request_duration_seconds_sum%s %.3f %d\n", lbl(rl), sums[r], ms)
			fmt.Fprintf(&b, "http_request_duration_seconds_count%s %.3f %d\n", lbl(rl), hcount[r], ms)
		}
		version := s.old
		if after {
			version = s.new
		}
		fmt.Fprintf(&b, "telltale_build_info%s 1 %d\n", lbl(fmt.Sprintf(`version=%q,commit="c-%s"`, version, version)), ms)
		if !s.histograms {
			continue
		}
		cpu += step.Seconds() * (0.2 + 0.1*rng.Float64())
		gc += 1 + float64(rng.IntN(3))
		switchOn := 0
		if after {
			switchOn = 1
			cpu += step.Seconds() * 0.15
		}
		fmt.Fprintf(&b, "http_requests_in_flight%s %d %d\n", lbl(""), 2+rng.IntN(6), ms)
		fmt.Fprintf(&b, "process_cpu_seconds_total%s %.3f %d\n", lbl(""), cpu, ms)
		fmt.Fprintf(&b, "process_resident_memory_bytes%s %d %d\n", lbl(""), 60<<20+rng.IntN(8<<20), ms)
		fmt.Fprintf(&b, "go_memstats_heap_inuse_bytes%s %d %d\n", lbl(""), 20<<20+rng.IntN(6<<20), ms)
		fmt.Fprintf(&b, "go_goroutines%s %d %d\n", lbl(""), 40+rng.IntN(10), ms)
		fmt.Fprintf(&b, "go_gc_duration_seconds_count%s %.0f %d\n", lbl(""), gc, ms)
		fmt.Fprintf(&b, "telltale_switch_on%s %d %d\n", lbl(`switch="new-payment-client"`), switchOn, ms)
	}
	return []byte(b.String())
}

// push sends text exposition to the collector and fails the test unless
// it is stored.
func push(t *testing.T, col *collectortest.Instance, body []byte) {
	t.Helper()
	code, resp := col.Post(t.Context(), "/api/v1/import/prometheus", body, map[string]string{"Content-Type": "text/plain"})
	if code/100 != 2 {
		t.Fatalf("POST /api/v1/import/prometheus: %d %s", code, resp)
	}
}

// deploy is what the test records through the deploy API.
type deploy struct {
	ID      string `json:"id,omitempty"`
	Service string `json:"service"`
	Env     string `json:"env,omitempty"`
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Who     string `json:"who,omitempty"`
	Message string `json:"message,omitempty"`
	Link    string `json:"link,omitempty"`
	Time    string `json:"time,omitempty"`
	Status  string `json:"status,omitempty"`
}

// recordDeploy posts d (at time at) to POST /api/v1/deploys and returns
// the stored deploy's id.
func recordDeploy(t *testing.T, col *collectortest.Instance, d deploy, at time.Time, token string) string {
	t.Helper()
	d.Time = at.UTC().Format(time.RFC3339Nano)
	js, _ := json.Marshal(d)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, col.URL+"/api/v1/deploys", bytes.NewReader(js))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /api/v1/deploys: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		t.Skipf("POST /api/v1/deploys: 404: the deploy API is not wired into the collector (collector/ext_deploys.go); the console's deploy log and markers cannot be checked")
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/deploys: got %d %s; want 201", resp.StatusCode, body)
	}
	var env struct {
		Data struct {
			ID   string `json:"id"`
			Time string `json:"time"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Data.ID == "" {
		t.Fatalf("POST /api/v1/deploys: cannot read the deploy id from %s: %v", body, err)
	}
	if got, _ := time.Parse(time.RFC3339Nano, env.Data.Time); !got.Equal(at) {
		t.Fatalf("POST /api/v1/deploys: stored time %s; want %s", env.Data.Time, d.Time)
	}
	return env.Data.ID
}

// get fetches path and returns the status and body.
func get(t *testing.T, base, path string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// waitSeries waits until selector has a sample in the last 30 minutes:
// deploy series are written by the deploy API's background delivery.
func waitSeries(t *testing.T, col *collectortest.Instance, selector string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if len(col.Query(t.Context(), "last_over_time("+selector+"[30m])", time.Time{})) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no sample of %s after 30s: the deploy API did not deliver the deploy series", selector)
}

// hostMetrics renders node-exporter-shaped host metrics (as the agent
// sends them) for one host every step over [from, to]: CPU by mode, load,
// memory, swap, processes, context switches, disk, filesystem and network.
// After busyFrom the host works harder (what a deploy on it did).
func hostMetrics(instance string, from, to, busyFrom time.Time) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	l := func(extra string) string {
		s := fmt.Sprintf(`instance=%q,job="node"`, instance)
		if extra != "" {
			s += "," + extra
		}
		return "{" + s + "}"
	}
	modes := []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	cpu := make([][]float64, 4)
	for i := range cpu {
		cpu[i] = make([]float64, len(modes))
	}
	var ctxt, rd, wr, io, rx, tx float64
	const memTotal, swapTotal, fsSize = 16 << 30, 2 << 30, 100 << 30
	boot := from.Add(-72 * time.Hour).Unix()
	for t := from; !t.After(to); t = t.Add(step) {
		ms := t.UnixMilli()
		busy := 0.0
		if !t.Before(busyFrom) {
			busy = 1
		}
		user := 0.18 + 0.2*busy + 0.04*rng.Float64()
		system := 0.06 + 0.05*busy + 0.02*rng.Float64()
		share := []float64{0, user, system, 0.01 + 0.01*rng.Float64(), 0.002, 0.004, 0.001, 0.003}
		share[0] = 1 - (share[1] + share[2] + share[3] + share[4] + share[5] + share[6] + share[7])
		for c := range cpu {
			for m := range modes {
				cpu[c][m] += share[m] * step.Seconds()
				fmt.Fprintf(&b, "node_cpu_seconds_total%s %.3f %d\n", l(fmt.Sprintf(`cpu="%d",mode=%q`, c, modes[m])), cpu[c][m], ms)
			}
		}
		load := 1.2 + 1.6*busy + 0.4*rng.Float64()
		fmt.Fprintf(&b, "node_load1%s %.2f %d\nnode_load5%s %.2f %d\nnode_load15%s %.2f %d\n",
			l(""), load, ms, l(""), load*0.9, ms, l(""), load*0.8, ms)
		fmt.Fprintf(&b, "node_procs_running%s %d %d\n", l(""), 2+rng.IntN(3)+int(3*busy), ms)
		ctxt += (4000 + 3000*busy + 500*rng.Float64()) * step.Seconds()
		fmt.Fprintf(&b, "node_context_switches_total%s %.0f %d\n", l(""), ctxt, ms)
		avail := float64(memTotal) * (0.55 - 0.12*busy - 0.02*rng.Float64())
		fmt.Fprintf(&b, "node_memory_MemTotal_bytes%s %d %d\nnode_memory_MemAvailable_bytes%s %.0f %d\n", l(""), memTotal, ms, l(""), avail, ms)
		fmt.Fprintf(&b, "node_memory_SwapTotal_bytes%s %d %d\nnode_memory_SwapFree_bytes%s %d %d\n", l(""), swapTotal, ms, l(""), swapTotal-(64<<20), ms)
		fmt.Fprintf(&b, "node_boot_time_seconds%s %d %d\n", l(""), boot, ms)
		fmt.Fprintf(&b, "node_uname_info%s 1 %d\n", l(fmt.Sprintf(`nodename=%q,release="6.1.0-18-amd64",sysname="Linux",machine="x86_64"`, instance)), ms)
		rd += (2e6 + 1e6*rng.Float64()) * step.Seconds()
		wr += (5e6 + 6e6*busy + 2e6*rng.Float64()) * step.Seconds()
		io += (0.05 + 0.1*busy) * step.Seconds()
		dev := `device="nvme0n1"`
		fmt.Fprintf(&b, "node_disk_read_bytes_total%s %.0f %d\nnode_disk_written_bytes_total%s %.0f %d\nnode_disk_io_time_seconds_total%s %.3f %d\n",
			l(dev), rd, ms, l(dev), wr, ms, l(dev), io, ms)
		fs := `device="/dev/nvme0n1p1",fstype="ext4",mountpoint="/"`
		fmt.Fprintf(&b, "node_filesystem_size_bytes%s %d %d\nnode_filesystem_avail_bytes%s %.0f %d\n",
			l(fs), fsSize, ms, l(fs), float64(fsSize)*0.42-float64(t.Sub(from).Seconds())*2e5, ms)
		rx += (3e6 + 4e6*busy + 1e6*rng.Float64()) * step.Seconds()
		tx += (1.5e6 + 2e6*busy + 5e5*rng.Float64()) * step.Seconds()
		fmt.Fprintf(&b, "node_network_receive_bytes_total%s %.0f %d\nnode_network_transmit_bytes_total%s %.0f %d\n",
			l(`device="eth0"`), rx, ms, l(`device="eth0"`), tx, ms)
	}
	return []byte(b.String())
}
