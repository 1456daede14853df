package ingest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	influxdb1 "github.com/influxdata/influxdb1-client/v2"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

const (
	writeToken = "e2e-write-token-0123456789"
	readToken  = "e2e-read-token-0123456789"
)

// startWithAuth runs the collector binary with a write and a read token.
func startWithAuth(t *testing.T) *collectortest.Instance {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens.yml")
	tokens := fmt.Sprintf("tokens:\n  - name: telegraf\n    token: %s\n    scopes: [write]\n  - name: grafana\n    token: %s\n    scopes: [read]\n", writeToken, readToken)
	if err := os.WriteFile(file, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	return collectortest.Start(t, "-auth.tokens-file", file)
}

// query runs an instant PromQL query with the read token and returns the
// value of its only series, failing unless there is exactly one.
func query(t *testing.T, in *collectortest.Instance, q string) float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", in.URL+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Data struct {
			Result []collectortest.Result `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: got %d %s", q, resp.StatusCode, body)
	}
	if len(env.Data.Result) != 1 {
		t.Fatalf("%s: got %d series %s; want 1", q, len(env.Data.Result), body)
	}
	s, _ := env.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s: value %q: %v", q, s, err)
	}
	return v
}

// TestE2EInfluxClients writes with the InfluxDB 1.x and 2.x Go clients and
// with a request shaped like Telegraf's influxdb_v2 output to the real
// collector binary, with auth on, and reads the values back with PromQL.
func TestE2EInfluxClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := startWithAuth(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Second)

	// InfluxDB 1.x client: basic auth with the token as password, db and
	// precision parameters, plain and gzip.
	for _, enc := range []influxdb1.ContentEncoding{influxdb1.DefaultEncoding, influxdb1.GzipEncoding} {
		c, err := influxdb1.NewHTTPClient(influxdb1.HTTPConfig{Addr: in.URL, Username: "telegraf", Password: writeToken, WriteEncoding: enc})
		if err != nil {
			t.Fatal(err)
		}
		if _, version, err := c.Ping(0); err != nil || version == "" {
			t.Fatalf("1.x Ping: got version %q, error %v; want a version", version, err)
		}
		bp, _ := influxdb1.NewBatchPoints(influxdb1.BatchPointsConfig{Database: "telegraf", Precision: "s"})
		pt, err := influxdb1.NewPoint("cpu", map[string]string{"host": "a", "enc": string(enc) + "x"},
			map[string]any{"usage_idle": 90.5, "procs": 312, "state": "running", "throttled": true}, now)
		if err != nil {
			t.Fatal(err)
		}
		bp.AddPoint(pt)
		if err := c.Write(bp); err != nil {
			t.Fatalf("1.x Write (%q): %v", enc, err)
		}
		sel := `{db="telegraf",host="a",enc="` + string(enc) + `x"}`
		for q, want := range map[string]float64{"cpu_usage_idle" + sel: 90.5, "cpu_procs" + sel: 312, "cpu_throttled" + sel: 1} {
			if got := query(t, in, q); got != want {
				t.Fatalf("%s: got %v; want %v", q, got, want)
			}
		}
		c.Close()
	}
	// A bad line on the 1.x API (token as the p parameter): 400 with
	// InfluxDB 1.x's {"error": ...} naming the line; nothing written.
	status, resp := in.Post(ctx, "/write?db=telegraf&u=telegraf&p="+writeToken, []byte("half v=1\nhalf v=oops\n"), nil)
	var v1err struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp), &v1err); err != nil || status != http.StatusBadRequest || !strings.Contains(v1err.Error, "line 2") {
		t.Fatalf("1.x bad line: got %d %s; want 400 with an error naming line 2", status, resp)
	}
	if n := query(t, in, `count(half_v) or vector(0)`); n != 0 {
		t.Fatalf("the good line of a rejected body was written: count(half_v) = %v", n)
	}

	// InfluxDB 2.x client: Token auth, org and bucket, plain and gzip;
	// Health and Ping.
	for _, gz := range []bool{false, true} {
		c := influxdb2.NewClientWithOptions(in.URL, writeToken, influxdb2.DefaultOptions().SetUseGZip(gz))
		h, err := c.Health(ctx)
		if err != nil || h.Status != "pass" {
			t.Fatalf("2.x Health: got %+v, %v; want status pass", h, err)
		}
		if ok, err := c.Ping(ctx); !ok || err != nil {
			t.Fatalf("2.x Ping: got %v, %v; want true", ok, err)
		}
		w := c.WriteAPIBlocking("my-org", "my-bucket")
		host := fmt.Sprintf("gz-%v", gz)
		if err := w.WritePoint(ctx, influxdb2.NewPoint("mem", map[string]string{"host": host},
			map[string]any{"used": 1024.25, "value": int64(7)}, now)); err != nil {
			t.Fatalf("2.x WritePoint: %v", err)
		}
		if got := query(t, in, `mem_used{host="`+host+`"}`); got != 1024.25 {
			t.Fatalf("mem_used: got %v; want 1024.25", got)
		}
		if got := query(t, in, `mem{host="`+host+`"}`); got != 7 {
			t.Fatalf("mem (field value): got %v; want 7", got)
		}
		// A bad body: the client surfaces our message with the line number.
		err = w.WriteRecord(ctx, "good v=1", "bad line without fields")
		if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "invalid") {
			t.Fatalf("2.x WriteRecord of a bad line: got %v; want an invalid error naming line 2", err)
		}
		c.Close()
	}

	// Exactly what Telegraf's influxdb_v2 output sends (plugins/outputs/
	// influxdb_v2/http.go): gzip by default, Token auth, text/plain,
	// nanosecond timestamps, org and bucket parameters.
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	fmt.Fprintf(zw, "disk,host=t1,path=/ used_percent=41.5,inodes_free=1000i %d\n", now.UnixNano())
	fmt.Fprintf(zw, "pg,host=t1,db=orders size=12i %d\n", now.UnixNano())
	_ = zw.Close()
	status, resp = in.Post(ctx, "/api/v2/write?bucket=telegraf&org=ops", body.Bytes(), map[string]string{
		"Authorization": "Token " + writeToken, "Content-Encoding": "gzip",
		"Content-Type": "text/plain; charset=utf-8", "User-Agent": "Telegraf/1.34.0 Go/1.24.2"})
	if status != http.StatusNoContent {
		t.Fatalf("Telegraf-style write: got %d %s; want 204", status, resp)
	}
	if got := query(t, in, `disk_used_percent{host="t1",path="/"}`); got != 41.5 {
		t.Fatalf("disk_used_percent: got %v; want 41.5", got)
	}
	if got := query(t, in, `pg_size{host="t1",db="orders"}`); got != 12 {
		t.Fatalf("pg_size: got %v; want 12", got)
	}

	// Without a token: 401 before the body is read.
	status, resp = in.Post(ctx, "/write?db=x", []byte("m v=1"), nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("write without token: got %d %s; want 401", status, resp)
	}
	// With the read token: 403.
	status, resp = in.Post(ctx, "/api/v2/write", []byte("m v=1"), map[string]string{"Authorization": "Token " + readToken})
	if status != http.StatusForbidden {
		t.Fatalf("write with a read token: got %d %s; want 403", status, resp)
	}
}
