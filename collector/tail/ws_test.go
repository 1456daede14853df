package tail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/samples"
)

type testHub struct {
	*tail.Hub
	srv *httptest.Server
	set *metrics.Set
}

func startHub(t *testing.T, opts tail.Options) *testHub {
	t.Helper()
	opts.Metrics = metrics.NewSet()
	h := tail.New(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	return &testHub{Hub: h, srv: srv, set: opts.Metrics}
}

func (th *testHub) wsURL(sels ...string) string {
	q := url.Values{}
	for _, s := range sels {
		q.Add("match[]", s)
	}
	return "ws" + strings.TrimPrefix(th.srv.URL, "http") + "/api/v1/tail?" + q.Encode()
}

// dial connects and reads the subscribed message.
func (th *testHub) dial(t *testing.T, sels ...string) (*websocket.Conn, tail.Message) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(th.wsURL(sels...), nil)
	if err != nil {
		t.Fatalf("dial %v: %v (%s)", sels, err, body(resp))
	}
	t.Cleanup(func() { c.Close() })
	m := read(t, c)
	if m.Type != tail.TypeSubscribed {
		t.Fatalf("first message: got type %q; want subscribed", m.Type)
	}
	return c, m
}

func body(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
}

func read(t *testing.T, c *websocket.Conn) tail.Message {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, raw, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m tail.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("message is not JSON: %v: %s", err, raw)
	}
	return m
}

// waitFor polls cond until it holds or 60s passed (a bound for a broken
// build; a busy machine only makes the wait longer).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type series struct {
	ref    storage.SeriesRef
	labels []string
	t      int64
	v      float64
}

func batch(ss ...series) (*samples.Batch, []storage.SeriesRef) {
	var b samples.Batch
	var refs []storage.SeriesRef
	for _, s := range ss {
		b.StartSeries(nil)
		for i := 0; i+1 < len(s.labels); i += 2 {
			b.AddLabel(s.labels[i], s.labels[i+1])
		}
		b.AddSample(s.t, s.v)
		refs = append(refs, s.ref)
	}
	return &b, refs
}

// collectSamples reads messages until n samples came, and renders them;
// anything but samples messages fails the test.
func collectSamples(t *testing.T, next func() tail.Message, n int) string {
	t.Helper()
	var out []string
	for len(out) < n {
		m := next()
		if m.Type != tail.TypeSamples {
			t.Fatalf("got a %s message; want samples", m.Type)
		}
		if l := lines(m); l != "" {
			out = append(out, strings.Split(l, "\n")...)
		}
	}
	return strings.Join(out, "\n")
}

func lines(m tail.Message) string {
	var out []string
	for _, s := range m.Samples {
		out = append(out, fmt.Sprintf("%s %d %g", tail.SeriesString(s.Labels), s.T, float64(s.V)))
	}
	return strings.Join(out, "\n")
}

func TestTailStreamsOnlyMatchingSamples(t *testing.T) {
	th := startHub(t, tail.Options{QueueSize: 7})
	c, sub := th.dial(t, `up{job="api"}`, `errors_total`)
	if len(sub.Selectors) != 2 || sub.Selectors[0] != `up{job="api"}` || sub.QueueSize != 7 || sub.Time <= 0 {
		t.Fatalf("subscribed: got %+v; want the two selectors, queue_size 7, a server time", sub)
	}
	waitFor(t, "the client to be active", th.Active)
	th.Observe(batch(
		series{1, []string{"__name__", "up", "job", "api"}, 1000, 1},
		series{2, []string{"__name__", "up", "job", "db"}, 1000, 1},
		series{3, []string{"__name__", "errors_total", "code", "500"}, 1000, 3},
		series{4, []string{"__name__", "requests_total", "job", "api"}, 1000, 9},
	))
	th.Observe(batch(series{2, []string{"__name__", "up", "job", "db"}, 2000, 0}))
	th.Observe(batch(series{1, []string{"__name__", "up", "job", "api"}, 2000, 0}))
	// Writes may arrive in one message or several (FlushInterval); the
	// write with no match adds nothing.
	want := "up{job=\"api\"} 1000 1\nerrors_total{code=\"500\"} 1000 3\nup{job=\"api\"} 2000 0"
	if got := collectSamples(t, func() tail.Message { return read(t, c) }, 3); got != want {
		t.Fatalf("samples:\ngot\n%s\nwant\n%s", got, want)
	}
	// The server counts a message once its write returned, which may be
	// after the client read it.
	waitFor(t, "telltale_tail_samples_sent_total 3", func() bool { return collectortest.Metric(th.set, "telltale_tail_samples_sent_total") == 3 })
	if got := collectortest.Metric(th.set, "telltale_tail_clients"); got != 1 {
		t.Fatalf("telltale_tail_clients: got %g; want 1", got)
	}
}

func TestTailPublishesDeploys(t *testing.T) {
	th := startHub(t, tail.Options{})
	c, _ := th.dial(t, `up`)
	waitFor(t, "the client to be active", th.Active)
	type deploy struct {
		Service string    `json:"service"`
		Version string    `json:"version"`
		Time    time.Time `json:"time"`
	}
	want := deploy{Service: "api", Version: "1.2.3", Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	th.PublishDeploy(want)
	m := read(t, c)
	var got deploy
	if m.Type != tail.TypeDeploy || json.Unmarshal(m.Deploy, &got) != nil || got != want {
		t.Fatalf("deploy message: got type %q deploy %s; want deploy %+v", m.Type, m.Deploy, want)
	}
}

func TestTailRejectsBadRequestsBeforeUpgrade(t *testing.T) {
	th := startHub(t, tail.Options{MaxSelectors: 2})
	f := func(query string, header http.Header, wantStatus int, wantBody string) {
		t.Helper()
		u := "ws" + strings.TrimPrefix(th.srv.URL, "http") + "/api/v1/tail?" + query
		c, resp, err := websocket.DefaultDialer.Dial(u, header)
		if err == nil {
			c.Close()
			t.Fatalf("%s: upgraded; want %d", query, wantStatus)
		}
		got := body(resp)
		if resp == nil || resp.StatusCode != wantStatus || !strings.Contains(got, wantBody) {
			t.Fatalf("%s: got %s; want %d with %q", query, got, wantStatus, wantBody)
		}
	}
	f("", nil, 400, "missing match[]")
	f("match[]=up%7Bjob%3D", nil, 400, `invalid match[] "up{job="`)
	f("match[]=%7B%7D", nil, 400, "it matches every series")
	f("match[]=%7Bjob%3D~%22.%2A%22%7D", nil, 400, "it matches every series")
	f("match[]=sum(up)", nil, 400, "invalid match[]")
	f("match[]=a&match[]=b&match[]=c", nil, 400, "3 match[] selectors, limit -tail.max-selectors=2")
	f("match[]=up&max_rate=-1", nil, 400, `invalid max_rate "-1"`)
	f("match[]=up&max_rate=abc", nil, 400, `invalid max_rate "abc"`)
	f("match[]=up", http.Header{"Origin": {"https://evil.example"}}, 403, `origin "https://evil.example" is not this collector`)
	f("match[]=up", http.Header{"Origin": {"null"}}, 403, "is not this collector")

	// The parser's own message comes through.
	_, resp, _ := websocket.DefaultDialer.Dial(th.wsURL(`up{job=`), nil)
	if got := body(resp); !strings.Contains(got, "unexpected") {
		t.Fatalf("malformed selector: got %s; want the PromQL parser's message", got)
	}

	// Plain HTTP gets a message that says what the endpoint is.
	resp, err := http.Get(th.srv.URL + "/api/v1/tail?match[]=up")
	if err != nil {
		t.Fatal(err)
	}
	if got := body(resp); resp.StatusCode != 400 || !strings.Contains(got, "websocket") {
		t.Fatalf("plain GET: got %s; want 400 saying it is a websocket", got)
	}
	resp, err = http.Post(th.srv.URL+"/api/v1/tail?match[]=up", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 405 {
		t.Fatalf("POST: got %s; want 405", body(resp))
	}
	if got := collectortest.Metric(th.set, `telltale_tail_rejected_total{reason="bad_selector"}`); got != 5 {
		t.Fatalf(`telltale_tail_rejected_total{reason="bad_selector"}: got %g; want 5`, got)
	}

	// Same-host Origin (the web console) is fine.
	c, resp, err := websocket.DefaultDialer.Dial(th.wsURL("up"), http.Header{"Origin": {th.srv.URL}})
	if err != nil {
		t.Fatalf("same-host origin %s: %v (%s)", th.srv.URL, err, body(resp))
	}
	c.Close()
}

func TestTailLimitsClients(t *testing.T) {
	th := startHub(t, tail.Options{MaxClients: 2})
	c1, _ := th.dial(t, "up")
	th.dial(t, "up")
	_, resp, err := websocket.DefaultDialer.Dial(th.wsURL("up"), nil)
	if err == nil {
		t.Fatalf("third client with -tail.max-clients=2: upgraded; want 503")
	}
	if got := body(resp); resp.StatusCode != 503 || !strings.Contains(got, "limit -tail.max-clients=2") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third client: got %s (Retry-After %q); want 503 naming -tail.max-clients=2 with Retry-After", got, resp.Header.Get("Retry-After"))
	}
	c1.Close()
	waitFor(t, "a slot to free up", func() bool {
		c, _, err := websocket.DefaultDialer.Dial(th.wsURL("up"), nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func TestTailCloseSaysGoodbyeAndWaits(t *testing.T) {
	th := startHub(t, tail.Options{})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		c, _ := th.dial(t, "up")
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	waitFor(t, "3 clients", func() bool { return collectortest.Metric(th.set, "telltale_tail_clients") == 3 })
	if err := th.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returned: every client's goroutines have ended.
	if got := collectortest.Metric(th.set, "telltale_tail_clients"); got != 0 {
		t.Fatalf("telltale_tail_clients after Close: got %g; want 0", got)
	}
	if got := collectortest.Metric(th.set, `telltale_tail_disconnects_total{reason="shutdown"}`); got != 3 {
		t.Fatalf(`disconnects{reason="shutdown"} after Close: got %g; want 3`, got)
	}
	wg.Wait()
	for i, err := range errs {
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != tail.CloseShutdown || ce.Text != "server shutting down" {
			t.Fatalf("client %d: got %v; want close 1001 \"server shutting down\"", i, err)
		}
	}
	_, resp, err := websocket.DefaultDialer.Dial(th.wsURL("up"), nil)
	if err == nil || resp.StatusCode != 503 {
		t.Fatalf("dial after Close: got %v %s; want 503", err, body(resp))
	}
}

func TestTailCloseGivesUpOnStuckClients(t *testing.T) {
	// A client that never reads cannot answer the close frame; Close
	// closes it hard once ctx ends and still returns only after the
	// client's goroutines ended.
	th := startHub(t, tail.Options{CloseWait: time.Hour})
	th.dial(t, "up")
	waitFor(t, "a client", th.Active)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := th.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck client: got %v; want DeadlineExceeded", err)
	}
	if got := collectortest.Metric(th.set, "telltale_tail_clients"); got != 0 {
		t.Fatalf("telltale_tail_clients after Close: got %g; want 0", got)
	}
}

// bigBatch is n samples of one series with a long label, so the messages
// fill socket buffers quickly.
func bigBatch(n int, t0 int64) (*samples.Batch, []storage.SeriesRef) {
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", "up")
	b.AddLabel("pad", strings.Repeat("x", 4000))
	for i := range n {
		b.AddSample(t0+int64(i), float64(i))
	}
	return &b, []storage.SeriesRef{1}
}

func TestTailSlowClientIsToldWhatItMissed(t *testing.T) {
	th := startHub(t, tail.Options{QueueSize: 4, MaxSamplesPerMessage: 64, MaxLag: time.Hour, MaxOverflows: 1 << 30, WriteTimeout: time.Minute})
	c, _ := th.dial(t, "up")
	waitFor(t, "a client", th.Active)
	// The client reads nothing while ingest goes on: socket buffers and
	// the queue fill up, then messages are dropped; Observe never waits.
	observed := 0
	for i := 0; collectortest.Metric(th.set, "telltale_tail_dropped_total") < 3; i++ {
		if i == 10_000 {
			t.Fatalf("no drops after %d writes of 64 samples to a client that reads nothing", i)
		}
		th.Observe(bigBatch(64, int64(i)*64))
		observed += 64
	}
	dropped := collectortest.Metric(th.set, "telltale_tail_dropped_samples_total")
	// Now it reads: every sample is either received or reported missed.
	received, reported, notices := 0, 0, 0
	for received+reported < observed {
		m := read(t, c)
		switch m.Type {
		case tail.TypeSamples:
			received += len(m.Samples)
		case tail.TypeNotice:
			if m.Notice != tail.NoticeDropped || !strings.Contains(m.Text, "fell behind") {
				t.Fatalf("notice: got %+v; want a dropped notice", m)
			}
			notices++
			reported += int(m.DroppedSamples)
		}
	}
	if received+reported != observed || float64(reported) != dropped || notices == 0 {
		t.Fatalf("got %d received + %d reported missed in %d notices; want %d observed, %g dropped",
			received, reported, notices, observed, dropped)
	}
}

func TestTailStuckClientIsDisconnected(t *testing.T) {
	th := startHub(t, tail.Options{QueueSize: 2, MaxSamplesPerMessage: 64, MaxOverflows: 5, WriteTimeout: 300 * time.Millisecond})
	th.dial(t, "up") // never reads again
	waitFor(t, "a client", th.Active)
	for i := 0; th.Active(); i++ {
		if i == 100_000 {
			t.Fatalf("client that reads nothing still connected after %d writes", i)
		}
		th.Observe(bigBatch(64, int64(i)*64))
		if i%100 == 99 {
			// Real time on purpose: the write deadline is on a real
			// socket (synctest cannot fake it); the loop's condition is
			// the disconnect itself.
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(t, "the disconnect to be counted", func() bool {
		return max(0, collectortest.Metric(th.set, `telltale_tail_disconnects_total{reason="slow_client"}`))+
			max(0, collectortest.Metric(th.set, `telltale_tail_disconnects_total{reason="write_timeout"}`)) == 1
	})
	waitFor(t, "no clients", func() bool { return collectortest.Metric(th.set, "telltale_tail_clients") == 0 })
}

func TestTailPingsKeepReadersAndDropSilentOnes(t *testing.T) {
	// Pings go out every 100ms; a client silent for 100ms + 5s is dropped.
	// The 5s keep a reading client that a busy machine stalls from looking
	// silent; the waits below are for conditions, so they cost no more.
	th := startHub(t, tail.Options{PingInterval: 100 * time.Millisecond, WriteTimeout: 5 * time.Second})
	live, _ := th.dial(t, "up")
	var pings atomic.Int64
	live.SetPingHandler(func(data string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	type result struct {
		raw []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		// Reading makes the ping handler run.
		_ = live.SetReadDeadline(time.Now().Add(time.Minute))
		_, raw, err := live.ReadMessage()
		got <- result{raw, err}
	}()
	th.dial(t, "up") // reads nothing, so it never answers a ping
	waitFor(t, "the silent client to be dropped", func() bool {
		return collectortest.Metric(th.set, `telltale_tail_disconnects_total{reason="ping_timeout"}`) == 1
	})
	// The reader has answered pings all along (many more than it needs to
	// have been dropped were it silent).
	waitFor(t, "10 pings answered by the reading client", func() bool { return pings.Load() >= 10 })
	th.Observe(batch(series{1, []string{"__name__", "up"}, 1000, 1}))
	r := <-got
	var m tail.Message
	if r.err != nil || json.Unmarshal(r.raw, &m) != nil || m.Type != tail.TypeSamples {
		t.Fatalf("reading client after %d pings: got %s, %v; want a samples message", pings.Load(), r.raw, r.err)
	}
	if got := collectortest.Metric(th.set, `telltale_tail_disconnects_total{reason="ping_timeout"}`); got != 1 {
		t.Fatalf("ping timeouts: got %g; want 1 (only the silent client)", got)
	}
}
