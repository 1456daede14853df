// Package enginetest starts real distributed-engine peers for forward-mode
// tests, all on loopback, each in its own temp directory, stopped when the
// test ends: a Prometheus server as the simplest remote write/read engine,
// a Cortex cluster (memberlist, replication factor 3), Thanos receive with
// Thanos Query, and a throwaway PostgreSQL cluster. The binaries are the
// ones .ci/run installs into ~/.cache/telltale/bin; without one a test
// fails under CI=true and is skipped otherwise.
package enginetest

import (
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
)

// Peer returns the path of a peer binary that .ci/run installs into
// ~/.cache/telltale/bin (or the path in env). Without it the test fails
// under CI=true and is skipped otherwise.
func Peer(t testing.TB, name, env, install string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "telltale", "bin", name)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found at %s; .ci/run installs it (%s), or set %s", name, p, install, env)
		}
		t.Skipf("%s not found at %s; run .ci/run or: %s (or set %s)", name, p, install, env)
	}
	return p
}

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
	bin := Peer(t, "prometheus", "TELLTALE_PROMETHEUS", "go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0")
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
