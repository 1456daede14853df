package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/annotator/chat/irc/irctest"
	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestChatIRCE2E: the collector binary with -chat.irc on a real IRC
// server (ngircd): a deploy and a firing alert (the rules engine's, from a
// sample pushed after the deploy; it records the alert as a kind=alert
// change) arrive in the channel as one line each;
// !alerts lists that alert, !changes finds the deploy by a word of its
// message, !impact says it is not analysed (analysis is off), !graph
// answers PromQL with the value from storage and a query link, a panel
// title with its dashboard's link, and bad PromQL with its parse error;
// !deploys web and !note answer (the note is in the change log);
// !switch from an unmapped nick and from a user whose token lacks the
// deploy scope is refused.
func TestChatIRCE2E(t *testing.T) {
	srv := irctest.Start(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yml")
	os.WriteFile(tokens, []byte(`tokens:
  - {name: ci, token: "ci-token-0123456789abcdef", scopes: [deploy, read, write]}
  - {name: bob, token: "bob-token-0123456789abcde", scopes: [read]}
`), 0o600)
	ruleFile := filepath.Join(dir, "chat.rules.yml")
	os.WriteFile(ruleFile, []byte(`groups:
  - name: chat
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: chat_e2e_error_ratio > 0.05
        labels: {severity: critical}
        annotations: {summary: "error ratio above 5%"}
`), 0o600)
	chatCfg := filepath.Join(dir, "chat.yml")
	os.WriteFile(chatCfg, []byte(`users:
  - token: bob
    irc: ["bob!*@*"]
`), 0o600)
	obs := irctest.Join(t, srv.Addr, "mallory", "#ops")
	bob := irctest.Join(t, srv.Addr, "bob", "#ops")
	in := collectortest.Start(t, "-auth.tokens-file", tokens, "-chat.config", chatCfg, "-chat.irc", "irc://"+srv.Addr+"/#ops", "-impact.enabled=false",
		"-rules.files", ruleFile, "-rules.dashboards=false")
	auth := map[string]string{"Authorization": "Bearer ci-token-0123456789abcdef", "Content-Type": "application/json"}
	if code, body := in.Post(t.Context(), "/api/v1/deploys", []byte(`{"id":"d1","service":"web","env":"prod","version":"v1.2.3","who":"alice","message":"faster checkout"}`), auth); code != 201 {
		t.Fatalf("POST deploy: %d %s", code, body)
	}
	obs.WaitFor("the deploy line", func(s []irctest.Said) bool {
		return irctest.Count(s, "deployed web v1.2.3 → prod by alice: faster checkout") == 1
	})
	if code, body := in.Post(t.Context(), "/api/v1/import/prometheus", []byte("chat_e2e_error_ratio{service=\"web\",env=\"prod\"} 0.07\n"), auth); code/100 != 2 {
		t.Fatalf("push the error ratio: %d %s", code, body)
	}
	said := obs.WaitFor("the alert line", func(s []irctest.Said) bool { return irctest.Count(s, "FIRING HighErrorRate") == 1 })
	if last := said[len(said)-1].Text; !strings.HasPrefix(last, "FIRING HighErrorRate web → prod (critical): error ratio above 5% ") || !strings.HasSuffix(last, "after deploy web v1.2.3 by alice") {
		t.Fatalf("alert line: got %q; want FIRING ... and the deploy it follows", last)
	}
	if n := len(said); n != 2 {
		t.Fatalf("heard %q; want exactly the deploy and the alert, one line each", said)
	}

	// The bot's queries as the collector wires them: !alerts reads the
	// rules engine's alert from the change log; !changes searches it;
	// !impact of a change whose analysis is off; !graph evaluates PromQL
	// against the collector's storage, links a built-in panel, and says
	// why a bad expression is neither.
	said = askIRC(obs, "!alerts", "ago: FIRING HighErrorRate")
	if last := said[len(said)-1].Text; !strings.Contains(last, " ago: FIRING HighErrorRate web → prod (critical): error ratio above 5%") || !strings.HasSuffix(last, "]") {
		t.Fatalf("!alerts: got %q; want the firing alert with its id", last)
	}
	said = askIRC(obs, "!changes faster", "[d1]")
	if last := said[len(said)-1].Text; !strings.HasSuffix(last, " ago: deployed web v1.2.3 → prod by alice: faster checkout [d1]") {
		t.Fatalf("!changes faster: got %q; want the deploy d1", last)
	}
	said = askIRC(obs, "!impact d1", "impact of deploy web v1.2.3")
	if last, want := said[len(said)-1].Text, "impact of deploy web v1.2.3 → prod: not analysed yet (analysis runs once the after window has passed, for deploys, switches and config changes)"; last != want {
		t.Fatalf("!impact d1: got %q; want %q", last, want)
	}
	said = askIRC(obs, "!graph chat_e2e_error_ratio", "/api/v1/query?query=chat_e2e_error_ratio")
	if got, want := said[len(said)-2].Text+" | "+said[len(said)-1].Text,
		`{__name__="chat_e2e_error_ratio", env="prod", service="web"} 0.07 | `+in.URL+"/api/v1/query?query=chat_e2e_error_ratio"; got != want {
		t.Fatalf("!graph of PromQL: got %q; want %q", got, want)
	}
	said = askIRC(obs, "!graph Deploy history", "Deploy history (dashboard")
	if last := said[len(said)-1].Text; !strings.HasSuffix(last, ": "+in.URL+"/#/d/telltale-deploys") {
		t.Fatalf("!graph of a panel: got %q; want a link to its dashboard", last)
	}
	said = askIRC(obs, "!graph rate(x[5m]", "!graph: ")
	if last := said[len(said)-1].Text; !strings.HasPrefix(last, `!graph: "rate(x[5m]" is neither a panel title nor PromQL: `) {
		t.Fatalf("!graph of bad PromQL: got %q; want the parse error", last)
	}

	said = askIRC(obs, "!deploys web", "[d1]")
	if last := said[len(said)-1].Text; !strings.HasSuffix(last, " ago: deployed web v1.2.3 → prod by alice: faster checkout [d1]") {
		t.Fatalf("!deploys web: got %q; want the deploy d1", last)
	}
	obs.Say("!note web: cache flushed by hand")
	obs.WaitFor("!note answer", func(s []irctest.Said) bool {
		return irctest.Count(s, "noted: note web by mallory (irc): cache flushed by hand") == 1
	})
	var notes struct {
		Data []struct {
			Who, Message string
		} `json:"data"`
	}
	getAuthJSON(t, in.URL+"/api/v1/changes?kind=note&q=flushed", "Bearer ci-token-0123456789abcdef", &notes)
	if len(notes.Data) != 1 || notes.Data[0].Who != "mallory (irc)" {
		t.Fatalf("notes in the change log: got %+v; want one by mallory (irc)", notes.Data)
	}
	obs.Say("!switch web slow_checkout off provider slow")
	obs.WaitFor("refusal", func(s []irctest.Said) bool { return irctest.Count(s, "mallory: !switch needs a chat user mapped") == 1 })
	bob.Say("!switch web slow_checkout off provider slow")
	bob.WaitFor("refusal", func(s []irctest.Said) bool { return irctest.Count(s, "bob: !switch needs a chat user mapped") == 1 })
	var sw struct{ Data []json.RawMessage }
	getAuthJSON(t, in.URL+"/api/v1/changes?kind=switch", "Bearer ci-token-0123456789abcdef", &sw)
	if len(sw.Data) != 0 {
		t.Fatalf("switch changes after refused !switch: %s; want none", sw.Data)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, in.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer ci-token-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `telltale_chat_commands_total{network="irc",command="switch",outcome="refused"} 2`; !strings.Contains(string(b), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}

// askIRC says text as o and waits until a new line containing sub is heard;
// it returns what o heard by then.
func askIRC(o *irctest.Observer, text, sub string) []irctest.Said {
	before := irctest.Count(o.Said(), sub)
	o.Say(text)
	return o.WaitFor("the answer to "+text, func(s []irctest.Said) bool { return irctest.Count(s, sub) > before })
}

func getAuthJSON(t *testing.T, url, bearer string, out any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
