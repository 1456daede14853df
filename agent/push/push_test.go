package push

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// fakeReceiver answers with the statuses in script, one per request (the
// last one repeats), and records every request.
type fakeReceiver struct {
	mu     sync.Mutex
	script []response
	reqs   []*http.Request
	bodies [][]byte
}

type response struct {
	status     int
	retryAfter string
	body       string
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, body)
	resp := f.script[min(len(f.reqs)-1, len(f.script)-1)]
	f.mu.Unlock()
	if resp.retryAfter != "" {
		w.Header().Set("Retry-After", resp.retryAfter)
	}
	w.WriteHeader(resp.status)
	io.WriteString(w, resp.body)
}

func (f *fakeReceiver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// sleeps records the waits Send asks for instead of waiting, and advances
// a fake clock by them.
type sleeps struct {
	mu  sync.Mutex
	d   []time.Duration
	now time.Time
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.now = s.now.Add(d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func newTestClient(t *testing.T, url string, mod func(*Options)) (*Client, *sleeps, *metrics.Set) {
	t.Helper()
	sl := &sleeps{now: time.Unix(1_700_000_000, 0)}
	set := metrics.NewSet()
	o := Options{URL: url, Sleep: sl.sleep, Now: sl.clock, Metrics: set, UserAgent: "telltale-agent/test"}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, sl, set
}

func counter(set *metrics.Set, name string) uint64 {
	return set.GetOrCreateCounter(name).Get()
}

func TestHeaders(t *testing.T) {
	f := func(v Version, wantType, wantVersion string) {
		t.Helper()
		rcv := &fakeReceiver{script: []response{{status: 204}}}
		srv := httptest.NewServer(rcv)
		defer srv.Close()
		c, _, _ := newTestClient(t, srv.URL+"/api/v1/write", func(o *Options) { o.Version = v; o.Token = "s3cret" })
		if err := c.Send(t.Context(), []byte("body")); err != nil {
			t.Fatalf("Send: %v", err)
		}
		r := rcv.reqs[0]
		for h, want := range map[string]string{
			"Content-Encoding":                  "snappy",
			"Content-Type":                      wantType,
			"X-Prometheus-Remote-Write-Version": wantVersion,
			"User-Agent":                        "telltale-agent/test",
			"Authorization":                     "Bearer s3cret",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("v%d: header %s = %q; want %q", v, h, got, want)
			}
		}
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/write" || string(rcv.bodies[0]) != "body" {
			t.Errorf("v%d: got %s %s body %q; want POST /api/v1/write body \"body\"", v, r.Method, r.URL.Path, rcv.bodies[0])
		}
	}
	f(V1, "application/x-protobuf", "0.1.0")
	f(V2, "application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0")
}

func TestRetry503WithRetryAfter(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 503, retryAfter: "7", body: "storage busy"}, {status: 200}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	c, sl, set := newTestClient(t, srv.URL, nil)
	if err := c.Send(t.Context(), []byte("x")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if rcv.count() != 2 {
		t.Errorf("got %d requests; want 2", rcv.count())
	}
	if len(sl.d) != 1 || sl.d[0] != 7*time.Second {
		t.Errorf("waits = %v; want [7s] from Retry-After", sl.d)
	}
	if got := counter(set, "telltale_agent_send_retries_total"); got != 1 {
		t.Errorf("send_retries_total = %d; want 1", got)
	}
	if got := counter(set, `telltale_agent_send_errors_total{reason="server_error"}`); got != 1 {
		t.Errorf(`send_errors_total{reason="server_error"} = %d; want 1`, got)
	}
}

func TestRetryAfterHTTPDateAndCap(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c, _, _ := newTestClient(t, "http://127.0.0.1:1", func(o *Options) {
		o.Now = func() time.Time { return now }
		o.MaxRetryAfter = time.Minute
	})
	f := func(h string, want time.Duration) {
		t.Helper()
		if got := c.retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %s; want %s", h, got, want)
		}
	}
	f("", 0)
	f("3", 3*time.Second)
	f(now.Add(20*time.Second).Format(http.TimeFormat), 20*time.Second)
	f("3600", time.Minute)
	f("-5", 0)
	f("soon", 0)
}

func TestRetryAfterBlocksSendOnce(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 503, retryAfter: "60"}, {status: 200}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	now := time.Unix(1000, 0)
	c, _, set := newTestClient(t, srv.URL, func(o *Options) { o.Now = func() time.Time { return now } })
	var re *RetryableError
	if err := c.SendOnce(t.Context(), []byte("x")); !errors.As(err, &re) || re.StatusCode != 503 || re.RetryAfter != time.Minute {
		t.Fatalf("first SendOnce = %v; want a retryable 503 with Retry-After 1m", err)
	}
	now = now.Add(59 * time.Second)
	err := c.SendOnce(t.Context(), []byte("x"))
	if !errors.As(err, &re) || re.Reason != ReasonBackingOff || re.RetryAfter != time.Second {
		t.Fatalf("SendOnce within Retry-After = %v; want backing off for 1s", err)
	}
	if rcv.count() != 1 {
		t.Errorf("got %d requests; want 1: the receiver asked for a break", rcv.count())
	}
	if got := counter(set, `telltale_agent_send_errors_total{reason="backing_off"}`); got != 1 {
		t.Errorf("backing_off errors = %d; want 1", got)
	}
	now = now.Add(2 * time.Second)
	if err := c.SendOnce(t.Context(), []byte("x")); err != nil {
		t.Errorf("SendOnce after Retry-After: %v", err)
	}
}

func TestRetry429Backoff(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 429}, {status: 429}, {status: 429}, {status: 200}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	c, sl, set := newTestClient(t, srv.URL, func(o *Options) { o.MinBackoff = 100 * time.Millisecond; o.MaxBackoff = 300 * time.Millisecond })
	if err := c.Send(t.Context(), []byte("x")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if rcv.count() != 4 || len(sl.d) != 3 {
		t.Fatalf("got %d requests and waits %v; want 4 requests, 3 waits", rcv.count(), sl.d)
	}
	// Exponential with ±20% jitter (retry.Backoff), never below
	// MinBackoff nor above MaxBackoff.
	for i, w := range [][2]time.Duration{{100, 120}, {160, 240}, {240, 300}} {
		lo, hi := w[0]*time.Millisecond, w[1]*time.Millisecond
		if sl.d[i] < lo || sl.d[i] > hi {
			t.Errorf("wait %d = %s; want within [%s, %s]", i, sl.d[i], lo, hi)
		}
	}
	if got := counter(set, `telltale_agent_send_errors_total{reason="too_many_requests"}`); got != 3 {
		t.Errorf("too_many_requests errors = %d; want 3", got)
	}
}

func TestRetryConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	c, sl, set := newTestClient(t, url, func(o *Options) { o.MaxAttempts = 3 })
	err := c.Send(t.Context(), []byte("x"))
	var re *RetryableError
	if !errors.As(err, &re) || re.Reason != ReasonNetwork || re.StatusCode != 0 {
		t.Fatalf("Send to a closed port = %v; want a retryable network error", err)
	}
	if IsPermanent(err) {
		t.Error("connection refused reported as permanent")
	}
	if len(sl.d) != 2 {
		t.Errorf("waits = %v; want 2 (3 attempts)", sl.d)
	}
	if got := counter(set, `telltale_agent_send_errors_total{reason="network"}`); got != 3 {
		t.Errorf("network errors = %d; want 3", got)
	}
}

func TestNoRetryOn400(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 400, body: "series has 52 labels, limit -ingest.max-labels=40\n"}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	c, sl, set := newTestClient(t, srv.URL, nil)
	err := c.Send(t.Context(), []byte("x"))
	var pe *PermanentError
	if !errors.As(err, &pe) || pe.StatusCode != 400 {
		t.Fatalf("Send = %v; want a *PermanentError with 400", err)
	}
	if !strings.Contains(err.Error(), "series has 52 labels, limit -ingest.max-labels=40") {
		t.Errorf("error %q lacks the receiver's message", err)
	}
	if rcv.count() != 1 || len(sl.d) != 0 {
		t.Errorf("got %d requests, waits %v; want 1 request, no retry", rcv.count(), sl.d)
	}
	if got := counter(set, `telltale_agent_send_errors_total{reason="rejected"}`); got != 1 {
		t.Errorf("rejected errors = %d; want 1", got)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c, _, _ := newTestClient(t, srv.URL, func(o *Options) { o.Timeout = 50 * time.Millisecond })
	var re *RetryableError
	if err := c.SendOnce(t.Context(), []byte("x")); !errors.As(err, &re) || re.Reason != ReasonTimeout {
		t.Errorf("SendOnce to a hanging receiver = %v; want a retryable timeout", err)
	}
}

func TestSendStopsWithContext(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 503}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	c, _, _ := newTestClient(t, srv.URL, func(o *Options) {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			if n++; n == 3 {
				cancel()
			}
			return ctx.Err()
		}
	})
	err := c.Send(ctx, []byte("x"))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "503") {
		t.Errorf("Send after cancel = %v; want context.Canceled mentioning the last 503", err)
	}
}

func TestTokenFile(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 200}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, _ := newTestClient(t, srv.URL, func(o *Options) { o.TokenFile = path })
	if err := c.Send(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	got := []string{rcv.reqs[0].Header.Get("Authorization"), rcv.reqs[1].Header.Get("Authorization")}
	if got[0] != "Bearer first" || got[1] != "Bearer second-token" {
		t.Errorf("Authorization headers = %q; want the token, then the rotated one", got)
	}
}

func TestNewErrors(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	f := func(o Options, want string) {
		t.Helper()
		_, err := New(o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) error = %v; want it to contain %q", o, err, want)
		}
	}
	f(Options{URL: "127.0.0.1:9470"}, "not an absolute http")
	f(Options{URL: "ftp://x/y"}, "not an absolute http")
	f(Options{URL: "http://x", Version: 3}, "use 1 or 2")
	f(Options{URL: "http://x", TokenFile: "/nonexistent/token"}, "cannot read token file")
	f(Options{URL: "http://x", TokenFile: empty}, "is empty")
	f(Options{URL: "http://x", Headers: map[string]string{"content-type": "text/plain"}}, "set by the protocol")
}

func TestExtraHeadersAndMetricLabels(t *testing.T) {
	rcv := &fakeReceiver{script: []response{{status: 204}, {status: 404, body: "no such path"}}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	c, _, set := newTestClient(t, srv.URL+"/api/v1/push", func(o *Options) {
		o.Headers = map[string]string{"X-Scope-OrgID": "team-a"}
		o.MetricPrefix = "telltale_forward_"
		o.MetricLabels = `target="cortex"`
		o.Flags = FlagNames{URL: "-storage.remote-write-url"}
	})
	if err := c.Send(t.Context(), []byte("body")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := rcv.reqs[0].Header.Get("X-Scope-OrgID"); got != "team-a" {
		t.Errorf("X-Scope-OrgID = %q; want team-a", got)
	}
	err := c.Send(t.Context(), []byte("body"))
	if err == nil || !strings.Contains(err.Error(), "check the URL: -storage.remote-write-url") {
		t.Errorf("404: %v; want a hint naming -storage.remote-write-url", err)
	}
	for name, want := range map[string]uint64{
		`telltale_forward_send_requests_total{target="cortex"}`:                     2,
		`telltale_forward_send_errors_total{target="cortex",reason="rejected"}`:     1,
		`telltale_forward_send_errors_total{target="cortex",reason="server_error"}`: 0,
	} {
		if got := counter(set, name); got != want {
			t.Errorf("%s = %d; want %d", name, got, want)
		}
	}
}

func TestPermanentErrorHints(t *testing.T) {
	for code, want := range map[int]string{401: "-token-file", 415: "-remote-write-version=1", 404: "-collector"} {
		if msg := (&PermanentError{StatusCode: code, Message: "m"}).Error(); !strings.Contains(msg, want) {
			t.Errorf("PermanentError %d = %q; want a hint about %s", code, msg, want)
		}
	}
}

func TestFailoverBetweenReplicas(t *testing.T) {
	a := &fakeReceiver{script: []response{{status: 503, retryAfter: "30"}}}
	b := &fakeReceiver{script: []response{{status: 204}}}
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	c, sl, _ := newTestClient(t, sa.URL, func(o *Options) { o.URLs = []string{sb.URL} })
	for i := range 3 {
		if err := c.Send(t.Context(), []byte("body")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// The first attempt went to a (503, Retry-After); the rest to b at once.
	if a.count() != 1 || b.count() != 3 {
		t.Errorf("requests: a %d, b %d; want 1 and 3", a.count(), b.count())
	}
	if len(sl.d) != 0 {
		t.Errorf("waits %v; want none: another replica was free", sl.d)
	}

	// A replica that is gone: its connection is refused, the other takes over.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	c, _, _ = newTestClient(t, deadURL, func(o *Options) { o.URLs = []string{sb.URL} })
	before := b.count()
	if err := c.Send(t.Context(), []byte("body")); err != nil {
		t.Fatalf("send with the first replica down: %v", err)
	}
	if b.count() != before+1 {
		t.Errorf("b got %d requests; want 1", b.count()-before)
	}

	// Every replica asks to back off: SendOnce fails fast until the soonest.
	c, sl, _ = newTestClient(t, sa.URL, func(o *Options) { o.URLs = []string{sa.URL}; o.MaxAttempts = 3 })
	err := c.Send(t.Context(), []byte("body"))
	var re *RetryableError
	if !errors.As(err, &re) {
		t.Fatalf("both replicas backing off: %v; want a RetryableError", err)
	}
	if len(sl.d) == 0 || sl.d[0] != 30*time.Second {
		t.Errorf("waits %v; want Retry-After's 30s first", sl.d)
	}
}
