package changelog

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestNewEndpointsBadInput: every endpoint added with the change log
// answers bad input with a 4xx whose message names the field and the fix,
// counts it by reason, and stores nothing.
func TestNewEndpointsBadInput(t *testing.T) {
	set := metrics.NewSet()
	e := newEnv(t, Options{Now: fixedClock(t0), Metrics: set, MaxBodyBytes: 8 << 10}, false)
	e.postChange(`{"id":"open","kind":"incident","service":"shop","status":"running","time":"2024-05-01T11:00:00Z"}`, 201)
	e.postChange(`{"id":"done","kind":"note","service":"shop"}`, 201)
	announce := `{"service":"demo","env":"dev","instance":"i1","url":"http://127.0.0.1:1/switches","secret":"0123456789abcdef0123","switches":[{"name":"slow_checkout"}]}`
	if r := e.do("POST", "/api/v1/switches/announce", announce); r.Code != 200 {
		t.Fatalf("announce: %d %s", r.Code, r.Error)
	}
	deep := strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20)
	f := func(name, method, path, body string, code int, reason, want string) {
		t.Helper()
		before := metricValue(set, `telltale_changes_rejected_total{reason="`+reason+`"}`)
		r := e.do(method, path, body)
		if r.Code != code || !strings.Contains(r.Error, want) {
			t.Errorf("%s: %s %s: got %d %q; want %d containing %q", name, method, path, r.Code, r.Error, code, want)
			return
		}
		if after := metricValue(set, `telltale_changes_rejected_total{reason="`+reason+`"}`); after == "" || after == before {
			t.Errorf("%s: counter for reason %q: got %q -> %q; want an increment", name, reason, before, after)
		}
	}
	const post, get, patch = "POST", "GET", "PATCH"
	// POST /api/v1/changes
	f("missing kind", post, "/api/v1/changes", `{"service":"shop"}`, 400, "missing_kind", `missing "kind": one of deploy, switch, config, incident, note, alert`)
	f("bad kind", post, "/api/v1/changes", `{"kind":"Note","service":"shop"}`, 400, "bad_kind", `"kind" "Note" must be 1-32 characters of [a-z][a-z0-9_]*`)
	f("long kind", post, "/api/v1/changes", `{"kind":"`+strings.Repeat("k", 33)+`","service":"shop"}`, 400, "bad_kind", `must be 1-32 characters`)
	f("missing service", post, "/api/v1/changes", `{"kind":"note"}`, 400, "missing_service", `missing "service": name the changed service`)
	f("bad env", post, "/api/v1/changes", `{"kind":"note","service":"shop","env":"prod eu"}`, 400, "bad_label", `"env" "prod eu" has characters outside [A-Za-z0-9._-]`)
	f("bad subject", post, "/api/v1/changes", `{"kind":"switch","service":"shop","subject":"slow checkout"}`, 400, "bad_subject", `"subject" "slow checkout" must be 1-128 characters of [A-Za-z0-9._:/-]`)
	f("fields not an object", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":["a"]}`, 400, "bad_fields", `"fields" must be a JSON object of strings`)
	f("field not a string", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":{"n":1}}`, 400, "bad_fields", `"fields" must be a JSON object of strings like {"state":"on"}, got a JSON number`)
	f("bad field key", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":{"Bad-Key":"x"}}`, 400, "bad_fields", `"fields" key "Bad-Key" must be 1-64 characters of [a-z_][a-z0-9_]*`)
	f("long field value", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":{"k":"`+strings.Repeat("v", 257)+`"}}`, 400, "bad_fields", `"fields.k" is 257 bytes, limit 256`)
	f("too many fields", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":{`+manyFields(17)+`}}`, 400, "bad_fields", `"fields" has 17 entries, limit 16`)
	f("control char in field", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":{"k":"a\u0000b"}}`, 400, "bad_fields", `"fields.k" contains a control character`)
	f("unknown field", post, "/api/v1/changes", `{"kind":"note","service":"shop","servce":"x"}`, 400, "unknown_field", `unknown field "servce": allowed fields are id, kind, service, env, subject`)
	f("invalid UTF-8", post, "/api/v1/changes", "{\"kind\":\"note\",\"service\":\"shop\",\"message\":\"a\xffb\"}", 400, "bad_utf8", `request body is not valid UTF-8 (first bad byte at offset 44)`)
	f("lone surrogate", post, "/api/v1/changes", `{"kind":"note","service":"shop","message":"a\ud800b"}`, 400, "bad_utf8", `\u escape of a lone UTF-16 surrogate at offset 44`)
	f("duplicate key", post, "/api/v1/changes", `{"kind":"note","service":"shop","service":"web"}`, 400, "duplicate_key", `key "service" appears twice`)
	f("duplicate key by case", post, "/api/v1/changes", `{"kind":"note","service":"shop","Service":"web"}`, 400, "duplicate_key", `keys "service" and "Service" name the same field`)
	f("duplicate field key", post, "/api/v1/changes", `{"kind":"note","service":"shop","fields":{"a":"1","a":"2"}}`, 400, "duplicate_key", `key "a" appears twice`)
	f("too deep", post, "/api/v1/changes", deep, 400, "too_deep", `nests objects and arrays deeper than 8 levels`)
	f("too large", post, "/api/v1/changes", `{"kind":"note","service":"shop","message":"`+strings.Repeat("m", 9<<10)+`"}`, 413, "body_too_large", `request body exceeds 8192 bytes`)
	f("same id other kind", post, "/api/v1/changes", `{"id":"done","kind":"config","service":"shop"}`, 409, "id_conflict", `change id "done" already exists with a different kind`)
	// The deploy API refuses the change-only fields and duplicate keys too.
	f("deploy with kind", post, "/api/v1/deploys", `{"kind":"deploy","service":"shop"}`, 400, "unknown_field", `unknown field "kind": allowed fields are id, service, env, version`)
	f("deploy duplicate key", post, "/api/v1/deploys", `{"service":"shop","version":"1","version":"2"}`, 400, "duplicate_key", `key "version" appears twice`)
	// PATCH /api/v1/changes/{id}
	f("patch unknown field", patch, "/api/v1/changes/open", `{"message":"x"}`, 400, "unknown_field", `unknown field "message": allowed fields are end_time, status`)
	f("patch nothing", patch, "/api/v1/changes/open", `{}`, 400, "bad_json", `nothing to change`)
	f("patch bad status", patch, "/api/v1/changes/open", `{"status":"closed"}`, 400, "bad_status", `"status" "closed" is not one of running, success, failed, cancelled, rolled_back, resolved`)
	f("patch end before start", patch, "/api/v1/changes/open", `{"end_time":"2024-05-01T10:00:00Z"}`, 400, "bad_time", `is before the change's time`)
	f("patch reopen", patch, "/api/v1/changes/done", `{"status":"running"}`, 400, "bad_status", `change "done" already finished with status "success": a finished change cannot be reopened`)
	f("patch bad UTF-8", patch, "/api/v1/changes/open", "{\"status\":\"res\xc3\"}", 400, "bad_utf8", `not valid UTF-8`)
	// GET /api/v1/changes
	f("list bad kind", get, "/api/v1/changes?kind=deploy,Switch", "", 400, "bad_kind", `kind filter "Switch" must be [a-z][a-z0-9_]*`)
	f("list bad subject", get, "/api/v1/changes?subject=a%20b", "", 400, "bad_subject", `subject filter "a b" has characters outside`)
	f("list bad open", get, "/api/v1/changes?open=maybe", "", 400, "bad_param", `"open" "maybe" must be true or false`)
	f("list empty search", get, "/api/v1/changes?q=%22%2A%28%29", "", 400, "bad_query", `has no words`)
	f("list long search", get, "/api/v1/changes?q="+strings.Repeat("a+", 300), "", 400, "bad_query", `limit 512`)
	f("list many terms", get, "/api/v1/changes?q="+strings.Repeat("ab+", 17), "", 400, "bad_query", `search text has 17 terms, limit 16`)
	f("list bad limit", get, "/api/v1/changes?limit=0", "", 400, "bad_limit", `"limit" "0" is not a positive integer`)
	f("list bad from", get, "/api/v1/changes?from=yesterday", "", 400, "bad_time", `"from" "yesterday" is neither RFC3339`)
	f("deploys with q", get, "/api/v1/deploys?q=x", "", 400, "unknown_param", `parameter "q" is not supported by GET /api/v1/deploys`)
	// POST /api/v1/switches/announce
	f("announce no service", post, "/api/v1/switches/announce", `{"instance":"i","url":"http://x/s","secret":"0123456789abcdef"}`, 400, "bad_label", `"service" "" has characters outside`)
	f("announce bad url", post, "/api/v1/switches/announce", `{"service":"demo","instance":"i","url":"ftp://x/s","secret":"0123456789abcdef"}`, 400, "bad_url", `"url" "ftp://x/s" is not an absolute http(s) URL`)
	f("announce short secret", post, "/api/v1/switches/announce", `{"service":"demo","instance":"i","url":"http://x/s","secret":"short"}`, 400, "bad_secret", `"secret" must be 16-256 characters`)
	f("announce bad interval", post, "/api/v1/switches/announce", `{"service":"demo","instance":"i","url":"http://x/s","secret":"0123456789abcdef","interval_seconds":3600}`, 400, "bad_interval", `"interval_seconds" 3600 must be 1-600`)
	f("announce bad switch", post, "/api/v1/switches/announce", `{"service":"demo","instance":"i","url":"http://x/s","secret":"0123456789abcdef","switches":[{"name":"a b"}]}`, 400, "bad_switch", `switch 0: "name" "a b" must be`)
	f("announce twice", post, "/api/v1/switches/announce", `{"service":"demo","instance":"i","url":"http://x/s","secret":"0123456789abcdef","switches":[{"name":"a"},{"name":"a"}]}`, 400, "bad_switch", `switch "a" is announced twice`)
	f("announce unknown field", post, "/api/v1/switches/announce", `{"service":"demo","instance":"i","url":"http://x/s","secret":"0123456789abcdef","token":"x"}`, 400, "unknown_field", `unknown field "token": allowed fields are service, env, instance, url, secret`)
	// POST /api/v1/switches/{service}/{name}
	f("flip no on", post, "/api/v1/switches/demo/slow_checkout", `{"reason":"x","who":"me"}`, 400, "missing_on", `missing "on"`)
	f("flip no reason", post, "/api/v1/switches/demo/slow_checkout", `{"on":true,"who":"me"}`, 400, "missing_reason", `missing "reason": say why the switch is flipped`)
	f("flip no who", post, "/api/v1/switches/demo/slow_checkout", `{"on":true,"reason":"x"}`, 400, "missing_who", `missing "who"`)
	f("flip on not bool", post, "/api/v1/switches/demo/slow_checkout", `{"on":"yes","reason":"x","who":"me"}`, 400, "bad_json", `"on" must be a JSON boolean, got a JSON string`)
	f("flip unknown switch", post, "/api/v1/switches/demo/nope", `{"on":true,"reason":"x","who":"me"}`, 404, "unknown_switch", `no live instance of service "demo" announced switch "nope"; its switches are slow_checkout`)
	f("flip unknown service", post, "/api/v1/switches/web/slow_checkout", `{"on":true,"reason":"x","who":"me"}`, 404, "unknown_switch", `no live instance of service "web" announced switch "slow_checkout"`)
	// GET /api/v1/switches
	f("switches bad service", get, "/api/v1/switches?service=a%20b", "", 400, "bad_label", `service filter "a b" has characters outside`)

	if got := ids(e.listChanges("")); got != "done,open" {
		t.Fatalf("changes after bad input: got %q; want only the two good ones", got)
	}
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('a'+i)) + `":"v"`)
	}
	return b.String()
}
