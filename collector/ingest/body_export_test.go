package ingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/samples"
)

func TestFailWith(t *testing.T) {
	set := metrics.NewSet()
	h := NewHandlers(nil, HTTPOptions{Metrics: set})
	f := func(err error, wantStatus int, wantRetryAfter, wantReason string) {
		t.Helper()
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Protocol", "kept")
		gotStatus := 0
		h.FailWith(rec, "influx", err, "application/json", func(status int) []byte {
			gotStatus = status
			return []byte(fmt.Sprintf(`{"status":%d}`, status))
		})
		if rec.Code != wantStatus || gotStatus != wantStatus {
			t.Fatalf("%v: got status %d, body func given %d; want %d", err, rec.Code, gotStatus, wantStatus)
		}
		if got := rec.Body.String(); got != fmt.Sprintf(`{"status":%d}`, wantStatus) {
			t.Fatalf("%v: got body %q; want the body func's", err, got)
		}
		hd := rec.Header()
		if hd.Get("Retry-After") != wantRetryAfter || hd.Get("Content-Type") != "application/json" ||
			hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("X-Protocol") != "kept" {
			t.Fatalf("%v: got headers %v; want Retry-After %q, the content type, nosniff and the protocol's header", err, hd, wantRetryAfter)
		}
		var sb strings.Builder
		set.WritePrometheus(&sb)
		want := `telltale_ingest_failed_requests_total{endpoint="influx",reason="` + wantReason + `"} 1`
		if !strings.Contains(sb.String(), want) {
			t.Fatalf("%v: metrics lack %s:\n%s", err, want, sb.String())
		}
	}
	f(fmt.Errorf("%w: queue full", ErrOverloaded), http.StatusServiceUnavailable, RetryAfterSeconds, "unavailable")
	f(fmt.Errorf("%w: body too big", ErrTooLarge), http.StatusRequestEntityTooLarge, "", "too_large")
	f(fmt.Errorf("%w: bad line", ErrInvalid), http.StatusBadRequest, "", "bad_request")
}

func TestTrimAndResetBatch(t *testing.T) {
	small := BodyBuffers{Raw: make([]byte, 0, 1<<10), Decoded: make([]byte, 0, 1<<10)}
	small.Trim()
	if cap(small.Raw) != 1<<10 || cap(small.Decoded) != 1<<10 {
		t.Fatalf("small buffers: got caps %d, %d; want both kept", cap(small.Raw), cap(small.Decoded))
	}
	big := BodyBuffers{Raw: make([]byte, 0, 8<<20+1), Decoded: make([]byte, 0, 32<<20+1)}
	big.Trim()
	if big.Raw != nil || big.Decoded != nil {
		t.Fatalf("big buffers: got caps %d, %d; want both dropped", cap(big.Raw), cap(big.Decoded))
	}

	var b samples.Batch
	b.StartSeries([]byte("k"))
	b.AddLabel("__name__", "up")
	b.AddSample(1, 1)
	ResetBatch(&b)
	if len(b.Series) != 0 || len(b.Labels) != 0 || b.Len() != 0 || cap(b.Samples) == 0 {
		t.Fatalf("small batch: got %d series, %d samples, cap %d; want empty with its capacity kept", len(b.Series), b.Len(), cap(b.Samples))
	}
	b.Samples = make([]samples.Sample, 0, 1<<20+1)
	ResetBatch(&b)
	if cap(b.Samples) != 0 {
		t.Fatalf("big batch: got samples cap %d; want dropped", cap(b.Samples))
	}
}
