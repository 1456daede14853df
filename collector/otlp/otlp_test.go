package otlp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/ingest"
)

type testServer struct {
	url    string
	store  *collectortest.MemStore
	set    *metrics.Set
	writer *ingest.Writer
}

func newTestServer(t *testing.T, hopts ingest.HTTPOptions, limits ingest.Limits) *testServer {
	t.Helper()
	ts := &testServer{store: collectortest.NewMemStore(), set: metrics.NewSet()}
	ts.writer = ingest.NewWriter(ts.store, ingest.Options{Limits: limits, Metrics: ts.set, Now: func() time.Time { return testTime }})
	hopts.Metrics = ts.set
	h := NewHandler(ingest.NewHandlers(ts.writer, hopts), Options{})
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	mux.Handle(PrometheusPath, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (ts *testServer) post(t *testing.T, method, path, contentType, encoding string, body []byte) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
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
	return response{resp.StatusCode, resp.Header, b}
}

// counter returns the value of a metric line of the set, or -1.
func (ts *testServer) counter(name string) float64 { return collectortest.Metric(ts.set, name) }

func decodeResponse(t *testing.T, f Format, body []byte) pmetricotlp.ExportResponse {
	t.Helper()
	resp := pmetricotlp.NewExportResponse()
	var err error
	if f == JSON {
		err = resp.UnmarshalJSON(body)
	} else {
		err = resp.UnmarshalProto(body)
	}
	if err != nil {
		t.Fatalf("cannot decode ExportMetricsServiceResponse %q: %v", body, err)
	}
	return resp
}

func TestHandlerWrites(t *testing.T) {
	f := func(path string, format Format, gz bool) {
		t.Helper()
		ts := newTestServer(t, ingest.HTTPOptions{}, ingest.Limits{})
		body, enc := encode(t, testMetrics(testTime), format), ""
		if gz {
			body, enc = collectortest.Gzip(t, body), "gzip"
		}
		r := ts.post(t, http.MethodPost, path, format.ContentType()+"; charset=utf-8", enc, body)
		if r.status != http.StatusOK {
			t.Fatalf("%s %s gzip=%v: got status %d (%s); want 200", path, format.ContentType(), gz, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != format.ContentType() {
			t.Fatalf("got Content-Type %q; want %q", ct, format.ContentType())
		}
		resp := decodeResponse(t, format, r.body)
		if n := resp.PartialSuccess().RejectedDataPoints(); n != 0 || resp.PartialSuccess().ErrorMessage() != "" {
			t.Fatalf("got partial success %d %q; want none", n, resp.PartialSuccess().ErrorMessage())
		}
		got := ts.store.Snapshot()
		want := testSeries()
		if len(got) != len(want) {
			t.Fatalf("got %d series %v; want %d", len(got), ts.store.Names(), len(want))
		}
		for k, v := range want {
			if ss := got[k]; len(ss) != 1 || ss[0].V != v || ss[0].T != testTime.UnixMilli() {
				t.Fatalf("series %s: got %v; want %v at %d", k, ss, v, testTime.UnixMilli())
			}
		}
		if n := ts.counter(`telltale_ingest_samples_total{endpoint="otlp"}`); n != float64(len(want)) {
			t.Fatalf("got samples counter %v; want %d", n, len(want))
		}
		if n := ts.store.Exemplars(); n != 1 {
			t.Fatalf("got %d exemplars stored; want 1", n)
		}
	}
	f(Path, Protobuf, false)
	f(Path, JSON, false)
	f(Path, Protobuf, true)
	f(PrometheusPath, JSON, true)
}

func TestHandlerPartialSuccess(t *testing.T) {
	for _, format := range []Format{Protobuf, JSON} {
		ts := newTestServer(t, ingest.HTTPOptions{}, ingest.Limits{})
		r := ts.post(t, http.MethodPost, Path, format.ContentType(), "", encode(t, rejectMetrics(testTime), format))
		if r.status != http.StatusOK {
			t.Fatalf("got status %d (%s); want 200", r.status, r.body)
		}
		ps := decodeResponse(t, format, r.body).PartialSuccess()
		if ps.RejectedDataPoints() != 3 || !strings.Contains(ps.ErrorMessage(), "3 of 5 data points rejected") {
			t.Fatalf("got partial success %d %q; want 3 rejected with a message", ps.RejectedDataPoints(), ps.ErrorMessage())
		}
		if got := ts.store.Names(); len(got) != 2 || got[0] != `{__name__="latency_exp", job="mixed"}` || got[1] != `{__name__="ok", job="mixed"}` {
			t.Fatalf("got series %v; want the native histogram latency_exp and ok{job=\"mixed\"}", got)
		}
		for reason, want := range map[string]float64{ReasonDelta: 2, ReasonInvalidMetric: 1} {
			if n := ts.counter(`telltale_ingest_rejected_total{reason="` + reason + `"}`); n != want {
				t.Fatalf("got rejected{reason=%q} %v; want %v", reason, n, want)
			}
		}
	}
}

// statusMessage decodes a google.rpc.Status body.
func statusMessage(t *testing.T, f Format, body []byte) (int32, string) {
	t.Helper()
	var st statuspb.Status
	if f == JSON {
		var js struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &js); err != nil {
			t.Fatalf("cannot decode JSON Status %q: %v", body, err)
		}
		return js.Code, js.Message
	}
	if err := proto.Unmarshal(body, &st); err != nil {
		t.Fatalf("cannot decode protobuf Status %q: %v", body, err)
	}
	return st.GetCode(), st.GetMessage()
}

func TestHandlerBadInput(t *testing.T) {
	ts := newTestServer(t, ingest.HTTPOptions{MaxBodyBytes: 4 << 10, MaxDecodedBytes: 64 << 10}, ingest.Limits{})
	pb, js := Protobuf.ContentType(), JSON.ContentType()
	big := bytes.Repeat([]byte{0}, 1<<20)
	cases := []struct {
		name        string
		method      string
		contentType string
		encoding    string
		body        []byte
		wantStatus  int
		respFormat  Format
		wantMsg     string
	}{
		{"garbage protobuf", "POST", pb, "", []byte("\x0a\xff\xff\xff\xff\x0fgarbage"), 400, Protobuf, "cannot decode"},
		{"bad JSON", "POST", js, "", []byte(`{"resourceMetrics":[{"scopeMetrics":[`), 400, JSON, "application/json body as an OTLP ExportMetricsServiceRequest"},
		{"wrong content type", "POST", "text/plain", "", []byte("x"), 415, JSON, `Content-Type "text/plain"; OTLP/HTTP needs application/x-protobuf or application/json`},
		{"no content type", "POST", "", "", []byte("x"), 415, JSON, "no Content-Type"},
		{"too large", "POST", pb, "", bytes.Repeat([]byte{0x0a, 0x00}, 4<<10), 413, Protobuf, "-ingest.max-body-bytes=4096"},
		{"decompresses too large", "POST", pb, "gzip", collectortest.Gzip(t, big), 413, Protobuf, "-ingest.max-decoded-bytes=65536"},
		{"gzip garbage", "POST", pb, "gzip", []byte("not gzip at all"), 400, Protobuf, "gzip"},
		{"unknown encoding", "POST", js, "br", []byte("{}"), 415, JSON, `Content-Encoding "br"`},
		{"method", "GET", pb, "", nil, 405, Protobuf, "OTLP/HTTP export uses POST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.post(t, c.method, Path, c.contentType, c.encoding, c.body)
			if r.status != c.wantStatus {
				t.Fatalf("got status %d (%s); want %d", r.status, r.body, c.wantStatus)
			}
			if ct := r.header.Get("Content-Type"); ct != c.respFormat.ContentType() {
				t.Fatalf("got Content-Type %q; want %q", ct, c.respFormat.ContentType())
			}
			code, msg := statusMessage(t, c.respFormat, r.body)
			if !strings.Contains(msg, c.wantMsg) {
				t.Fatalf("got message %q; want it to contain %q", msg, c.wantMsg)
			}
			if code != grpcCode(c.wantStatus) {
				t.Fatalf("got code %d; want %d", code, grpcCode(c.wantStatus))
			}
		})
	}
	if got := ts.store.Names(); len(got) != 0 {
		t.Fatalf("bad requests wrote series %v", got)
	}
	if n := ts.counter(`telltale_ingest_failed_requests_total{endpoint="otlp",reason="bad_request"}`); n != 3 {
		t.Fatalf("got failed{bad_request} %v; want 3", n)
	}
}

func TestHandlerUnavailable(t *testing.T) {
	t.Run("overloaded", func(t *testing.T) {
		ts := newTestServer(t, ingest.HTTPOptions{}, ingest.Limits{MaxConcurrentInserts: 1, MaxQueueDuration: 10 * time.Millisecond})
		release, err := ts.writer.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		r := ts.post(t, http.MethodPost, Path, Protobuf.ContentType(), "", encode(t, testMetrics(testTime), Protobuf))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("got status %d Retry-After %q (%s); want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
		if _, msg := statusMessage(t, Protobuf, r.body); !strings.Contains(msg, "-ingest.max-concurrent-inserts") {
			t.Fatalf("got message %q; want it to name -ingest.max-concurrent-inserts", msg)
		}
	})
	t.Run("storage", func(t *testing.T) {
		ts := newTestServer(t, ingest.HTTPOptions{}, ingest.Limits{})
		ts.store.SetCommitErr(errors.New("disk full"))
		r := ts.post(t, http.MethodPost, Path, JSON.ContentType(), "", encode(t, testMetrics(testTime), JSON))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("got status %d Retry-After %q (%s); want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
		if code, msg := statusMessage(t, JSON, r.body); code != codeUnavailable || !strings.Contains(msg, "disk full") {
			t.Fatalf("got code %d message %q; want %d and the storage error", code, msg, codeUnavailable)
		}
	})
}

func TestHandlerInvalidSample(t *testing.T) {
	// A sample far in the future is rejected by name; the rest of the
	// request is written and the answer is 200 with partial_success, as
	// OTLP prescribes for a partly accepted request.
	ts := newTestServer(t, ingest.HTTPOptions{}, ingest.Limits{MaxFutureDrift: time.Minute})
	md := testMetrics(testTime)
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).SetTimestamp(pcommonTime(testTime.Add(time.Hour)))
	r := ts.post(t, http.MethodPost, Path, Protobuf.ContentType(), "", encode(t, md, Protobuf))
	if r.status != http.StatusOK {
		t.Fatalf("got status %d (%s); want 200", r.status, r.body)
	}
	ps := decodeResponse(t, Protobuf, r.body).PartialSuccess()
	if ps.RejectedDataPoints() == 0 || !strings.Contains(ps.ErrorMessage(), "-ingest.max-future-drift") || !strings.Contains(ps.ErrorMessage(), "temperature_celsius{") {
		t.Fatalf("got partial success %d %q; want the temperature sample rejected naming -ingest.max-future-drift", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	got := ts.store.Snapshot()
	if _, ok := got[`{__name__="requests_total", http_method="GET", instance="pod-1", job="shop/checkout"}`]; !ok {
		t.Fatalf("the valid series were not written: %v", ts.store.Names())
	}
	for k := range got {
		if strings.Contains(k, "temperature") {
			t.Fatalf("the rejected series %s was written", k)
		}
	}
}
