package changelog

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/grafana"

	"github.com/telltale-dev/telltale/annotator/changes"
)

func TestCreateGetListPatch(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)

	d := e.post(`{"service":"api"}`, 201)
	if d.ID == "" || d.Service != "api" || d.Status != changes.StatusSuccess || !d.Time.Equal(t0) || d.EndTime != nil {
		t.Fatalf("minimal create: got %+v; want server id, status success, time %v (now), no end", d, t0)
	}
	if got := e.get(d.ID); got.ID != d.ID || got.Service != "api" || !got.Time.Equal(t0) {
		t.Fatalf("GET after create: got %+v; want %+v", got, d)
	}

	full := e.post(`{"id":"gh-1-api","service":"api","env":"prod","version":"1.2.3","commit":"abc123","who":"alice",
		"message":"fix login","link":"https://ci.example.com/runs/1","time":"2024-05-01T11:00:00.5+02:00","status":"running"}`, 201)
	want := changes.Change{ID: "gh-1-api", Service: "api", Env: "prod", Version: "1.2.3", Commit: "abc123", Who: "alice",
		Message: "fix login", Link: "https://ci.example.com/runs/1", Time: time.Date(2024, 5, 1, 9, 0, 0, 5e8, time.UTC), Status: changes.StatusRunning}
	if full.ID != want.ID || full.Service != want.Service || full.Env != want.Env || full.Version != want.Version ||
		full.Commit != want.Commit || full.Who != want.Who || full.Message != want.Message || full.Link != want.Link ||
		!full.Time.Equal(want.Time) || full.Status != want.Status {
		t.Fatalf("full create: got %+v; want %+v", full, want)
	}

	r := e.do("PATCH", "/api/v1/deploys/gh-1-api", `{"end_time":"2024-05-01T09:05:00Z"}`)
	if r.Code != 200 {
		t.Fatalf("PATCH: got %d %s; want 200", r.Code, r.Error)
	}
	closed := e.get("gh-1-api")
	if closed.EndTime == nil || !closed.EndTime.Equal(time.Date(2024, 5, 1, 9, 5, 0, 0, time.UTC)) || closed.Status != changes.StatusSuccess {
		t.Fatalf("after PATCH end_time: got end %v status %s; want 09:05Z and success", closed.EndTime, closed.Status)
	}

	if got, want := ids(e.list("")), d.ID+",gh-1-api"; got != want {
		t.Fatalf("list: got %s; want %s (newest first)", got, want)
	}
}

func TestListFiltersLimitOrder(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	for i, c := range []struct{ service, env string }{{"api", "prod"}, {"api", "staging"}, {"web", "prod"}, {"api", "prod"}, {"web", "staging"}} {
		e.post(fmt.Sprintf(`{"id":"d%d","service":%q,"env":%q,"time":%q}`, i, c.service, c.env,
			t0.Add(-time.Duration(10-i)*time.Minute).Format(time.RFC3339)), 201)
	}
	e.post(`{"id":"same-time","service":"api","env":"prod","time":"`+t0.Add(-7*time.Minute).Format(time.RFC3339)+`"}`, 201)

	f := func(query, want string) {
		t.Helper()
		if got := ids(e.list(query)); got != want {
			t.Fatalf("GET /api/v1/deploys%s: got %q; want %q", query, got, want)
		}
	}
	// same-time shares d3's time and was recorded later: it comes first.
	f("", "d4,same-time,d3,d2,d1,d0")
	f("?limit=2", "d4,same-time")
	f("?service=api", "same-time,d3,d1,d0")
	f("?service=api&env=prod", "same-time,d3,d0")
	f("?env=staging", "d4,d1")
	f("?from="+t0.Add(-8*time.Minute).Format(time.RFC3339), "d4,same-time,d3,d2")
	f("?to="+t0.Add(-8*time.Minute).Format(time.RFC3339), "d2,d1,d0")
	f(fmt.Sprintf("?from=%d&to=%d", t0.Add(-8*time.Minute).Unix(), t0.Add(-7*time.Minute).Unix()), "same-time,d3,d2")
	f("?service=nothing", "")
}

func TestListBadParams(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	f := func(query, want string) {
		t.Helper()
		r := e.do("GET", "/api/v1/deploys"+query, "")
		if r.Code != 400 || r.ErrorType != "bad_data" || !strings.Contains(r.Error, want) {
			t.Fatalf("GET %s: got %d %s %q; want 400 bad_data containing %q", query, r.Code, r.ErrorType, r.Error, want)
		}
	}
	f("?limit=0", `"limit" "0" is not a positive integer`)
	f("?limit=abc", `"limit" "abc" is not a positive integer`)
	f("?limit=1001", `exceeds the maximum 1000`)
	f("?from=yesterday", `"from" "yesterday" is neither RFC3339`)
	f("?to=NaN", `"to" "NaN" is neither RFC3339`)
	f("?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", `"to" is before "from"`)
	f("?service=a%20b", `service filter "a b" has characters outside`)
}

func TestGetNotFound(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	r := e.do("GET", "/api/v1/deploys/nope", "")
	if r.Code != 404 || r.ErrorType != "not_found" || !strings.Contains(r.Error, `deploy "nope" not found`) {
		t.Fatalf("got %d %s %q; want 404 not_found naming the id", r.Code, r.ErrorType, r.Error)
	}
	r = e.do("PATCH", "/api/v1/deploys/nope", `{"status":"failed"}`)
	if r.Code != 404 || !strings.Contains(r.Error, `deploy "nope" not found`) {
		t.Fatalf("PATCH missing: got %d %q; want 404", r.Code, r.Error)
	}
}

func TestIdempotentID(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	body := `{"id":"run-7","service":"api","env":"prod","version":"2.0.0","who":"bob","status":"running","time":"2024-05-01T11:59:00Z"}`
	first := e.post(body, 201)
	again := e.post(body, 200)
	if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) || again.Status != changes.StatusRunning {
		t.Fatalf("retry: got %+v; want the stored deploy %+v", again, first)
	}
	// A retry that leaves time out matches too (time defaults to now).
	e.post(`{"id":"run-7","service":"api","env":"prod","version":"2.0.0","who":"bob"}`, 200)
	if n := len(e.list("")); n != 1 {
		t.Fatalf("deploys after retries: got %d; want 1", n)
	}

	r := e.do("POST", "/api/v1/deploys", `{"id":"run-7","service":"api","env":"prod","version":"2.0.1","who":"bob"}`)
	if r.Code != 409 || r.ErrorType != "conflict" || !strings.Contains(r.Error, "different version") || !strings.Contains(r.Error, "send a new id") {
		t.Fatalf("same id, other version: got %d %s %q; want 409 naming version and the fix", r.Code, r.ErrorType, r.Error)
	}

	closed := e.post(`{"id":"run-7","service":"api","env":"prod","version":"2.0.0","who":"bob","status":"failed","end_time":"2024-05-01T12:00:00Z"}`, 200)
	if closed.Status != changes.StatusFailed || closed.EndTime == nil || !closed.EndTime.Equal(t0) {
		t.Fatalf("same id with end_time/status: got status %s end %v; want failed at %v", closed.Status, closed.EndTime, t0)
	}
	// The retried start of an already finished deploy does not reopen it.
	if d := e.post(body, 200); d.Status != changes.StatusFailed {
		t.Fatalf("retried start after close: got status %s; want failed kept", d.Status)
	}
	if n := len(e.list("")); n != 1 {
		t.Fatalf("deploys after close: got %d; want 1", n)
	}
}

func TestPatch(t *testing.T) {
	now := t0
	e := newEnv(t, Options{Now: func() time.Time { return now }}, false)
	e.post(`{"id":"a","service":"api","status":"running","time":"2024-05-01T11:50:00Z"}`, 201)
	e.post(`{"id":"b","service":"api","time":"2024-05-01T11:50:00Z"}`, 201)

	f := func(id, body string, code int, want string) {
		t.Helper()
		r := e.do("PATCH", "/api/v1/deploys/"+id, body)
		if r.Code != code || !strings.Contains(r.Error, want) {
			t.Fatalf("PATCH %s %s: got %d %q; want %d containing %q", id, body, r.Code, r.Error, code, want)
		}
	}
	f("a", `{"version":"x"}`, 400, `unknown field "version": allowed fields are end_time, status`)
	f("a", `{}`, 400, `nothing to change`)
	f("a", `{"end_time":"2024-05-01T11:00:00Z"}`, 400, `is before the deploy's time`)
	f("a", `{"status":"exploded"}`, 400, `"status" "exploded" is not one of running, success, failed, cancelled, rolled_back`)

	now = t0.Add(3 * time.Minute)
	f("a", `{"status":"failed"}`, 200, "")
	a := e.get("a")
	if a.Status != changes.StatusFailed || a.EndTime == nil || !a.EndTime.Equal(now) {
		t.Fatalf("PATCH status on a running deploy: got %s end %v; want failed ending now %v", a.Status, a.EndTime, now)
	}
	f("a", `{"status":"running"}`, 400, "cannot be reopened")
	f("a", `{"status":"failed"}`, 200, "") // no-op
	if got := e.get("a"); !got.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("no-op PATCH changed updated_at: got %v; want %v", got.UpdatedAt, a.UpdatedAt)
	}
	f("b", `{"status":"rolled_back"}`, 200, "")
	if b := e.get("b"); b.Status != changes.StatusRolledBack || b.EndTime != nil {
		t.Fatalf("PATCH status on a point deploy: got %s end %v; want rolled_back and still a point", b.Status, b.EndTime)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0), MaxBodyBytes: 8 << 10}, false)
	f := func(name, body string, code int, reason, want string) {
		t.Helper()
		before := metricValue(e.opts.Metrics, `telltale_changes_rejected_total{reason="`+reason+`"}`)
		r := e.do("POST", "/api/v1/deploys", body)
		if r.Code != code || !strings.Contains(r.Error, want) {
			t.Fatalf("%s: got %d %q; want %d containing %q", name, r.Code, r.Error, code, want)
		}
		after := metricValue(e.opts.Metrics, `telltale_changes_rejected_total{reason="`+reason+`"}`)
		if after == "" || after == before {
			t.Fatalf("%s: rejected counter for reason %q: got %q -> %q; want an increment", name, reason, before, after)
		}
	}
	f("missing service", `{"version":"1"}`, 400, "missing_service", `missing "service": name the deployed service`)
	f("empty service", `{"service":""}`, 400, "missing_service", `missing "service"`)
	f("unsafe service", `{"service":"my api"}`, 400, "bad_label", `"service" "my api" has characters outside [A-Za-z0-9._-]`)
	f("unsafe env", `{"service":"api","env":"prod/eu"}`, 400, "bad_label", `"env" "prod/eu" has characters outside`)
	f("long service", `{"service":"`+strings.Repeat("a", 65)+`"}`, 400, "too_long", `"service" is 65 bytes, limit 64`)
	f("bad time", `{"service":"api","time":"yesterday"}`, 400, "bad_time", `"time" "yesterday" is not an RFC3339 timestamp`)
	f("unix time", `{"service":"api","time":1714564800}`, 400, "bad_time", `"time" must be an RFC3339 string like "2024-05-01T12:00:00Z", got a JSON number`)
	f("future time", `{"service":"api","time":"2024-05-01T15:00:00Z"}`, 400, "bad_time", `is 3h0m0s in the future (limit 1h0m0s)`)
	f("end before start", `{"service":"api","time":"2024-05-01T11:00:00Z","end_time":"2024-05-01T10:00:00Z"}`, 400, "bad_time", `"end_time" 2024-05-01T10:00:00Z is before "time"`)
	f("link not a URL", `{"service":"api","link":"ci/runs/1"}`, 400, "bad_link", `"link" "ci/runs/1" is not an absolute http(s) URL`)
	f("link ftp", `{"service":"api","link":"ftp://x/y"}`, 400, "bad_link", `not an absolute http(s) URL`)
	f("oversized message", `{"service":"api","message":"`+strings.Repeat("m", changes.MaxMessageBytes+1)+`"}`, 400, "message_too_long", `"message" is 4097 bytes, limit 4096 (4 KiB)`)
	f("unknown field", `{"service":"api","servce":"x"}`, 400, "unknown_field", `unknown field "servce": allowed fields are id, service`)
	f("bad JSON", `{"service":"api"`, 400, "bad_json", `request body is not valid JSON`)
	f("not an object", `["api"]`, 400, "bad_json", `must be a JSON object`)
	f("trailing data", `{"service":"api"} {"service":"web"}`, 400, "bad_json", `data after the JSON object`)
	f("empty body", ``, 400, "bad_json", `request body is empty`)
	f("number version", `{"service":"api","version":1.2}`, 400, "bad_json", `"version" must be a JSON string, got a JSON number`)
	f("control char", `{"service":"api","who":"a\u0007b"}`, 400, "bad_value", `"who" contains a control character`)
	f("bad status", `{"service":"api","status":"ok"}`, 400, "bad_status", `"status" "ok" is not one of running, success`)
	f("running and ended", `{"service":"api","status":"running","end_time":"2024-05-01T12:00:00Z"}`, 400, "bad_status", `"status" is "running" but "end_time" is set`)
	f("bad id", `{"service":"api","id":"a/b"}`, 400, "bad_id", `"id" "a/b" must be 1-128 characters of [A-Za-z0-9._:-]`)
	f("oversized body", `{"service":"api","link":"https://x/`+strings.Repeat("a", 9<<10)+`"}`, 413, "body_too_large", `request body exceeds 8192 bytes`)
	if n := len(e.list("")); n != 0 {
		t.Fatalf("rejected requests stored %d deploys; want 0", n)
	}
}

// TestOversizedChunkedBody: without Content-Length the limit still holds.
func TestOversizedChunkedBody(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0), MaxBodyBytes: 1 << 10}, false)
	req := strings.NewReader(`{"service":"api","message":"` + strings.Repeat("m", 2<<10) + `"}`)
	resp, err := e.srv.Client().Post(e.srv.URL+"/api/v1/deploys", "application/json", struct{ *strings.Reader }{req})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked oversized body: got %d; want 413", resp.StatusCode)
	}
}

func TestOnRecorded(t *testing.T) {
	var got []string
	e := newEnv(t, Options{Now: fixedClock(t0), OnRecorded: func(d changes.Change) { got = append(got, d.ID+"/"+d.Status) }}, false)
	e.post(`{"id":"x","service":"api","status":"running"}`, 201)
	e.post(`{"id":"x","service":"api","status":"running"}`, 200) // unchanged: no call
	e.do("PATCH", "/api/v1/deploys/x", `{"status":"success"}`)
	if strings.Join(got, ",") != "x/running,x/success" {
		t.Fatalf("OnRecorded calls: got %v; want [x/running x/success]", got)
	}
}

// TestEndWithoutStart: a deploy sent with only end_time starts at its end;
// a close of an existing id without time is checked against the stored start.
func TestEndWithoutStart(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	d := e.post(`{"id":"a","service":"api","end_time":"2024-05-01T11:59:00Z"}`, 201)
	if !d.Time.Equal(t0.Add(-time.Minute)) || d.EndTime == nil || !d.EndTime.Equal(d.Time) {
		t.Fatalf("got time %v end %v; want both 11:59", d.Time, d.EndTime)
	}
	e.post(`{"id":"b","service":"api","status":"running","time":"2024-05-01T11:50:00Z"}`, 201)
	if c := e.post(`{"id":"b","service":"api","status":"success"}`, 200); c.EndTime == nil || !c.EndTime.Equal(t0) {
		t.Fatalf("close by status only: got end %v; want now %v", c.EndTime, t0)
	}
	e.post(`{"id":"c","service":"api","status":"running","time":"2024-05-01T11:50:00Z"}`, 201)
	r := e.do("POST", "/api/v1/deploys", `{"id":"c","service":"api","end_time":"2024-05-01T11:40:00Z"}`)
	if r.Code != 400 || !strings.Contains(r.Error, `is before the deploy's time 2024-05-01T11:50:00Z`) {
		t.Fatalf("end before the stored start: got %d %q; want 400", r.Code, r.Error)
	}
}

func TestTypedNilGrafanaIsOff(t *testing.T) {
	var g *grafana.Client
	e := newEnv(t, Options{Now: fixedClock(t0), Grafana: g}, true)
	if d := e.post(`{"service":"api"}`, 201); d.Delivery != nil {
		t.Fatalf("delivery with Grafana off: got %+v; want none", d.Delivery)
	}
}

// BenchmarkCreate measures POST /api/v1/deploys end to end, including the
// fsync of every commit (synchronous=FULL).
func BenchmarkCreate(b *testing.B) {
	s, err := Open(b.Context(), Options{DBPath: filepath.Join(b.TempDir(), "d.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf(`{"id":"b%d","service":"api","env":"prod","version":"1.%d","who":"bench"}`, i, i)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/deploys", strings.NewReader(body)))
		if w.Code != 201 {
			b.Fatalf("got %d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deploys/s")
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	e.post(`{"id":"a","service":"api"}`, 201)
	f := func(method, path, allow string) {
		t.Helper()
		r := e.do(method, path, "")
		if r.Code != 405 || r.Header.Get("Allow") != allow || !strings.Contains(r.Error, "use "+allow) {
			t.Fatalf("%s %s: got %d Allow=%q %q; want 405 allowing %s", method, path, r.Code, r.Header.Get("Allow"), r.Error, allow)
		}
	}
	f("DELETE", "/api/v1/deploys/a", "GET, PATCH")
	f("PUT", "/api/v1/deploys", "GET, POST")
	if d := e.get("a"); d.ID != "a" {
		t.Fatalf("GET still works: got %+v", d)
	}
}
