package discovery

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// sdServer is an HTTP SD endpoint as Prometheus documents it: GET with
// X-Prometheus-Refresh-Interval-Seconds, a JSON list of target groups.
type sdServer struct {
	mu     sync.Mutex
	body   string
	status int
	ctype  string
	hits   chan struct{} // one per answered request
	srv    *httptest.Server
}

func newSDServer(t *testing.T, body string) *sdServer {
	s := &sdServer{body: body, ctype: "application/json; charset=utf-8", hits: make(chan struct{}, 1)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		defer func() {
			select {
			case s.hits <- struct{}{}:
			default:
			}
		}()
		if r.Method != http.MethodGet || r.Header.Get("X-Prometheus-Refresh-Interval-Seconds") == "" || r.Header.Get("Accept") != "application/json" {
			http.Error(w, "not an HTTP SD request", 400)
			return
		}
		if s.status != 0 {
			http.Error(w, "down", s.status)
			return
		}
		w.Header().Set("Content-Type", s.ctype)
		fmt.Fprint(w, s.body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sdServer) set(body string, status int, ctype string) {
	s.mu.Lock()
	s.body, s.status, s.ctype = body, status, ctype
	s.mu.Unlock()
}

func TestHTTPDiscovery(t *testing.T) {
	srv := newSDServer(t, `[{"targets": ["a:1", "b:2"], "labels": {"__meta_datacenter": "fra1"}}, {"targets": ["c:3"]}]`)
	opts, set := testOptions()
	d, err := NewHTTP(HTTPConfig{URL: srv.srv.URL + "/sd", RefreshInterval: scrape.Duration(20 * time.Millisecond)}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, d)
	s.waitFor(t, "a:1", "b:2", "c:3")
	checkLabels(t, s.target("a:1"), map[string]string{"__meta_datacenter": "fra1", "__meta_url": srv.srv.URL + "/sd"})

	// The second group goes away, a target comes.
	srv.set(`[{"targets": ["a:1", "b:2", "d:4"]}]`, 0, "application/json")
	s.waitFor(t, "a:1", "b:2", "d:4")

	// Failures keep the targets: a 500, then a wrong content type.
	for _, c := range []struct {
		status int
		ctype  string
	}{{500, "application/json"}, {0, "text/plain"}} {
		before := failures(set, "http")
		srv.set(`[]`, c.status, c.ctype)
		for failures(set, "http") == before {
			waitRequest(t, srv)
		}
		if got := strings.Join(s.addresses(), ","); got != "a:1,b:2,d:4" {
			t.Errorf("after a failed refresh (%d %s): %s; want the last targets", c.status, c.ctype, got)
		}
	}
	// An empty list removes everything.
	srv.set(`[]`, 0, "application/json")
	s.waitFor(t)
}

// waitRequest waits until the server answered a request that began after
// the call: the one after any in flight.
func waitRequest(t *testing.T, s *sdServer) {
	t.Helper()
	for range 2 {
		select {
		case <-s.hits:
		case <-time.After(30 * time.Second):
			t.Fatal("no more requests to the SD server")
		}
	}
}
