// Package peer starts, measures and stops the systems bench/ compares:
// Telltale's collector and agent, VictoriaMetrics single-node, Prometheus and
// node_exporter, each as a real process on a free 127.0.0.1 port with a
// fresh data directory. It knows what differs between them (write, import
// and query endpoints, how to flush, compact and force a GC) and reads their
// CPU time and resident memory from /proc. It also installs the peers with
// `go install` from the Go module proxy into a cache folder.
//
// Promises: Start returns only when the process answers its readiness probe
// (or fails with the tail of its log); Stop always reaps the process (SIGTERM,
// then SIGKILL after a grace period); nothing listens beyond loopback.
package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// Kind names a system bench/ can run.
type Kind string

// The systems bench/ knows.
const (
	Telltale        Kind = "telltale"
	VictoriaMetrics Kind = "vm"
	Prometheus      Kind = "prometheus"
	NodeExporter    Kind = "node_exporter"
	Agent           Kind = "agent"
	// Cortex is one node of a Cortex cluster (forward-mode scenarios);
	// its cluster flags come in Spec.Args (see CortexArgs).
	Cortex Kind = "cortex"
	// VMAgent is vmagent forwarding remote write to Spec.Args'
	// -remoteWrite.url.
	VMAgent Kind = "vmagent"
)

// Title returns the name reports use for k.
func (k Kind) Title() string {
	switch k {
	case Telltale:
		return "Telltale"
	case VictoriaMetrics:
		return "VictoriaMetrics"
	case Prometheus:
		return "Prometheus"
	case NodeExporter:
		return "node_exporter"
	case Agent:
		return "Telltale agent"
	case Cortex:
		return "Cortex"
	case VMAgent:
		return "vmagent"
	}
	return string(k)
}

// Spec says how to start a process.
type Spec struct {
	Kind Kind
	// Binary is the executable's path.
	Binary string
	// Dir is a fresh working directory: the data directory and the log go
	// below it.
	Dir string
	// Args are added to the command line after bench/'s own.
	Args []string
	// CollectorURL is the collector an Agent pushes to.
	CollectorURL string
}

// Process is a running system under test.
type Process struct {
	Kind Kind
	// URL is the HTTP root, e.g. http://127.0.0.1:41234 (for an agent, where
	// it serves its own /metrics).
	URL string
	// DataDir is where the system keeps its data (the TSDB directory for
	// Telltale and Prometheus, -storageDataPath for VictoriaMetrics, the
	// spool for an agent); empty for node_exporter.
	DataDir string
	LogPath string

	cmd    *exec.Cmd
	done   chan struct{}
	exit   error
	client *http.Client
}

// Start starts the process described by spec and waits until it is ready.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if _, err := os.Stat(spec.Binary); err != nil {
		return nil, fmt.Errorf("%s binary: %w; run `go run ./bench install`", spec.Kind.Title(), err)
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s work directory: %w", spec.Kind.Title(), err)
	}
	p := &Process{Kind: spec.Kind, LogPath: filepath.Join(spec.Dir, "log.txt"), done: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Minute}}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.URL = "http://" + addr
	p.DataDir = filepath.Join(spec.Dir, "data")
	var args []string
	switch spec.Kind {
	case Telltale:
		args = []string{"-listen", addr, "-data", p.DataDir, "-host-metrics=false", "-self-metrics=false", "-rules.dashboards=false", "-log.level=warn"}
	case VictoriaMetrics:
		args = []string{"-httpListenAddr=" + addr, "-storageDataPath=" + p.DataDir, "-loggerLevel=WARN"}
	case Prometheus:
		cfg := filepath.Join(spec.Dir, "prometheus.yml")
		// No scrape jobs: only what bench/ sends is stored. The
		// out-of-order window lets senders that lag each other write.
		if err := os.WriteFile(cfg, []byte("storage:\n  tsdb:\n    out_of_order_time_window: 6h\n"), 0o644); err != nil {
			return nil, fmt.Errorf("cannot write the Prometheus config: %w", err)
		}
		args = []string{"--config.file=" + cfg, "--storage.tsdb.path=" + p.DataDir,
			"--web.listen-address=" + addr, "--web.enable-remote-write-receiver", "--log.level=warn"}
	case NodeExporter:
		p.DataDir = ""
		args = []string{"--web.listen-address=" + addr}
	case Agent:
		if spec.CollectorURL == "" {
			return nil, errors.New("BUG: an agent needs Spec.CollectorURL")
		}
		p.DataDir = filepath.Join(spec.Dir, "spool")
		args = []string{"-collector", spec.CollectorURL, "-spool-dir", p.DataDir, "-listen", addr, "-log-level", "warn"}
	case Cortex:
		args = []string{"-server.http-listen-port=" + strconv.Itoa(port), "-blocks-storage.tsdb.dir=" + filepath.Join(p.DataDir, "tsdb"),
			"-blocks-storage.bucket-store.sync-dir=" + filepath.Join(p.DataDir, "sync"), "-ingester.tokens-file-path=" + filepath.Join(p.DataDir, "tokens")}
	case VMAgent:
		args = []string{"-httpListenAddr=" + addr, "-remoteWrite.tmpDataPath=" + p.DataDir, "-loggerLevel=WARN"}
	default:
		return nil, fmt.Errorf("unknown system %q: want telltale, vm, prometheus, node_exporter, agent, cortex or vmagent", spec.Kind)
	}
	args = append(args, spec.Args...)
	logf, err := os.Create(p.LogPath)
	if err != nil {
		return nil, fmt.Errorf("cannot create %s log: %w", spec.Kind.Title(), err)
	}
	p.cmd = exec.Command(spec.Binary, args...)
	p.cmd.Dir = spec.Dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start %s: %w", spec.Kind.Title(), err)
	}
	go func() {
		p.exit = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := p.waitReady(ctx, time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// readyPath is the probe a ready system answers 200 on.
func (p *Process) readyPath() string {
	switch p.Kind {
	case Telltale:
		return "/readyz"
	case VictoriaMetrics:
		return "/health"
	case Prometheus:
		return "/-/ready"
	case Cortex:
		return "/ready"
	case VMAgent:
		return "/health"
	}
	return "/metrics"
}

func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while starting (%v); its log ends:\n%s", p.Kind.Title(), p.exit, p.LogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if err := p.get(ctx, p.readyPath(), nil); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v on %s%s; its log ends:\n%s", p.Kind.Title(), timeout, p.URL, p.readyPath(), p.LogTail(20))
		}
	}
}

// get calls GET path and fails unless the answer is 2xx; the body goes to w
// when w is not nil.
func (p *Process) get(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if w == nil {
		w = io.Discard
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// Stop stops the process: SIGTERM, then SIGKILL after 30 s. It returns the
// process' exit error unless the exit was the one Stop asked for.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited before Stop (%v); its log ends:\n%s", p.Kind.Title(), p.exit, p.LogTail(20))
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// Alive reports whether the process still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// LogTail returns the last n lines of the process' log.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Usage is what a process used so far.
type Usage struct {
	// CPU is user plus system CPU time in seconds (/proc/<pid>/stat).
	CPU float64
	// RSS is the resident set size in bytes (VmRSS of /proc/<pid>/status).
	RSS int64
	// RunTime is the time the process' threads have spent on a CPU in
	// seconds, with nanosecond resolution (the sum of
	// /proc/<pid>/task/*/schedstat); it tells apart processes that use
	// less CPU than CPU's 10 ms ticks resolve. It misses threads that
	// exited, which Go programs rarely have.
	RunTime float64
}

// Usage reads the process' CPU time and resident memory from /proc.
func (p *Process) Usage() (Usage, error) {
	return PidUsage(p.Pid())
}

// PidUsage reads the CPU time and resident memory of process pid from /proc.
func PidUsage(pid int) (Usage, error) {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return Usage{}, fmt.Errorf("cannot read /proc/%d: %w", pid, err)
	}
	st, err := proc.Stat()
	if err != nil {
		return Usage{}, fmt.Errorf("cannot read /proc/%d/stat: %w", pid, err)
	}
	status, err := proc.NewStatus()
	if err != nil {
		return Usage{}, fmt.Errorf("cannot read /proc/%d/status: %w", pid, err)
	}
	run, err := runTime(pid)
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPU: st.CPUTime(), RSS: int64(status.VmRSS), RunTime: run}, nil
}

// runTime sums the on-CPU time of every thread of pid, in seconds.
func runTime(pid int) (float64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("cannot list the threads of %d: %w", pid, err)
	}
	var total uint64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) { // the thread just exited
				continue
			}
			return 0, err
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		total += ns
	}
	return float64(total) / 1e9, nil
}

// parseSchedstat returns the first field of a schedstat file: nanoseconds
// spent on a CPU ("<run ns> <wait ns> <timeslices>").
func parseSchedstat(b []byte) (uint64, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, fmt.Errorf("got %d fields; want 3 (run ns, wait ns, timeslices)", len(f))
	}
	ns, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("run time %q: %w", f[0], err)
	}
	return ns, nil
}

// WriteURL is the remote-write endpoint.
func (p *Process) WriteURL() string {
	if p.Kind == Cortex {
		return p.URL + "/api/v1/push"
	}
	return p.URL + "/api/v1/write"
}

// APIURL is the base of the system's Prometheus query API.
func (p *Process) APIURL() string {
	if p.Kind == Cortex {
		return p.URL + "/prometheus"
	}
	return p.URL
}

// TextURL is the text-exposition push endpoint, or "" when the system has
// none (Prometheus only scrapes; its Pushgateway is out of scope).
func (p *Process) TextURL() string {
	switch p.Kind {
	case Telltale, VictoriaMetrics:
		return p.URL + "/api/v1/import/prometheus"
	}
	return ""
}

// QueryParams are added to every query: VictoriaMetrics and Telltale
// cache range-query results, which nocache=1 turns off so every run does
// the work.
func (p *Process) QueryParams() url.Values {
	if p.Kind == VictoriaMetrics || p.Kind == Telltale {
		return url.Values{"nocache": {"1"}}
	}
	return nil
}

// Flush makes everything written so far visible to queries:
// VictoriaMetrics buffers rows for up to a second (and keeps new series out
// of its search index for a moment), /internal/force_flush ends that. Telltale
// and Prometheus show every committed sample at once.
func (p *Process) Flush(ctx context.Context) error {
	if p.Kind != VictoriaMetrics {
		return nil
	}
	if err := p.get(ctx, "/internal/force_flush", nil); err != nil {
		return fmt.Errorf("VictoriaMetrics force_flush: %w", err)
	}
	return nil
}

// ForceGC asks a Go process for a garbage collection (GET
// /debug/pprof/heap?gc=1, which all of them serve).
func (p *Process) ForceGC(ctx context.Context) error {
	return p.get(ctx, "/debug/pprof/heap?gc=1", nil)
}

// Get fetches path from the process into w.
func (p *Process) Get(ctx context.Context, path string, w io.Writer) error {
	return p.get(ctx, path, w)
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
