// Package enginetest starts real distributed-engine peers for forward-mode
// tests, all on loopback, each in its own temp directory, stopped when the
// test ends: a Prometheus server as the simplest remote write/read engine,
// a Cortex cluster (memberlist, replication factor 3), Thanos receive with
// Thanos Query, and a throwaway PostgreSQL cluster. The binaries are the
// ones .ci/run installs into ~/.cache/telltale/bin (collectortest.Peer):
// without one a test fails under CI=true and is skipped otherwise.
package enginetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/collector/collectortest"
)

// FreePort returns a loopback port free right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Process is a running peer.
type Process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
}

// logBuffer keeps the last part of a process's output.
type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 1<<20 {
		l.b = append(l.b[:0], l.b[len(l.b)-512<<10:]...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// Start runs bin with args in dir; its output is logged when the test
// fails. It is killed when the test ends.
func Start(t testing.TB, name, dir, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, name: name, log: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log (last part):\n%s", name, tail(p.log.String(), 8<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Log returns what the process printed (the last MiB).
func (p *Process) Log() string { return p.log.String() }

// Stop sends SIGTERM and waits up to 30 s, then kills.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to end.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitHTTP waits until GET url answers 200, failing the test when the
// process exits first or after timeout.
func (p *Process) WaitHTTP(url string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.Exited() {
			p.t.Fatalf("%s exited before %s answered:\n%s", p.name, url, tail(p.Log(), 8<<10))
		}
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: %s not ready after %s (last: %s):\n%s", p.name, url, timeout, last, tail(p.Log(), 8<<10))
}

// Prometheus is a Prometheus server used as a remote write and remote
// read engine.
type Prometheus struct {
	*Process
	Addr string
	// API is the base of its Prometheus API (-storage.query-url).
	API string
	// Write is its remote write endpoint (-storage.remote-write-url).
	Write string
}

// StartPrometheus runs Prometheus with the remote write receiver on and
// an out-of-order window, so replayed samples are kept.
func StartPrometheus(t testing.TB) *Prometheus {
	t.Helper()
	return StartPrometheusAt(t, fmt.Sprintf("127.0.0.1:%d", FreePort(t)))
}

// StartPrometheusAt is StartPrometheus listening on addr, for an engine
// that comes up where a collector already sends.
func StartPrometheusAt(t testing.TB, addr string) *Prometheus {
	t.Helper()
	bin := collectortest.Peer(t, "prometheus", "TELLTALE_PROMETHEUS", "go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 6h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, "prometheus", dir, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request",
		"--enable-feature=exemplar-storage")
	base := "http://" + addr
	p.WaitHTTP(base+"/-/ready", time.Minute)
	return &Prometheus{Process: p, Addr: addr, API: base, Write: base + "/api/v1/write"}
}

// Cortex is a Cortex cluster of -target=distributor,ingester,querier,
// store-gateway nodes (the write and read path; no ruler, alertmanager or
// compactor), behind a balancer as a load balancer would be.
type Cortex struct {
	t     testing.TB
	bin   string
	dir   string
	nodes []*cortexNode
	// Balancer spreads requests over the live nodes.
	Balancer *Balancer
	// API is the base of the Prometheus API through the balancer
	// (-storage.query-url); Write its remote write endpoint.
	API, Write string
}

type cortexNode struct {
	http, grpc, gossip int
	proc               *Process
}

// StartCortex starts n nodes with replication factor rf and waits until
// every node is ready and sees all n ingesters ACTIVE in the ring.
func StartCortex(t testing.TB, n, rf int) *Cortex {
	t.Helper()
	c := &Cortex{t: t, dir: t.TempDir(),
		bin: collectortest.Peer(t, "cortex", "TELLTALE_CORTEX", "see .ci/run: go mod download github.com/cortexproject/cortex@v1.21.1, then go build -tags netgo,slicelabels ./cmd/cortex inside it")}
	cfg := peer.CortexConfig(rf, filepath.Join(c.dir, "blocks"))
	if err := os.WriteFile(filepath.Join(c.dir, "cortex.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for range n {
		c.nodes = append(c.nodes, &cortexNode{http: FreePort(t), grpc: FreePort(t), gossip: FreePort(t)})
	}
	for i := range c.nodes {
		c.start(i)
	}
	var urls []string
	for i := range c.nodes {
		urls = append(urls, c.NodeURL(i))
		c.WaitReady(i)
	}
	c.Balancer = NewBalancer(t, urls...)
	c.API, c.Write = c.Balancer.URL+"/prometheus", c.Balancer.URL+"/api/v1/push"
	return c
}

// NodeURL is node i's own HTTP address.
func (c *Cortex) NodeURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.nodes[i].http) }

func (c *Cortex) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	dir := filepath.Join(c.dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	var gossip []int
	for _, o := range c.nodes {
		gossip = append(gossip, o.gossip)
	}
	args := append(peer.CortexArgs(filepath.Join(c.dir, "cortex.yaml"), i, nd.grpc, nd.gossip, gossip),
		fmt.Sprintf("-server.http-listen-port=%d", nd.http),
		"-ingester.tokens-file-path="+filepath.Join(dir, "tokens"),
		"-blocks-storage.tsdb.dir="+filepath.Join(dir, "tsdb"),
		"-blocks-storage.bucket-store.sync-dir="+filepath.Join(dir, "sync"))
	nd.proc = Start(c.t, fmt.Sprintf("cortex-%d", i), dir, c.bin, args...)
}

// WaitReady waits until node i answers /ready and its ring has every
// ingester ACTIVE.
func (c *Cortex) WaitReady(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	nd.proc.WaitHTTP(c.NodeURL(i)+"/ready", 2*time.Minute)
	deadline := time.Now().Add(2 * time.Minute)
	for !peer.CortexRingActive(context.Background(), c.NodeURL(i), len(c.nodes)) {
		if time.Now().After(deadline) {
			c.t.Fatalf("cortex node %d: the ingester ring has not %d ACTIVE ingesters after 2m", i, len(c.nodes))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill kills node i with SIGKILL.
func (c *Cortex) Kill(i int) {
	c.nodes[i].proc.Kill()
}

// Restart starts node i again (same ports, data and tokens) and waits
// until it is ready.
func (c *Cortex) Restart(i int) {
	c.t.Helper()
	c.start(i)
	c.WaitReady(i)
}

// Thanos is a Thanos receive node (remote write 1.0 in, labels
// receive_cluster and tenant_id added to every series) with a Thanos
// Query in front of it (the Prometheus query API; no remote read).
type Thanos struct {
	Receive, Query *Process
	// Write is the receive endpoint; API the base of Thanos Query's
	// Prometheus API.
	Write, API string
}

// StartThanos starts both and waits until they are ready and the query
// sees the receiver.
func StartThanos(t testing.TB) *Thanos {
	t.Helper()
	// Opt-in even in CI (a cold build adds 10 minutes): skipped without
	// the binary; TELLTALE_WITH_THANOS=1 .ci/run builds it.
	bin := os.Getenv("TELLTALE_THANOS")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "telltale", "bin", "thanos")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Thanos not built (%s): TELLTALE_WITH_THANOS=1 .ci/run builds it from the module proxy", bin)
	}
	dir := t.TempDir()
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", FreePort(t)) }
	rGRPC, rHTTP, rWrite, rCapn := addr(), addr(), addr(), addr()
	recv := Start(t, "thanos-receive", dir, bin, "receive", "--tsdb.path="+filepath.Join(dir, "receive"),
		"--grpc-address="+rGRPC, "--http-address="+rHTTP, "--remote-write.address="+rWrite,
		"--receive.capnproto-address="+rCapn, "--receive.local-endpoint="+rGRPC,
		`--label=receive_cluster="eu1"`, "--tsdb.out-of-order.time-window=6h", "--log.level=warn")
	recv.WaitHTTP("http://"+rHTTP+"/-/ready", 2*time.Minute)
	qGRPC, qHTTP := addr(), addr()
	query := Start(t, "thanos-query", dir, bin, "query", "--grpc-address="+qGRPC, "--http-address="+qHTTP,
		"--endpoint="+rGRPC, "--deduplication.func=chain", "--log.level=warn")
	query.WaitHTTP("http://"+qHTTP+"/-/ready", 2*time.Minute)
	// Ready before it has met the receiver: wait until it lists it.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + qHTTP + "/api/v1/stores")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), rGRPC) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("thanos query does not list the receiver %s after 2m", rGRPC)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &Thanos{Receive: recv, Query: query, Write: "http://" + rWrite + "/api/v1/receive", API: "http://" + qHTTP}
}
