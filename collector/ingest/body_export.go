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

// ReadBody reads r's body as every write endpoint does: a body over
// -ingest.max-body-bytes is refused (from Content-Length before reading, or
// while reading), Content-Encoding gzip (or x-gzip) is decompressed up to
// -ingest.max-decoded-bytes, identity or no encoding is taken as is, and any
// other encoding is refused. Errors wrap ErrTooLarge, ErrInvalid or
// ErrUnsupportedMediaType and say which limit or header to fix. The returned
// slice aliases bufs and is valid until bufs is reused.
func (h *Handlers) ReadBody(r *http.Request, bufs *BodyBuffers) ([]byte, error) {
	rb := reqBuffers{body: bufs.Raw[:0], decoded: bufs.Decoded[:0]}
	data, err := h.readDecoded(r, &rb)
	bufs.Raw, bufs.Decoded = rb.body, rb.decoded
	return data, err
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

// Reject counts and logs a failed request exactly as Fail does, but writes
// no response: it is for protocols that prescribe their own error body
// (InfluxDB's JSON errors, OTLP's google.rpc.Status). It returns the status
// to answer, from StatusOf; on 503 the caller should set Retry-After as
// Fail does (RetryAfterSeconds).
func (h *Handlers) Reject(endpoint string, err error) int {
	h.fail(nopResponseWriter{}, endpoint, err)
	return StatusOf(err)
}

// FailWith answers a failed request for protocols that prescribe their own
// error body (InfluxDB's JSON errors, OTLP's google.rpc.Status): counted and
// logged as Fail does, the status from StatusOf, Retry-After on 503, then
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

// RetryAfterSeconds is the Retry-After value Fail sends with a 503.
const RetryAfterSeconds = "5"

// nopResponseWriter is a ResponseWriter that drops what it is given, so
// Reject can reuse fail's counting and logging.
type nopResponseWriter struct{}

func (nopResponseWriter) Header() http.Header         { return http.Header{} }
func (nopResponseWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopResponseWriter) WriteHeader(int)             {}
