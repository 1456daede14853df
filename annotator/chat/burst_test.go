package chat_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/matrix"
	"github.com/telltale-dev/telltale/annotator/chat/matrix/matrixtest"
	"github.com/telltale-dev/telltale/annotator/chat/slack"
	"github.com/telltale-dev/telltale/annotator/chat/slack/slacktest"
)

// bubbleStack is startStack with a config of nets, for tests in a
// synctest bubble.
func bubbleStack(t *testing.T, nets []chat.Attached) *changelog.Service {
	cfg := &chat.Config{}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		cfg.Networks = append(cfg.Networks, n.Config)
	}
	return startStack(t, cfg, nets, nil).log
}

var timesRE = regexp.MustCompile(`deployed web (v\d) → prod by ci(?: \(×(\d+)\))?`)

// TestBurst: 200 changes in 10 s (four 50-host deploys) reach a Slack
// channel as a few batched messages, at most one per second as Slack
// allows (none refused with 429), every change counted once. The clock is
// synctest's, so nothing here depends on how busy the machine is.
func TestBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &slacktest.Server{Every: time.Second}
		hook, err := slack.NewWebhook("https://hooks.slack.test/services/T0/B0/secret", &http.Client{Transport: slacktest.Transport{Handler: fake}})
		if err != nil {
			t.Fatal(err)
		}
		svc := bubbleStack(t, []chat.Attached{{Config: chat.NetworkConfig{Name: "slack", Slack: "https://hooks.slack.test/services/T0/B0/secret"},
			Network: hook, Channels: []string{"webhook"}}})
		start := time.Now()
		for i := range 200 {
			if _, err := svc.Record(context.Background(), changes.Change{Kind: changes.KindDeploy, Service: "web", Env: "prod",
				Version: fmt.Sprintf("v%d", i/50+1), Who: "ci", Fields: map[string]string{"host": fmt.Sprintf("web-%d", i%50)}}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // 20 changes a second for 10 s
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()

		posted := fake.Posted()
		got := map[string]int{}
		for _, p := range posted {
			for _, m := range timesRE.FindAllStringSubmatch(p.Text, -1) {
				n := 1
				if m[2] != "" {
					n, _ = strconv.Atoi(m[2])
				}
				got[m[1]] += n
			}
		}
		for _, v := range []string{"v1", "v2", "v3", "v4"} {
			if got[v] != 50 {
				t.Errorf("deploys of %s in the messages: got %d; want 50 (messages: %q)", v, got[v], texts(posted))
			}
		}
		if len(posted) > 8 {
			t.Errorf("200 changes in 10 s became %d messages; want a few (≤ 8): %q", len(posted), texts(posted))
		}
		if n := fake.RateLimited(); n != 0 {
			t.Errorf("Slack answered 429 %d times; want 0: the pacing should keep within one message a second", n)
		}
		for i := 1; i < len(posted); i++ {
			if gap := posted[i].At.Sub(posted[i-1].At); gap < time.Second {
				t.Errorf("messages %d and %d %s apart; want ≥ 1s", i-1, i, gap)
			}
		}
		t.Logf("200 changes over %s → %d messages: %q", posted[len(posted)-1].At.Sub(start), len(posted), texts(posted))
	})
}

func texts(ps []slacktest.Posted) []string {
	var out []string
	for _, p := range ps {
		out = append(out, strings.ReplaceAll(p.Text, "\n", " | "))
	}
	return out
}

// TestRateLimitAnswer: Slack (Retry-After) and Discord (JSON retry_after)
// refuse a message with 429; the target waits as long as told, then
// delivers it, with nothing lost or doubled.
func TestRateLimitAnswer(t *testing.T) {
	for _, discord := range []bool{false, true} {
		t.Run(fmt.Sprint("discord=", discord), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := &slacktest.Server{Discord: discord}
				hook, _ := slack.NewWebhook("https://hooks.slack.test/services/T0/B0/secret", &http.Client{Transport: slacktest.Transport{Handler: fake}})
				svc := bubbleStack(t, []chat.Attached{{Config: chat.NetworkConfig{Name: "slack", Slack: "x"}, Network: hook, Channels: []string{"webhook"}}})
				fake.SetThrottle(7 * time.Second)
				start := time.Now()
				svc.Record(context.Background(), changes.Change{Kind: changes.KindNote, Service: "web", Who: "alice", Message: "first"})
				time.Sleep(time.Minute)
				synctest.Wait()
				posted := fake.Posted()
				if len(posted) != 1 || !strings.Contains(posted[0].Text, "first") {
					t.Fatalf("posted %q; want the note once", texts(posted))
				}
				if wait := posted[0].At.Sub(start); wait < 7*time.Second {
					t.Fatalf("delivered %s after the 429 asked for 7s; want ≥ 7s", wait)
				}
				if fake.RateLimited() != 1 {
					t.Fatalf("429 answers: got %d; want 1", fake.RateLimited())
				}
			})
		})
	}
}

// TestMatrixRateLimit: a homeserver that allows a burst of 2 messages,
// then one per 5 s (Synapse's kind of limit) answers M_LIMIT_EXCEEDED with
// retry_after_ms; the target waits exactly that long, so a refused message
// is never refused twice in a row, and every change arrives once.
func TestMatrixRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &matrixtest.Server{Token: "tok", UserID: "@telltale:test", Aliases: map[string]string{"#ops:test": "!ops:test"}, Burst: 2, Every: 5 * time.Second}
		mc, err := matrix.New(matrix.Options{Homeserver: "https://matrix.test", Token: "tok", Rooms: []string{"#ops:test"},
			HTTPClient: &http.Client{Transport: slacktest.Transport{Handler: fake}}, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		svc := bubbleStack(t, []chat.Attached{{Config: chat.NetworkConfig{Name: "matrix", Matrix: "https://matrix.test/#ops:test"},
			Network: mc, Channels: []string{"#ops:test"}}})
		for i := range 30 {
			svc.Record(context.Background(), changes.Change{Kind: changes.KindNote, Service: "web", Who: "alice", Message: fmt.Sprintf("note-%02d", i)})
			time.Sleep(time.Second)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		sent := fake.Sent()
		all := ""
		for _, e := range sent {
			all += e.Body + "\n"
		}
		for i := range 30 {
			if n := strings.Count(all, fmt.Sprintf("note-%02d", i)); n != 1 {
				t.Errorf("note-%02d arrived %d times; want once", i, n)
			}
		}
		if fake.RateLimited() == 0 || fake.RateLimited() > len(sent) {
			t.Errorf("M_LIMIT_EXCEEDED %d times for %d messages; want some, and never twice in a row", fake.RateLimited(), len(sent))
		}
		t.Logf("30 changes in 30 s → %d messages, %d refused with M_LIMIT_EXCEEDED", len(sent), fake.RateLimited())
	})
}
