package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/rules/slo"
)

// e2eSLO are the objectives of the demo shop in the end-to-end tests, with
// windows short enough to fire within seconds: page when over 30 s and
// 10 s more than twice the budget is spent (latency: 95% within 0.25 s;
// slow_checkout slows the 15% of requests that are checkouts by 300 ms).
const e2eSLO = `
interval: 1s
services:
  - service: shop
    env: e2e
    availability: 99
    latency:
      threshold: 0.25
      target: 95
windows:
  - {severity: page, long: 30s, short: 10s, burn_rate: 2, for: 5s}
`

// sloRuleFile writes the rule file generated from e2eSLO into dir.
func sloRuleFile(t *testing.T, dir string) string {
	t.Helper()
	c, err := slo.Parse([]byte(e2eSLO))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Render("e2e")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "slo.rules.yml")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// amWebhook receives Alertmanager's webhook notifications.
type amWebhook struct {
	mu   sync.Mutex
	msgs []amNotification
}

type amNotification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

func (h *amWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n amNotification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, n)
	h.mu.Unlock()
}

// statuses lists, in order, the status of every notification about alert.
func (h *amWebhook) statuses(alert string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, n := range h.msgs {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == alert {
				out = append(out, a.Status)
			}
		}
	}
	return out
}

// startAlertmanager runs a real Alertmanager that notifies hookURL at once
// (group_wait and group_interval 1s, resolved notifications on) and
// returns its base URL.
func startAlertmanager(t *testing.T, hookURL string) string {
	t.Helper()
	bin := collectortest.Peer(t, "alertmanager", "TELLTALE_ALERTMANAGER", "run .ci/run, which builds Alertmanager v0.35.0 into ~/.cache/telltale/bin")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, hookURL)), 0o600)
	addr := collectortest.FreeAddr(t)
	return startPeer(t, "alertmanager", addr, bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=debug")
}

// startPeer runs a Prometheus-family server listening on addr until the
// test ends (its log shown if the test failed) and returns its base URL
// once /-/ready answers 200.
func startPeer(t *testing.T, name, addr, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	log := &collectortest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	u := "http://" + addr
	waitUntil(t, 2*time.Minute, name+" ready", func() bool {
		resp, err := http.Get(u + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return u
}

// waitUntil polls cond every 100 ms until it holds; within is a failsafe
// for a broken build, not a timing assumption.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// flipSwitch turns the demo's slow_checkout on or off.
func flipSwitch(t *testing.T, demoAddr string, on bool) {
	t.Helper()
	resp, err := http.Post("http://"+demoAddr+"/switches/slow_checkout", "application/json", strings.NewReader(fmt.Sprintf(`{"enabled":%v}`, on)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("flip slow_checkout: got %d; want 200", resp.StatusCode)
	}
}

// forState returns the value of ALERTS_FOR_STATE (the unix second the
// alert became active) of the shop's latency alert and the time of that
// sample, zeros if none.
func forState(t *testing.T, in *collectortest.Instance) (float64, time.Time) {
	t.Helper()
	sel := `ALERTS_FOR_STATE{alertname="` + slo.LatencyBudgetAlert + `",service="shop"}`
	res := in.Query(t.Context(), sel, time.Time{})
	at := in.Query(t.Context(), "timestamp("+sel+")", time.Time{})
	if len(res) != 1 || len(at) != 1 {
		return 0, time.Time{}
	}
	var v, ts float64
	fmt.Sscan(res[0].Value[1].(string), &v)
	fmt.Sscan(at[0].Value[1].(string), &ts)
	return v, time.UnixMilli(int64(ts * 1000))
}

// apiAlert is the shop's latency alert as /api/v1/alerts shows it; State
// is "" when it is not there.
type apiAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
}

func latencyAlert(t *testing.T, in *collectortest.Instance) apiAlert {
	t.Helper()
	resp, err := http.Get(in.URL + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct{ Alerts []apiAlert } `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	for _, a := range env.Data.Alerts {
		if a.Labels["alertname"] == slo.LatencyBudgetAlert && a.Labels["service"] == "shop" {
			return a
		}
	}
	return apiAlert{}
}

// firing reports whether the shop's latency alert is firing in ALERTS.
func firing(t *testing.T, in *collectortest.Instance) bool {
	t.Helper()
	return len(in.Query(t.Context(), `ALERTS{alertname="`+slo.LatencyBudgetAlert+`",service="shop",alertstate="firing"}`, time.Time{})) == 1
}

const deployBody = `{"service":"shop","env":"e2e","version":"v2.0.1","who":"alice","link":"https://ci.example/shop/42"}`

// wantDeployNamed is what the telltale_changes annotation must say about
// the deploy. The switch flip that slowed the shop came after it, so the
// annotation names the flip first ("N s after switch shop slow_checkout")
// and the deploy as the earlier change ("earlier N s before: deploy ...").
const wantDeployNamed = "deploy shop v2.0.1 to e2e by alice: https://ci.example/shop/42"

// shopRun is the demo shop pushing to a collector that runs its SLO
// rules: started, deployed and slowed down by slowShop.
type shopRun struct {
	in   *collectortest.Instance
	demo string // the demo's address
	data string
	args []string
}

// slowShop starts the collector with the SLO rules and args, the demo
// pushing to it, records deployBody once the demo's requests are in, and
// flips slow_checkout on.
func slowShop(t *testing.T, args ...string) *shopRun {
	t.Helper()
	dir := t.TempDir()
	r := &shopRun{data: filepath.Join(dir, "data"), args: append([]string{"-rules.files", sloRuleFile(t, dir)}, args...)}
	r.in = collectortest.StartIn(t, r.data, r.args...)
	r.demo = collectortest.StartDemo(t, r.in.URL, "-service", "shop", "-env", "e2e", "-version", "v2.0.0")
	waitUntil(t, time.Minute, "the demo's requests in the collector", func() bool {
		return len(r.in.Query(t.Context(), `service_env:slo_slow_requests:ratio_rate10s{service="shop"}`, time.Time{})) == 1
	})
	postDeploy(t, r.in, deployBody)
	flipSwitch(t, r.demo, true)
	return r
}

// restart stops the collector and starts it again on the same address,
// data and flags, and waits until it has evaluated the latency alert
// firing itself (ALERTS and ALERTS_FOR_STATE of before stay visible for
// the lookback, so they prove nothing).
func (r *shopRun) restart(t *testing.T) {
	t.Helper()
	r.in.Stop()
	restarted := time.Now()
	r.in = collectortest.StartOn(t, r.in.Addr, r.data, r.args...)
	waitUntil(t, time.Minute, "the alert firing again after the restart", func() bool {
		_, at := forState(t, r.in)
		return latencyAlert(t, r.in).State == "firing" && at.After(restarted)
	})
}

// TestAlertsEndToEnd runs the real collector with the SLO rules of the demo
// shop, the real demo pushing to it, and a real Alertmanager v0.35.0: after
// a deploy, slow_checkout is flipped on; the latency SLO alert fires and
// Alertmanager gets it with the deploy named in its annotations; the
// collector is restarted while it fires, and the alert's `for` state (the
// second it became active) is the same afterwards, with no second firing
// notification; flipped back, the alert resolves and Alertmanager sends the
// resolved notification.
func TestAlertsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the collector, the demo and Alertmanager for about a minute")
	}
	t.Parallel()
	hook := &amWebhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	amURL := startAlertmanager(t, hookSrv.URL)
	shop := slowShop(t, "-alertmanager.url", amURL, "-rules.resend-delay", "2s")
	in := shop.in

	waitUntil(t, 2*time.Minute, "the latency alert at Alertmanager with the deploy in its annotations", func() bool {
		return slices.ContainsFunc(amAlerts(t, amURL), func(a amAPIAlert) bool {
			return a.Labels["alertname"] == slo.LatencyBudgetAlert && strings.Contains(a.Annotations["telltale_changes"], wantDeployNamed)
		})
	})
	waitUntil(t, time.Minute, "Alertmanager's firing notification", func() bool {
		return slices.Contains(hook.statuses(slo.LatencyBudgetAlert), "firing")
	})
	before, _ := forState(t, in)
	if before == 0 || !firing(t, in) {
		t.Fatalf("before the restart: ALERTS_FOR_STATE %v, firing %v; want the alert firing with its for state", before, firing(t, in))
	}
	api := latencyAlert(t, in)
	if api.State != "firing" || !strings.Contains(api.Annotations["telltale_changes"], wantDeployNamed) || api.ActiveAt.Unix() != int64(before) {
		t.Fatalf("/api/v1/alerts before the restart: got %+v; want it firing since %v with the deploy named", api, before)
	}

	// Restart while it fires.
	shop.restart(t)
	in = shop.in
	if after, _ := forState(t, in); after != before {
		t.Fatalf("ALERTS_FOR_STATE after the restart: got %v; want %v as before (the for state restored, not restarted)", after, before)
	}
	if after := latencyAlert(t, in); after.State != "firing" || !after.ActiveAt.Equal(api.ActiveAt.Truncate(time.Second)) ||
		after.Annotations["telltale_changes"] != api.Annotations["telltale_changes"] {
		t.Fatalf("/api/v1/alerts after the restart: got %+v; want it firing, active since %s (whole seconds, as ALERTS_FOR_STATE keeps it), the same changes as before %q",
			after, api.ActiveAt.Truncate(time.Second), api.Annotations["telltale_changes"])
	}
	// The alert keeps being sent (every 2 s); Alertmanager must see the
	// same alert, not a new one: no second firing notification.
	nSends := func() int {
		return int(in.Metric(t.Context(), `prometheus_notifications_sent_total{alertmanager="`+amURL+`/api/v2/alerts"}`))
	}
	sent := nSends()
	waitUntil(t, time.Minute, "two more sends after the restart", func() bool { return nSends() >= sent+2 })
	if got := hook.statuses(slo.LatencyBudgetAlert); !slices.Equal(got, []string{"firing"}) {
		t.Fatalf("Alertmanager notifications after the restart: got %v; want the one firing notification", got)
	}

	flipSwitch(t, shop.demo, false)
	waitUntil(t, 2*time.Minute, "Alertmanager's resolved notification", func() bool {
		return slices.Equal(hook.statuses(slo.LatencyBudgetAlert), []string{"firing", "resolved"})
	})
	if firing(t, in) {
		t.Errorf("ALERTS still firing after the resolved notification")
	}
}

// amAPIAlert is an alert of Alertmanager's GET /api/v2/alerts.
type amAPIAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func amAlerts(t *testing.T, amURL string) []amAPIAlert {
	t.Helper()
	resp, err := http.Get(amURL + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amAPIAlert
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET /api/v2/alerts: %v: %s", err, b)
	}
	return out
}

// TestAlertsToChatEndToEnd is the same without an Alertmanager: the
// collector tells the chat webhook that deploys already use (-deploy.webhook)
// about the alert firing, with the deploy named, and resolved; a restart
// while it fires sends no second firing message.
func TestAlertsToChatEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the collector and the demo for about a minute")
	}
	t.Parallel()
	chat := &chatHook{}
	chatSrv := httptest.NewServer(chat)
	t.Cleanup(chatSrv.Close)
	shop := slowShop(t, "-deploy.webhook", "slack="+chatSrv.URL)
	in := shop.in

	alertMsgs := func(event string) []chatMessage {
		var out []chatMessage
		for _, m := range chat.messages() {
			if m.event == event && strings.Contains(m.text, slo.LatencyBudgetAlert) {
				out = append(out, m)
			}
		}
		return out
	}
	waitUntil(t, 2*time.Minute, "the firing message in the chat", func() bool { return len(alertMsgs("alert_firing")) > 0 })
	msg := alertMsgs("alert_firing")[0]
	if !strings.Contains(msg.text, wantDeployNamed) || !strings.Contains(msg.text, "after switch shop slow_checkout") ||
		!strings.Contains(msg.text, ":rotating_light: Firing: *"+slo.LatencyBudgetAlert+"* shop (e2e), severity page") {
		t.Errorf("firing message: got %q; want the alert, the service, the switch flip and %q", msg.text, wantDeployNamed)
	}
	if !slices.ContainsFunc(chat.messages(), func(m chatMessage) bool { return m.event == "recorded" || strings.Contains(m.text, "Deployed") }) {
		t.Errorf("chat messages %v: want the deploy's own message too (the same webhook)", chat.messages())
	}

	shop.restart(t)
	in = shop.in
	// A few more evaluations and sends with the alert firing.
	evals := func() float64 { return in.Metric(t.Context(), `telltale_rules_samples_written_total`) }
	n := evals()
	waitUntil(t, time.Minute, "more rule evaluations after the restart", func() bool { return evals() > n+20 })
	if got := len(alertMsgs("alert_firing")); got != 1 {
		t.Fatalf("firing messages after the restart: got %d; want 1", got)
	}

	flipSwitch(t, shop.demo, false)
	waitUntil(t, 2*time.Minute, "the resolved message in the chat", func() bool { return len(alertMsgs("alert_resolved")) == 1 })
	res := alertMsgs("alert_resolved")[0]
	if !strings.HasPrefix(res.text, ":white_check_mark: Resolved: *"+slo.LatencyBudgetAlert+"*") || res.delivery == msg.delivery {
		t.Errorf("resolved message: got %q (delivery %s); want it resolved, with its own delivery id", res.text, res.delivery)
	}
	if len(alertMsgs("alert_firing")) != 1 {
		t.Errorf("firing messages at the end: got %d; want 1", len(alertMsgs("alert_firing")))
	}
	var b bytes.Buffer
	for _, m := range chat.messages() {
		fmt.Fprintf(&b, "%s %s\n", m.event, m.text)
	}
	t.Logf("chat:\n%s", b.String())
}
