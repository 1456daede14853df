package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/samples"
)

// checkSeries compares what the store holds with want (label set in
// Prometheus notation -> one sample).
func checkSeries(t *testing.T, store *collectortest.MemStore, want map[string]samples.Sample) {
	t.Helper()
	got := store.Snapshot()
	for k, w := range want {
		ss := got[k]
		if len(ss) != 1 || ss[0] != w {
			t.Errorf("series %s: got %v; want [%v]", k, ss, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s", k)
		}
	}
}

func TestInfluxWriteV1(t *testing.T) {
	ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
	body := "cpu,host=a,cpu=cpu0 usage_idle=90.5,usage_user=3i 1772366400000000000\n" +
		"# a comment\n" +
		"mem,host=a value=1024u,ok=true,note=\"free text, with a comma\" 1772366401000000000\n" +
		"uptime,host=a value=12\n"
	r := ts.do(t, "POST", "/write?db=telegraf&rp=autogen", []byte(body))
	if r.status != http.StatusNoContent {
		t.Fatalf("got status %d (%s); want 204", r.status, r.body)
	}
	if v := r.header.Get("X-Influxdb-Version"); v != "test-1" {
		t.Fatalf("got X-Influxdb-Version %q; want test-1", v)
	}
	t0 := int64(1772366400000)
	checkSeries(t, ts.store, map[string]samples.Sample{
		`{__name__="cpu_usage_idle", cpu="cpu0", db="telegraf", host="a"}`: {T: t0, V: 90.5},
		`{__name__="cpu_usage_user", cpu="cpu0", db="telegraf", host="a"}`: {T: t0, V: 3},
		`{__name__="mem", db="telegraf", host="a"}`:                        {T: t0 + 1000, V: 1024},
		`{__name__="mem_ok", db="telegraf", host="a"}`:                     {T: t0 + 1000, V: 1},
		`{__name__="uptime", db="telegraf", host="a"}`:                     {T: testNow.UnixMilli(), V: 12},
	})
	if n := ts.counter(`telltale_ingest_rejected_total{reason="influx_string_field"}`); n != 1 {
		t.Fatalf("got influx_string_field counter %v; want 1", n)
	}
	if n := ts.counter(`telltale_ingest_samples_total{endpoint="influx"}`); n != 5 {
		t.Fatalf("got samples counter %v; want 5", n)
	}
}

func TestInfluxWriteDBLabel(t *testing.T) {
	f := func(query, body string, want map[string]samples.Sample) {
		t.Helper()
		ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
		r := ts.do(t, "POST", query, []byte(body))
		if r.status != http.StatusNoContent {
			t.Fatalf("%s: got status %d (%s); want 204", query, r.status, r.body)
		}
		checkSeries(t, ts.store, want)
	}
	t0 := testNow.UnixMilli()
	// No db: no label.
	f("/write", "m v=1", map[string]samples.Sample{`{__name__="m_v"}`: {T: t0, V: 1}})
	f("/write?db=", "m v=1", map[string]samples.Sample{`{__name__="m_v"}`: {T: t0, V: 1}})
	// A db tag of the line wins over the query, as in VictoriaMetrics;
	// lines without one get the query's.
	f("/write?db=telegraf", "pg,db=orders,host=a size=1\npg,db=users,host=a size=2\npg,host=b size=3",
		map[string]samples.Sample{
			`{__name__="pg_size", db="orders", host="a"}`:   {T: t0, V: 1},
			`{__name__="pg_size", db="users", host="a"}`:    {T: t0, V: 2},
			`{__name__="pg_size", db="telegraf", host="b"}`: {T: t0, V: 3},
		})
	// 2.x: org and bucket are not stored; db still is.
	f("/api/v2/write?org=o&bucket=b", "m v=1", map[string]samples.Sample{`{__name__="m_v"}`: {T: t0, V: 1}})
	f("/api/v2/write?org=o&bucket=b&db=x", "m v=1", map[string]samples.Sample{`{__name__="m_v", db="x"}`: {T: t0, V: 1}})
}

// TestInfluxWriteDBLabelCache writes the same lines with different db values
// through one writer: the series-ref cache must keep them apart.
func TestInfluxWriteDBLabelCache(t *testing.T) {
	ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
	for i, q := range []string{"/write?db=a&precision=s", "/write?db=b&precision=s", "/write?precision=s", "/write?db=a&precision=s"} {
		body := []byte("m,host=h v=1 " + []string{"100", "100", "100", "200"}[i] + "\npg,db=x v=2 100\n")
		if r := ts.do(t, "POST", q, body); r.status != http.StatusNoContent {
			t.Fatalf("%s: got status %d (%s); want 204", q, r.status, r.body)
		}
	}
	got := ts.store.Snapshot()
	want := map[string]int{
		`{__name__="m_v", db="a", host="h"}`: 2,
		`{__name__="m_v", db="b", host="h"}`: 1,
		`{__name__="m_v", host="h"}`:         1,
		`{__name__="pg_v", db="x"}`:          4,
	}
	for k, n := range want {
		if len(got[k]) != n {
			t.Errorf("series %s: got %d samples; want %d (all: %v)", k, len(got[k]), n, ts.store.Names())
		}
	}
	if len(got) != len(want) {
		t.Errorf("got series %v; want %d", ts.store.Names(), len(want))
	}
}

func TestInfluxWritePrecision(t *testing.T) {
	f := func(path, precision, ts string, wantMs int64) {
		t.Helper()
		srv := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
		r := srv.do(t, "POST", path+"?precision="+precision, []byte("m v=1 "+ts))
		if r.status != http.StatusNoContent {
			t.Fatalf("precision=%s: got status %d (%s); want 204", precision, r.status, r.body)
		}
		checkSeries(t, srv.store, map[string]samples.Sample{`{__name__="m_v"}`: {T: wantMs, V: 1}})
	}
	const ms = 1772366400123
	f("/write", "", "1772366400123456789", ms)
	f("/write", "n", "1772366400123456789", ms)
	f("/api/v2/write", "ns", "1772366400123456789", ms)
	f("/write", "u", "1772366400123456", ms)
	f("/api/v2/write", "us", "1772366400123456", ms)
	f("/api/v2/write", "ms", "1772366400123", ms)
	f("/api/v2/write", "s", "1772366400", 1772366400000)
	f("/write", "m", "29539440", 1772366400000)
	f("/write", "h", "492324", 1772366400000)
}

func TestInfluxWriteGzip(t *testing.T) {
	ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
	r := ts.do(t, "POST", "/api/v2/write?bucket=b&precision=s", collectortest.Gzip(t, []byte("m,host=a v=2.5 1772366400\n")), "Content-Encoding", "gzip")
	if r.status != http.StatusNoContent {
		t.Fatalf("got status %d (%s); want 204", r.status, r.body)
	}
	checkSeries(t, ts.store, map[string]samples.Sample{`{__name__="m_v", host="a"}`: {T: 1772366400000, V: 2.5}})
}

func TestInfluxWriteBadInput(t *testing.T) {
	ts := newTestServer(t, HTTPOptions{MaxBodyBytes: 4 << 10, MaxDecodedBytes: 64 << 10}, Limits{}, InfluxOptions{MaxLineLen: 64})
	long := "m " + strings.Repeat("f=1,", 20) + "g=1\n"
	cases := []struct {
		name       string
		method     string
		query      string
		body       []byte
		headers    []string
		wantStatus int
		wantCode   string // InfluxDB 2.x error code
		wantMsg    []string
	}{
		{"bad line", "POST", "?db=x", []byte("good v=1\nbad line here\n"), nil, 400, "invalid", []string{"line 2", "bad line here"}},
		{"bad value", "POST", "", []byte("m v=1\n\nm v=abc\n"), nil, 400, "invalid", []string{"line 3", `value "abc"`}},
		{"over-long line", "POST", "", []byte("m v=1\n" + long), nil, 400, "invalid", []string{"line 2", "line too long", "-ingest.influx-max-line-len=64"}},
		{"bad precision", "POST", "?precision=sec", []byte("m v=1"), nil, 400, "invalid", []string{`precision="sec"`, "ns, us, ms or s"}},
		{"gzip garbage", "POST", "", []byte("certainly not gzip"), []string{"Content-Encoding", "gzip"}, 400, "invalid", []string{"gzip"}},
		{"unknown encoding", "POST", "", []byte("m v=1"), []string{"Content-Encoding", "zstd"}, 415, "unsupported media type", []string{`Content-Encoding "zstd"`}},
		{"too large", "POST", "", bytes.Repeat([]byte("m v=1\n"), 1000), nil, 413, "request too large", []string{"-ingest.max-body-bytes=4096"}},
		{"decompresses too large", "POST", "", collectortest.Gzip(t, bytes.Repeat([]byte("m v=1\n"), 20000)), []string{"Content-Encoding", "gzip"}, 413, "request too large", []string{"-ingest.max-decoded-bytes=65536"}},
		{"method", "GET", "", nil, nil, 405, "method not allowed", []string{"uses POST"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{InfluxPathV1, InfluxPathV2} {
				r := ts.do(t, c.method, path+c.query, c.body, c.headers...)
				if r.status != c.wantStatus {
					t.Fatalf("%s: got status %d (%s); want %d", path, r.status, r.body, c.wantStatus)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("%s: got Content-Type %q; want application/json", path, ct)
				}
				var js struct {
					Error   string `json:"error"`
					Code    string `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal([]byte(r.body), &js); err != nil {
					t.Fatalf("%s: body %q is not JSON: %v", path, r.body, err)
				}
				msg := js.Message
				if path == InfluxPathV1 {
					msg = js.Error
					if js.Code != "" || r.header.Get("X-Influxdb-Error") == "" {
						t.Fatalf("%s: got %q with X-Influxdb-Error %q; want {\"error\": ...} and the header", path, r.body, r.header.Get("X-Influxdb-Error"))
					}
				} else if js.Code != c.wantCode {
					t.Fatalf("%s: got code %q; want %q", path, js.Code, c.wantCode)
				}
				for _, want := range c.wantMsg {
					if !strings.Contains(msg, want) {
						t.Fatalf("%s: got message %q; want it to contain %q", path, msg, want)
					}
				}
			}
		})
	}
	// The good first lines of the bad bodies were not written either.
	if got := ts.store.Names(); len(got) != 0 {
		t.Fatalf("bad requests wrote series %v", got)
	}
}

func TestInfluxWriteUnavailable(t *testing.T) {
	t.Run("overloaded", func(t *testing.T) {
		ts := newOverloadedServer(t)
		r := ts.do(t, "POST", "/api/v2/write", []byte("m v=1"))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, `"code":"unavailable"`) {
			t.Fatalf("got %d Retry-After %q %s; want 503, Retry-After and code unavailable", r.status, r.header.Get("Retry-After"), r.body)
		}
	})
	t.Run("storage", func(t *testing.T) {
		ts := newFailingStorageServer(t)
		r := ts.do(t, "POST", "/write", []byte("m v=1"))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "disk full") {
			t.Fatalf("got %d Retry-After %q %s; want 503, Retry-After and the storage error", r.status, r.header.Get("Retry-After"), r.body)
		}
	})
}

func TestInfluxPingHealth(t *testing.T) {
	ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
	for _, m := range []string{"GET", "HEAD"} {
		r := ts.do(t, m, "/ping", nil)
		if r.status != http.StatusNoContent || r.header.Get("X-Influxdb-Version") != "test-1" {
			t.Fatalf("%s /ping: got %d version %q; want 204 test-1", m, r.status, r.header.Get("X-Influxdb-Version"))
		}
	}
	if r := ts.do(t, "GET", "/ping?verbose=true", nil); r.status != 200 || !strings.Contains(r.body, `"version":"test-1"`) {
		t.Fatalf("/ping?verbose=true: got %d %s; want 200 with the version", r.status, r.body)
	}
	if r := ts.do(t, "DELETE", "/ping", nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE /ping: got %d; want 405", r.status)
	}
	f := func(ready bool, wantStatus int, wantState string) {
		t.Helper()
		ts.ready = ready
		r := ts.do(t, "GET", "/health", nil)
		var h struct {
			Status  string `json:"status"`
			Version string `json:"version"`
		}
		if err := json.Unmarshal([]byte(r.body), &h); err != nil || r.status != wantStatus || h.Status != wantState || h.Version != "test-1" {
			t.Fatalf("/health ready=%v: got %d %s; want %d status %q", ready, r.status, r.body, wantStatus, wantState)
		}
	}
	f(true, 200, "pass")
	f(false, 503, "fail")
}

func TestInfluxAuthCompat(t *testing.T) {
	const tok = "0123456789abcdef-write"
	file := filepath.Join(t.TempDir(), "tokens.yml")
	if err := os.WriteFile(file, []byte("tokens:\n  - name: telegraf\n    token: "+tok+"\n    scopes: [write]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checker, err := auth.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	srv := httptest.NewServer(InfluxAuthCompat(checker.Require(auth.ScopeWrite, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNoContent)
	}))))
	defer srv.Close()
	f := func(query string, header string, wantStatus int) {
		t.Helper()
		got = ""
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/write"+query, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("query %q Authorization %q: got status %d; want %d", query, header, resp.StatusCode, wantStatus)
		}
		if wantStatus == http.StatusNoContent && got != "Bearer "+tok {
			t.Fatalf("query %q Authorization %q: handler saw Authorization %q; want the bearer token", query, header, got)
		}
	}
	basic := func(user, pass string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(user, pass)
		return req.Header.Get("Authorization")
	}
	f("", "Token "+tok, 204)
	f("", "token "+tok, 204)
	f("", "Bearer "+tok, 204)
	f("", basic("telegraf", tok), 204)
	f("?u=telegraf&p="+tok, "", 204)
	f("", "", 401)
	f("", "Token wrong-token-0123456789", 401)
	f("", basic("telegraf", "wrong-token-0123456789"), 401)
	f("?u=x&p=nope", "", 401)
}
