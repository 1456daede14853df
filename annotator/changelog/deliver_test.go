package changelog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/grafana"
	"github.com/telltale-dev/telltale/grafana/grafanatest"

	"github.com/telltale-dev/telltale/annotator/changes"
)

func newGrafana(t *testing.T, token string) (*grafanatest.Server, *grafana.Client) {
	t.Helper()
	srv := grafanatest.NewServer(token)
	t.Cleanup(srv.Close)
	c, err := grafana.New(srv.URL, token, grafana.WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// delivered reports whether every target of deploy id is delivered.
func (e *env) delivered(id string) bool {
	d := e.getChange(id)
	if d.Delivery == nil {
		return false
	}
	var all []*changes.TargetDelivery
	if d.Delivery.Series != nil {
		all = append(all, d.Delivery.Series)
	}
	if d.Delivery.Grafana != nil {
		all = append(all, d.Delivery.Grafana)
	}
	for i := range d.Delivery.Webhooks {
		all = append(all, &d.Delivery.Webhooks[i])
	}
	for _, td := range all {
		if td.Status != changes.DeliveryDelivered {
			return false
		}
	}
	return len(all) > 0
}

func TestSeries(t *testing.T) {
	w := &fakeWriter{}
	e := newEnv(t, Options{Writer: w}, true)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	e.post(`{"id":"a","service":"api","env":"prod","version":"1.0","commit":"c1","who":"alice","message":"m","link":"https://x/1","time":"`+at(-3*time.Minute)+`"}`, 201)
	e.post(`{"id":"b","service":"api","env":"prod","version":"1.1","time":"`+at(-2*time.Minute)+`","end_time":"`+at(-time.Minute)+`","status":"failed"}`, 201)
	e.post(`{"id":"c","service":"web","time":"`+at(-2*time.Minute)+`"}`, 201)
	for _, id := range []string{"a", "b", "c"} {
		eventually(t, "series of "+id, func() bool { return e.delivered(id) })
	}
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	sec := func(d time.Duration) float64 { return float64(now.Add(d).Unix()) }
	want := []writtenSeries{
		{`telltale_deploys_total{env="prod",service="api"}`, ms(-3 * time.Minute), 1},
		{`telltale_deploy_info{commit="c1",env="prod",service="api",status="success",version="1.0",who="alice"}`, ms(-3 * time.Minute), sec(-3 * time.Minute)},
		{`telltale_deploys_total{env="prod",service="api"}`, ms(-2 * time.Minute), 2},
		{`telltale_deploy_info{env="prod",service="api",status="failed",version="1.1"}`, ms(-2 * time.Minute), sec(-2 * time.Minute)},
		{`telltale_deploy_end_time_seconds{env="prod",service="api",status="failed",version="1.1"}`, ms(-time.Minute), sec(-time.Minute)},
		{`telltale_deploys_total{service="web"}`, ms(-2 * time.Minute), 1},
		{`telltale_deploy_info{service="web",status="success"}`, ms(-2 * time.Minute), sec(-2 * time.Minute)},
		// Every kind writes the change series too.
		{`telltale_changes_total{env="prod",kind="deploy",service="api"}`, ms(-3 * time.Minute), 1},
		{`telltale_change_info{commit="c1",env="prod",kind="deploy",service="api",status="success",version="1.0",who="alice"}`, ms(-3 * time.Minute), sec(-3 * time.Minute)},
		{`telltale_changes_total{env="prod",kind="deploy",service="api"}`, ms(-2 * time.Minute), 2},
		{`telltale_change_info{env="prod",kind="deploy",service="api",status="failed",version="1.1"}`, ms(-2 * time.Minute), sec(-2 * time.Minute)},
		{`telltale_change_end_time_seconds{env="prod",kind="deploy",service="api",status="failed",version="1.1"}`, ms(-time.Minute), sec(-time.Minute)},
		{`telltale_changes_total{kind="deploy",service="web"}`, ms(-2 * time.Minute), 1},
		{`telltale_change_info{kind="deploy",service="web",status="success"}`, ms(-2 * time.Minute), sec(-2 * time.Minute)},
	}
	got := w.written()
	key := func(s writtenSeries) string { return fmt.Sprintf("%s@%d=%g", s.Labels, s.T, s.V) }
	gotKeys, wantKeys := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		gotKeys[i] = key(got[i])
	}
	for i := range want {
		wantKeys[i] = key(want[i])
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Fatalf("series:\ngot  %s\nwant %s", strings.Join(gotKeys, "\n     "), strings.Join(wantKeys, "\n     "))
	}
	for _, s := range got {
		if strings.Contains(s.Labels, "https://") || strings.Contains(s.Labels, `"m"`) {
			t.Fatalf("free text leaked into labels: %s", s.Labels)
		}
	}
}

// TestSeriesWriteFails: the deploy is recorded anyway; the series is
// retried through the outbox until storage takes it.
func TestSeriesWriteFails(t *testing.T) {
	w := &fakeWriter{}
	w.setFail(errors.New("storage: disk full"))
	set := metrics.NewSet()
	e := newEnv(t, Options{Writer: w, Metrics: set}, true)
	d := e.post(`{"id":"a","service":"api"}`, 201)
	if d.Delivery == nil || d.Delivery.Series == nil || d.Delivery.Series.Status != changes.DeliveryPending {
		t.Fatalf("delivery in 201: got %+v; want series pending", d.Delivery)
	}
	eventually(t, "a failed series attempt", func() bool {
		s := e.get("a").Delivery.Series
		return s.Attempts >= 2 && strings.Contains(s.LastError, "disk full")
	})
	if v := metricValue(set, `telltale_change_deliveries_total{target="series",outcome="retry"}`); v == "" || v == "0" {
		t.Fatalf("retry counter: got %q; want > 0", v)
	}
	w.setFail(nil)
	eventually(t, "series delivered after storage recovered", func() bool { return e.delivered("a") })
	if n := len(w.written()); n != 4 {
		t.Fatalf("series written: got %d; want 4 (change and deploy total and info, once)", n)
	}
}

// TestDurability: deploys and pending outbox entries survive a close and
// reopen, and are delivered by the next process.
func TestDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	gsrv, gc := newGrafana(t, "tok")
	gsrv.SetFailure(http.StatusServiceUnavailable)
	w := &fakeWriter{}
	w.setFail(errors.New("storage down"))
	e := newEnv(t, Options{DBPath: path, Writer: w, Grafana: gc}, false) // not running: nothing is delivered
	e.post(`{"id":"a","service":"api","version":"1"}`, 201)
	e.post(`{"id":"b","service":"api","version":"2","status":"running"}`, 201)
	e.do("PATCH", "/api/v1/deploys/b", `{"status":"success"}`)
	e.stop()

	gsrv.SetFailure(0)
	w.setFail(nil)
	e2 := newEnv(t, Options{DBPath: path, Writer: w, Grafana: gc}, false)
	if got := ids(e2.list("")); got != "b,a" {
		t.Fatalf("deploys after reopen: got %q; want b,a", got)
	}
	b := e2.get("b")
	if b.Status != changes.StatusSuccess || b.EndTime == nil || b.Delivery.Grafana.Status != changes.DeliveryPending || b.Delivery.Series.Status != changes.DeliveryPending {
		t.Fatalf("b after reopen: got status %s end %v delivery %+v; want success, ended, grafana and series pending", b.Status, b.EndTime, b.Delivery)
	}
	e2.stop()

	e3 := newEnv(t, Options{DBPath: path, Writer: w, Grafana: gc}, true)
	for _, id := range []string{"a", "b"} {
		eventually(t, "delivery of "+id+" after restart", func() bool { return e3.delivered(id) })
	}
	if n := gsrv.Creates(); n != 2 {
		t.Fatalf("grafana annotations: got %d; want 2", n)
	}
}

func TestGrafanaDownThenBack(t *testing.T) {
	gsrv, gc := newGrafana(t, "tok")
	gsrv.SetFailure(http.StatusServiceUnavailable)
	set := metrics.NewSet()
	e := newEnv(t, Options{Grafana: gc, Metrics: set}, true)
	const n = 8
	for i := range n {
		e.post(fmt.Sprintf(`{"id":"d%d","service":"api","version":"%d"}`, i, i), 201)
	}
	eventually(t, "failed attempts while grafana is down", func() bool {
		g := e.get("d0").Delivery.Grafana
		return g.Attempts >= 2 && strings.Contains(g.LastError, "HTTP 503")
	})
	gsrv.Close() // now not even listening
	eventually(t, "attempts against a closed port", func() bool {
		return strings.Contains(e.get("d0").Delivery.Grafana.LastError, "connection refused")
	})

	// Back, on a new port: point a new client at it through a new service
	// on the same database, like a collector restart with Grafana fixed.
	back, gc2 := newGrafana(t, "tok")
	e.stop()
	e2 := newEnv(t, Options{DBPath: e.opts.DBPath, Grafana: gc2}, true)
	for i := range n {
		eventually(t, fmt.Sprintf("d%d delivered", i), func() bool { return e2.delivered(fmt.Sprintf("d%d", i)) })
	}
	anns := back.Annotations()
	seen := map[string]int{}
	for _, a := range anns {
		for _, tag := range a.Tags {
			if strings.HasPrefix(tag, "deploy-id:") {
				seen[tag]++
			}
		}
	}
	if len(anns) != n || len(seen) != n {
		t.Fatalf("annotations: got %d for %d deploys (%v); want each of %d exactly once", len(anns), len(seen), seen, n)
	}
	for i := range n {
		d := e2.get(fmt.Sprintf("d%d", i))
		if d.Delivery.Grafana.AnnotationID == 0 {
			t.Fatalf("d%d: annotation id not stored", i)
		}
	}
	if v := metricValue(set, `telltale_change_deliveries_total{target="grafana",outcome="retry"}`); v == "" || v == "0" {
		t.Fatalf("retry counter: got %q; want > 0", v)
	}
}

// TestGrafanaRecovers: same process, Grafana answers 503 then recovers.
func TestGrafanaRecovers(t *testing.T) {
	gsrv, gc := newGrafana(t, "tok")
	gsrv.SetFailure(http.StatusBadGateway)
	e := newEnv(t, Options{Grafana: gc}, true)
	for i := range 5 {
		e.post(fmt.Sprintf(`{"id":"d%d","service":"api"}`, i), 201)
	}
	eventually(t, "an attempt while down", func() bool { return e.get("d0").Delivery.Grafana.Attempts > 0 })
	gsrv.SetFailure(0)
	for i := range 5 {
		eventually(t, "delivery", func() bool { return e.delivered(fmt.Sprintf("d%d", i)) })
	}
	if got := gsrv.Creates(); got != 5 {
		t.Fatalf("creates: got %d; want 5", got)
	}
}

func TestGrafanaUnauthorizedThenFixed(t *testing.T) {
	gsrv, _ := newGrafana(t, "right")
	wrong, err := grafana.New(gsrv.URL, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Grafana: wrong}, true)
	e.post(`{"id":"a","service":"api"}`, 201)
	eventually(t, "a refused attempt", func() bool {
		return strings.Contains(e.get("a").Delivery.Grafana.LastError, "401")
	})
	g := e.get("a").Delivery.Grafana
	if g.Status != changes.DeliveryPending || !strings.Contains(g.LastError, "service account token with Editor role") {
		t.Fatalf("after 401: got %+v; want pending with the fix in last_error", g)
	}
	gsrv.SetToken("wrong") // the operator fixes the token on the Grafana side
	eventually(t, "delivery after the fix", func() bool { return e.delivered("a") })
	if n := gsrv.Creates(); n != 1 {
		t.Fatalf("creates: got %d; want 1", n)
	}
}

func TestGrafanaForbidden(t *testing.T) {
	gsrv, _ := newGrafana(t, "admin")
	gsrv.AddReadOnlyToken("viewer")
	viewer, _ := grafana.New(gsrv.URL, "viewer")
	e := newEnv(t, Options{Grafana: viewer}, true)
	e.post(`{"id":"a","service":"api"}`, 201)
	eventually(t, "a forbidden attempt", func() bool {
		return strings.Contains(e.get("a").Delivery.Grafana.LastError, "lacks annotations:write")
	})
	if g := e.get("a").Delivery.Grafana; g.Status != changes.DeliveryPending {
		t.Fatalf("after 403: got %s; want pending (retried slowly)", g.Status)
	}
}

// TestGrafanaHangs: a Grafana that never answers does not block the API.
func TestGrafanaHangs(t *testing.T) {
	gsrv, gc := newGrafana(t, "tok")
	gsrv.SetHang(time.Hour, false)
	e := newEnv(t, Options{Grafana: gc}, true)
	e.post(`{"id":"a","service":"api"}`, 201)
	eventually(t, "grafana holding a request", func() bool { return gsrv.Requests() > 0 })
	// Grafana is hanging now; the API still answers.
	for i := range 5 {
		e.post(fmt.Sprintf(`{"id":"b%d","service":"api"}`, i), 201)
	}
	if got := len(e.list("")); got != 6 {
		t.Fatalf("deploys while grafana hangs: got %d; want 6", got)
	}
	eventually(t, "a timed-out attempt", func() bool { return e.get("a").Delivery.Grafana.LastError != "" })
	gsrv.SetHang(0, false)
	for _, id := range []string{"a", "b0", "b4"} {
		eventually(t, "delivery of "+id, func() bool { return e.delivered(id) })
	}
	if n := gsrv.Creates(); n != 6 {
		t.Fatalf("creates: got %d; want 6", n)
	}
}

// TestGrafanaStoredButTimedOut: Grafana stores the annotation but answers
// after the timeout; the retry finds it by tag instead of creating another.
func TestGrafanaStoredButTimedOut(t *testing.T) {
	gsrv, gc := newGrafana(t, "tok")
	gsrv.SetHang(time.Hour, true)
	e := newEnv(t, Options{Grafana: gc}, true)
	e.post(`{"id":"a","service":"api"}`, 201)
	eventually(t, "a timed-out create", func() bool {
		return gsrv.Creates() == 1 && e.get("a").Delivery.Grafana.LastError != ""
	})
	gsrv.SetHang(0, false)
	eventually(t, "delivery", func() bool { return e.delivered("a") })
	anns := gsrv.Annotations()
	if gsrv.Creates() != 1 || len(anns) != 1 {
		t.Fatalf("creates: got %d (%d annotations); want exactly 1", gsrv.Creates(), len(anns))
	}
	if id := e.get("a").Delivery.Grafana.AnnotationID; id != anns[0].ID {
		t.Fatalf("stored annotation id: got %d; want %d (the adopted one)", id, anns[0].ID)
	}
}

// TestGrafanaRegion: a long deploy is a point while running and a region
// once closed, in the same annotation.
func TestGrafanaRegion(t *testing.T) {
	gsrv, gc := newGrafana(t, "tok")
	e := newEnv(t, Options{Grafana: gc}, true)
	start := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	e.post(`{"id":"a","service":"api","env":"prod","version":"3.1","who":"carol","commit":"deadbeef","message":"<b>big</b> one","link":"https://ci.example.com/r/9?a=1&b=2","status":"running","time":"`+start.Format(time.RFC3339)+`"}`, 201)
	eventually(t, "annotation created", func() bool { return e.delivered("a") })
	anns := gsrv.Annotations()
	if len(anns) != 1 || anns[0].Time != start.UnixMilli() || anns[0].TimeEnd != start.UnixMilli() {
		t.Fatalf("running deploy: got %+v; want one point annotation at %d", anns, start.UnixMilli())
	}
	a := anns[0]
	if got, want := strings.Join(a.Tags, ","), "deploy,service:api,env:prod,deploy-id:a"; got != want {
		t.Fatalf("tags: got %q; want %q", got, want)
	}
	for _, want := range []string{"api 3.1", "to prod", "by carol", "deadbeef", "&lt;b&gt;big&lt;/b&gt; one",
		`<a href="https://ci.example.com/r/9?a=1&amp;b=2"`, "(running)"} {
		if !strings.Contains(a.Text, want) {
			t.Fatalf("text %q: want it to contain %q", a.Text, want)
		}
	}
	end := start.Add(7 * time.Minute)
	r := e.do("PATCH", "/api/v1/deploys/a", `{"end_time":"`+end.Format(time.RFC3339)+`"}`)
	if r.Code != 200 {
		t.Fatalf("PATCH: %d %s", r.Code, r.Error)
	}
	eventually(t, "region", func() bool {
		anns := gsrv.Annotations()
		return len(anns) == 1 && anns[0].TimeEnd == end.UnixMilli()
	})
	anns = gsrv.Annotations()
	if gsrv.Creates() != 1 || anns[0].Time != start.UnixMilli() || strings.Contains(anns[0].Text, "(running)") {
		t.Fatalf("closed deploy: got %d creates, %+v; want the same annotation as region %d..%d, no longer running", gsrv.Creates(), anns[0], start.UnixMilli(), end.UnixMilli())
	}
}

type hook struct {
	mu       sync.Mutex
	bodies   []string
	headers  []http.Header
	failures int // answer 500 to this many requests first
	code     int // answer this code always when non-zero
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.code != 0 {
		w.WriteHeader(h.code)
		io.WriteString(w, "no_service")
		return
	}
	if h.failures > 0 {
		h.failures--
		w.WriteHeader(500)
		return
	}
	h.bodies = append(h.bodies, string(body))
	h.headers = append(h.headers, r.Header.Clone())
	io.WriteString(w, "ok")
}

func (h *hook) got() ([]string, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies), slices.Clone(h.headers)
}

func TestWebhooks(t *testing.T) {
	slack := &hook{failures: 2}
	plain := &hook{}
	ssrv := httptest.NewServer(slack)
	defer ssrv.Close()
	psrv := httptest.NewServer(plain)
	defer psrv.Close()
	e := newEnv(t, Options{Webhooks: []WebhookConfig{
		{URL: ssrv.URL + "/services/T000/B000/secret"},
		{Name: "audit", URL: psrv.URL, Format: FormatJSON},
	}}, true)
	e.post(`{"id":"a","service":"api","env":"prod","version":"1.2","who":"dave","commit":"abc","message":"a <b> & c","link":"https://ci/x","status":"running"}`, 201)
	eventually(t, "recorded delivered", func() bool { return e.delivered("a") })
	e.do("PATCH", "/api/v1/deploys/a", `{"status":"failed"}`)
	eventually(t, "finished delivered", func() bool {
		b, _ := slack.got()
		p, _ := plain.got()
		return len(b) == 2 && len(p) == 2
	})

	bodies, headers := slack.got()
	var msg map[string]any
	if err := json.Unmarshal([]byte(bodies[0]), &msg); err != nil || len(msg) != 1 {
		t.Fatalf("slack body %s: want exactly {\"text\": ...}", bodies[0])
	}
	text := msg["text"].(string)
	for _, want := range []string{":rocket: Deploy started", "*api* 1.2", "to *prod*", "by dave", "`abc`", "a &lt;b&gt; &amp; c", "<https://ci/x|details>"} {
		if !strings.Contains(text, want) {
			t.Fatalf("slack text %q: want it to contain %q", text, want)
		}
	}
	if headers[0].Get("Content-Type") != "application/json" || headers[0].Get("X-Telltale-Event") != "recorded" || !strings.HasPrefix(headers[0].Get("X-Telltale-Delivery"), "a/") {
		t.Fatalf("slack headers: got %v", headers[0])
	}
	json.Unmarshal([]byte(bodies[1]), &msg)
	if text := msg["text"].(string); !strings.Contains(text, ":x: Deploy failed") || !strings.Contains(text, "(took ") {
		t.Fatalf("finished slack text %q: want the failure and the duration", text)
	}

	pbodies, pheaders := plain.got()
	var d changes.Change
	if err := json.Unmarshal([]byte(pbodies[1]), &d); err != nil || d.ID != "a" || d.Status != changes.StatusFailed || d.EndTime == nil || d.Delivery != nil {
		t.Fatalf("json webhook body %s: want the deploy object, failed, ended, without delivery", pbodies[1])
	}
	if pheaders[1].Get("X-Telltale-Event") != "finished" {
		t.Fatalf("json webhook event header: got %q; want finished", pheaders[1].Get("X-Telltale-Event"))
	}

	del := e.get("a").Delivery
	if len(del.Webhooks) != 2 {
		t.Fatalf("webhook delivery states: got %+v; want 2", del.Webhooks)
	}
	for _, w := range del.Webhooks {
		if strings.Contains(w.Name, "secret") {
			t.Fatalf("webhook name %q shows the secret URL path", w.Name)
		}
		if w.Name != "audit" && w.Attempts < 4 { // 2 failures + 2 events
			t.Fatalf("slack webhook attempts: got %d; want >= 4", w.Attempts)
		}
	}
}

func TestWebhookPermanentFailure(t *testing.T) {
	h := &hook{code: http.StatusNotFound}
	srv := httptest.NewServer(h)
	defer srv.Close()
	e := newEnv(t, Options{Webhooks: []WebhookConfig{{Name: "gone", URL: srv.URL}}}, true)
	e.post(`{"id":"a","service":"api"}`, 201)
	eventually(t, "failed for good", func() bool {
		return e.get("a").Delivery.Webhooks[0].Status == changes.StatusFailed
	})
	w := e.get("a").Delivery.Webhooks[0]
	if w.Attempts != 1 || !strings.Contains(w.LastError, "HTTP 404: no_service") || !strings.Contains(w.LastError, "check the webhook URL") {
		t.Fatalf("got %+v; want 1 attempt and the 404 with the fix", w)
	}
}

func TestRetryForGivesUp(t *testing.T) {
	w := &fakeWriter{}
	w.setFail(errors.New("out of bounds"))
	e := newEnv(t, Options{Writer: w, RetryFor: 30 * time.Millisecond}, true)
	e.post(`{"id":"a","service":"api"}`, 201)
	eventually(t, "given up", func() bool { return e.get("a").Delivery.Series.Status == changes.StatusFailed })
	if s := e.get("a").Delivery.Series; !strings.Contains(s.LastError, "gave up after retrying for 30ms") || !strings.Contains(s.LastError, "out of bounds") {
		t.Fatalf("got %+v; want the give-up reason and the last error", s)
	}
}

func TestOpenRejectsBadWebhooks(t *testing.T) {
	f := func(w WebhookConfig, want string) {
		t.Helper()
		_, err := Open(t.Context(), Options{DBPath: filepath.Join(t.TempDir(), "d.db"), Webhooks: []WebhookConfig{w, w}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open with webhook %+v: got %v; want error containing %q", w, err, want)
		}
	}
	f(WebhookConfig{URL: "hooks.slack.com/x"}, "not an absolute http(s) URL")
	f(WebhookConfig{URL: "https://x/y", Format: "teams"}, `format "teams" is unknown`)
	f(WebhookConfig{URL: "https://x/y", Name: "a b"}, `name "a b" must be`)
	f(WebhookConfig{URL: "https://x/y", Name: "chat"}, `name "chat" is used twice`)
}
