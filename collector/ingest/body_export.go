package ingest

// This file exports what the Influx and OTLP endpoints (collector/influx,
// collector/otlp) reuse from the shared handlers, so every write endpoint
// reads bodies under the same limits, is counted under the same metrics and
// answers overload the same way. It wraps the unexported code in http.go and
// holds what those endpoints' pooled request states share.

import (
	"net/http"

	"github.com/telltale-dev/telltale/samples"
)

// ErrMethodNotAllowed marks a request with an HTTP method the endpoint does
// not serve: StatusOf maps it to 405.
var ErrMethodNotAllowed = errMethod

// BodyBuffers holds the reusable buffers of one request body. The zero value
// is ready for use; keep one per pooled request state so reading a body
// allocates nothing once the buffers have grown.
type BodyBuffers struct {
	Raw     []byte // the body as sent
	Decoded []byte // the body after gunzip
}

// Trim drops the buffers an unusually large request grew (Raw over 8 MiB,
// Decoded over 32 MiB), the bounds the Prometheus endpoints keep too, so a
// pooled request state does not hold on to them. Call it before putting the
// state back into its pool.
func (b *BodyBuffers) Trim() {
	if cap(b.Raw) > 8<<20 {
		b.Raw = nil
	}
	if cap(b.Decoded) > 32<<20 {
		b.Decoded = nil
	}
}

// ResetBatch empties b for the next request of a pooled state; a batch an
// unusually large request grew past 1Mi samples is dropped instead, so the
// pool does not hold on to its memory.
func ResetBatch(b *samples.Batch) {
	if cap(b.Samples) > 1<<20 {
		*b = samples.Batch{}
		return
	}
	b.Reset()
}

// CountRequest counts one request to endpoint (telltale_ingest_requests_total).
func (h *Handlers) CountRequest(endpoint string) {
	if c := h.reqs[endpoint]; c != nil {
		c.Inc()
		return
	}
	h.set.GetOrCreateCounter(`telltale_ingest_requests_total{endpoint="` + endpoint + `"}`).Inc()
}

// CountSamples counts n samples committed through endpoint
// (telltale_ingest_samples_total).
func (h *Handlers) CountSamples(endpoint string, n int) {
	if c := h.samples[endpoint]; c != nil {
		c.Add(n)
		return
	}
	h.set.GetOrCreateCounter(`telltale_ingest_samples_total{endpoint="` + endpoint + `"}`).Add(n)
}

// Reject counts and logs a failed request and returns the status to answer,
// from StatusOf; it writes no response. On 503 the caller sets Retry-After
// (RetryAfterSeconds). FailWith and the plain-text answers of the
// Prometheus endpoints go through it.
func (h *Handlers) Reject(endpoint string, err error) int {
	status := StatusOf(err)
	h.set.GetOrCreateCounter(`telltale_ingest_failed_requests_total{endpoint="` + endpoint + `",reason="` + reasonOf(status) + `"}`).Inc()
	if status >= 500 {
		h.log.Warn("write failed", "component", "ingest", "endpoint", endpoint, "status", status, "err", err)
	} else {
		h.log.Debug("write rejected", "component", "ingest", "endpoint", endpoint, "status", status, "err", err)
	}
	return status
}

// FailWith answers a failed request with the error body the protocol
// prescribes (plain text for the Prometheus endpoints, InfluxDB's JSON
// errors, OTLP's google.rpc.Status): counted and logged by Reject, the status from StatusOf, Retry-After on 503, then
// the body that body returns for that status, as contentType. Headers the
// protocol adds must be set on w before the call.
func (h *Handlers) FailWith(w http.ResponseWriter, endpoint string, err error, contentType string, body func(status int) []byte) {
	status := h.Reject(endpoint, err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfterSeconds)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body(status))
}

// RetryAfterSeconds is the Retry-After value sent with every 503.
const RetryAfterSeconds = "5"
