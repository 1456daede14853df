package chat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/irc"
	"github.com/telltale-dev/telltale/annotator/chat/irc/irctest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// stack is a change log with the chat service delivering to networks,
// both running until the test ends (inside a synctest bubble too).
type stack struct {
	log  *changelog.Service
	chat *chat.Service
	srv  *httptest.Server // the change API, once serve was called
}

func startStack(t *testing.T, cfg *chat.Config, nets []chat.Attached, authorize func(string) bool) *stack {
	t.Helper()
	cs, err := chat.New(chat.Options{Config: cfg, Networks: nets, Authorize: authorize, ChangesURL: "http://console.test/#/d/telltale-deploys", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{log: runStack(t, cs, nil), chat: cs}
}

// runStack opens a change log delivering to cs (with impact analysis
// when impact is set) and runs both until the test ends.
func runStack(t *testing.T, cs *chat.Service, impact *changelog.ImpactOptions) *changelog.Service {
	t.Helper()
	svc, err := changelog.Open(t.Context(), changelog.Options{DBPath: filepath.Join(t.TempDir(), "changes.db"), Targets: cs.Targets(),
		Impact:     impact,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, DeliveryTimeout: 5 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cs.SetLog(svc)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(ctx) })
	wg.Go(func() { cs.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		svc.Close()
	})
	return svc
}

// serve serves the change API over HTTP until the test ends.
func (s *stack) serve(t *testing.T) {
	s.srv = httptest.NewServer(s.log.Handler())
	t.Cleanup(s.srv.Close)
}

func (s *stack) record(t *testing.T, c changes.Change) changes.Change {
	t.Helper()
	out, err := s.log.Record(t.Context(), c)
	if err != nil {
		t.Fatalf("Record %+v: %v", c, err)
	}
	return out
}

// switchApp is an app with a switch, as the instrument library runs it:
// it announces slow_checkout and records each relayed flip as a switch
// change under the relay's id.
type switchApp struct {
	s     *stack
	mu    sync.Mutex
	flips []changes.RelayedFlip
}

func (a *switchApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var f changes.RelayedFlip
	if r.Header.Get("Authorization") != "Bearer app-secret-0123456789" || json.NewDecoder(r.Body).Decode(&f) != nil {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	state := "off"
	if f.On {
		state = "on"
	}
	if _, err := a.s.log.Record(r.Context(), changes.Change{ID: f.ID, Kind: changes.KindSwitch, Service: "web", Env: "prod", Subject: "slow_checkout",
		Who: f.Who, Message: f.Reason, Time: f.Time, Fields: map[string]string{"state": state}}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.flips = append(a.flips, f)
	a.mu.Unlock()
	w.Write([]byte(`{}`))
}

func (a *switchApp) announce(t *testing.T) {
	t.Helper()
	app := httptest.NewServer(a)
	t.Cleanup(app.Close)
	body, _ := json.Marshal(changes.Announcement{Service: "web", Env: "prod", Instance: "web-1", URL: app.URL, Secret: "app-secret-0123456789",
		Switches: []changes.SwitchInfo{{Name: "slow_checkout", On: true}}})
	resp, err := http.Post(a.s.srv.URL+"/api/v1/switches/announce", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("announce: %v %v", err, resp)
	}
	resp.Body.Close()
}

func (a *switchApp) flipCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.flips)
}

func has(sub string, n int) func([]irctest.Said) bool {
	return func(s []irctest.Said) bool { return irctest.Count(s, sub) >= n }
}

// TestIRC is the ops channel on a real IRC server (ngircd): a deploy and
// a firing alert arrive as one line each; !deploys web and !note answer;
// !switch from an unmapped nick is refused and flips nothing, from a
// mapped one it is relayed; the server restarts mid-run while changes keep
// coming, and every change still arrives exactly once.
func TestIRC(t *testing.T) {
	srv := irctest.Start(t)
	gate := make(chan struct{}, 1)
	gate <- struct{}{}
	client, err := irc.New(irc.Options{Name: "irc", Addr: srv.Addr, Nick: "telltale", Channels: []string{"#ops"}, Logger: quiet(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			select { // a reconnect waits until the test lets it
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := chat.ParseConfig([]byte(`
users:
  - token: ops-alice
    irc: ["alice!*@127.0.0.1"]
  - token: read-only
    irc: ["bob!*@*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	nc := chat.NetworkConfig{Name: "irc", IRC: "irc://" + srv.Addr + "/#ops", Every: 50 * time.Millisecond, Linger: 10 * time.Millisecond}
	cfg.Networks = []chat.NetworkConfig{nc}
	alice := irctest.Join(t, srv.Addr, "alice", "#ops")
	mallory := irctest.Join(t, srv.Addr, "mallory", "#ops")
	s := startStack(t, cfg, []chat.Attached{{Config: nc, Network: client, Channels: []string{"#ops"}}},
		func(token string) bool { return token == "ops-alice" })
	s.serve(t)
	app := &switchApp{s: s}
	app.announce(t)

	deploy := s.record(t, changes.Change{ID: "d1", Kind: changes.KindDeploy, Service: "web", Env: "prod", Version: "v1.2.3", Who: "alice",
		Message: "faster checkout", Time: time.Now().Add(-4 * time.Minute)})
	alice.WaitFor("the deploy", has("deployed web v1.2.3 → prod by alice: faster checkout", 1))
	alert := s.record(t, changes.Change{ID: "a1", Kind: changes.KindAlert, Service: "web", Env: "prod", Subject: "HighErrorRate",
		Status: changes.StatusRunning, Message: "error ratio 7% above 5%", Fields: map[string]string{"severity": "critical"}})
	said := alice.WaitFor("the alert", has("FIRING HighErrorRate", 1))
	if got, want := said[len(said)-1].Text, "FIRING HighErrorRate web → prod (critical): error ratio 7% above 5% — 4m after deploy web v1.2.3 by alice"; got != want {
		t.Fatalf("alert line: got %q; want %q", got, want)
	}

	mallory.Say("!deploys web")
	said = mallory.WaitFor("!deploys answer", has("[d1]", 1))
	if irctest.Count(said, "deployed web v1.2.3 → prod by alice") != 2 { // the notification and the answer
		t.Fatalf("!deploys web: heard %q; want the deploy listed", said)
	}
	mallory.Say("!note web: cache flushed by hand")
	mallory.WaitFor("!note answer", has("noted: note web by mallory (irc): cache flushed by hand", 1))
	notes, _ := s.log.List(t.Context(), changes.Filter{Kinds: []string{changes.KindNote}, Text: "flushed"})
	if len(notes) != 1 || notes[0].Who != "mallory (irc)" || notes[0].Service != "web" {
		t.Fatalf("notes in the log: got %+v; want one by mallory (irc) for web", notes)
	}

	mallory.Say("!switch web slow_checkout off payment provider slow")
	said = mallory.WaitFor("!switch refusal", has("mallory: !switch needs a chat user mapped", 1))
	for _, who := range []string{"bob"} {
		o := irctest.Join(t, srv.Addr, who, "#ops")
		o.Say("!switch web slow_checkout off payment provider slow")
		o.WaitFor("refusal of "+who, has(who+": !switch needs", 1))
	}
	if n := app.flipCount(); n != 0 {
		t.Fatalf("after refused !switch the app got %d flips; want 0", n)
	}
	if sw, _ := s.log.List(t.Context(), changes.Filter{Kinds: []string{changes.KindSwitch}}); len(sw) != 0 {
		t.Fatalf("after refused !switch the log has switch changes %+v; want none", sw)
	}
	alice.Say("!switch web slow_checkout off payment provider slow")
	alice.WaitFor("!switch done", has("switch slow_checkout off (web) by alice (irc): 1 of 1 instances took it", 1))
	alice.WaitFor("the switch notification", has("switch slow_checkout off (web → prod) by alice (irc): payment provider slow", 1))
	sw, _ := s.log.List(t.Context(), changes.Filter{Kinds: []string{changes.KindSwitch}})
	if app.flipCount() != 1 || len(sw) != 1 || sw[0].Who != "alice (irc)" {
		t.Fatalf("after alice's !switch: %d flips, switch changes %+v; want 1 by alice (irc)", app.flipCount(), sw)
	}
	mallory.Say("!frobnicate")
	mallory.WaitFor("help", has("unknown command !frobnicate; commands: !deploys", 1))

	// The server restarts while changes keep coming.
	srv.Stop()
	s.record(t, changes.Change{ID: "d2", Kind: changes.KindDeploy, Service: "api", Env: "prod", Version: "v7", Who: "ci"})
	if _, err := s.log.Update(t.Context(), alert.ID, changes.Patch{Status: changes.StatusResolved}); err != nil {
		t.Fatal(err)
	}
	s.record(t, changes.Change{ID: "n1", Kind: changes.KindNote, Service: "api", Who: "carol", Message: "while the server was down"})
	srv.Restart()
	after := irctest.Join(t, srv.Addr, "after", "#ops")
	gate <- struct{}{} // the bot may reconnect now that someone listens
	after.WaitFor("the changes made while down", func(s []irctest.Said) bool {
		return irctest.Count(s, "deployed api v7") >= 1 && irctest.Count(s, "RESOLVED HighErrorRate") >= 1 && irctest.Count(s, "while the server was down") >= 1
	})
	// One more change after the reconnect, then nothing may be doubled.
	s.record(t, changes.Change{ID: "d3", Kind: changes.KindDeploy, Service: "web", Env: "prod", Version: "v1.2.4", Who: "alice"})
	said = after.WaitFor("the last deploy", has("deployed web v1.2.4", 1))
	for _, sub := range []string{"deployed api v7", "RESOLVED HighErrorRate", "while the server was down", "deployed web v1.2.4"} {
		if n := irctest.Count(said, sub); n != 1 {
			t.Fatalf("after the restart %q was said %d times; want once: %q", sub, n, said)
		}
	}
	if n := irctest.Count(alice.Said(), "deployed web v1.2.3 → prod by alice: faster checkout") - irctest.Count(alice.Said(), "ago: deployed web v1.2.3"); n != 1 {
		t.Fatalf("the first deploy's notification was said %d times; want once", n)
	}
	for _, id := range []string{deploy.ID, alert.ID, "d2", "n1", "d3"} {
		c, err := s.log.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		waitDelivered(t, s, c.ID)
	}
}

// waitDelivered waits until the outbox marked change id delivered to
// every chat target.
func waitDelivered(t *testing.T, s *stack, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.srv.URL + "/api/v1/changes/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var r changes.Response[changes.Change]
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		ok := r.Data.Delivery != nil && len(r.Data.Delivery.Others) > 0
		for _, d := range r.Data.Delivery.Others {
			ok = ok && d.Status == changes.DeliveryDelivered
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("change %s not delivered: %+v", id, r.Data.Delivery)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
