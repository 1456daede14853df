package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/samples"
)

// swapServer serves whichever hub is current, so a test can "restart" the
// collector.
type swapServer struct {
	hub atomic.Pointer[tail.Hub]
	srv *httptest.Server
}

func newSwapServer(t *testing.T, opts tail.Options) *swapServer {
	t.Helper()
	s := &swapServer{}
	s.hub.Store(tail.New(opts))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hub.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		_ = s.hub.Load().Close(context.Background())
		s.srv.Close()
	})
	return s
}

func upBatch(v float64) (*samples.Batch, []storage.SeriesRef) {
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", "up")
	b.AddLabel("job", "api")
	b.AddSample(1000, v)
	return &b, []storage.SeriesRef{1}
}

func waitActive(t *testing.T, h *tail.Hub) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.Active() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for a subscriber")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTailURL(t *testing.T) {
	f := func(opts Options, want string) {
		t.Helper()
		got, err := TailURL(opts)
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("TailURL(%+v): got %s; want %s", opts, got, want)
		}
	}
	f(Options{URL: "http://127.0.0.1:9470", Selectors: []string{`up{job="api"}`}}, "ws://127.0.0.1:9470/api/v1/tail?match%5B%5D=up%7Bjob%3D%22api%22%7D")
	f(Options{URL: "https://c.example/ignored", Selectors: []string{"a", "b"}, MaxRate: 2.5}, "wss://c.example/api/v1/tail?match%5B%5D=a&match%5B%5D=b&max_rate=2.5")
	f(Options{URL: "ws://h:1", Selectors: []string{"a"}}, "ws://h:1/api/v1/tail?")
	f(Options{URL: "ftp://h", Selectors: []string{"a"}}, `error: collector URL "ftp://h": scheme "ftp"`)
	f(Options{URL: "127.0.0.1:9470", Selectors: []string{"a"}}, `error: collector URL "127.0.0.1:9470"`)
	f(Options{URL: "http://h:1"}, "error: no series selector")
}

func TestDialAndNext(t *testing.T) {
	s := newSwapServer(t, tail.Options{})
	c, err := Dial(t.Context(), Options{URL: s.srv.URL, Selectors: []string{`up{job="api"}`}, MaxRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subscribed.MaxRate != 100 || len(c.Subscribed.Selectors) != 1 {
		t.Fatalf("Subscribed: got %+v; want max_rate 100 and the selector", c.Subscribed)
	}
	waitActive(t, s.hub.Load())
	s.hub.Load().Observe(upBatch(42))
	m, raw, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != tail.TypeSamples || len(m.Samples) != 1 || m.Samples[0].V != 42 || !json.Valid(raw) {
		t.Fatalf("Next: got %+v (%s); want one sample of 42", m, raw)
	}
}

func TestDialRefusalIsAHandshakeError(t *testing.T) {
	s := newSwapServer(t, tail.Options{})
	_, err := Dial(t.Context(), Options{URL: s.srv.URL, Selectors: []string{`up{job=`}})
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 400 || he.Retryable() || !strings.Contains(he.Message, "invalid match[]") {
		t.Fatalf("Dial with a malformed selector: got %v; want a non-retryable 400 HandshakeError with the server's message", err)
	}
	// Follow gives up on it at once instead of retrying.
	err = Follow(t.Context(), Options{URL: s.srv.URL, Selectors: []string{`up{job=`}}, FollowOptions{
		OnMessage: func(tail.Message, []byte) error { return nil },
	})
	if !errors.As(err, &he) {
		t.Fatalf("Follow with a malformed selector: got %v; want the HandshakeError", err)
	}
}

func TestDialUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	_, err := Dial(t.Context(), Options{URL: u, Selectors: []string{"up"}})
	if err == nil || !strings.Contains(err.Error(), "cannot connect to the collector at "+u) {
		t.Fatalf("Dial to a closed port: got %v; want \"cannot connect to the collector at %s...\"", err, u)
	}
}

// recorder collects what Follow delivers and logs.
type recorder struct {
	mu   sync.Mutex
	msgs []tail.Message
	logs []string
	got  chan tail.Message
}

func newRecorder() *recorder { return &recorder{got: make(chan tail.Message, 100)} }

func (r *recorder) follow() FollowOptions {
	return FollowOptions{
		OnMessage: func(m tail.Message, _ []byte) error {
			r.got <- m
			return nil
		},
		Logf: func(format string, args ...any) {
			r.mu.Lock()
			r.logs = append(r.logs, fmt.Sprintf(format, args...))
			r.mu.Unlock()
		},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
}

func (r *recorder) next(t *testing.T) tail.Message {
	t.Helper()
	select {
	case m := <-r.got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message within 10s")
		return tail.Message{}
	}
}

func (r *recorder) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

func TestFollowReconnectsAfterARestart(t *testing.T) {
	s := newSwapServer(t, tail.Options{})
	rec := newRecorder()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- Follow(ctx, Options{URL: s.srv.URL, Selectors: []string{"up"}}, rec.follow()) }()

	if m := rec.next(t); m.Type != tail.TypeSubscribed {
		t.Fatalf("first message: got %q; want subscribed", m.Type)
	}
	old := s.hub.Load()
	waitActive(t, old)
	s.hub.Store(tail.New(tail.Options{})) // the restarted collector
	if err := old.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := rec.next(t); m.Type != tail.TypeSubscribed {
		t.Fatalf("after the restart: got %q; want subscribed again", m.Type)
	}
	if got := rec.log(); !strings.Contains(got, "the collector closed the stream: server shutting down (1001); reconnecting in") {
		t.Fatalf("log: got %q; want it to say the server shut down and that it reconnects", got)
	}
	waitActive(t, s.hub.Load())
	s.hub.Load().Observe(upBatch(7))
	if m := rec.next(t); m.Type != tail.TypeSamples || m.Samples[0].V != 7 {
		t.Fatalf("after reconnecting: got %+v; want the sample 7", m)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow after cancel: got %v; want context.Canceled", err)
	}
}

func TestFollowRetries503(t *testing.T) {
	s := newSwapServer(t, tail.Options{MaxClients: 1})
	first, err := Dial(t.Context(), Options{URL: s.srv.URL, Selectors: []string{"up"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	go func() { _ = Follow(t.Context(), Options{URL: s.srv.URL, Selectors: []string{"up"}}, rec.follow()) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(rec.log(), "503") {
		if time.Now().After(deadline) {
			t.Fatalf("no 503 logged while the only slot is taken; log: %q", rec.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.Close()
	if m := rec.next(t); m.Type != tail.TypeSubscribed {
		t.Fatalf("after the slot freed up: got %q; want subscribed", m.Type)
	}
}

func TestFollowStopsOnHandlerError(t *testing.T) {
	s := newSwapServer(t, tail.Options{})
	stop := errors.New("stdout closed")
	err := Follow(t.Context(), Options{URL: s.srv.URL, Selectors: []string{"up"}}, FollowOptions{
		OnMessage: func(tail.Message, []byte) error { return stop },
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Follow with a failing handler: got %v; want its error", err)
	}
}
