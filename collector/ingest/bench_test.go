package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// rwBodies returns n snappy remote-write 1.0 bodies of perReq samples each,
// cycling over nSeries node_exporter-like series; every pass over the
// series moves time forward 10 s, as a real sender does.
func rwBodies(n, nSeries, perReq int, start time.Time) [][]byte {
	return rwBodiesOffset(n, nSeries, 0, perReq, start, false)
}

// rwBodiesOffset is rwBodies over series first..first+nSeries-1; with
// hist, each sample is a native histogram like an OpenTelemetry SDK's
// exponential histogram (schema 3, 24 populated buckets) instead of a float.
func rwBodiesOffset(n, nSeries, first, perReq int, start time.Time, hist bool) [][]byte {
	bodies := make([][]byte, n)
	var b samples.Batch
	var pb []byte
	next := 0
	for i := range bodies {
		b.Reset()
		for j := 0; j < perReq; j++ {
			s := first + next%nSeries
			pass := next / nSeries
			next++
			b.StartSeries(nil)
			b.AddLabel("__name__", "node_cpu_seconds_total")
			b.AddLabel("cpu", fmt.Sprint(s%64))
			b.AddLabel("instance", fmt.Sprintf("host-%04d.example.com:9100", s/64))
			b.AddLabel("job", "node")
			b.AddLabel("mode", [...]string{"user", "system", "idle", "iowait"}[s%4])
			b.AddLabel("region", "eu-west-1")
			b.AddLabel("env", "prod")
			t := start.Add(time.Duration(pass) * 10 * time.Second).UnixMilli()
			if !hist {
				b.AddSample(t, float64(pass)*1.5+float64(s))
				continue
			}
			// Every bucket grows by pass+1 per pass: a counter histogram.
			deltas := make([]int64, 24)
			deltas[0] = int64(pass + 1)
			b.AddHistogram(samples.Histogram{T: t, Schema: 3, IntCount: uint64(24 * (pass + 1)), Sum: float64(pass+1) * 12,
				PositiveSpans: []samples.Span{{Offset: -8, Length: 20}, {Offset: 2, Length: 4}}, PositiveDeltas: deltas})
		}
		pb = remotewrite.AppendV1(pb[:0], &b)
		bodies[i] = snappy.Encode(nil, pb)
	}
	return bodies
}

type discardResponse struct {
	h      http.Header
	status int
}

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(s int)           { d.status = s }

// BenchmarkRemoteWrite measures the whole write path short of the network:
// snappy, protobuf decode, validation, series-ref cache, TSDB append and
// WAL commit, with 4 concurrent senders, 10k series, 2,000 samples a request.
func BenchmarkRemoteWrite(b *testing.B) { benchRemoteWrite(b, false) }

// BenchmarkRemoteWriteHistograms is BenchmarkRemoteWrite with native
// histogram samples (24 buckets each) instead of floats.
func BenchmarkRemoteWriteHistograms(b *testing.B) { benchRemoteWrite(b, true) }

func benchRemoteWrite(b *testing.B, hist bool) {
	const nSeries, perReq = 10_000, 2_000
	st, err := storage.Open(storage.Options{Dir: b.TempDir(), OutOfOrderWindow: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := NewHandlers(NewWriter(st, Options{Limits: Limits{MaxLabelsPerSeries: 40, MaxConcurrentInserts: 4}}), HTTPOptions{})
	start := time.Now().Add(-time.Hour)
	// Warm up: create the 10k series once, as a running collector has.
	for _, body := range rwBodiesOffset(nSeries/perReq, nSeries, 0, perReq, start.Add(-time.Minute), hist) {
		w := &discardResponse{h: http.Header{}}
		h.RemoteWrite(w, newRWRequest(body))
		if w.status != http.StatusNoContent {
			b.Fatalf("warm-up write: status %d", w.status)
		}
	}
	// Each sender owns a quarter of the series, as Prometheus' remote-write
	// shards do (by series hash), so one series' samples arrive in order.
	const senders = 4
	perSender := (b.N + senders - 1) / senders
	streams := make([][][]byte, senders)
	for k := range streams {
		streams[k] = rwBodiesOffset(perSender, nSeries/senders, k*nSeries/senders, perReq, start, hist)
	}
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(streams[0][0])))
	b.ResetTimer()
	t0 := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for k := 0; k < senders; k++ {
		n := perSender
		if rest := b.N - k*perSender; rest < n {
			n = max(rest, 0)
		}
		wg.Go(func() {
			w := &discardResponse{h: http.Header{}}
			for _, body := range streams[k][:n] {
				w.status = 0
				h.RemoteWrite(w, newRWRequest(body))
				if w.status != http.StatusNoContent {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d writes failed", f)
	}
	b.ReportMetric(float64(b.N*perReq)/el.Seconds(), "samples/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N*perReq), "ns/sample")
	// CPU time per sample is what the peers are compared on: it does not
	// depend on how many cores the run had to itself.
	b.ReportMetric(cpu.Seconds()*1e6/float64(b.N*perReq), "cpu-µs/sample")
}

// cpuTime returns the process' user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newRWRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	return r
}
