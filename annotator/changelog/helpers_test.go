package changelog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/samples"

	"github.com/telltale-dev/telltale/annotator/changes"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// fakeWriter records the series written to it, copied.
type fakeWriter struct {
	mu     sync.Mutex
	series []writtenSeries
	fail   error
	calls  int
}

type writtenSeries struct {
	Labels string // name{a="b",...} in batch order
	T      int64
	V      float64
}

func (w *fakeWriter) WriteSamples(ctx context.Context, b *samples.Batch) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail != nil {
		return w.fail
	}
	for i := range b.Series {
		s := &b.Series[i]
		var name string
		var ls []string
		for _, l := range b.SeriesLabels(s) {
			if l.Name == "__name__" {
				name = l.Value
				continue
			}
			ls = append(ls, fmt.Sprintf("%s=%q", l.Name, l.Value))
		}
		for _, smp := range b.SeriesSamples(s) {
			w.series = append(w.series, writtenSeries{Labels: name + "{" + strings.Join(ls, ",") + "}", T: smp.T, V: smp.V})
		}
	}
	return nil
}

func (w *fakeWriter) setFail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = err
}

func (w *fakeWriter) written() []writtenSeries {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.series)
}

type env struct {
	t    *testing.T
	s    *Service
	srv  *httptest.Server
	opts Options
	stop func()
}

// newEnv opens a Service on a fresh database in t.TempDir (or opts.DBPath),
// serves its handler and, if run, runs its delivery loop until cleanup.
func newEnv(t *testing.T, opts Options, run bool) *env {
	t.Helper()
	if opts.DBPath == "" {
		opts.DBPath = filepath.Join(t.TempDir(), "deploys.db")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	setDefault(&opts.MinBackoff, 5*time.Millisecond)
	setDefault(&opts.MaxBackoff, 50*time.Millisecond)
	setDefault(&opts.AuthBackoff, 50*time.Millisecond)
	setDefault(&opts.DeliveryTimeout, 2*time.Second)
	s, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e := &env{t: t, s: s, srv: httptest.NewServer(s.Handler()), opts: opts}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if run {
		go func() {
			s.Run(ctx)
			close(done)
		}()
	} else {
		close(done)
	}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			e.srv.Close()
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

type apiResponse struct {
	Code      int
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Header    http.Header
}

func (e *env) do(method, path, body string) apiResponse {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r apiResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
	}
	r.Code = resp.StatusCode
	r.Header = resp.Header
	if r.Status == "success" && r.Code >= 300 || r.Status == "error" && (r.Code < 400 || r.ErrorType == "" || r.Error == "") {
		e.t.Fatalf("%s %s: inconsistent envelope %d %s", method, path, r.Code, raw)
	}
	return r
}

// data sends a request, wants code and decodes the answer's data into out.
func (e *env) data(method, path, body string, code int, out any) apiResponse {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.Code != code {
		e.t.Fatalf("%s %s %s: got %d %s; want %d", method, path, body, r.Code, r.Error, code)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		e.t.Fatalf("%s %s: data: %v: %s", method, path, err, r.Data)
	}
	return r
}

// post creates a deploy and wants status code.
func (e *env) post(body string, code int) changes.Change {
	e.t.Helper()
	var c changes.Change
	e.data("POST", "/api/v1/deploys", body, code, &c)
	return c
}

func (e *env) get(id string) changes.Change {
	e.t.Helper()
	var c changes.Change
	e.data("GET", "/api/v1/deploys/"+id, "", 200, &c)
	return c
}

func (e *env) list(query string) []changes.Change {
	e.t.Helper()
	var list []changes.Change
	e.data("GET", "/api/v1/deploys"+query, "", 200, &list)
	return list
}

// postChange records a change through POST /api/v1/changes and wants code.
func (e *env) postChange(body string, code int) (changes.Change, []string) {
	e.t.Helper()
	var c changes.Change
	r := e.data("POST", "/api/v1/changes", body, code, &c)
	return c, r.Warnings
}

func (e *env) listChanges(query string) []changes.Change {
	e.t.Helper()
	var list []changes.Change
	e.data("GET", "/api/v1/changes"+query, "", 200, &list)
	return list
}

func (e *env) getChange(id string) changes.Change {
	e.t.Helper()
	var c changes.Change
	e.data("GET", "/api/v1/changes/"+id, "", 200, &c)
	return c
}

func ids(ds []changes.Change) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.ID)
	}
	return strings.Join(s, ",")
}

// eventually polls cond until it holds or 10s passed. It waits for
// background work; it asserts no timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func metricValue(set *metrics.Set, name string) string {
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }
