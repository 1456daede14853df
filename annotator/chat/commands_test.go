package chat_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/chat"
)

// fakeNet is a chat network in the test's process: said() hands a message
// to the bot as if someone said it in a channel, and every Send is kept
// per channel. It holds several lines per message (as Slack and Matrix
// do), so one command is answered by exactly one Send.
type fakeNet struct {
	in   chan chat.Message
	mu   sync.Mutex
	sent map[string]chan string
}

func newFakeNet() *fakeNet {
	return &fakeNet{in: make(chan chat.Message), sent: map[string]chan string{}}
}

func (n *fakeNet) box(channel string) chan string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sent[channel] == nil {
		n.sent[channel] = make(chan string, 64)
	}
	return n.sent[channel]
}

func (n *fakeNet) Send(ctx context.Context, channel, text string) error {
	select {
	case n.box(channel) <- text:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *fakeNet) Run(ctx context.Context, hear func(chat.Message)) error {
	for {
		select {
		case m := <-n.in:
			hear(m)
		case <-ctx.Done():
			return nil
		}
	}
}

func (n *fakeNet) Limits() chat.Limits {
	return chat.Limits{MaxBytes: 4000, MultiLine: true, Every: 10 * time.Millisecond, Linger: time.Millisecond}
}

// botChannel is where the tests ask: changes go to #ops (the network's
// first channel), so what arrives in #bot is only the bot's answers.
const botChannel = "#bot"

// ask says text in #bot as alice and returns the bot's answer.
func (n *fakeNet) ask(t *testing.T, text string) string {
	t.Helper()
	n.in <- chat.Message{Channel: botChannel, User: "alice", Name: "alice", Text: text}
	select {
	case got := <-n.box(botChannel):
		return got
	case <-time.After(30 * time.Second): // a failsafe for a bot that never answers, not a timing assertion
		t.Fatalf("%s: no answer", text)
		return ""
	}
}

// noDataQuerier answers every impact query with no data, so an analysis
// runs for real and ends "not enough data".
type noDataQuerier struct{}

func (noDataQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	out := make([]float64, 0, 8)
	for t := start; !t.After(end); t = t.Add(step) {
		out = append(out, math.NaN())
	}
	return out, nil
}

// botStack is a change log (with impact analysis) and a chat service on
// a fakeNet, running until the test ends.
func botStack(t *testing.T, graph func(context.Context, string) (chat.Answer, error)) (*changelog.Service, *fakeNet) {
	t.Helper()
	net := newFakeNet()
	return botStackOn(t, net, net, graph), net
}

// botStackOn is botStack on network n whose text messages net keeps.
func botStackOn(t *testing.T, n chat.Network, net *fakeNet, graph func(context.Context, string) (chat.Answer, error)) *changelog.Service {
	t.Helper()
	nc := chat.NetworkConfig{Name: "fake", Slack: "https://hooks.slack.test/x"}
	cfg := &chat.Config{Networks: []chat.NetworkConfig{nc}}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	cs, err := chat.New(chat.Options{Config: cfg, Networks: []chat.Attached{{Config: nc, Network: n, Channels: []string{"#ops"}}},
		Graph: graph, ChangesURL: "http://console.test/#/d/telltale-deploys", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return runStack(t, cs, &changelog.ImpactOptions{Querier: noDataQuerier{}})
}

// waitImpact waits until the impact analysis of change id is done.
func waitImpact(t *testing.T, svc *changelog.Service, id string) changes.Change {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := svc.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Impact != nil && c.Impact.Status == changes.ImpactDone {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the impact analysis of %s did not finish: %+v", id, c.Impact)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBotQueries: !changes finds changes by the words of their message
// through the change log's search (every word must match, a word matches
// as a prefix), !impact answers a change's verdict (analysed, not yet
// analysed, unknown id), and !alerts lists the alerts firing now and
// nothing else. Each answer is compared in full.
func TestBotQueries(t *testing.T) {
	svc, net := botStack(t, nil)
	rec := func(c changes.Change) changes.Change {
		t.Helper()
		out, err := svc.Record(t.Context(), c)
		if err != nil {
			t.Fatalf("Record %+v: %v", c, err)
		}
		return out
	}
	now := time.Now()

	// Before any alert: !alerts says none is firing.
	if got, want := net.ask(t, "!alerts"), "no alert is firing"; got != want {
		t.Fatalf("!alerts with none: got %q; want %q", got, want)
	}

	// An hour ago, so its impact analysis (15m window) is due at once.
	rec(changes.Change{ID: "d1", Kind: changes.KindDeploy, Service: "web", Env: "prod", Version: "v1.2.3", Who: "alice",
		Message: "faster checkout", Time: now.Add(-time.Hour)})
	rec(changes.Change{ID: "d2", Kind: changes.KindDeploy, Service: "api", Env: "prod", Version: "v7", Who: "ci",
		Message: "payment provider timeout raised", Time: now.Add(-3 * time.Minute)})
	rec(changes.Change{ID: "n1", Kind: changes.KindNote, Service: "db", Who: "carol", Message: "checkout table vacuumed", Time: now.Add(-2 * time.Minute)})
	rec(changes.Change{ID: "a1", Kind: changes.KindAlert, Service: "web", Env: "prod", Subject: "HighErrorRate", Status: changes.StatusRunning,
		Message: "error ratio 7% above 5%", Fields: map[string]string{"severity": "critical"}, Time: now.Add(-time.Minute)})
	rec(changes.Change{ID: "a2", Kind: changes.KindAlert, Service: "api", Env: "prod", Subject: "SlowRequests", Status: changes.StatusRunning,
		Message: "p99 above 2s", Time: now.Add(-30 * time.Minute)})
	end := now.Add(-20 * time.Minute)
	rec(changes.Change{ID: "a2", Kind: changes.KindAlert, Service: "api", Env: "prod", Subject: "SlowRequests", Status: changes.StatusResolved,
		Message: "p99 above 2s", Time: now.Add(-30 * time.Minute), EndTime: &end})
	analysed := waitImpact(t, svc, "d1")

	// strip drops the "4m ago: " heads, which depend on the clock.
	strip := func(answer string) []string {
		var out []string
		for _, l := range strings.Split(answer, "\n") {
			_, rest, ok := strings.Cut(l, " ago: ")
			if !ok {
				t.Fatalf("listed line %q lacks its age", l)
			}
			out = append(out, rest)
		}
		return out
	}
	list := func(cmd string, want ...string) {
		t.Helper()
		got := net.ask(t, cmd)
		if g := strings.Join(strip(got), "\n"); g != strings.Join(want, "\n") {
			t.Fatalf("%s: got\n%s\nwant\n%s", cmd, g, strings.Join(want, "\n"))
		}
	}
	list("!changes checkout", "note db by carol: checkout table vacuumed [n1]", "deployed web v1.2.3 → prod by alice: faster checkout [d1]")
	list("!changes payment timeout", "deployed api v7 → prod by ci: payment provider timeout raised [d2]")
	list("!changes CHECK vacuum", "note db by carol: checkout table vacuumed [n1]") // case-blind, words as prefixes
	list("!alerts", "FIRING HighErrorRate web → prod (critical): error ratio 7% above 5% [a1]")

	for _, tc := range []struct{ cmd, want string }{
		{"!changes flamingo", "no change matches flamingo"},
		{"!changes", "usage: !changes <words>, e.g. !changes checkout timeout"},
		{"!changes ?? !!", `!changes: search text "?? !!" has no words`},
		{"!impact d1", "impact of deploy web v1.2.3 → prod: " + strings.ReplaceAll(analysed.Impact.Verdict, "_", " ") + ": " + analysed.Impact.Summary},
		{"!impact d2", "impact of deploy api v7 → prod: not analysed yet (analysis runs once the after window has passed, for deploys, switches and config changes)"},
		{"!impact nope-42", `no change "nope-42"; ids are in !deploys and !changes`},
		{"!impact", "usage: !impact <change id> (ids are in !deploys and !changes)"},
		{"!impact d1 d2", "usage: !impact <change id> (ids are in !deploys and !changes)"},
	} {
		if got := net.ask(t, tc.cmd); got != tc.want && !(strings.HasSuffix(tc.want, "has no words") && strings.HasPrefix(got, tc.want)) {
			t.Errorf("%s: got %q; want %q", tc.cmd, got, tc.want)
		}
	}
	if analysed.Impact.Verdict != "not_enough_data" || analysed.Impact.Summary == "" {
		t.Errorf("impact of d1 with no data: got %+v; want not_enough_data with a summary", analysed.Impact)
	}

	// Resolving the last firing alert empties !alerts again.
	if _, err := svc.Update(t.Context(), "a1", changes.Patch{Status: changes.StatusResolved}); err != nil {
		t.Fatal(err)
	}
	if got, want := net.ask(t, "!alerts"), "no alert is firing"; got != want {
		t.Fatalf("!alerts after the alert resolved: got %q; want %q", got, want)
	}
}

// TestBotGraph: !graph hands the words after it, as said, to
// Options.Graph and answers its lines; its error becomes one "!graph: "
// line; no words get the usage; a collector without Graph says so. (What
// Graph answers for a panel or PromQL is the collector's: see
// TestChatIRCE2E.)
func TestBotGraph(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	graph := func(ctx context.Context, arg string) (chat.Answer, error) {
		mu.Lock()
		asked = append(asked, arg)
		mu.Unlock()
		if strings.HasPrefix(arg, "rate(") && !strings.HasSuffix(arg, ")") {
			return chat.Answer{}, errors.New(`"rate(" is neither a panel title nor PromQL: unclosed left parenthesis`)
		}
		// The image is left out where the network posts none (fakeNet).
		return chat.Answer{Lines: []string{"value of " + arg, "http://console.test/#/d/x"}, Image: func(context.Context) (chat.Image, error) {
			t.Error("an image was drawn for a network that posts none")
			return chat.Image{}, nil
		}}, nil
	}
	_, net := botStack(t, graph)
	for _, tc := range []struct{ cmd, want string }{
		{"!graph Request rate", "value of Request rate\nhttp://console.test/#/d/x"},
		{"!graph sum by (service) (rate(http_requests_total[5m]))", "value of sum by (service) (rate(http_requests_total[5m]))\nhttp://console.test/#/d/x"},
		{"!graph rate(", `!graph: "rate(" is neither a panel title nor PromQL: unclosed left parenthesis`},
		{"!graph", "usage: !graph <panel title or PromQL>"},
	} {
		if got := net.ask(t, tc.cmd); got != tc.want {
			t.Errorf("%s: got %q; want %q", tc.cmd, got, tc.want)
		}
	}
	mu.Lock()
	if got, want := strings.Join(asked, "|"), "Request rate|sum by (service) (rate(http_requests_total[5m]))|rate("; got != want {
		t.Errorf("Graph was asked %q; want %q", got, want)
	}
	mu.Unlock()

	_, off := botStack(t, nil)
	if got, want := off.ask(t, "!graph up"), "!graph is off on this collector"; got != want {
		t.Errorf("!graph without Graph: got %q; want %q", got, want)
	}
}

// imageNet is a fakeNet that posts images, answering the first
// limitFirst posts with a rate limit of 10ms.
type imageNet struct {
	*fakeNet
	limitFirst int
	mu         sync.Mutex
	tries      int
	images     chan chat.Image
}

func (n *imageNet) SendImage(ctx context.Context, channel string, img chat.Image) error {
	n.mu.Lock()
	n.tries++
	limited := n.tries <= n.limitFirst
	n.mu.Unlock()
	if limited {
		return &chat.RateLimitError{After: 10 * time.Millisecond, Err: errors.New("M_LIMIT_EXCEEDED")}
	}
	n.images <- img
	return nil
}

// TestBotGraphImage: on a network that posts images, !graph's image
// follows its text; a rate-limit answer on the image is waited out as the
// network asks (twice here), and the image still arrives once.
func TestBotGraphImage(t *testing.T) {
	png := []byte("\x89PNG fake")
	graph := func(ctx context.Context, arg string) (chat.Answer, error) {
		return chat.Answer{Lines: []string{"graph of " + arg}, Image: func(context.Context) (chat.Image, error) {
			return chat.Image{PNG: png, Name: "graph.png", Title: arg, Width: 800, Height: 400}, nil
		}}, nil
	}
	net := &imageNet{fakeNet: newFakeNet(), limitFirst: 2, images: make(chan chat.Image, 4)}
	botStackOn(t, net, net.fakeNet, graph)
	if got, want := net.ask(t, "!graph up"), "graph of up"; got != want {
		t.Fatalf("!graph text: got %q; want %q", got, want)
	}
	select {
	case img := <-net.images:
		if string(img.PNG) != string(png) || img.Title != "up" || img.Width != 800 || img.Height != 400 {
			t.Fatalf("image: got %+v; want Graph's", img)
		}
	case <-time.After(30 * time.Second): // a failsafe, not a timing assertion
		t.Fatal("no image after two rate-limit answers")
	}
	net.mu.Lock()
	defer net.mu.Unlock()
	if net.tries != 3 || len(net.images) != 0 {
		t.Fatalf("image posts: %d tries, %d more images; want 3 tries (2 limited) and one image", net.tries, len(net.images))
	}
}

// TestBotAlertsMore: with more alerts firing than a listing shows, !alerts
// lists the newest five and says there are more, with the link to the
// change log, rather than reading as if five were all.
func TestBotAlertsMore(t *testing.T) {
	svc, net := botStack(t, nil)
	now := time.Now()
	for i := range 7 {
		if _, err := svc.Record(t.Context(), changes.Change{ID: fmt.Sprintf("a%d", i), Kind: changes.KindAlert, Service: fmt.Sprintf("svc%d", i),
			Subject: "Down", Status: changes.StatusRunning, Time: now.Add(time.Duration(i-10) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Split(net.ask(t, "!alerts"), "\n")
	var ids []string
	for _, l := range got[:len(got)-1] {
		ids = append(ids, l[strings.LastIndex(l, "[")+1:len(l)-1])
	}
	if strings.Join(ids, ",") != "a6,a5,a4,a3,a2" || got[len(got)-1] != "… and more, older than these 5: http://console.test/#/d/telltale-deploys" {
		t.Fatalf("!alerts with 7 firing: got %q; want a6..a2 and a line saying there are more", got)
	}
}
