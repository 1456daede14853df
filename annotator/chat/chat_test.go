package chat

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

func TestParseCommand(t *testing.T) {
	f := func(in string, want Command, wantOK bool) {
		t.Helper()
		got, ok := ParseCommand(in)
		if ok != wantOK || ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseCommand(%q): got %#v %v; want %#v %v", in, got, ok, want, wantOK)
		}
	}
	f("!deploys web", Command{Name: "deploys", Args: []string{"web"}, Rest: "web"}, true)
	f("  !DEPLOYS  ", Command{Name: "deploys", Args: []string{}, Rest: ""}, true)
	f("!switch web x off slow  provider", Command{Name: "switch", Args: []string{"web", "x", "off", "slow", "provider"}, Rest: "web x off slow  provider"}, true)
	for _, no := range []string{"", "!", "!!", "hello !deploys", "!1abc", "!dep-loys", "!" + strings.Repeat("a", 3000), "!note \xff"} {
		f(no, Command{}, false)
	}
}

func commandSeeds(t testing.TB) []string {
	fh, err := os.Open("testdata/commands.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// FuzzParseCommand: no panic; a command's name is lower-case letters, its
// args are the words of Rest, and only valid UTF-8 is a command.
func FuzzParseCommand(f *testing.F) {
	for _, s := range commandSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseCommand(s)
		if !ok {
			return
		}
		if !utf8.ValidString(s) || c.Name == "" || c.Name != strings.ToLower(c.Name) || len(s) > maxCommandBytes {
			t.Fatalf("ParseCommand(%q) = %#v: bad name or input", s, c)
		}
		if !reflect.DeepEqual(c.Args, strings.Fields(c.Rest)) {
			t.Fatalf("ParseCommand(%q): args %q are not the words of %q", s, c.Args, c.Rest)
		}
	})
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestLine(t *testing.T) {
	end := t0.Add(3*time.Minute + 12*time.Second)
	dep := changes.Change{ID: "d", Kind: "deploy", Service: "web", Env: "prod", Version: "v1.2.3", Who: "alice", Time: t0.Add(-4 * time.Minute), Status: "success"}
	f := func(c changes.Change, ev string, follows *changes.Change, want string) {
		t.Helper()
		if got := Line(c, ev, follows); got != want {
			t.Fatalf("Line(%s %s): got %q; want %q", c.Kind, ev, got, want)
		}
	}
	f(changes.Change{Kind: "deploy", Service: "web", Env: "prod", Version: "v1.2.3", Who: "alice", Message: "faster checkout\nmore", Link: "https://ci/1", Status: "success"},
		changelog.EventRecorded, nil, "deployed web v1.2.3 → prod by alice: faster checkout https://ci/1")
	f(changes.Change{Kind: "deploy", Service: "web", Version: "v2", Status: "running"}, changelog.EventRecorded, nil, "deploy web v2 started")
	f(changes.Change{Kind: "deploy", Service: "web", Version: "v2", Status: "failed", Time: t0, EndTime: &end}, changelog.EventFinished, nil, "deploy web v2 failed after 3m")
	f(changes.Change{Kind: "deploy", Service: "web", Env: "prod", Version: "v2", Impact: &changes.Impact{Verdict: "regressed", Summary: "error ratio 0.4% → 2.1% ▲ regressed"}},
		changelog.EventImpact, nil, "impact of deploy web v2 → prod: regressed: error ratio 0.4% → 2.1% ▲ regressed")
	f(changes.Change{Kind: "alert", Service: "web", Env: "prod", Subject: "HighErrorRate", Status: "running", Time: t0, Message: "error ratio 7%", Fields: map[string]string{"severity": "critical"}},
		changelog.EventRecorded, &dep, "FIRING HighErrorRate web → prod (critical): error ratio 7% — 4m after deploy web v1.2.3 by alice")
	// As the rules engine records them: the name in fields, its words in the message.
	f(changes.Change{Kind: "alert", Service: "web", Env: "prod", Status: "running", Time: t0, Who: "telltale-rules",
		Message: "HighErrorRate firing: error ratio above 5%: check the payment provider: firing since 2024-05-01 12:00 UTC, 4 min after deploy web v1.2.3 by alice",
		Fields:  map[string]string{"alertname": "HighErrorRate", "severity": "page", "fingerprint": "abc"}}, changelog.EventRecorded, &dep,
		"FIRING HighErrorRate web → prod (page): error ratio above 5%: check the payment provider — 4m after deploy web v1.2.3 by alice")
	f(changes.Change{Kind: "alert", Service: "web", Status: "running", Time: t0, Message: "Down firing: firing since 2024-05-01 12:00 UTC; no change of web in the 1 h before it",
		Fields: map[string]string{"alertname": "Down"}}, changelog.EventRecorded, nil, "FIRING Down web")
	f(changes.Change{Kind: "alert", Service: "web", Subject: "HighErrorRate", Status: "resolved", Time: t0, EndTime: &end}, changelog.EventFinished, &dep,
		"RESOLVED HighErrorRate web after 3m")
	f(changes.Change{Kind: "switch", Service: "web", Env: "prod", Subject: "slow_checkout", Who: "bob", Message: "provider slow", Fields: map[string]string{"state": "off"}, Status: "success"},
		changelog.EventRecorded, nil, "switch slow_checkout off (web → prod) by bob: provider slow")
	f(changes.Change{Kind: "incident", Service: "shop", Subject: "checkout-down", Who: "carol", Status: "running", Time: t0}, changelog.EventRecorded, &dep,
		"incident checkout-down (shop) opened by carol — 4m after deploy web v1.2.3 by alice")
	f(changes.Change{Kind: "note", Service: "ops", Who: "dave\x0304red", Message: "x", Status: "success"}, changelog.EventRecorded, nil, "note ops by dave 04red: x")
}

func TestCompose(t *testing.T) {
	ev := func(v, who string) event {
		return event{change: changes.Change{Kind: "deploy", Service: "web", Env: "prod", Version: v, Who: who, Status: "success"}, event: changelog.EventRecorded}
	}
	var evs []event
	for range 50 {
		evs = append(evs, ev("v1", "ci"))
	}
	evs = append(evs, ev("v2", "alice"))
	irc := Limits{MaxBytes: 400}
	if got, want := compose(evs, irc, "http://c/#/d/x"), "51 changes: deployed web v1 → prod by ci (×50); deployed web v2 → prod by alice; http://c/#/d/x"; got != want {
		t.Fatalf("compose irc: got %q; want %q", got, want)
	}
	var many []event
	for i := range 40 {
		many = append(many, ev(strings.Repeat("v", 20)+string(rune('a'+i%26))+string(rune('a'+i/26)), "ci"))
	}
	got := compose(many, irc, "http://c")
	if len(got) > 400 || !strings.Contains(got, "more http://c") || strings.Contains(got, "\n") {
		t.Fatalf("compose irc of 40 groups: got %d bytes %q; want ≤ 400 on one line ending with the rest counted and the link", len(got), got)
	}
	ml := compose(many, Limits{MaxBytes: 1900, MultiLine: true}, "http://c")
	if lines := strings.Split(ml, "\n"); len(lines) != 12 || !strings.HasPrefix(lines[11], "… and 30 more") {
		t.Fatalf("compose multi-line of 40 groups: got %d lines %q; want a head, 10 lines and the rest counted", len(lines), ml)
	}
}

func TestParseConfig(t *testing.T) {
	good := `
networks:
  - irc: ircs://irc.example.org/#ops
  - name: team
    matrix: https://m.example.org/#ops:example.org
routes:
  - network: irc
    channel: "#deploys"
    kinds: [deploy]
    services: ["web*"]
    envs: [prod]
users:
  - token: alice
    irc: ["alice!*@10.0.0.*"]
`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Networks[0].Name != "irc" || c.Networks[1].Name != "team" || c.DefaultService != "ops" {
		t.Fatalf("defaults: got %+v", c)
	}
	ch := func(kind, service, env string) string {
		return strings.Join(c.channels("irc", []string{"#ops"}, changes.Change{Kind: kind, Service: service, Env: env}, changelog.EventRecorded), ",")
	}
	if got := ch("deploy", "web-api", "prod"); got != "#deploys" {
		t.Fatalf("route of a web-api prod deploy: got %q; want #deploys", got)
	}
	if got := ch("deploy", "db", "prod") + "|" + ch("note", "web", "prod"); got != "|" {
		t.Fatalf("unrouted changes on a routed network: got %q; want none", got)
	}
	if got := strings.Join(c.channels("team", []string{"!r:x"}, changes.Change{Kind: "note", Service: "db"}, changelog.EventRecorded), ","); got != "!r:x" {
		t.Fatalf("a network without routes: got %q; want its first channel", got)
	}
	if u, ok := c.user(KindIRC, "Alice!~alice@10.0.0.7"); !ok || u.Token != "alice" {
		t.Fatalf("user alice from 10.0.0.7: got %+v %v", u, ok)
	}
	if _, ok := c.user(KindIRC, "alice!~alice@192.168.1.1"); ok {
		t.Fatal("user alice from another host: mapped; want not")
	}
	for _, bad := range []string{
		"networks: [{irc: x, slack: y}]",
		"networks: [{irc: x}, {irc: y}]",
		"networks: [{name: Bad Name, irc: x}]",
		"routes: [{events: [deleted]}]",
		"users: [{irc: [\"alice\"], token: a}]",
		"users: [{irc: [\"a!b@c\"]}]",
		"unknown_key: 1",
		"networks: [{irc: x, colour: red}]",
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Fatalf("ParseConfig(%q): got no error", bad)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a?c", "abc", true}, {"a*b*c", "axxbyyc", true},
		{"alice!*@*", "alice!~a@user/alice", true}, {"a*", "ba", false}, {"abc", "ab", false}, {"*a", "bbb", false}} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q): got %v; want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

// FuzzParseConfig: no panic; an accepted config checks again unchanged
// (Check is idempotent) and has unique network names.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"testdata/config/full.yml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("networks: [{irc: x}, {slack: y}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		before := *c
		if err := c.Check(); err != nil {
			t.Fatalf("a parsed config fails Check again: %v", err)
		}
		if !reflect.DeepEqual(before, *c) {
			t.Fatalf("Check changed an accepted config: %+v → %+v", before, *c)
		}
		seen := map[string]bool{}
		for _, n := range c.Networks {
			if seen[n.Name] || !validName(n.Name) {
				t.Fatalf("network name %q: duplicate or invalid", n.Name)
			}
			seen[n.Name] = true
		}
	})
}

func TestConfigFile(t *testing.T) {
	b, err := os.ReadFile("testdata/config/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("the README's example config: %v", err)
	}
	if len(c.Networks) != 2 || c.Networks[1].Name != "matrix" || c.Networks[1].Every != 3*time.Second || len(c.Routes) != 2 || len(c.Users) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	if err := c.CheckRoutes(); err != nil {
		t.Fatal(err)
	}
	c.Routes = append(c.Routes, Route{Network: "nope"})
	if err := c.CheckRoutes(); err == nil || !strings.Contains(err.Error(), `network "nope" is not configured`) {
		t.Fatalf("route to an unknown network: got %v", err)
	}
}
