package instrument

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

var slowCheckout = SwitchDef{Name: "slow_checkout", Description: "bad-deploy simulation", Owner: "shop-team", Protects: "nothing"}

func TestSwitchDeclareAndFlip(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	sw := reg.Switch(slowCheckout)
	search := reg.Switch(SwitchDef{Name: "search", Default: true})
	if sw.On() || !search.On() {
		t.Fatalf("start: got slow_checkout %v search %v; want their defaults off and on", sw.On(), search.On())
	}
	if again := reg.Switch(slowCheckout); again != sw {
		t.Fatalf("declaring again: got another switch")
	}
	for i := range 150 { // more than the label-value guard admits for other metrics
		reg.Switch(SwitchDef{Name: fmt.Sprintf("feature-%03d", i)})
	}
	if v := rawValue(t, reg, `telltale_switch_on{switch="feature-149"}`); v != 0 {
		t.Fatalf("gauge of the 150th switch: got %v; want 0 under its own name", v)
	}
	if v := rawValue(t, reg, `telltale_switch_on{switch="search"}`); v != 1 {
		t.Fatalf("gauge of search: got %v; want 1", v)
	}
	st, changed, err := reg.FlipSwitch("slow_checkout", true, Flip{Who: "alice", Reason: "test"})
	if err != nil || !changed || !st.On || !sw.On() {
		t.Fatalf("flip on: got %+v %v %v; want on, changed", st, changed, err)
	}
	if _, changed, _ := reg.FlipSwitch("slow_checkout", true, Flip{}); changed {
		t.Fatalf("flip to the same state: got changed")
	}
	if v := rawValue(t, reg, `telltale_switch_on{switch="slow_checkout"}`); v != 1 {
		t.Fatalf("gauge after flip: got %v; want 1", v)
	}
	if v := rawValue(t, reg, `telltale_switch_flips_total{switch="slow_checkout"}`); v != 1 {
		t.Fatalf("flips: got %v; want 1 (the no-op flip does not count)", v)
	}
	if _, _, err := reg.FlipSwitch("nope", true, Flip{}); err == nil || !strings.Contains(err.Error(), "declared are feature-000, ") || !strings.Contains(err.Error(), "and 132 more") {
		t.Fatalf("unknown switch: got %v", err)
	}
	for _, bad := range []func(){
		func() { reg.Switch(SwitchDef{Name: "a b"}) },
		func() { reg.Switch(SwitchDef{Name: "search", Default: false}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("want a panic")
				}
			}()
			bad()
		}()
	}
}

// collectorFake records what the app sends to the change API.
type collectorFake struct {
	mu        sync.Mutex
	changes   []changes.CreateRequest
	announced []changes.Announcement
	auth      []string
	fail      int // answer 503 to this many change records first
	refuse    bool
}

func (c *collectorFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	switch r.URL.Path {
	case "/api/v1/changes":
		if c.refuse {
			http.Error(w, `{"status":"error","error":"bad"}`, http.StatusForbidden)
			return
		}
		if c.fail > 0 {
			c.fail--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var req changes.CreateRequest
		json.Unmarshal(body, &req)
		c.changes = append(c.changes, req)
		w.WriteHeader(http.StatusCreated)
	case "/api/v1/switches/announce":
		var a changes.Announcement
		json.Unmarshal(body, &a)
		c.announced = append(c.announced, a)
	case ImportPath:
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (c *collectorFake) recorded() []changes.CreateRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]changes.CreateRequest(nil), c.changes...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSwitchRecordsFlips: with a collector, every flip that changes a
// switch is recorded as a switch change (who, why, state; a region while
// away from the default), retried while the collector fails; the
// switches are announced with the relay secret; stop flushes.
func TestSwitchRecordsFlips(t *testing.T) {
	col := &collectorFake{fail: 2}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	reg := NewRegistry(RegistryOptions{})
	reg.Switch(slowCheckout)
	stop, err := reg.Start(t.Context(), Options{Collector: srv.URL, Service: "demo", Env: "dev", Instance: "host1", Token: "push-token",
		Interval: time.Hour, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, SwitchURL: "http://10.0.0.5:8080/switches",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	reg.FlipSwitch("slow_checkout", true, Flip{Who: "alice", Reason: "simulate a bad deploy", Time: at})
	reg.FlipSwitch("slow_checkout", false, Flip{Who: "bob", Reason: "back", Time: at.Add(time.Minute)})
	waitFor(t, "two records", func() bool { return len(col.recorded()) == 2 })
	got := col.recorded()
	on, off := got[0], got[1]
	if on.Kind != "switch" || on.Service != "demo" || on.Env != "dev" || on.Subject != "slow_checkout" || on.Who != "alice" ||
		on.Message != "simulate a bad deploy" || on.Status != changes.StatusRunning || on.Time != "2024-05-01T12:00:00Z" ||
		on.Fields["state"] != "on" || on.Fields["default"] != "off" || on.Fields["owner"] != "shop-team" || on.Fields["instance"] != "host1:8080" || on.ID == "" {
		t.Fatalf("flip on: got %+v", on)
	}
	if off.Status != "" || off.Who != "bob" || off.Fields["state"] != "off" || off.ID == on.ID {
		t.Fatalf("flip back: got %+v; want a point change by bob", off)
	}
	waitFor(t, "announcement", func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		return len(col.announced) > 0
	})
	col.mu.Lock()
	a := col.announced[0]
	auth := col.auth[0]
	col.mu.Unlock()
	if a.Service != "demo" || a.Instance != "host1:8080" || a.URL != "http://10.0.0.5:8080/switches" || len(a.Secret) < 16 ||
		len(a.Switches) != 1 || a.Switches[0].Owner != "shop-team" || auth != "Bearer push-token" {
		t.Fatalf("announcement: got %+v (auth %q)", a, auth)
	}
	// The relay's secret authorizes a flip; who comes from the relay.
	h := reg.SwitchHandler("/switches")
	req := httptest.NewRequest("POST", "/switches/slow_checkout", strings.NewReader(`{"on":true,"reason":"from the console","who":"carol","id":"sw-relay-1","time":"2024-05-01T12:05:00Z"}`))
	req.Header.Set("Authorization", "Bearer "+a.Secret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("relayed flip: got %d %s", rec.Code, rec.Body)
	}
	waitFor(t, "relayed record", func() bool { return len(col.recorded()) == 3 })
	if r := col.recorded()[2]; r.ID != "sw-relay-1" || r.Who != "carol" || r.Time != "2024-05-01T12:05:00Z" || r.Fields["instance"] != "" {
		t.Fatalf("relayed record: got %+v; want the relay's id, time and who, without the instance", r)
	}
	// A refused record is dropped, not retried forever; stop returns.
	col.mu.Lock()
	col.refuse = true
	col.mu.Unlock()
	reg.FlipSwitch("slow_checkout", false, Flip{Who: "dave"})
	stop()
	if n := len(col.recorded()); n != 3 {
		t.Fatalf("records after a refusal: got %d; want 3", n)
	}
}

// TestSwitchHandlerAuth: with SwitchTokens, flips need a token and the
// token's name is who; bad bodies are 400s naming the problem.
func TestSwitchHandlerAuth(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	reg.Switch(slowCheckout)
	stop, err := reg.Start(t.Context(), Options{Service: "demo", Env: "dev", SwitchTokens: map[string]string{"alice": "alice-token-0123456789"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := reg.SwitchHandler("/switches")
	f := func(method, path, token, body string, code int, want string) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != code || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s %s: got %d %s; want %d containing %q", method, path, rec.Code, rec.Body, code, want)
		}
	}
	f("GET", "/switches", "", "", 200, `"name":"slow_checkout"`)
	f("GET", "/switches/slow_checkout", "", "", 200, `"owner":"shop-team"`)
	f("GET", "/switches/nope", "", "", 404, "declared are slow_checkout")
	f("POST", "/switches/slow_checkout", "", `{"on":true}`, 401, "flips need \\\"Authorization: Bearer")
	f("POST", "/switches/slow_checkout", "wrong-token-0123456789", `{"on":true}`, 401, "unknown token")
	f("POST", "/switches/slow_checkout", "alice-token-0123456789", `{"reason":"x"}`, 400, `missing \"on\"`)
	f("POST", "/switches/slow_checkout", "alice-token-0123456789", `{"on":true,"on":false}`, 400, `key \"on\" appears twice`)
	f("POST", "/switches/slow_checkout", "alice-token-0123456789", `{"on":true,"state":1}`, 400, `unknown field \"state\"`)
	f("POST", "/switches/nope", "alice-token-0123456789", `{"on":true}`, 404, "unknown switch")
	f("POST", "/switches/slow_checkout", "alice-token-0123456789", `{"on":true,"reason":"test","who":"mallory"}`, 200, `"changed":true`)
	f("DELETE", "/switches/slow_checkout", "", "", 405, "use GET")
	who, relayed, err := reg.AuthorizeSwitchFlip(withToken("alice-token-0123456789"))
	if who != "alice" || relayed || err != nil {
		t.Fatalf("AuthorizeSwitchFlip: got %q %v %v; want alice", who, relayed, err)
	}
}

func withToken(tok string) *http.Request {
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// BenchmarkSwitchOn measures the hot-path read: one atomic load.
func BenchmarkSwitchOn(b *testing.B) {
	sw := NewRegistry(RegistryOptions{}).Switch(slowCheckout)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if sw.On() {
			n++
		}
	}
	if n != 0 {
		b.Fatal("switch flipped itself")
	}
}

// BenchmarkSwitchOnParallel reads one switch from every core while it
// is flipped now and then.
func BenchmarkSwitchOnParallel(b *testing.B) {
	reg := NewRegistry(RegistryOptions{})
	sw := reg.Switch(slowCheckout)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if i++; i%100000 == 0 {
				reg.FlipSwitch("slow_checkout", !sw.On(), Flip{})
			}
			_ = sw.On()
		}
	})
}
