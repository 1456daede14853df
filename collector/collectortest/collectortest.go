// Package collectortest is test support for the collector and its
// packages. Build builds a real binary (the collector or any other main
// package of the module) once per test process for end-to-end tests, and
// Start runs the collector: each Instance is a separate process on a free loopback port with
// its own data directory, stopped (or killed) by the test. For handler
// tests that need no process, MemStore and NopStore stand in for the
// storage behind ingest.Writer.
package collectortest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/telltale-dev/telltale/samples"
)

// builds holds what Build built in this process.
var builds struct {
	mu   sync.Mutex
	dir  string            // one temp dir per process; "" until the first build
	bins map[string]string // package path (directories made absolute) -> binary
	errs map[string]error  // package path -> why it did not build
}

// Build builds the main package pkg once per test process with go build -o
// and returns the binary's path. pkg is an import path
// ("github.com/telltale-dev/telltale/annotator") or a directory relative to
// the test's working directory ("." for the package under test). A failed
// build fails t with go build's output, and every later Build of pkg fails
// the same way without building again. Builds run one at a time.
//
// The binaries live in one temp dir per process, which Main (or Cleanup in
// a TestMain that does more) removes when the tests are done.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	if strings.HasPrefix(pkg, ".") {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			t.Fatalf("build %s: %v", pkg, err)
		}
		pkg = abs
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[pkg]; ok {
		return bin
	}
	if err, ok := builds.errs[pkg]; ok {
		t.Fatal(err)
	}
	bin, err := build(pkg)
	if err != nil {
		if builds.errs == nil {
			builds.errs = map[string]error{}
		}
		builds.errs[pkg] = err
		t.Fatal(err)
	}
	if builds.bins == nil {
		builds.bins = map[string]string{}
	}
	builds.bins[pkg] = bin
	return bin
}

// build runs go build for pkg into a fresh subdirectory of builds.dir, so
// packages with the same last element do not collide. builds.mu is held.
func build(pkg string) (string, error) {
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "telltale-test-bin-")
		if err != nil {
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
		builds.dir = dir
	}
	sub := filepath.Join(builds.dir, strconv.Itoa(len(builds.bins)+len(builds.errs)))
	if err := os.Mkdir(sub, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	bin := filepath.Join(sub, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Main runs the tests, removes what Build built and exits; a test package
// that builds binaries uses it as its TestMain:
//
//	func TestMain(m *testing.M) { collectortest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes every binary Build and Binary built in this process;
// call it from TestMain after m.Run. Build after Cleanup builds again.
func Cleanup() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	builds.dir, builds.bins, builds.errs = "", nil, nil
}

// Binary builds ./collector once per test process and returns its path
// (see Build).
func Binary(t testing.TB) string {
	t.Helper()
	return Build(t, "github.com/telltale-dev/telltale/collector")
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Instance is one running collector. Stop, Kill, Signal, Exited,
// ExitCode and Log come from its Process.
type Instance struct {
	*Process
	t       testing.TB
	URL     string // http://127.0.0.1:port
	Addr    string
	DataDir string
	Args    []string
}

// Process is a binary a test runs (a collector, an agent, the demo ...),
// with its stdout and stderr kept for the test.
type Process struct {
	cmd  *exec.Cmd
	log  *SyncBuffer
	done chan struct{}
}

// StartProcess starts cmd (its Stdout and Stderr are set here) and stops
// it when the test ends, showing its output if the test failed.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{cmd: cmd, log: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s %q output:\n%s", filepath.Base(cmd.Path), cmd.Args[1:], p.Log())
		}
	})
	return p
}

// Start runs the collector with -listen on a free port, -data in a temp
// dir (unless args set -data), -host-metrics=false and -self-metrics=false
// (unless args set them: later flags win), and waits for /readyz.
func Start(t testing.TB, args ...string) *Instance {
	t.Helper()
	return StartIn(t, t.TempDir(), args...)
}

// StartIn is Start with the data directory given, for restarts.
func StartIn(t testing.TB, dataDir string, args ...string) *Instance {
	t.Helper()
	// FreeAddr's port is free when it returns, not when the collector
	// binds it: another process may take it in between (two test runs
	// on one machine did). Then the collector exits and gets another.
	for range 3 {
		in := start(t, FreeAddr(t), dataDir, args...)
		err := in.waitReady()
		if err == nil {
			return in
		}
		if !strings.Contains(in.Log(), "address already in use") {
			t.Fatal(err)
		}
	}
	t.Fatal("collector: three free ports were taken before it could listen")
	return nil
}

// StartOn is StartIn listening on addr, so a restarted collector is where
// its senders expect it.
func StartOn(t testing.TB, addr, dataDir string, args ...string) *Instance {
	t.Helper()
	in := start(t, addr, dataDir, args...)
	in.WaitReady()
	return in
}

func start(t testing.TB, addr, dataDir string, args ...string) *Instance {
	t.Helper()
	full := []string{"-listen", addr, "-data", dataDir, "-host-metrics=false", "-self-metrics=false", "-log.level", "debug"}
	full = append(full, args...)
	in := &Instance{t: t, URL: "http://" + addr, Addr: addr, DataDir: dataDir, Args: args}
	in.Process = StartProcess(t, exec.Command(Binary(t), full...))
	return in
}

// WaitReady waits up to 60 s for /readyz to answer 200.
func (in *Instance) WaitReady() {
	in.t.Helper()
	if err := in.waitReady(); err != nil {
		in.t.Fatal(err)
	}
}

// waitReady waits up to 60 s for the collector's own /readyz answer: a
// 200 with its body, not any server's that took the port.
func (in *Instance) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-in.done:
			return fmt.Errorf("collector exited before ready:\n%s", in.Log())
		default:
		}
		resp, err := http.Get(in.URL + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == 200 && string(b) == "ready\n" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("collector not ready after 60s:\n%s", in.Log())
}

// Log returns what the process printed so far.
func (p *Process) Log() string { return p.log.String() }

// Stop sends SIGTERM and waits for a clean exit (up to 30 s, then kills).
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

// Signal sends sig to the process without waiting for it to end, for
// tests of what it does on the way out; Exited and ExitCode tell how it
// ended.
func (p *Process) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// Pid returns the collector's process id.
func (in *Instance) Pid() int { return in.cmd.Process.Pid }

// RSS returns the collector's resident memory now and its peak so far
// (VmRSS and VmHWM of /proc/<pid>/status), in bytes.
func (in *Instance) RSS() (cur, peak int64) {
	in.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.Pid()))
	if err != nil {
		in.t.Fatalf("read the collector's /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return cur, peak
}

// Exited returns a channel that is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitCode returns the exit code after the process ended.
func (p *Process) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Value runs an instant PromQL query now that must return exactly one
// series and returns its value, failing the test otherwise.
func (in *Instance) Value(ctx context.Context, q string) float64 {
	in.t.Helper()
	res := in.Query(ctx, q, time.Time{})
	if len(res) != 1 {
		in.t.Fatalf("%s: got %v; want one series", q, res)
	}
	s, _ := res[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		in.t.Fatalf("%s: got value %q", q, s)
	}
	return v
}

// Peer returns the path of a peer binary that .ci/run installs into
// ~/.cache/telltale/bin (or the path in env): name is the file name, install
// the command that installs it. Without it the test fails under CI=true and
// is skipped otherwise.
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

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: what a process's
// output or a logger is written to while the test reads it. The zero value
// is ready for use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Result is one series of a query result.
type Result struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// Query runs an instant PromQL query at ts (zero: now) and returns the
// vector, failing the test on any error.
func (in *Instance) Query(ctx context.Context, q string, ts time.Time) []Result {
	in.t.Helper()
	v := url.Values{"query": {q}}
	if !ts.IsZero() {
		v.Set("time", strconv.FormatFloat(float64(ts.UnixMilli())/1e3, 'f', 3, 64))
	}
	return in.get(ctx, "/api/v1/query?"+v.Encode())
}

// QueryRange runs a range query.
func (in *Instance) QueryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) []Result {
	in.t.Helper()
	v := url.Values{"query": {q},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1e3, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1e3, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	return in.get(ctx, "/api/v1/query_range?"+v.Encode())
}

func (in *Instance) get(ctx context.Context, path string) []Result {
	in.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		in.t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []Result `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		in.t.Fatalf("GET %s: cannot decode %s: %v", path, body, err)
	}
	return env.Data.Result
}

// Post sends body to path with the given headers and returns status and body.
func (in *Instance) Post(ctx context.Context, path string, body []byte, headers map[string]string) (int, string) {
	in.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, in.URL+path, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metric returns the value of the series name (as written in the
// exposition, e.g. `telltale_ingest_samples_total{endpoint="otlp"}`) on the
// collector's /metrics, or -1 when it has none.
func (in *Instance) Metric(ctx context.Context, name string) float64 {
	in.t.Helper()
	v, err := MetricAt(ctx, in.URL+"/metrics", name)
	if err != nil {
		in.t.Fatal(err)
	}
	return v
}

// MetricAt returns the value of the series name (as written in the
// exposition) on the /metrics page at url (any process's: the collector's,
// an agent's -listen), or -1 when it has none.
func MetricAt(ctx context.Context, url, name string) (float64, error) {
	return MetricAtAuth(ctx, url, "", name)
}

// MetricAtAuth is MetricAt with a bearer token ("" for none), for a
// collector with -auth.tokens-file.
func MetricAtAuth(ctx context.Context, url, token, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return metricValue(resp.Body, name), nil
}

// Metric returns the value of the series name (as written in the
// exposition) in set, or -1 when set has none.
func Metric(set *metrics.Set, name string) float64 {
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	return metricValue(&buf, name)
}

// metricValue returns the value of the first line of the text exposition r
// that is series name with a number, or -1.
func metricValue(r io.Reader, name string) float64 {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), name+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// Gzip returns b gzip-compressed, as a sender with Content-Encoding: gzip
// sends it.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// MemStore is an ingest.Appendable that keeps committed samples in memory,
// by label set in Prometheus notation ({__name__="up", job="x"}). A native
// histogram sample is kept as a float sample whose value is its count, and
// exemplars are only counted (Exemplars). Only Append, AppendHistogram,
// AppendExemplar, Commit and Rollback of its appenders may be called, which
// is all ingest.Writer uses. Like the TSDB head, Append takes a known reference
// without labels, and answers an unknown reference with no labels with an
// error wrapping tsdb.ErrInvalidSample. It is safe for concurrent use.
type MemStore struct {
	mu        sync.Mutex
	series    map[string][]samples.Sample
	refs      map[promstorage.SeriesRef]string
	byLabels  map[string]promstorage.SeriesRef
	exemplars int
	commitErr error
}

// Exemplars returns the number of exemplars committed.
func (s *MemStore) Exemplars() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exemplars
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{series: map[string][]samples.Sample{},
		refs: map[promstorage.SeriesRef]string{}, byLabels: map[string]promstorage.SeriesRef{}}
}

// Appender implements ingest.Appendable.
func (s *MemStore) Appender(context.Context) promstorage.Appender { return &memAppender{s: s} }

// SetCommitErr makes every later Commit fail with err (nil: succeed again),
// as a full disk would.
func (s *MemStore) SetCommitErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitErr = err
}

// Snapshot returns a copy of the committed samples by label set.
func (s *MemStore) Snapshot() map[string][]samples.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]samples.Sample, len(s.series))
	for k, v := range s.series {
		out[k] = append([]samples.Sample(nil), v...)
	}
	return out
}

// Names returns the committed label sets, sorted.
func (s *MemStore) Names() []string {
	var out []string
	for k := range s.Snapshot() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type memAppender struct {
	promstorage.Appender // nil: only the methods below are used by ingest.Writer
	s                    *MemStore
	pending              []pendingSample
	exemplars            int
}

func (a *memAppender) AppendHistogram(ref promstorage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (promstorage.SeriesRef, error) {
	if h != nil {
		return a.Append(ref, l, t, float64(h.Count))
	}
	return a.Append(ref, l, t, fh.Count)
}

func (a *memAppender) AppendExemplar(ref promstorage.SeriesRef, _ labels.Labels, _ exemplar.Exemplar) (promstorage.SeriesRef, error) {
	a.exemplars++
	return ref, nil
}

type pendingSample struct {
	lset string
	s    samples.Sample
}

func (a *memAppender) Append(ref promstorage.SeriesRef, l labels.Labels, t int64, v float64) (promstorage.SeriesRef, error) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	name, ok := a.s.refs[ref]
	if !ok {
		if l.IsEmpty() {
			return 0, fmt.Errorf("empty labelset: %w", tsdb.ErrInvalidSample)
		}
		name = l.String()
		if ref, ok = a.s.byLabels[name]; !ok {
			ref = promstorage.SeriesRef(len(a.s.refs) + 1)
			a.s.refs[ref], a.s.byLabels[name] = name, ref
		}
	}
	a.pending = append(a.pending, pendingSample{name, samples.Sample{T: t, V: v}})
	return ref, nil
}

func (a *memAppender) Commit() error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.s.commitErr != nil {
		return a.s.commitErr
	}
	for _, p := range a.pending {
		a.s.series[p.lset] = append(a.s.series[p.lset], p.s)
	}
	a.s.exemplars += a.exemplars
	return nil
}

func (a *memAppender) Rollback() error { a.pending, a.exemplars = nil, 0; return nil }

// NopStore is an ingest.Appendable that drops everything, for benchmarks
// of the path up to the storage. The zero value is ready for use.
type NopStore struct{}

// Appender implements ingest.Appendable.
func (NopStore) Appender(context.Context) promstorage.Appender { return nopAppender{} }

type nopAppender struct{ promstorage.Appender }

func (nopAppender) AppendHistogram(ref promstorage.SeriesRef, _ labels.Labels, _ int64, _ *histogram.Histogram, _ *histogram.FloatHistogram) (promstorage.SeriesRef, error) {
	if ref == 0 {
		ref = 1
	}
	return ref, nil
}

func (nopAppender) AppendExemplar(ref promstorage.SeriesRef, _ labels.Labels, _ exemplar.Exemplar) (promstorage.SeriesRef, error) {
	return ref, nil
}

func (nopAppender) Append(ref promstorage.SeriesRef, l labels.Labels, _ int64, _ float64) (promstorage.SeriesRef, error) {
	if ref == 0 {
		ref = promstorage.SeriesRef(l.Hash())
	}
	return ref, nil
}
func (nopAppender) Commit() error   { return nil }
func (nopAppender) Rollback() error { return nil }

// StartDemo builds and runs the demo shop (instrument/demo) pushing to
// collector every second under 50 requests/s, with args added (-service,
// -env, -switch.tokens-file ...; default service demo, env dev), and
// returns its listen address. It is killed at cleanup; its log is shown
// when the test failed.
func StartDemo(t testing.TB, collector string, args ...string) string {
	t.Helper()
	bin := Build(t, "github.com/telltale-dev/telltale/instrument/demo")
	cmd := exec.Command(bin, append([]string{"-collector", collector, "-listen", "127.0.0.1:0", "-interval", "1s", "-load", "50"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &SyncBuffer{}
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg=listening .*addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not report its listen address")
	}
	return ""
}
