package ingest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// testNow is the clock of the test servers and the time of the test
// requests' data points.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testServer serves every write endpoint over HTTP, as the collector
// mounts them (without auth), writing to a MemStore.
type testServer struct {
	url    string
	store  *collectortest.MemStore
	set    *metrics.Set
	writer *Writer
	ready  bool // what the Influx /health reports
}

func newTestServer(t *testing.T, hopts HTTPOptions, limits Limits, iopts InfluxOptions) *testServer {
	t.Helper()
	ts := &testServer{store: collectortest.NewMemStore(), set: metrics.NewSet(), ready: true}
	ts.writer = NewWriter(ts.store, Options{Limits: limits, Metrics: ts.set, Now: func() time.Time { return testNow }})
	hopts.Metrics = ts.set
	in := NewHandlers(ts.writer, hopts)
	iopts.Now = func() time.Time { return testNow }
	iopts.Version = "test-1"
	iopts.Ready = func() bool { return ts.ready }
	influx := NewInflux(in, iopts)
	otlpH := NewOTLP(in, OTLPOptions{})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/write", in.RemoteWrite)
	mux.HandleFunc("/api/v1/import/prometheus", in.ImportPrometheus)
	mux.HandleFunc(InfluxPathV1, influx.WriteV1)
	mux.HandleFunc(InfluxPathV2, influx.WriteV2)
	mux.HandleFunc(InfluxPathPing, influx.Ping)
	mux.HandleFunc(InfluxPathHealth, influx.Health)
	mux.Handle(OTLPPath, otlpH)
	mux.Handle(OTLPPrometheusPath, otlpH)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

// newOverloadedServer returns a test server whose one insert slot is held
// until the test ends: a write waits 10ms for it, then gets 503.
func newOverloadedServer(t *testing.T) *testServer {
	t.Helper()
	ts := newTestServer(t, HTTPOptions{}, Limits{MaxConcurrentInserts: 1, MaxQueueDuration: 10 * time.Millisecond}, InfluxOptions{})
	release, err := ts.writer.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return ts
}

// newFailingStorageServer returns a test server whose storage fails every
// commit with "disk full".
func newFailingStorageServer(t *testing.T) *testServer {
	t.Helper()
	ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
	ts.store.SetCommitErr(errors.New("disk full"))
	return ts
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends body to pathQuery with the headers given as name, value pairs
// (an empty value sends none).
func (ts *testServer) do(t *testing.T, method, pathQuery string, body []byte, headers ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.url+pathQuery, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// counter returns the value of a metric line of the set, or -1.
func (ts *testServer) counter(name string) float64 { return collectortest.Metric(ts.set, name) }
