package client

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// fakeAPI answers fails times with code, then accepts creates.
type fakeAPI struct {
	mu     sync.Mutex
	code   int
	fails  int
	bodies []changes.CreateRequest
	auth   []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	var req changes.CreateRequest
	json.NewDecoder(r.Body).Decode(&req)
	f.bodies = append(f.bodies, req)
	if f.fails > 0 {
		f.fails--
		w.WriteHeader(f.code)
		io.WriteString(w, `{"status":"error","errorType":"unavailable","error":"busy"}`)
		return
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(changes.Response[changes.Change]{Status: "success", Data: changes.Change{ID: req.ID, Service: req.Service}, Warnings: []string{"w1"}})
}

func newClient(t *testing.T, url string, retries int) *Client {
	t.Helper()
	c, err := New(url, Options{Token: "tok", Retries: retries, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateRetriesWithSameID(t *testing.T) {
	api := &fakeAPI{code: http.StatusServiceUnavailable, fails: 2}
	srv := httptest.NewServer(api)
	defer srv.Close()
	r, err := newClient(t, srv.URL, 3).Create(t.Context(), changes.CreateRequest{Service: "api"})
	if err != nil || !r.Created || r.Change.Service != "api" || len(r.Warnings) != 1 || r.Warnings[0] != "w1" {
		t.Fatalf("got %+v %v; want created after retries, with the warning", r, err)
	}
	if len(api.bodies) != 3 || api.bodies[0].ID == "" || api.bodies[0].ID != api.bodies[2].ID {
		t.Fatalf("tries: got %d with ids %q, %q; want 3 carrying the same generated id", len(api.bodies), api.bodies[0].ID, api.bodies[len(api.bodies)-1].ID)
	}
	if api.auth[0] != "Bearer tok" {
		t.Fatalf("auth: got %q", api.auth[0])
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	api := &fakeAPI{code: http.StatusBadRequest, fails: 5}
	srv := httptest.NewServer(api)
	defer srv.Close()
	_, err := newClient(t, srv.URL, 3).Create(t.Context(), changes.CreateRequest{Service: "api"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || len(api.bodies) != 1 {
		t.Fatalf("got %v after %d tries; want one try and an APIError 400", err, len(api.bodies))
	}
}

func TestGivesUpOn5xx(t *testing.T) {
	api := &fakeAPI{code: http.StatusBadGateway, fails: 100}
	srv := httptest.NewServer(api)
	defer srv.Close()
	_, err := newClient(t, srv.URL, 2).Create(t.Context(), changes.CreateRequest{Service: "api"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || len(api.bodies) != 3 {
		t.Fatalf("got %v after %d tries; want 3 tries and an APIError 502", err, len(api.bodies))
	}
}

func TestUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "http://" + l.Addr().String()
	l.Close()
	_, err := newClient(t, url, 1).List(t.Context(), ListOptions{})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach collector at "+url+": connection refused; is it running?") {
		t.Fatalf("got %v; want ErrUnreachable with the fix", err)
	}
}

func TestNotACollector(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hi</html>") }))
	defer srv.Close()
	_, err := newClient(t, srv.URL, 0).List(t.Context(), ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "is -collector pointing at a Telltale collector?") {
		t.Fatalf("got %v; want a hint about -collector", err)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	_, err := New("collector:9470", Options{})
	if err == nil || !strings.Contains(err.Error(), "set -collector or TELLTALE_COLLECTOR") {
		t.Fatalf("got %v; want the fix", err)
	}
}
