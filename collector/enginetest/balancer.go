package enginetest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Balancer is an HTTP load balancer for tests: it sends each request to
// the next backend in turn and, when a backend cannot be reached (it was
// killed), to the next one, as a load balancer with health checks would.
// Answers are passed through as they are, errors included.
type Balancer struct {
	URL      string
	backends []string
	next     atomic.Uint64
	client   *http.Client

	mu         sync.Mutex
	holdPrefix string        // requests under it wait for release; "" holds none
	release    chan struct{} // closed by Release

	unavailable atomic.Bool
}

// SetUnavailable makes the balancer answer 503 to everything (true), as
// an engine that cannot be reached, or pass requests on again (false).
func (b *Balancer) SetUnavailable(v bool) { b.unavailable.Store(v) }

// Hold makes the requests whose path starts with prefix wait, until
// Release or until their client gives up, as an engine whose queries hang:
// "/prometheus/" holds Cortex's query API and lets remote writes through.
// It takes precedence over SetUnavailable.
func (b *Balancer) Hold(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.release == nil {
		b.release = make(chan struct{})
	}
	b.holdPrefix = prefix
}

// Release lets the held requests go on and holds no more.
func (b *Balancer) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.release != nil {
		close(b.release)
	}
	b.holdPrefix, b.release = "", nil
}

// NewBalancer serves on a loopback port until the test ends.
func NewBalancer(t testing.TB, backends ...string) *Balancer {
	b := &Balancer{backends: backends,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// SetBackends replaces the backends (e.g. the collector replicas alive).
func (b *Balancer) SetBackends(backends ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = backends
}

func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	prefix, release := b.holdPrefix, b.release
	b.mu.Unlock()
	if prefix != "" && strings.HasPrefix(r.URL.Path, prefix) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	if b.unavailable.Load() {
		http.Error(w, "balancer: unavailable (the test cut the engine off)", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	backends := b.backends
	b.mu.Unlock()
	start := int(b.next.Add(1))
	var lastErr error
	for k := range backends {
		be := backends[(start+k)%len(backends)]
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, be+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := b.client.Do(req)
		if err != nil {
			lastErr = err
			if r.Context().Err() != nil {
				return
			}
			continue
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	http.Error(w, "balancer: no backend reachable: "+errString(lastErr), http.StatusBadGateway)
}

func errString(err error) string {
	if err == nil {
		return "no backends"
	}
	return err.Error()
}
