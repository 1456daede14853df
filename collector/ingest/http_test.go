package ingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// failingRequest is a request whose failure answer is {"status":N} in
// JSON, recording the status it was given.
type failingRequest struct {
	request   // only failure is called
	gotStatus int
}

func (q *failingRequest) failure(_ http.ResponseWriter, status int, _ error) (string, []byte) {
	q.gotStatus = status
	return "application/json", []byte(fmt.Sprintf(`{"status":%d}`, status))
}

func TestFail(t *testing.T) {
	set := metrics.NewSet()
	h := NewHandlers(nil, HTTPOptions{Metrics: set})
	ep := &endpoint{name: "influx"}
	f := func(err error, wantStatus int, wantRetryAfter, wantReason string) {
		t.Helper()
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Protocol", "kept")
		req := &failingRequest{}
		h.fail(rec, ep, req, err)
		gotStatus := req.gotStatus
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
	f(fmt.Errorf("%w: queue full", ErrOverloaded), http.StatusServiceUnavailable, retryAfterSeconds, "unavailable")
	f(fmt.Errorf("%w: body too big", ErrTooLarge), http.StatusRequestEntityTooLarge, "", "too_large")
	f(fmt.Errorf("%w: bad line", ErrInvalid), http.StatusBadRequest, "", "bad_request")
}
