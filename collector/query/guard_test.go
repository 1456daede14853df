package query

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/collector/storage"
)

func newTestAPI(t *testing.T, opts Options) (*API, *httptest.Server) {
	t.Helper()
	st, err := storage.Open(storage.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a := New(st, opts)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return a, srv
}

func get(t *testing.T, srv *httptest.Server, path string, params url.Values) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestQueryLimits(t *testing.T) {
	_, srv := newTestAPI(t, Options{MaxQueryLength: 4096, MaxQueryDepth: 100})
	f := func(path, query string, wantStatus int, wantMsg string) {
		t.Helper()
		status, _, body := get(t, srv, path, url.Values{"query": {query}, "time": {"100"}})
		if status != wantStatus || !strings.Contains(body, wantMsg) {
			t.Errorf("%s %.40q...: got %d %s; want %d containing %q", path, query, status, body, wantStatus, wantMsg)
		}
	}
	deep := strings.Repeat("(", 101) + "1" + strings.Repeat(")", 101)
	f("/api/v1/query", deep, 400, "-query.max-depth=100")
	f("/api/v1/query_range", deep, 400, "-query.max-depth=100")
	f("/api/v1/parse_query", deep, 400, "-query.max-depth=100")
	f("/api/v1/format_query", deep, 400, "-query.max-depth=100")
	f("/api/v1/query", strings.Repeat("1+", 101)+"1", 400, "operators 101 deep")
	f("/api/v1/query", strings.Repeat("abs(", 60)+"x"+strings.Repeat(")", 60), 200, `"result":[]`)
	f("/api/v1/query", "x"+strings.Repeat(" ", 5000), 400, "-query.max-length=4096")
	// Matchers and strings do not count: = in {a="b"}, operators in a string.
	f("/api/v1/query", `x{a="`+strings.Repeat("+", 200)+`", b!="c"}`, 200, `"status":"success"`)
	f("/api/v1/query", strings.Repeat("(", 100)+"1"+strings.Repeat(")", 100), 200, `"status":"success"`)
	// A lexer error is left to Prometheus' parser, in its words.
	f("/api/v1/query", `"unterminated`, 400, "unterminated quoted string")
}

func TestQueryDepth(t *testing.T) {
	f := func(q string, want int) {
		t.Helper()
		if got := queryDepth(q); got != want {
			t.Errorf("queryDepth(%q): got %d; want %d", q, got, want)
		}
	}
	f(`up`, 0)
	f(`sum(rate(x[5m]))`, 3)
	f(`a + b * c`, 2)
	f(`x{a="b", c=~"d|e"}`, 0)
	f(`-x`, 1)
	f(`a and b or c unless d`, 3)
	f(`((a)) + ((b))`, 3)
	f(`"(((("`, 0)
	f(`x[5m:1m] offset 1m`, 1)
}

func TestAdmissionSheds(t *testing.T) {
	a, srv := newTestAPI(t, Options{MaxConcurrent: 2, MaxQueued: -1})
	var releases []func()
	for range 2 { // hold every slot
		r, err := a.gate.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	status, h, body := get(t, srv, "/api/v1/query", url.Values{"query": {"1"}})
	if status != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "-query.max-concurrency=2") {
		t.Errorf("saturated: got %d (Retry-After %q) %s; want 503 with Retry-After naming -query.max-concurrency", status, h.Get("Retry-After"), body)
	}
	var env struct{ Status, ErrorType string }
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Status != "error" || env.ErrorType != "unavailable" {
		t.Errorf("saturated: body %s is not Prometheus' error envelope with errorType unavailable", body)
	}
	// Endpoints that run no query are not held up.
	if status, _, body := get(t, srv, "/api/v1/status/buildinfo", nil); status != 200 {
		t.Errorf("buildinfo while saturated: got %d %s; want 200", status, body)
	}
	for _, r := range releases {
		r()
	}
	if status, _, body := get(t, srv, "/api/v1/query", url.Values{"query": {"1"}}); status != 200 {
		t.Errorf("after release: got %d %s; want 200", status, body)
	}
}

func TestAdmissionQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newAdmission(Options{MaxConcurrent: 1, MaxQueued: 1, MaxQueueWait: time.Minute}, metrics.NewSet())
		release, err := g.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The second waits in the queue; a third finds the queue full.
		got := make(chan error, 1)
		go func() {
			r, err := g.acquire(context.Background())
			if err == nil {
				r()
			}
			got <- err
		}()
		synctest.Wait()
		if _, err := g.acquire(context.Background()); !errors.Is(err, ErrOverloaded) || !strings.Contains(err.Error(), "1 waiting") {
			t.Errorf("third with the queue full: got %v; want ErrOverloaded at once", err)
		}
		release()
		if err := <-got; err != nil {
			t.Errorf("queued request after a release: got %v; want a slot", err)
		}

		// A queued request gives up after MaxQueueWait.
		release, _ = g.acquire(context.Background())
		start := time.Now()
		_, err = g.acquire(context.Background())
		if !errors.Is(err, ErrOverloaded) || time.Since(start) != time.Minute {
			t.Errorf("queued past MaxQueueWait: got %v after %v; want ErrOverloaded after 1m", err, time.Since(start))
		}
		// And when its client leaves.
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(time.Second); cancel() }()
		if _, err := g.acquire(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("client gone while queued: got %v; want context.Canceled", err)
		}
		release()
	})
}
