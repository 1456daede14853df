package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/otlp"
	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
)

// post sends an OTLP body with its Content-Type and Content-Encoding
// (none when "").
func (ts *testServer) post(t *testing.T, method, path, contentType, encoding string, body []byte) response {
	t.Helper()
	return ts.do(t, method, path, body, "Content-Type", contentType, "Content-Encoding", encoding)
}

// encodeOTLP encodes md in format f.
func encodeOTLP(t testing.TB, md pmetric.Metrics, f otlp.Format) []byte {
	t.Helper()
	return otlptest.Encode(t, md, f == otlp.JSON)
}

func decodeResponse(t *testing.T, f otlp.Format, body string) pmetricotlp.ExportResponse {
	t.Helper()
	resp := pmetricotlp.NewExportResponse()
	var err error
	if f == otlp.JSON {
		err = resp.UnmarshalJSON([]byte(body))
	} else {
		err = resp.UnmarshalProto([]byte(body))
	}
	if err != nil {
		t.Fatalf("cannot decode ExportMetricsServiceResponse %q: %v", body, err)
	}
	return resp
}

func TestOTLPWrites(t *testing.T) {
	f := func(path string, format otlp.Format, gz bool) {
		t.Helper()
		ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
		body, enc := encodeOTLP(t, otlptest.Metrics(otlptest.Time), format), ""
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
		want := otlptest.Series()
		if len(got) != len(want) {
			t.Fatalf("got %d series %v; want %d", len(got), ts.store.Names(), len(want))
		}
		for k, v := range want {
			if ss := got[k]; len(ss) != 1 || ss[0].V != v || ss[0].T != otlptest.Time.UnixMilli() {
				t.Fatalf("series %s: got %v; want %v at %d", k, ss, v, otlptest.Time.UnixMilli())
			}
		}
		if n := ts.counter(`telltale_ingest_samples_total{endpoint="otlp"}`); n != float64(len(want)) {
			t.Fatalf("got samples counter %v; want %d", n, len(want))
		}
		if n := ts.store.Exemplars(); n != 1 {
			t.Fatalf("got %d exemplars stored; want 1", n)
		}
	}
	f(OTLPPath, otlp.Protobuf, false)
	f(OTLPPath, otlp.JSON, false)
	f(OTLPPath, otlp.Protobuf, true)
	f(OTLPPrometheusPath, otlp.JSON, true)
}

func TestOTLPPartialSuccess(t *testing.T) {
	for _, format := range []otlp.Format{otlp.Protobuf, otlp.JSON} {
		ts := newTestServer(t, HTTPOptions{}, Limits{}, InfluxOptions{})
		r := ts.post(t, http.MethodPost, OTLPPath, format.ContentType(), "", encodeOTLP(t, otlptest.Rejects(otlptest.Time), format))
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
		for reason, want := range map[string]float64{otlp.ReasonDelta: 2, otlp.ReasonInvalidMetric: 1} {
			if n := ts.counter(`telltale_ingest_rejected_total{reason="` + reason + `"}`); n != want {
				t.Fatalf("got rejected{reason=%q} %v; want %v", reason, n, want)
			}
		}
	}
}

// statusMessage decodes a google.rpc.Status body.
func statusMessage(t *testing.T, f otlp.Format, body string) (int32, string) {
	t.Helper()
	var st statuspb.Status
	if f == otlp.JSON {
		var js struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(body), &js); err != nil {
			t.Fatalf("cannot decode JSON Status %q: %v", body, err)
		}
		return js.Code, js.Message
	}
	if err := proto.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("cannot decode protobuf Status %q: %v", body, err)
	}
	return st.GetCode(), st.GetMessage()
}

func TestOTLPBadInput(t *testing.T) {
	ts := newTestServer(t, HTTPOptions{MaxBodyBytes: 4 << 10, MaxDecodedBytes: 64 << 10}, Limits{}, InfluxOptions{})
	pb, js := otlp.Protobuf.ContentType(), otlp.JSON.ContentType()
	big := bytes.Repeat([]byte{0}, 1<<20)
	cases := []struct {
		name        string
		method      string
		contentType string
		encoding    string
		body        []byte
		wantStatus  int
		respFormat  otlp.Format
		wantMsg     string
	}{
		{"garbage protobuf", "POST", pb, "", []byte("\x0a\xff\xff\xff\xff\x0fgarbage"), 400, otlp.Protobuf, "cannot decode"},
		{"bad JSON", "POST", js, "", []byte(`{"resourceMetrics":[{"scopeMetrics":[`), 400, otlp.JSON, "application/json body as an OTLP ExportMetricsServiceRequest"},
		{"wrong content type", "POST", "text/plain", "", []byte("x"), 415, otlp.JSON, `Content-Type "text/plain"; OTLP/HTTP needs application/x-protobuf or application/json`},
		{"no content type", "POST", "", "", []byte("x"), 415, otlp.JSON, "no Content-Type"},
		{"too large", "POST", pb, "", bytes.Repeat([]byte{0x0a, 0x00}, 4<<10), 413, otlp.Protobuf, "-ingest.max-body-bytes=4096"},
		{"decompresses too large", "POST", pb, "gzip", collectortest.Gzip(t, big), 413, otlp.Protobuf, "-ingest.max-decoded-bytes=65536"},
		{"gzip garbage", "POST", pb, "gzip", []byte("not gzip at all"), 400, otlp.Protobuf, "gzip"},
		{"unknown encoding", "POST", js, "br", []byte("{}"), 415, otlp.JSON, `Content-Encoding "br"`},
		{"method", "GET", pb, "", nil, 405, otlp.Protobuf, "OTLP/HTTP export uses POST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.post(t, c.method, OTLPPath, c.contentType, c.encoding, c.body)
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

func TestOTLPUnavailable(t *testing.T) {
	t.Run("overloaded", func(t *testing.T) {
		ts := newOverloadedServer(t)
		r := ts.post(t, http.MethodPost, OTLPPath, otlp.Protobuf.ContentType(), "", encodeOTLP(t, otlptest.Metrics(otlptest.Time), otlp.Protobuf))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("got status %d Retry-After %q (%s); want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
		if _, msg := statusMessage(t, otlp.Protobuf, r.body); !strings.Contains(msg, "-ingest.max-concurrent-inserts") {
			t.Fatalf("got message %q; want it to name -ingest.max-concurrent-inserts", msg)
		}
	})
	t.Run("storage", func(t *testing.T) {
		ts := newFailingStorageServer(t)
		r := ts.post(t, http.MethodPost, OTLPPath, otlp.JSON.ContentType(), "", encodeOTLP(t, otlptest.Metrics(otlptest.Time), otlp.JSON))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("got status %d Retry-After %q (%s); want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
		if code, msg := statusMessage(t, otlp.JSON, r.body); code != codeUnavailable || !strings.Contains(msg, "disk full") {
			t.Fatalf("got code %d message %q; want %d and the storage error", code, msg, codeUnavailable)
		}
	})
}

func TestOTLPInvalidSample(t *testing.T) {
	// A sample far in the future is rejected by name; the rest of the
	// request is written and the answer is 200 with partial_success, as
	// OTLP prescribes for a partly accepted request.
	ts := newTestServer(t, HTTPOptions{}, Limits{MaxFutureDrift: time.Minute}, InfluxOptions{})
	md := otlptest.Metrics(otlptest.Time)
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).SetTimestamp(pcommon.NewTimestampFromTime(otlptest.Time.Add(time.Hour)))
	r := ts.post(t, http.MethodPost, OTLPPath, otlp.Protobuf.ContentType(), "", encodeOTLP(t, md, otlp.Protobuf))
	if r.status != http.StatusOK {
		t.Fatalf("got status %d (%s); want 200", r.status, r.body)
	}
	ps := decodeResponse(t, otlp.Protobuf, r.body).PartialSuccess()
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
