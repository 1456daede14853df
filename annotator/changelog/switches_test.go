package changelog

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// fakeApp is an app's switch endpoint: it records the relayed flips it
// accepts with its secret.
type fakeApp struct {
	secret string
	fail   bool
	mu     sync.Mutex
	flips  []changes.RelayedFlip
	paths  []string
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.secret {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if a.fail {
		http.Error(w, "switch store broken", http.StatusInternalServerError)
		return
	}
	var f changes.RelayedFlip
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &f); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.flips = append(a.flips, f)
	a.paths = append(a.paths, r.URL.Path)
	a.mu.Unlock()
	w.Write([]byte(`{"ok":true}`))
}

func announceBody(service, env, instance, url, secret string, on bool) string {
	b, _ := json.Marshal(changes.Announcement{Service: service, Env: env, Instance: instance, URL: url, Secret: secret, IntervalSeconds: 10,
		Switches: []changes.SwitchInfo{{Name: "slow_checkout", Description: "bad-deploy simulation", Owner: "shop-team", Protects: "nothing: it breaks checkout", On: on},
			{Name: "search", Default: true, On: true}}})
	return string(b)
}

// TestSwitchRelay: apps announce their switches; GET lists them merged
// over instances; a flip is relayed to every live instance with its secret
// and one change id and time; instances that stop announcing expire.
func TestSwitchRelay(t *testing.T) {
	clk := newClock(t0)
	e := newEnv(t, Options{Now: clk.now}, false)
	a1 := &fakeApp{secret: "secret-one-0123456789"}
	a2 := &fakeApp{secret: "secret-two-0123456789"}
	s1, s2 := httptest.NewServer(a1), httptest.NewServer(a2)
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	for _, b := range []string{
		announceBody("demo", "dev", "i1", s1.URL+"/switches", a1.secret, false),
		announceBody("demo", "dev", "i2", s2.URL+"/switches/", a2.secret, true),
	} {
		if r := e.do("POST", "/api/v1/switches/announce", b); r.Code != 200 {
			t.Fatalf("announce: got %d %s", r.Code, r.Error)
		}
	}
	r := e.do("GET", "/api/v1/switches?service=demo", "")
	var views []changes.SwitchView
	if err := json.Unmarshal(r.Data, &views); err != nil || len(views) != 2 {
		t.Fatalf("GET /api/v1/switches: got %s, %v; want 2 switches", r.Data, err)
	}
	sc := views[1]
	if sc.Name != "slow_checkout" || !sc.Mixed || sc.On || len(sc.Instances) != 2 || sc.Owner != "shop-team" || sc.Protects == "" {
		t.Fatalf("slow_checkout: got %+v; want mixed over 2 instances with its owner", sc)
	}

	r = e.do("POST", "/api/v1/switches/demo/slow_checkout", `{"on":false,"reason":"checkout p99 over 2s","who":"alice"}`)
	if r.Code != 200 {
		t.Fatalf("flip: got %d %s", r.Code, r.Error)
	}
	var res changes.FlipResult
	json.Unmarshal(r.Data, &res)
	if res.ChangeID == "" || res.Env != "dev" || len(res.Results) != 2 || !res.Results[0].OK || !res.Results[1].OK {
		t.Fatalf("flip result: got %+v; want both instances ok", res)
	}
	for i, a := range []*fakeApp{a1, a2} {
		a.mu.Lock()
		if len(a.flips) != 1 || a.paths[0] != "/switches/slow_checkout" {
			t.Fatalf("app %d: got %v at %v; want one flip at /switches/slow_checkout", i+1, a.flips, a.paths)
		}
		f := a.flips[0]
		if f.On || f.Reason != "checkout p99 over 2s" || f.Who != "alice" || f.ID != res.ChangeID || !f.Time.Equal(t0) {
			t.Fatalf("app %d flip: got %+v; want off by alice with the relay's id and time", i+1, f)
		}
		a.mu.Unlock()
	}

	// The relay knows the new state before the apps announce it again.
	if v := e.s.Switches("demo", "dev"); v[1].Name != "slow_checkout" || v[1].On || v[1].Mixed {
		t.Fatalf("after the flip: got %+v; want slow_checkout off on every instance", v[1])
	}

	// An instance that refuses: its error is named; all refusing is 502.
	a1.fail, a2.fail = true, true
	r = e.do("POST", "/api/v1/switches/demo/slow_checkout", `{"on":true,"reason":"test","who":"bob"}`)
	if r.Code != 502 || !strings.Contains(r.Error, "answered HTTP 500: switch store broken") {
		t.Fatalf("flip refused everywhere: got %d %q; want 502 naming the instance's answer", r.Code, r.Error)
	}

	// Another env of the same service makes the env necessary.
	a3 := &fakeApp{secret: "secret-three-0123456"}
	s3 := httptest.NewServer(a3)
	t.Cleanup(s3.Close)
	e.do("POST", "/api/v1/switches/announce", announceBody("demo", "prod", "p1", s3.URL+"/switches", a3.secret, false))
	r = e.do("POST", "/api/v1/switches/demo/slow_checkout", `{"on":true,"reason":"test","who":"bob"}`)
	if r.Code != 400 || !strings.Contains(r.Error, `has switch "slow_checkout" in several envs (dev, prod): send "env"`) {
		t.Fatalf("flip without env: got %d %q; want 400 asking for env", r.Code, r.Error)
	}
	if r = e.do("POST", "/api/v1/switches/demo/slow_checkout", `{"on":true,"reason":"test","who":"bob","env":"prod"}`); r.Code != 200 {
		t.Fatalf("flip with env: got %d %s", r.Code, r.Error)
	}
	if len(a3.flips) != 1 {
		t.Fatalf("prod instance: got %d flips; want 1", len(a3.flips))
	}

	// Three intervals without an announcement: gone.
	clk.add(31 * time.Second)
	if got := e.s.Switches("demo", ""); len(got) != 0 {
		t.Fatalf("after expiry: got %+v; want none", got)
	}
}
