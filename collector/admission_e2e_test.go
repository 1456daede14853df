package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// bigResultQuery loads series whose one-hour range query at a 5 s step
// answers with tens of megabytes, more than loopback's socket buffers hold,
// and returns that request line. A client that sends it and never reads
// keeps the server writing: it holds its query slot.
func bigResultQuery(t *testing.T, in *collectortest.Instance) string {
	t.Helper()
	end := time.Now().Add(-time.Minute).Truncate(time.Minute).UnixMilli()
	var batch []prompb.TimeSeries
	for i := range 3000 {
		var pts []point
		for k := range 13 {
			pts = append(pts, point{T: end - int64(k)*5*60_000, V: float64(i + k)})
		}
		for l, r := 0, len(pts)-1; l < r; l, r = l+1, r-1 {
			pts[l], pts[r] = pts[r], pts[l]
		}
		batch = append(batch, toPrompb(labels.FromStrings("__name__", "big_result", "series", fmt.Sprintf("s-%05d-with-a-long-label-value", i)), pts))
	}
	if status, msg, err := remoteWrite(t.Context(), in.URL, batch); err != nil || status != 204 {
		t.Fatalf("load: %d %s %v", status, msg, err)
	}
	v := url.Values{"query": {"big_result"}, "start": {secs(end-time.Hour.Milliseconds(), 0)}, "end": {secs(end, 0)}, "step": {"5"}}
	return "GET /api/v1/query_range?" + v.Encode() + " HTTP/1.1\r\nHost: " + in.Addr + "\r\nAccept-Encoding: identity\r\n\r\n"
}

// stalledReader opens a connection, sends request and never reads.
func stalledReader(t *testing.T, addr, request string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitMetric waits until the collector's metric name satisfies ok.
func waitMetric(t *testing.T, in *collectortest.Instance, name string, ok func(float64) bool) {
	t.Helper()
	for {
		v := in.Metric(t.Context(), name)
		if ok(v) {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s (last %v)", name, v)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestQueryAdmissionUnderLoad: with every query slot held and the queue
// full, a further query is shed at once with 503 and Retry-After, writes
// keep succeeding, and the queued queries are answered once slots free up.
func TestQueryAdmissionUnderLoad(t *testing.T) {
	in := collectortest.Start(t, "-query.max-concurrency=2", "-query.max-queue=2", "-query.max-queue-duration=10m")
	req := bigResultQuery(t, in)

	holders := []net.Conn{stalledReader(t, in.Addr, req), stalledReader(t, in.Addr, req)}
	waitMetric(t, in, "telltale_query_running", func(v float64) bool { return v == 2 })

	// Two more wait in the queue.
	type result struct {
		status int
		err    error
	}
	queued := make(chan result, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := http.Get(in.URL + "/api/v1/query?query=count(big_result)")
			if err != nil {
				queued <- result{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			queued <- result{status: resp.StatusCode}
		})
	}
	waitMetric(t, in, "telltale_query_queued", func(v float64) bool { return v == 2 })

	// The next is shed at once.
	resp, err := http.Get(in.URL + "/api/v1/query?query=count(big_result)")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "-query.max-concurrency") {
		t.Errorf("query beyond slots and queue: got %d (Retry-After %q) %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// Writes are not held up by saturated queries.
	for i := range 20 {
		status, msg := in.Post(t.Context(), "/api/v1/import/prometheus", fmt.Appendf(nil, "during_saturation{i=\"%d\"} 1\n", i), nil)
		if status != 204 {
			t.Fatalf("write %d while queries are saturated: got %d %s; want 204", i, status, msg)
		}
	}

	// Freeing the slots lets the queued queries through.
	for _, c := range holders {
		c.Close()
	}
	wg.Wait()
	close(queued)
	for r := range queued {
		if r.err != nil || r.status != 200 {
			t.Errorf("queued query after the slots freed: got %d %v; want 200", r.status, r.err)
		}
	}
	if got := in.Metric(t.Context(), `telltale_query_rejected_total{reason="overloaded"}`); got < 1 {
		t.Errorf("telltale_query_rejected_total{reason=\"overloaded\"} = %v; want the shed query counted", got)
	}
	if got := in.Query(t.Context(), "count(during_saturation)", time.Time{}); len(got) != 1 || got[0].Value[1] != "20" {
		t.Errorf("writes made during saturation: got %v; want all 20 stored", got)
	}
}

// TestQueryWriteTimeout: a client that asks for a large answer and never
// reads it is cut off after the write deadline, freeing its slot and the
// answer's memory, instead of pinning them while it stays connected.
func TestQueryWriteTimeout(t *testing.T) {
	in := collectortest.Start(t, "-query.timeout=5s", "-query.max-queue-duration=1s", "-query.write-timeout=1s")
	req := bigResultQuery(t, in)
	c := stalledReader(t, in.Addr, req)
	waitMetric(t, in, "telltale_query_running", func(v float64) bool { return v == 1 })
	waitMetric(t, in, "telltale_query_running", func(v float64) bool { return v == 0 })
	// The server gave up on the connection: what it sent before is not a
	// complete answer.
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	got, _ := io.ReadAll(c) // ends in EOF or a reset
	// A complete answer ends its chunked body with a zero-length chunk (or,
	// sent whole, with the JSON's closing braces).
	if s := string(got); strings.HasSuffix(s, "\r\n0\r\n\r\n") || strings.HasSuffix(strings.TrimSpace(s), "}}") {
		t.Errorf("the stalled client got a complete answer (%d bytes); want it cut off at the write deadline", len(got))
	}
}
