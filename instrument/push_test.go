package instrument

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reply is what fakeCollector answers to one push; code 0 means hang up
// without a response (a network error for the client).
type reply struct {
	code       int
	retryAfter string
	body       string
}

// pushed is one request the fake collector received.
type pushed struct {
	at         time.Time
	header     http.Header
	compressed int
	samples    []sample
	code       int
}

// fakeCollector stands in for the collector's import endpoint: it decodes
// and parses every push (failing the test on a bad body) and answers what
// answer says.
type fakeCollector struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int) reply // n: 0-based request number

	mu   sync.Mutex
	reqs []pushed
}

func newFakeCollector(t *testing.T, answer func(n int) reply) *fakeCollector {
	fc := &fakeCollector{t: t, answer: answer}
	fc.srv = httptest.NewServer(http.HandlerFunc(fc.serve))
	t.Cleanup(fc.srv.Close)
	return fc
}

func (fc *fakeCollector) serve(w http.ResponseWriter, r *http.Request) {
	t := fc.t
	if r.Method != http.MethodPost || r.URL.Path != ImportPath {
		t.Errorf("got %s %s; want POST %s", r.Method, r.URL.Path, ImportPath)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("cannot read push body: %v", err)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Errorf("Content-Encoding: got %q; want gzip", ce)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Errorf("push body is not gzip: %v", err)
		return
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Errorf("cannot gunzip push body: %v", err)
		return
	}
	samples, err := parseText(text)
	if err != nil {
		t.Errorf("push body does not parse as Prometheus text: %v\n%s", err, text)
	}
	fc.mu.Lock()
	n := len(fc.reqs)
	rep := reply{code: http.StatusNoContent}
	if fc.answer != nil {
		rep = fc.answer(n)
	}
	fc.reqs = append(fc.reqs, pushed{at: time.Now(), header: r.Header.Clone(), compressed: len(body), samples: samples, code: rep.code})
	fc.mu.Unlock()
	if rep.code == 0 {
		panic(http.ErrAbortHandler) // drop the connection
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.WriteHeader(rep.code)
	io.WriteString(w, rep.body)
}

func (fc *fakeCollector) requests() []pushed {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]pushed(nil), fc.reqs...)
}

// waitFor polls cond until it holds; the deadline only guards against a
// hang, it is not a timing assertion.
func (fc *fakeCollector) waitFor(what string, cond func([]pushed) bool) {
	fc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(fc.requests()) {
		if time.Now().After(deadline) {
			fc.t.Fatalf("timed out waiting for %s; got %d requests", what, len(fc.requests()))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// accepted returns, in arrival order, the samples of metric name in the
// pushes the collector accepted.
func accepted(reqs []pushed, name string) []sample {
	var out []sample
	for _, r := range reqs {
		if r.code < 200 || r.code > 299 {
			continue
		}
		for _, s := range r.samples {
			if s.name == name {
				out = append(out, s)
			}
		}
	}
	return out
}

func fastOptions(collector string) Options {
	return Options{
		Collector: collector, Service: "svc", Env: "test", Instance: "i1",
		Interval: time.Hour, RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond,
		FlushTimeout: 10 * time.Second,
	}
}

func TestPushFormat(t *testing.T) {
	fc := newFakeCollector(t, nil)
	reg := NewRegistry(RegistryOptions{ProcessMetrics: true})
	reg.Counter("orders_placed_total", "kind", "book").Add(5)
	opts := fastOptions(fc.srv.URL)
	opts.Token = "s3cret"
	opts.Version, opts.Commit = "1.2.3", "abc"
	stop, err := reg.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	fc.waitFor("the first push", func(r []pushed) bool { return len(r) >= 1 })
	stop()

	reqs := fc.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d pushes; want 2 (at start, at stop)", len(reqs))
	}
	for i, r := range reqs {
		if got := r.header.Get("Authorization"); got != "Bearer s3cret" {
			t.Errorf("push %d: Authorization: got %q; want Bearer s3cret", i, got)
		}
		if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain; version=0.0.4") {
			t.Errorf("push %d: Content-Type: got %q; want text/plain; version=0.0.4", i, got)
		}
		if len(r.samples) < 20 {
			t.Fatalf("push %d: got %d samples; want app, build and process metrics", i, len(r.samples))
		}
		ts := r.samples[0].ts
		names := map[string]bool{}
		for _, s := range r.samples {
			names[s.name] = true
			if !s.hasTS || s.ts != ts {
				t.Errorf("push %d: %s: got ts %d (present %v); want every sample at %d", i, s.name, s.ts, s.hasTS, ts)
			}
			if s.labels["service"] != "svc" || s.labels["env"] != "test" || s.labels["instance"] != "i1" {
				t.Errorf("push %d: %s%v: want service=svc env=test instance=i1", i, s.name, s.labels)
			}
		}
		if now := time.Now().UnixMilli(); ts > now || ts < now-60_000 {
			t.Errorf("push %d: got ts %d; want within the last minute of %d", i, ts, now)
		}
		for _, n := range []string{"orders_placed_total", "telltale_build_info", "process_start_time_seconds", "go_goroutines", "telltale_instrument_push_requests_total"} {
			if !names[n] {
				t.Errorf("push %d: %s missing", i, n)
			}
		}
	}
	if reqs[1].samples[0].ts <= reqs[0].samples[0].ts {
		t.Errorf("got ts %d then %d; want increasing", reqs[0].samples[0].ts, reqs[1].samples[0].ts)
	}

	// no token, no header
	fc2 := newFakeCollector(t, nil)
	stop, err = NewRegistry(RegistryOptions{}).Start(t.Context(), fastOptions(fc2.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	for _, r := range fc2.requests() {
		if got := r.header.Get("Authorization"); got != "" {
			t.Errorf("without a token: Authorization: got %q; want none", got)
		}
	}
}

// TestPushOutage: the collector fails for several intervals, then comes
// back. Every interval's sample must arrive once, with the time it was
// measured, in order.
func TestPushOutage(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail reply
	}{
		{"503", reply{code: http.StatusServiceUnavailable, body: "storage busy"}},
		{"429", reply{code: http.StatusTooManyRequests, retryAfter: "0"}},
		{"connection dropped", reply{code: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var down atomic.Bool
			fc := newFakeCollector(t, func(int) reply {
				if down.Load() {
					return tc.fail
				}
				return reply{code: http.StatusNoContent}
			})
			reg := NewRegistry(RegistryOptions{})
			ticks := reg.Counter("test_ticks_total")
			tick := make(chan time.Time)
			opts := fastOptions(fc.srv.URL)
			opts.tick = tick
			stop, err := reg.Start(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			fc.waitFor("the first push", func(r []pushed) bool { return len(r) == 1 })

			t0 := time.Now().Add(time.Hour).Truncate(time.Second)
			var want []int64
			for i := 1; i <= 12; i++ {
				if i == 3 {
					down.Store(true)
				}
				if i == 9 {
					down.Store(false)
				}
				ticks.Inc()
				ts := t0.Add(time.Duration(i) * 10 * time.Second)
				tick <- ts
				want = append(want, ts.UnixMilli())
				if down.Load() {
					n := len(fc.requests())
					fc.waitFor("a failed attempt", func(r []pushed) bool { return len(r) > n })
				}
			}
			stop()

			reqs := fc.requests()
			failed := 0
			for _, r := range reqs {
				if r.code != http.StatusNoContent {
					failed++
				}
			}
			if failed < 6 {
				t.Errorf("got %d failed attempts; want at least one per down interval (6)", failed)
			}
			got := accepted(reqs, "test_ticks_total")
			// first: the measurement at Start; last: the one at stop
			if len(got) != len(want)+2 {
				t.Fatalf("got %d samples; want %d (start, 12 ticks, stop)", len(got), len(want)+2)
			}
			for i, ts := range want {
				s := got[i+1]
				if s.ts != ts {
					t.Errorf("tick %d: got ts %d; want %d (the time it was measured)", i+1, s.ts, ts)
				}
			}
			for i := 1; i < len(got); i++ {
				if got[i].ts <= got[i-1].ts || got[i].value < got[i-1].value {
					t.Errorf("sample %d: got (ts %d, %v) after (ts %d, %v); want increasing ts, non-decreasing counter", i, got[i].ts, got[i].value, got[i-1].ts, got[i-1].value)
				}
			}
			if last := got[len(got)-1].value; last != 12 {
				t.Errorf("last counter value: got %v; want 12", last)
			}
			if v := rawValue(t, reg, `telltale_instrument_push_dropped_samples_total{reason="buffer_full"}`); v != 0 {
				t.Errorf("dropped samples: got %v; want 0", v)
			}
			if v := rawValue(t, reg, `telltale_instrument_push_requests_total{result="retry"}`); v != float64(failed) {
				t.Errorf("retry counter: got %v; want %d", v, failed)
			}
		})
	}
}

// TestPushBufferBound: an outage longer than the buffer holds drops the
// oldest intervals, counts them, and delivers the rest in order.
func TestPushBufferBound(t *testing.T) {
	var down atomic.Bool
	fc := newFakeCollector(t, func(int) reply {
		if down.Load() {
			return reply{code: http.StatusServiceUnavailable}
		}
		return reply{code: http.StatusNoContent}
	})
	reg := NewRegistry(RegistryOptions{})
	ticks := reg.Counter("test_ticks_total")

	// learn the size of one interval
	opts := fastOptions(fc.srv.URL)
	stop, err := reg.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	size := fc.requests()[0].compressed
	perChunk := len(fc.requests()[0].samples)
	before := len(fc.requests())

	tick := make(chan time.Time)
	opts.tick = tick
	opts.BufferBytes = size*3 + size/2 // room for 3 intervals
	down.Store(true)
	stop, err = reg.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(time.Hour).Truncate(time.Second)
	var tss []int64
	for i := 1; i <= 10; i++ {
		ticks.Inc()
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		tick <- ts
		tss = append(tss, ts.UnixMilli())
		n := len(fc.requests())
		fc.waitFor("a failed attempt", func(r []pushed) bool { return len(r) > n })
	}
	down.Store(false)
	fc.waitFor("the buffered intervals", func(r []pushed) bool { return len(accepted(r[before:], "test_ticks_total")) >= 3 })
	stop()

	reqs := fc.requests()[before:]
	got := accepted(reqs, "test_ticks_total")
	// delivered: the newest intervals the buffer held at recovery (ticks
	// 8, 9, 10), then the one measured at stop
	if len(got) != 4 {
		t.Fatalf("got %d delivered intervals; want 4 (3 buffered + stop)", len(got))
	}
	for i, ts := range tss[7:] {
		if got[i].ts != ts {
			t.Errorf("delivered %d: got ts %d; want %d", i, got[i].ts, ts)
		}
	}
	if got[3].ts <= got[2].ts {
		t.Errorf("stop interval: got ts %d; want after %d", got[3].ts, got[2].ts)
	}
	// dropped: the interval at Start and ticks 1..7
	if v, want := rawValue(t, reg, `telltale_instrument_push_dropped_samples_total{reason="buffer_full"}`), float64(8*perChunk); v != want {
		t.Errorf("dropped samples: got %v; want %v (8 intervals of %d samples)", v, want, perChunk)
	}
	for _, s := range accepted(reqs, "telltale_instrument_push_buffer_bytes") {
		if s.value > float64(opts.BufferBytes) {
			t.Errorf("buffer held %v bytes; limit %d", s.value, opts.BufferBytes)
		}
	}
}

// TestPushRejected: a 4xx is not retried, the chunk is counted as dropped
// and each distinct message is logged once.
func TestPushRejected(t *testing.T) {
	var msg atomic.Value
	msg.Store("line 3: unknown label")
	fc := newFakeCollector(t, func(int) reply {
		return reply{code: http.StatusBadRequest, body: msg.Load().(string)}
	})
	reg := NewRegistry(RegistryOptions{})
	var logBuf syncBuffer
	opts := fastOptions(fc.srv.URL)
	tick := make(chan time.Time)
	opts.tick = tick
	opts.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	stop, err := reg.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(time.Hour)
	for i := 1; i <= 4; i++ {
		if i == 3 {
			msg.Store("token lacks write scope")
		}
		n := len(fc.requests())
		tick <- t0.Add(time.Duration(i) * time.Second)
		fc.waitFor("the push", func(r []pushed) bool { return len(r) > n })
	}
	stop()
	reqs := fc.requests()
	if len(reqs) != 6 {
		t.Errorf("got %d requests; want 6 (one per interval: start, 4 ticks, stop), no retries", len(reqs))
	}
	logs := logBuf.String()
	if n := strings.Count(logs, "line 3: unknown label"); n != 1 {
		t.Errorf("first message logged %d times; want once\n%s", n, logs)
	}
	if n := strings.Count(logs, "token lacks write scope"); n != 1 {
		t.Errorf("second message logged %d times; want once\n%s", n, logs)
	}
	perChunk := len(reqs[0].samples)
	if v, want := rawValue(t, reg, `telltale_instrument_push_dropped_samples_total{reason="rejected"}`), float64(6*perChunk); v != want {
		t.Errorf("rejected samples: got %v; want %v", v, want)
	}
	if v := rawValue(t, reg, `telltale_instrument_push_requests_total{result="retry"}`); v != 0 {
		t.Errorf("retries: got %v; want 0", v)
	}
}

// TestPushRetryAfter: the next attempt waits at least what the collector
// asked for, even though the backoff is 1ms.
func TestPushRetryAfter(t *testing.T) {
	fc := newFakeCollector(t, func(n int) reply {
		if n == 0 {
			return reply{code: http.StatusServiceUnavailable, retryAfter: "1"}
		}
		return reply{code: http.StatusNoContent}
	})
	stop, err := NewRegistry(RegistryOptions{}).Start(t.Context(), fastOptions(fc.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	fc.waitFor("the retry", func(r []pushed) bool { return len(r) >= 2 })
	stop()
	reqs := fc.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 990*time.Millisecond {
		t.Errorf("retried after %s; want at least the 1s Retry-After", gap)
	}
	if reqs[1].samples[0].ts != reqs[0].samples[0].ts {
		t.Errorf("retry carried ts %d; want the original %d", reqs[1].samples[0].ts, reqs[0].samples[0].ts)
	}
}

// TestStopGivesUp: with the collector down, stop returns after
// FlushTimeout and counts what it could not deliver.
func TestStopGivesUp(t *testing.T) {
	fc := newFakeCollector(t, func(int) reply { return reply{code: http.StatusServiceUnavailable} })
	reg := NewRegistry(RegistryOptions{})
	opts := fastOptions(fc.srv.URL)
	opts.FlushTimeout = 50 * time.Millisecond
	stop, err := reg.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("stop did not return with the collector down")
	}
	if v := rawValue(t, reg, `telltale_instrument_push_dropped_samples_total{reason="shutdown"}`); v <= 0 {
		t.Errorf("shutdown drops: got %v; want > 0", v)
	}
	// the buffer gauges are gone with the pusher
	if v := rawValue(t, reg, "telltale_instrument_push_buffer_bytes"); v != -1 {
		t.Errorf("buffer gauge after stop: got %v; want it unregistered", v)
	}
}

// TestContextCancelFlushes: cancelling Start's ctx pushes a last time,
// like stop.
func TestContextCancelFlushes(t *testing.T) {
	fc := newFakeCollector(t, nil)
	reg := NewRegistry(RegistryOptions{})
	c := reg.Counter("x_total")
	ctx, cancel := context.WithCancel(t.Context())
	stop, err := reg.Start(ctx, fastOptions(fc.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	fc.waitFor("the first push", func(r []pushed) bool { return len(r) == 1 })
	c.Add(7)
	cancel()
	stop()
	got := accepted(fc.requests(), "x_total")
	if len(got) != 2 || got[1].value != 7 {
		t.Errorf("got %v; want 2 samples, the last = 7", got)
	}
	// stopped: a new Start on the registry is allowed
	stop, err = reg.Start(t.Context(), fastOptions(fc.srv.URL))
	if err != nil {
		t.Errorf("Start after stop: %v", err)
	} else {
		stop()
	}
}

func TestStartTwiceRefused(t *testing.T) {
	fc := newFakeCollector(t, nil)
	reg := NewRegistry(RegistryOptions{})
	stop, err := reg.Start(t.Context(), fastOptions(fc.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := reg.Start(t.Context(), fastOptions(fc.srv.URL)); err == nil || !strings.Contains(err.Error(), "already pushes") {
		t.Errorf("second Start: got %v; want 'already pushes'", err)
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("https://u:pw@c:9470/api/v1/import/prometheus?token=x"); got != "https://c:9470/api/v1/import/prometheus" {
		t.Errorf("got %q; want user info and query removed", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
