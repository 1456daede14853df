package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// testBatch returns nSeries series of nSamples samples each, one a second
// ending at end, with values that differ per series and sample.
func testBatch(name string, nSeries, nSamples int, end time.Time) *samples.Batch {
	b := &samples.Batch{}
	for s := 0; s < nSeries; s++ {
		b.StartSeries(nil)
		b.AddLabel("__name__", name)
		b.AddLabel("instance", fmt.Sprintf("host-%d", s))
		b.AddLabel("job", "e2e")
		for i := 0; i < nSamples; i++ {
			t := end.Add(-time.Duration(nSamples-1-i) * time.Second)
			b.AddSample(t.UnixMilli(), float64(s)*1000+float64(i)+0.25)
		}
	}
	return b
}

func postRemoteWrite(t *testing.T, in *collectortest.Instance, b *samples.Batch, version int) (int, string, http.Header) {
	t.Helper()
	var pb []byte
	ct := "application/x-protobuf"
	rwv := "0.1.0"
	if version == 2 {
		pb = remotewrite.AppendV2(nil, b)
		ct += ";proto=io.prometheus.write.v2.Request"
		rwv = "2.0.0"
	} else {
		pb = remotewrite.AppendV1(nil, b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, in.URL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, pb)))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", rwv)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return resp.StatusCode, body.String(), resp.Header
}

// checkStored asserts that every sample of b is stored exactly.
func checkStored(t *testing.T, in *collectortest.Instance, b *samples.Batch, at time.Time) {
	t.Helper()
	name := b.Name(&b.Series[0])
	res := in.Query(t.Context(), name+"[1h]", at)
	if len(res) != len(b.Series) {
		t.Fatalf("got %d series of %s; want %d", len(res), name, len(b.Series))
	}
	want := map[string][]samples.Sample{}
	for i := range b.Series {
		s := &b.Series[i]
		inst := ""
		for _, l := range b.SeriesLabels(s) {
			if l.Name == "instance" {
				inst = l.Value
			}
		}
		want[inst] = b.SeriesSamples(s)
	}
	for _, r := range res {
		ws := want[r.Metric["instance"]]
		if r.Metric["job"] != "e2e" || r.Metric["__name__"] != name {
			t.Fatalf("got labels %v; want job=e2e __name__=%s", r.Metric, name)
		}
		if len(r.Values) != len(ws) {
			t.Fatalf("series %v: got %d samples; want %d", r.Metric, len(r.Values), len(ws))
		}
		for i, p := range r.Values {
			ts, _ := strconv.ParseFloat(fmt.Sprint(p[0]), 64)
			v, _ := strconv.ParseFloat(p[1].(string), 64)
			if int64(ts*1000+0.5) != ws[i].T || v != ws[i].V {
				t.Fatalf("series %v sample %d: got (%v, %v); want (%d, %v)", r.Metric, i, p[0], p[1], ws[i].T, ws[i].V)
			}
		}
	}
}

func TestRemoteWriteRoundTrip(t *testing.T) {
	t.Parallel()
	in := collectortest.Start(t)
	now := time.Now().Truncate(time.Second)
	for _, version := range []int{1, 2} {
		b := testBatch(fmt.Sprintf("e2e_rw_v%d", version), 20, 30, now)
		status, body, hdr := postRemoteWrite(t, in, b, version)
		if status != http.StatusNoContent {
			t.Fatalf("v%d: got status %d (%s); want 204", version, status, body)
		}
		if version == 2 {
			if got := hdr.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "600" {
				t.Fatalf("got X-Prometheus-Remote-Write-Samples-Written=%q; want 600", got)
			}
		}
		checkStored(t, in, b, now)
	}
}

func TestImportPrometheusText(t *testing.T) {
	t.Parallel()
	in := collectortest.Start(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Second)

	// Plain text with timestamps and an extra_label.
	body := fmt.Sprintf("# TYPE e2e_text_total counter\n# HELP e2e_text_total Things counted.\ne2e_text_total{path=\"/a\"} 7 %d\ne2e_text_total{path=\"/b\"} 9.5 %d\n",
		now.Add(-2*time.Second).UnixMilli(), now.UnixMilli())
	status, msg := in.Post(ctx, "/api/v1/import/prometheus?extra_label=job=textjob", []byte(body), nil)
	if status != http.StatusNoContent {
		t.Fatalf("plain text: got %d (%s); want 204", status, msg)
	}
	res := in.Query(ctx, `e2e_text_total{job="textjob"}`, now)
	got := map[string]string{}
	for _, r := range res {
		got[r.Metric["path"]] = r.Value[1].(string)
	}
	if got["/a"] != "7" || got["/b"] != "9.5" || len(got) != 2 {
		t.Fatalf("got %v; want /a=7 /b=9.5", got)
	}

	// Gzip, exactly as VictoriaMetrics/metrics push sends it (GET with a gzip body).
	set := metrics.NewSet()
	set.NewCounter(`e2e_pushed_total{kind="x"}`).Add(42)
	set.NewGauge(`e2e_pushed_gauge`, func() float64 { return 3.5 })
	h := set.NewHistogram(`e2e_pushed_seconds`)
	for i := 0; i < 10; i++ {
		h.Update(0.1)
	}
	if err := set.PushMetrics(ctx, in.URL+"/api/v1/import/prometheus", &metrics.PushOptions{ExtraLabels: `instance="pusher"`}); err != nil {
		t.Fatalf("VictoriaMetrics/metrics push: %v", err)
	}
	check := func(q, want string) {
		t.Helper()
		res := in.Query(ctx, q, time.Time{})
		if len(res) != 1 || res[0].Value[1] != want {
			t.Fatalf("%s: got %v; want one series with value %s", q, res, want)
		}
	}
	check(`e2e_pushed_total{kind="x",instance="pusher"}`, "42")
	check(`e2e_pushed_gauge{instance="pusher"}`, "3.5")
	check(`e2e_pushed_seconds_count{instance="pusher"}`, "10")
	check(`sum(e2e_pushed_seconds_bucket{instance="pusher"})`, "10")

	// Metadata from # TYPE / # HELP is served.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.URL+"/api/v1/metadata?metric=e2e_text_total", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	_, _ = mb.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(mb.String(), `"type":"counter"`) || !strings.Contains(mb.String(), "Things counted.") {
		t.Fatalf("metadata: got %s; want type counter and the help text", mb.String())
	}
}

// TestKill9KeepsAcknowledgedWrites sends a burst of acknowledged writes,
// kills the collector with SIGKILL and checks every sample after restart.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The count below sums over 40 metrics whose series differ only by
	// name: that needs delayed __name__ removal, as in Prometheus.
	flags := []string{"-query.enable-feature=promql-delayed-name-removal"}
	in := collectortest.StartIn(t, dir, flags...)
	now := time.Now().Truncate(time.Second)
	const requests, series, perSeries = 40, 50, 10
	var wg sync.WaitGroup
	errs := make(chan string, requests)
	for r := 0; r < requests; r++ {
		wg.Go(func() {
			b := testBatch(fmt.Sprintf("e2e_kill_%d", r), series, perSeries, now)
			if status, body, _ := postRemoteWrite(t, in, b, 1); status != http.StatusNoContent {
				errs <- fmt.Sprintf("request %d: status %d: %s", r, status, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	in.Kill()
	in2 := collectortest.StartIn(t, dir, flags...)
	res := in2.Query(t.Context(), `sum(count_over_time({__name__=~"e2e_kill_.*"}[1h]))`, now)
	if len(res) != 1 || res[0].Value[1] != strconv.Itoa(requests*series*perSeries) {
		t.Fatalf("after kill -9 and restart: got %v; want %d samples", res, requests*series*perSeries)
	}
	for r := 0; r < requests; r += 13 {
		checkStored(t, in2, testBatch(fmt.Sprintf("e2e_kill_%d", r), series, perSeries, now), now)
	}
}

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// TestBadInput checks each kind of bad input gets its status and a message
// that names the problem, and that nothing of a rejected request is stored.
func TestBadInput(t *testing.T) {
	t.Parallel()
	in := collectortest.Start(t, "-ingest.max-body-bytes=65536", "-ingest.max-decoded-bytes=262144",
		"-ingest.max-labels-per-series=8", "-ingest.max-label-name-len=32", "-ingest.max-label-value-len=64")
	ctx := t.Context()
	now := time.Now()
	rw := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	seriesBody := func(labels ...string) []byte {
		b := &samples.Batch{}
		b.StartSeries(nil)
		for i := 0; i+1 < len(labels); i += 2 {
			b.AddLabel(labels[i], labels[i+1])
		}
		b.AddSample(now.UnixMilli(), 1)
		return snappy.Encode(nil, remotewrite.AppendV1(nil, b))
	}
	manyLabels := []string{"__name__", "bad_many"}
	for i := 0; i < 10; i++ {
		manyLabels = append(manyLabels, fmt.Sprintf("l%d", i), "v")
	}
	// A snappy header that claims a 1 GiB decoded length, with no data.
	hugeClaim := []byte{0x80, 0x80, 0x80, 0x80, 0x04}
	futureBatch := testBatch("bad_future", 1, 1, now.Add(time.Hour))

	cases := []struct {
		name    string
		path    string
		body    []byte
		headers map[string]string
		status  int
		msg     string
	}{
		{"garbage protobuf", "/api/v1/write", snappy.Encode(nil, []byte("\x0a\xff\xff\xff\xff\x0fgarbage")), rw, 400, "remote write"},
		{"wrong content type", "/api/v1/write", seriesBody("__name__", "x"), map[string]string{"Content-Type": "application/json", "Content-Encoding": "snappy"}, 415, "application/x-protobuf"},
		{"unknown proto", "/api/v1/write", seriesBody("__name__", "x"), map[string]string{"Content-Type": "application/x-protobuf;proto=foo.Bar", "Content-Encoding": "snappy"}, 415, "proto="},
		{"wrong encoding", "/api/v1/write", seriesBody("__name__", "x"), map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"}, 415, "snappy"},
		{"bad snappy", "/api/v1/write", []byte("this is not snappy at all"), rw, 400, "snappy"},
		{"oversized body", "/api/v1/write", bytes.Repeat([]byte{0}, 70000), rw, 413, "-ingest.max-body-bytes=65536"},
		{"huge decoded claim", "/api/v1/write", hugeClaim, rw, 413, "-ingest.max-decoded-bytes=262144"},
		{"too many labels", "/api/v1/write", seriesBody(manyLabels...), rw, 400, "-ingest.max-labels-per-series=8"},
		{"long label name", "/api/v1/write", seriesBody("__name__", "bad_name", strings.Repeat("n", 40), "v"), rw, 400, "-ingest.max-label-name-len=32"},
		{"long label value", "/api/v1/write", seriesBody("__name__", "bad_value", "l", strings.Repeat("v", 100)), rw, 400, "-ingest.max-label-value-len=64"},
		{"missing metric name", "/api/v1/write", seriesBody("job", "x"), rw, 400, "no metric name"},
		{"invalid utf8 name", "/api/v1/write", seriesBody("__name__", "bad\xff"), rw, 400, "UTF-8"},
		{"duplicate label", "/api/v1/write", seriesBody("__name__", "bad_dup", "a", "1", "a", "2"), rw, 400, "twice"},
		{"far future", "/api/v1/write", snappy.Encode(nil, remotewrite.AppendV1(nil, futureBatch)), rw, 400, "-ingest.max-future-drift"},
		{"text bad value", "/api/v1/import/prometheus", []byte("ok_metric 1\nbad_text_value 12x\n"), nil, 400, "line 2"},
		{"text bad label", "/api/v1/import/prometheus", []byte("ok_metric 1\nok_metric 2\nbad_text{a=b} 1\n"), nil, 400, "line 3"},
		{"text bad gzip", "/api/v1/import/prometheus", []byte("not gzip"), map[string]string{"Content-Encoding": "gzip"}, 400, "gzip"},
		{"text gzip bomb", "/api/v1/import/prometheus", gz(strings.Repeat("a_metric 1\n", 40000)), map[string]string{"Content-Encoding": "gzip"}, 413, "-ingest.max-decoded-bytes"},
		{"text bad extra_label", "/api/v1/import/prometheus?extra_label=novalue", []byte("ok_metric 1\n"), nil, 400, "extra_label"},
	}
	for _, c := range cases {
		status, msg := in.Post(ctx, c.path, c.body, c.headers)
		if status != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: got %d %q; want %d with %q", c.name, status, msg, c.status, c.msg)
		}
	}
	// All-or-nothing: the good lines before a bad one were not stored.
	if res := in.Query(ctx, `{__name__=~"ok_metric|bad_.*"}`, time.Time{}); len(res) != 0 {
		t.Fatalf("rejected requests stored %v; want nothing", res)
	}
	// Rejections are counted by reason.
	resp, err := http.Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	_, _ = mb.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`telltale_ingest_rejected_total{reason="too_many_labels"} 1`, `telltale_ingest_failed_requests_total{endpoint="remote_write",reason="too_large"} 2`} {
		if !strings.Contains(mb.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The process survived all of it.
	if status, _ := in.Post(ctx, "/api/v1/import/prometheus", []byte("alive_metric 1\n"), nil); status != 204 {
		t.Fatalf("after bad input: got %d; want 204", status)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "tokens.yml")
	os.WriteFile(f, []byte("tokens:\n  - name: writer\n    token: writer-token-0123456789\n    scopes: [write]\n  - name: reader\n    token: reader-token-0123456789\n    scopes: [read]\n"), 0o600)
	in := collectortest.Start(t, "-auth.tokens-file", f)
	ctx := t.Context()
	do := func(method, path, token string, body []byte) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, in.URL+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	cases := []struct {
		method, path, token string
		status              int
		msg                 string
	}{
		{"POST", "/api/v1/import/prometheus", "", 401, "bearer token"},
		{"POST", "/api/v1/import/prometheus", "wrong-token-0123456789", 401, "unknown token"},
		{"POST", "/api/v1/import/prometheus", "reader-token-0123456789", 403, `lacks scope "write"`},
		{"POST", "/api/v1/import/prometheus", "writer-token-0123456789", 204, ""},
		{"GET", "/api/v1/query?query=auth_metric", "writer-token-0123456789", 403, `lacks scope "read"`},
		{"GET", "/api/v1/query?query=auth_metric", "reader-token-0123456789", 200, `"auth_metric"`},
		{"GET", "/metrics", "", 401, "bearer token"},
		{"GET", "/healthz", "", 200, "ok"},
	}
	for _, c := range cases {
		status, msg := do(c.method, c.path, c.token, []byte("auth_metric 1\n"))
		if status != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s with %q: got %d %q; want %d with %q", c.method, c.path, c.token, status, msg, c.status, c.msg)
		}
	}
}

// vmagentPath finds the vmagent binary .ci/run installs; outside CI the
// test is skipped when it is missing.
func vmagentPath(t *testing.T) string {
	t.Helper()
	return collectortest.Peer(t, "vmagent", "TELLTALE_VMAGENT", "GOBIN=~/.cache/telltale/bin go install github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent@v1.151.0")
}

// TestVMAgentRemoteWrite has a real vmagent scrape a test endpoint and
// remote-write to the collector.
func TestVMAgentRemoteWrite(t *testing.T) {
	t.Parallel()
	bin := vmagentPath(t)
	in := collectortest.Start(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE vmagent_e2e_value gauge\nvmagent_e2e_value{kind=\"a\"} 123.5\nvmagent_e2e_value{kind=\"b\"} -7")
	}))
	defer target.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scrape.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("scrape_configs:\n  - job_name: e2e\n    scrape_interval: 1s\n    static_configs:\n      - targets: [%q]\n", strings.TrimPrefix(target.URL, "http://"))), 0o600)
	cmd := exec.CommandContext(t.Context(), bin,
		"-promscrape.config="+cfg,
		"-remoteWrite.url="+in.URL+"/api/v1/write",
		"-remoteWrite.tmpDataPath="+filepath.Join(dir, "tmp"),
		"-remoteWrite.flushInterval=200ms",
		"-httpListenAddr="+collectortest.FreeAddr(t))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res := in.Query(t.Context(), `vmagent_e2e_value{job="e2e"}`, time.Time{})
		got := map[string]string{}
		for _, r := range res {
			got[r.Metric["kind"]] = r.Value[1].(string)
		}
		if got["a"] == "123.5" && got["b"] == "-7" {
			up := in.Query(t.Context(), `up{job="e2e"}`, time.Time{})
			if len(up) != 1 || up[0].Value[1] != "1" {
				t.Fatalf("got up=%v; want 1", up)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmagent samples not queryable after 60s: got %v\nvmagent log:\n%s", got, log.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestQueryAPI checks the endpoints Grafana's data source calls.
func TestQueryAPI(t *testing.T) {
	t.Parallel()
	in := collectortest.Start(t)
	now := time.Now().Truncate(time.Second)
	b := testBatch("e2e_api", 3, 5, now)
	if status, body, _ := postRemoteWrite(t, in, b, 1); status != 204 {
		t.Fatalf("write: %d %s", status, body)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(in.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.String()
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	cases := []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/labels", 200, `"instance"`},
		{"/api/v1/label/instance/values", 200, `["host-0","host-1","host-2"]`},
		{"/api/v1/label/job/values?match[]=e2e_api", 200, `["e2e"]`},
		{"/api/v1/series?match[]=e2e_api{instance=\"host-1\"}", 200, `"instance":"host-1"`},
		{"/api/v1/query?query=sum(e2e_api)&time=" + ts, 200, `"resultType":"vector"`},
		{"/api/v1/query?query=scalar(sum(e2e_api))&time=" + ts, 200, `"resultType":"scalar","result":[` + ts + `,"3012.75"]`},
		{"/api/v1/query_range?query=e2e_api&start=" + strconv.FormatInt(now.Unix()-4, 10) + "&end=" + ts + "&step=1", 200, `"resultType":"matrix"`},
		{"/api/v1/status/buildinfo", 200, `"version"`},
		{"/api/v1/query?query=sum(", 400, `"errorType":"bad_data"`},
		{"/api/v1/query", 400, "no expression found in input"},
		{"/api/v1/query_range?query=up&start=10&end=5&step=1", 400, "end timestamp must not be before start"},
		{"/api/v1/query_range?query=up&start=0&end=100000&step=1", 400, "exceeded maximum resolution"},
		{"/api/v1/series", 400, "no match[] parameter"},
		{"/api/v1/query?query=up&time=yesterday", 400, "cannot parse"},
	}
	for _, c := range cases {
		status, body := get(c.path)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: got %d %s; want %d containing %s", c.path, status, body, c.status, c.want)
		}
	}
	// POST form, as Grafana sends by default.
	resp, err := http.PostForm(in.URL+"/api/v1/query", map[string][]string{"query": {"count(e2e_api)"}, "time": {ts}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), `"value":[`+ts+`,"3"]`) {
		t.Fatalf("POST query: got %s; want count 3", buf.String())
	}
}
