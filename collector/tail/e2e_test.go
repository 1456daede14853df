package tail_test

// End-to-end tests: the real collector binary, built once into a temporary
// directory, talking HTTP and websockets on 127.0.0.1.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/gorilla/websocket"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/collector/tail/client"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

func TestMain(m *testing.M) { collectortest.Main(m) }

// startCollector runs the collector with args added to the test defaults,
// waits until /readyz answers, and at the end of the test checks that it
// stops within 30 s of SIGTERM.
func startCollector(t *testing.T, args ...string) *collectortest.Instance {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test builds the collector; skipped with -short")
	}
	c := collectortest.Start(t, append([]string{"-log.level=warn"}, args...)...)
	t.Cleanup(func() {
		c.Signal(syscall.SIGTERM)
		select {
		case <-c.Exited():
		case <-time.After(30 * time.Second):
			t.Errorf("collector did not stop within 30s of SIGTERM")
		}
	})
	return c
}

// remoteWrite pushes b with Prometheus remote write 1.0.
func remoteWrite(t *testing.T, c *collectortest.Instance, b *samples.Batch) {
	t.Helper()
	body := snappy.Encode(nil, remotewrite.AppendV1(nil, b))
	status, msg := c.Post(t.Context(), "/api/v1/write", body, map[string]string{
		"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"})
	if status/100 != 2 {
		t.Fatalf("remote write: got %d %s; want 2xx", status, msg)
	}
}

// importText pushes Prometheus text exposition.
func importText(t *testing.T, c *collectortest.Instance, text string) {
	t.Helper()
	status, msg := c.Post(t.Context(), "/api/v1/import/prometheus", []byte(text), map[string]string{"Content-Type": "text/plain"})
	if status/100 != 2 {
		t.Fatalf("import %q: got %d %s; want 2xx", text, status, msg)
	}
}

// nextSamples reads samples messages from c until n samples came, and
// renders them as lines; anything else fails the test.
func nextSamples(t *testing.T, c *client.Conn, n int) string {
	t.Helper()
	return collectSamples(t, func() tail.Message {
		m, raw, err := c.Next()
		if err != nil {
			t.Fatalf("next message: %v", err)
		}
		if m.Type != tail.TypeSamples {
			t.Fatalf("next message: got %s; want samples", raw)
		}
		return m
	}, n)
}

func dialCollector(t *testing.T, c *collectortest.Instance, sels ...string) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	conn, err := client.Dial(ctx, client.Options{URL: c.URL, Selectors: sels})
	if err != nil {
		t.Fatalf("subscribe %v: %v", sels, err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func TestE2ETailSeesExactlyTheMatchingSamples(t *testing.T) {
	c := startCollector(t)
	sub := dialCollector(t, c, `e2e_requests_total{job="api"}`, `e2e_up`)
	now := time.Now().UnixMilli()

	var b samples.Batch
	add := func(name, job string, vals ...float64) {
		b.StartSeries(nil)
		b.AddLabel("__name__", name)
		b.AddLabel("job", job)
		for i, v := range vals {
			b.AddSample(now-int64(len(vals)-i)*1000, v)
		}
	}
	add("e2e_requests_total", "api", 10, 11)
	add("e2e_requests_total", "db", 20)
	add("e2e_other", "api", 30)
	add("e2e_up", "db", 1)
	remoteWrite(t, c, &b)
	want := fmt.Sprintf("e2e_requests_total{job=\"api\"} %d 10\ne2e_requests_total{job=\"api\"} %d 11\ne2e_up{job=\"db\"} %d 1", now-2000, now-1000, now-1000)
	if got := nextSamples(t, sub, 3); got != want {
		t.Fatalf("remote write:\ngot\n%s\nwant\n%s", got, want)
	}

	// A write with no match sends nothing: the next message is the one
	// after it.
	importText(t, c, fmt.Sprintf("e2e_other{job=\"api\"} 1 %d\ne2e_requests_total{job=\"db\"} 2 %d\n", now, now))
	importText(t, c, fmt.Sprintf("e2e_requests_total{job=\"api\"} 12 %d\ne2e_other{job=\"x\"} 3 %d\n", now, now))
	if got, want := nextSamples(t, sub, 1), fmt.Sprintf(`e2e_requests_total{job="api"} %d 12`, now); got != want {
		t.Fatalf("text import:\ngot\n%s\nwant\n%s", got, want)
	}

	// A graceful stop says goodbye to clients before exiting.
	c.Signal(syscall.SIGTERM)
	_, raw, err := sub.Next()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != tail.CloseShutdown || ce.Text != "server shutting down" {
		t.Fatalf("on SIGTERM: got %s %v; want close 1001 \"server shutting down\"", raw, err)
	}
	select {
	case <-c.Exited():
		if code := c.ExitCode(); code != 0 {
			t.Fatalf("collector exit after SIGTERM: code %d; want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("collector still running 30s after SIGTERM")
	}
}

func TestE2EDeploysReachTheTail(t *testing.T) {
	c := startCollector(t)
	sub := dialCollector(t, c, `e2e_up`)
	resp, err := http.Post(c.URL+"/api/v1/deploys", "application/json",
		strings.NewReader(`{"service":"api","env":"prod","version":"1.2.3","who":"alice","message":"e2e"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		t.Skipf("POST /api/v1/deploys answers %d: the deploys endpoint is not wired yet (PublishDeploy is tested in TestTailPublishesDeploys)", resp.StatusCode)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /api/v1/deploys: got %d %s", resp.StatusCode, body)
	}
	for {
		m, raw, err := sub.Next()
		if err != nil {
			t.Fatalf("waiting for the deploy: %v", err)
		}
		if m.Type != tail.TypeDeploy {
			continue // e.g. deploy-marker samples
		}
		var d struct{ Service, Version, Who string }
		if err := json.Unmarshal(m.Deploy, &d); err != nil || d.Service != "api" || d.Version != "1.2.3" || d.Who != "alice" {
			t.Fatalf("deploy message: got %s; want service api version 1.2.3 by alice", raw)
		}
		return
	}
}

func TestE2ETailCommand(t *testing.T) {
	c := startCollector(t)
	bin := collectortest.Binary(t)
	type proc struct {
		cmd *exec.Cmd
		out *bufio.Scanner
		err *collectortest.SyncBuffer
	}
	run := func(args ...string) *proc {
		cmd := exec.Command(bin, append([]string{"tail", "-collector", c.URL}, args...)...)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd: cmd, out: bufio.NewScanner(stdout), err: &collectortest.SyncBuffer{}}
		cmd.Stderr = p.err
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return p
	}
	jsonTail := run("-json", `e2e_cli{job="api"}`)
	textTail := run(`e2e_cli`)

	// The JSON tail prints the subscribed message first.
	if !jsonTail.out.Scan() || !strings.Contains(jsonTail.out.Text(), `"type":"subscribed"`) {
		t.Fatalf("first JSON line: got %q; want the subscribed message (stderr: %s)", jsonTail.out.Text(), jsonTail.err.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(textTail.err.String(), "tail: subscribed to e2e_cli") {
		if time.Now().After(deadline) {
			t.Fatalf("text tail did not subscribe; stderr: %s", textTail.err.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts := time.Now().Truncate(time.Second).UnixMilli()
	importText(t, c, fmt.Sprintf("e2e_cli{job=\"db\"} 1 %d\ne2e_cli{job=\"api\"} 2.5 %d\n", ts, ts))

	if !jsonTail.out.Scan() {
		t.Fatalf("no JSON line after the import; stderr: %s", jsonTail.err.String())
	}
	var m tail.Message
	if err := json.Unmarshal(jsonTail.out.Bytes(), &m); err != nil || m.Type != tail.TypeSamples || lines(m) != fmt.Sprintf(`e2e_cli{job="api"} %d 2.5`, ts) {
		t.Fatalf("JSON line: got %s; want one samples message with e2e_cli{job=\"api\"} 2.5", jsonTail.out.Text())
	}
	stamp := time.UnixMilli(ts).Format("15:04:05.000")
	for _, want := range []string{stamp + `  e2e_cli{job="db"}  1`, stamp + `  e2e_cli{job="api"}  2.5`} {
		if !textTail.out.Scan() || textTail.out.Text() != want {
			t.Fatalf("text line: got %q; want %q (stderr: %s)", textTail.out.Text(), want, textTail.err.String())
		}
	}

	// Ctrl-C ends it cleanly.
	_ = textTail.cmd.Process.Signal(os.Interrupt)
	if err := textTail.cmd.Wait(); err != nil {
		t.Fatalf("tail after SIGINT: %v; want exit 0 (stderr: %s)", err, textTail.err.String())
	}
}

func TestE2ERejectsBadSubscriptions(t *testing.T) {
	c := startCollector(t, "-tail.max-selectors=2", "-tail.max-clients=1")
	ws := "ws" + strings.TrimPrefix(c.URL, "http") + "/api/v1/tail?"
	f := func(query string, header http.Header, wantStatus int, wantBody string) {
		t.Helper()
		conn, resp, err := websocket.DefaultDialer.Dial(ws+query, header)
		if err == nil {
			conn.Close()
			t.Fatalf("%s: upgraded; want %d", query, wantStatus)
		}
		if got := body(resp); resp == nil || resp.StatusCode != wantStatus || !strings.Contains(got, wantBody) {
			t.Fatalf("%s: got %s; want %d with %q", query, got, wantStatus, wantBody)
		}
	}
	f("match[]=up%7Bjob%3D", nil, 400, "invalid match[]")
	f("match[]=a&match[]=b&match[]=c", nil, 400, "limit -tail.max-selectors=2")
	f("match[]=up", http.Header{"Origin": {"https://elsewhere.example"}}, 403, "is not this collector")
	dialCollector(t, c, "up")
	f("match[]=up", nil, 503, "limit -tail.max-clients=1")
}

func TestE2ETailNeedsTheReadScope(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	err := os.WriteFile(tokens, []byte(`tokens:
  - {name: reader, token: "reader-token-0123456789", scopes: [read]}
  - {name: writer, token: "writer-token-0123456789", scopes: [write]}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, "-auth.tokens-file", tokens)
	f := func(token string, wantStatus int) {
		t.Helper()
		_, err := client.Dial(t.Context(), client.Options{URL: c.URL, Selectors: []string{"up"}, Token: token})
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != wantStatus {
			t.Fatalf("token %q: got %v; want %d", token, err, wantStatus)
		}
	}
	f("", 401)
	f("writer-token-0123456789", 403)
	conn, err := client.Dial(t.Context(), client.Options{URL: c.URL, Selectors: []string{"up"}, Token: "reader-token-0123456789"})
	if err != nil {
		t.Fatalf("read token in the Authorization header: %v", err)
	}
	conn.Close()
	// Browsers cannot set headers on websockets: ?access_token= works too.
	ws := "ws" + strings.TrimPrefix(c.URL, "http") + "/api/v1/tail?match[]=up&access_token=reader-token-0123456789"
	wc, resp, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatalf("read token as access_token: %v (%s)", err, body(resp))
	}
	wc.Close()
}

func TestE2EIngestWithAHundredClientsSomeStuck(t *testing.T) {
	c := startCollector(t, "-tail.queue-size=8")
	sel := url.Values{"match[]": {`{__name__=~"e2e_load_.*"}`}}.Encode()
	ws := "ws" + strings.TrimPrefix(c.URL, "http") + "/api/v1/tail?" + sel
	var readers sync.WaitGroup
	var conns []*websocket.Conn
	t.Cleanup(func() {
		for _, conn := range conns {
			conn.Close()
		}
	})
	for i := range 100 {
		conn, resp, err := websocket.DefaultDialer.Dial(ws, nil)
		if err != nil {
			t.Fatalf("client %d: %v (%s)", i, err, body(resp))
		}
		conns = append(conns, conn)
		if i%2 == 1 {
			continue // half never read a byte
		}
		readers.Go(func() {
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	if _, resp, err := websocket.DefaultDialer.Dial(ws, nil); err == nil || resp.StatusCode != 503 {
		t.Fatalf("client 101 with -tail.max-clients=100: got %v (%s); want 503", err, body(resp))
	}
	// 40 writes of 50 series x 40 samples: every write must succeed
	// however the clients behave.
	const writes, nSeries, perSeries = 40, 50, 40
	now := time.Now().UnixMilli()
	for w := range writes {
		var b samples.Batch
		for s := range nSeries {
			b.StartSeries(nil)
			b.AddLabel("__name__", fmt.Sprintf("e2e_load_%d", s))
			b.AddLabel("pad", strings.Repeat("p", 200))
			for k := range perSeries {
				b.AddSample(now-int64((writes-w)*perSeries-k), float64(k))
			}
		}
		remoteWrite(t, c, &b)
	}
	total := writes * nSeries * perSeries
	if got := c.Metric(t.Context(), `telltale_ingest_samples_total{endpoint="remote_write"}`); got != float64(total) {
		t.Fatalf("samples ingested: got %g; want %d", got, total)
	}
	dropped := c.Metric(t.Context(), "telltale_tail_dropped_samples_total")
	sent := c.Metric(t.Context(), "telltale_tail_samples_sent_total")
	if dropped <= 0 {
		t.Fatalf("telltale_tail_dropped_samples_total with 50 stuck clients and -tail.queue-size=8: got %g; want > 0", dropped)
	}
	t.Logf("%d samples ingested with 100 clients; tail sent %g samples and dropped %g", total, sent, dropped)

	// The stuck clients go; the tail still serves a new client.
	waitFor(t, "stuck clients to be disconnected", func() bool {
		return max(0, c.Metric(t.Context(), `telltale_tail_disconnects_total{reason="write_timeout"}`))+max(0, c.Metric(t.Context(), `telltale_tail_disconnects_total{reason="slow_client"}`)) > 0
	})
	for i := 0; c.Metric(t.Context(), "telltale_tail_clients") >= 100; i++ {
		if i == 3000 {
			t.Fatalf("still 100 clients after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fresh := dialCollector(t, c, "e2e_load_0")
	importText(t, c, fmt.Sprintf("e2e_load_0{pad=\"x\"} 7 %d\n", time.Now().UnixMilli()))
	if got := nextSamples(t, fresh, 1); !strings.Contains(got, `e2e_load_0{pad="x"}`) {
		t.Fatalf("fresh client after the load: got %s", got)
	}
	for _, conn := range conns {
		conn.Close()
	}
	readers.Wait()
}

// TestE2ETailHistograms: native histograms written over remote write 2.0
// reach a websocket client as "h", rendered as Prometheus' API renders
// them, beside the float samples of the same write, and the tail command
// prints their count and sum.
func TestE2ETailHistograms(t *testing.T) {
	c := startCollector(t)
	sub := dialCollector(t, c, `{__name__=~"e2e_hist.*"}`)
	cmd := exec.Command(collectortest.Binary(t), "tail", "-collector", c.URL, `{__name__=~"e2e_hist.*"}`)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &collectortest.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "tail: subscribed to") {
		if time.Now().After(deadline) {
			t.Fatalf("tail command did not subscribe; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	ts := time.Now().Truncate(time.Second).UnixMilli()
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", "e2e_hist_seconds")
	b.AddLabel("job", "api")
	// Schema 0: (0.5,1] 2, (1,2] 4, (2,4] 4.
	b.AddHistogram(samples.Histogram{T: ts, IntCount: 10, Sum: 20,
		PositiveSpans: []samples.Span{{Offset: 0, Length: 3}}, PositiveDeltas: []int64{2, 2, 0}})
	b.StartSeries(nil)
	b.AddLabel("__name__", "e2e_hist_up")
	b.AddSample(ts, 1)
	status, msg := c.Post(t.Context(), "/api/v1/write", snappy.Encode(nil, remotewrite.AppendV2(nil, &b)), map[string]string{
		"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy"})
	if status/100 != 2 {
		t.Fatalf("remote write 2.0: got %d %s; want 2xx", status, msg)
	}

	_, raw, err := sub.Next()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"samples":[{"labels":{"__name__":"e2e_hist_seconds","job":"api"},"t":%d,"h":{"count":"10","sum":"20","buckets":[[0,"0.5","1","2"],[0,"1","2","4"],[0,"2","4","4"]]}},`+
		`{"labels":{"__name__":"e2e_hist_up"},"t":%d,"v":"1"}]`, ts, ts)
	if !strings.Contains(string(raw), want) {
		t.Fatalf("samples message:\ngot  %s\nwant it to hold %s", raw, want)
	}
	stamp := time.UnixMilli(ts).Format("15:04:05.000")
	out := bufio.NewScanner(stdout)
	for _, want := range []string{stamp + `  e2e_hist_seconds{job="api"}  count=10 sum=20 buckets=3`, stamp + `  e2e_hist_up{}                1`} {
		if !out.Scan() || out.Text() != want {
			t.Fatalf("tail command line: got %q; want %q (stderr: %s)", out.Text(), want, stderr.String())
		}
	}
}
