package tail_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/gorilla/websocket"

	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// benchStack is the collector's write path (real TSDB in a temp dir) with a
// hub observing it, served over HTTP like the collector does.
type benchStack struct {
	writer *ingest.Writer
	hub    *tail.Hub
	srv    *httptest.Server
}

func newBenchStack(b *testing.B) *benchStack {
	b.Helper()
	st, err := storage.Open(storage.Options{Dir: b.TempDir(), OutOfOrderWindow: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s := &benchStack{writer: ingest.NewWriter(st, ingest.Options{}), hub: tail.New(tail.Options{})}
	s.writer.SetObserver(s.hub)
	h := ingest.NewHandlers(s.writer, ingest.HTTPOptions{})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/write", h.RemoteWrite)
	mux.Handle("/api/v1/tail", s.hub)
	s.srv = httptest.NewServer(mux)
	b.Cleanup(func() {
		_ = s.hub.Close(b.Context())
		s.srv.Close()
	})
	return s
}

// subscribe connects a client for sel; onMessage runs on its reading
// goroutine for every message after the subscribed one. With a nil
// onMessage messages are discarded without being kept, as cheaply as a
// client can, since the client shares the benchmark's CPUs.
func (s *benchStack) subscribe(b *testing.B, sel string, onMessage func(raw []byte)) {
	b.Helper()
	u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/api/v1/tail?" + url.Values{"match[]": {sel}}.Encode()
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil { // subscribed
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if onMessage == nil {
				_, r, err := c.NextReader()
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, r)
				continue
			}
			_, raw, err := c.ReadMessage()
			if err != nil {
				return
			}
			onMessage(raw)
		}
	})
	b.Cleanup(func() { c.Close(); wg.Wait() })
}

// loadBatch is a 1000-series write over 100 jobs, one sample per series,
// with series keys so the writer's cache is used as for remote write.
func loadBatch(nSeries int) *samples.Batch {
	var b samples.Batch
	for i := range nSeries {
		b.StartSeries([]byte("k" + strconv.Itoa(i)))
		b.AddLabel("__name__", "http_requests_total")
		b.AddLabel("job", "job-"+strconv.Itoa(i%100))
		b.AddLabel("instance", "host-"+strconv.Itoa(i)+":9100")
		b.AddSample(0, float64(i))
	}
	return &b
}

// BenchmarkIngestWithClients measures ingest.Writer.Write of 1000-series
// writes into the embedded TSDB while websocket clients watch: 0 clients
// (the baseline), 10 clients watching one job each (1% of the series, the
// usual use), and 10 clients watching everything (every sample is encoded
// and sent 10 times on the same two cores). Compare ns/sample (wall time
// of Write) and cpu-ns/sample (CPU time of the whole process, the hub's
// client goroutines and the in-process clients' reading included, so it
// overstates the collector's share; it is steadier than wall time on a
// busy machine).
func BenchmarkIngestWithClients(b *testing.B) {
	const nSeries = 1000
	for _, tc := range []struct {
		name    string
		clients int
		all     bool
	}{
		{"clients=0", 0, false},
		{"clients=10/match=one_job", 10, false},
		{"clients=10/match=all", 10, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := newBenchStack(b)
			for i := range tc.clients {
				sel := fmt.Sprintf(`http_requests_total{job="job-%d"}`, i)
				if tc.all {
					sel = `{__name__=~".+"}`
				}
				s.subscribe(b, sel, nil)
			}
			batch := loadBatch(nSeries)
			t0 := time.Now().UnixMilli() - time.Hour.Milliseconds()
			ctx := b.Context()
			b.ReportAllocs()
			i := int64(0)
			cpu0 := cpuTime()
			for b.Loop() {
				i++
				for j := range batch.Samples {
					batch.Samples[j].T = t0 + i
				}
				if _, err := s.writer.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nSeries), "ns/sample")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*nSeries), "cpu-ns/sample")
		})
	}
}

// BenchmarkTailLatency measures how long after a remote-write request is
// acknowledged (its HTTP response read) a subscribed client has the
// sample, with 10 clients watching a probe series in 1000-series writes.
// Reported per client receipt: p50-ms, p99-ms and max-ms. A receipt before
// the acknowledgement (the hub queues before the response is written)
// counts as 0. send-p50-ms and send-p99-ms measure from sending the request
// instead, so they include decoding and committing the write.
func BenchmarkTailLatency(b *testing.B) {
	const clients, nSeries = 10, 1000
	s := newBenchStack(b)
	type receipt struct {
		v  float64
		at time.Time
	}
	got := make(chan receipt, clients*4)
	for range clients {
		s.subscribe(b, `latency_probe`, func(raw []byte) {
			at := time.Now()
			var m tail.Message
			if json.Unmarshal(raw, &m) == nil {
				for _, smp := range m.Samples {
					got <- receipt{float64(smp.V), at}
				}
			}
		})
	}
	batch := loadBatch(nSeries)
	batch.StartSeries([]byte("probe"))
	batch.AddLabel("__name__", "latency_probe")
	batch.AddSample(0, 0)
	probe := &batch.Samples[len(batch.Samples)-1]
	t0 := time.Now().UnixMilli() - time.Hour.Milliseconds()
	var body []byte
	lat := make([]time.Duration, 0, 1024)
	fromSend := make([]time.Duration, 0, 1024)
	i := int64(0)
	for b.Loop() {
		i++
		for j := range batch.Samples {
			batch.Samples[j].T = t0 + i
		}
		probe.V = float64(i)
		body = snappy.Encode(body[:cap(body)], remotewrite.AppendV1(nil, batch))
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, s.srv.URL+"/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		sent := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		acked := time.Now()
		if resp.StatusCode/100 != 2 {
			b.Fatalf("remote write: %s", resp.Status)
		}
		for range clients {
			select {
			case r := <-got:
				if r.v != float64(i) {
					b.Fatalf("client got probe %g; want %d", r.v, i)
				}
				lat = append(lat, max(0, r.at.Sub(acked)))
				fromSend = append(fromSend, r.at.Sub(sent))
			case <-time.After(10 * time.Second):
				b.Fatalf("probe %d not received within 10s", i)
			}
		}
	}
	slices.Sort(lat)
	slices.Sort(fromSend)
	q := func(d []time.Duration, p float64) float64 { return float64(d[int(p*float64(len(d)-1))]) / 1e6 }
	b.ReportMetric(q(lat, 0.50), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	b.ReportMetric(q(lat, 1), "max-ms")
	b.ReportMetric(q(fromSend, 0.50), "send-p50-ms")
	b.ReportMetric(q(fromSend, 0.99), "send-p99-ms")
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
