package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/samples"
)

// HTTPOptions configure the ingest HTTP handlers.
type HTTPOptions struct {
	// MaxBodyBytes bounds a request body as sent (compressed). 0 means 32 MiB.
	MaxBodyBytes int64
	// MaxDecodedBytes bounds a body after decompression. 0 means 128 MiB.
	MaxDecodedBytes int64
	// BodyReadTimeout bounds reading one body; 0 means none.
	BodyReadTimeout time.Duration
	// MaxInflightBytes bounds the bytes all write requests hold together
	// (see readBody); 0 means no bound.
	MaxInflightBytes int64
	Logger           *slog.Logger // nil means slog.Default()
	Metrics          *metrics.Set
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handlers serve the Prometheus write endpoints (remote write, text
// import) on top of a Writer, and hold what every write endpoint shares:
// the body limits and in-flight budget, the counters, and the prelude
// (serve). NewInflux and NewOTLP add the other formats' endpoints.
type Handlers struct {
	w    *Writer
	opts HTTPOptions
	log  *slog.Logger
	set  *metrics.Set

	inflight inflight
	samples  map[string]*metrics.Counter
	reqs     map[string]*metrics.Counter

	remoteWrite, text endpoint
}

// NewHandlers returns the write endpoints' handlers.
func NewHandlers(w *Writer, opts HTTPOptions) *Handlers {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.MaxDecodedBytes <= 0 {
		opts.MaxDecodedBytes = 128 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handlers{w: w, opts: opts, log: opts.Logger.With("component", "ingest"), set: opts.Metrics,
		samples: map[string]*metrics.Counter{}, reqs: map[string]*metrics.Counter{}}
	h.inflight.max = opts.MaxInflightBytes
	h.set.NewGauge("telltale_ingest_inflight_bytes", func() float64 { return float64(h.inflight.used.Load()) })
	h.set.NewGauge("telltale_ingest_inflight_bytes_limit", func() float64 { return float64(h.inflight.max) })
	for _, ep := range []string{"remote_write", "prometheus_text", "influx", "otlp"} {
		h.samples[ep] = h.set.GetOrCreateCounter(`telltale_ingest_samples_total{endpoint="` + ep + `"}`)
		h.reqs[ep] = h.set.GetOrCreateCounter(`telltale_ingest_requests_total{endpoint="` + ep + `"}`)
	}
	h.remoteWrite = endpoint{name: "remote_write", protocol: "remote write", methods: []string{http.MethodPost},
		encoding: snappyBody, decodeFactor: batchFactor}
	h.remoteWrite.requests.New = func() any { return new(rwRequest) }
	h.text = endpoint{name: "prometheus_text", protocol: "the Prometheus text import", methods: []string{http.MethodPost, http.MethodPut, http.MethodGet},
		encoding: gzipOrIdentity, decodeFactor: batchFactor}
	h.text.requests.New = func() any { return &textRequest{now: h.opts.Now} }
	return h
}

// Writer returns the writer behind the handlers.
func (h *Handlers) Writer() *Writer { return h.w }

// endpoint is what a write endpoint tells the prelude every write endpoint
// runs (Handlers.serve).
type endpoint struct {
	// name labels the ingest counters: remote_write, prometheus_text,
	// influx, otlp.
	name string
	// protocol names the protocol in messages ("remote write").
	protocol string
	// methods are the HTTP methods served (the first is the one to use);
	// others get 405.
	methods []string
	// encoding is the Content-Encodings the body may have.
	encoding bodyEncoding
	// decodeFactor is how many bytes decoding holds per decompressed body
	// byte (see readBody).
	decodeFactor int
	// requests pools the format's request states; its New makes one for
	// this endpoint (the handler's options, the API version).
	requests sync.Pool
}

// request is one request to a write endpoint, as its format decodes and
// answers it; serve calls its methods in this order. Implementations are
// the formats' pooled request states; noContent and plainText give the
// Prometheus endpoints' answers.
type request interface {
	// buffers returns the request's body buffers.
	buffers() *bodyBuffers
	// reset empties the state for the next request, dropping buffers an
	// unusually large request grew (bodyBuffers.trim, resetBatch).
	reset()
	// check reads what the request says besides its body (Content-Type,
	// query parameters); an error refuses it before its body is read.
	check(r *http.Request) error
	// decode decodes the body (valid until the request ends) into the
	// batch to write. Its errors wrap a sentinel StatusOf maps, mostly
	// ErrInvalid.
	decode(ctx context.Context, data []byte) (*samples.Batch, error)
	// answer answers a request whose batch Writer.Write took, err being
	// what Write returned: it returns the error to answer as a failure
	// instead, or nil once it has answered.
	answer(w http.ResponseWriter, written Written, err error) error
	// failure returns the body of the answer to a failed request with
	// status, and its content type; it may add its protocol's headers to w.
	failure(w http.ResponseWriter, status int, err error) (contentType string, body []byte)
}

// serve is the one prelude of every write endpoint: count the request;
// check its method and what its headers and query say; read the body under
// the limits before taking an insert slot (see body.go); decode; write;
// count what was stored; answer. Failures are answered by fail. The
// request's state comes from ep's pool and goes back to it, reset.
func (h *Handlers) serve(w http.ResponseWriter, r *http.Request, ep *endpoint) {
	req := ep.requests.Get().(request)
	defer func() {
		req.reset()
		ep.requests.Put(req)
	}()
	h.reqs[ep.name].Inc()
	err := req.check(r)
	if !slices.Contains(ep.methods, r.Method) {
		err = fmt.Errorf("%w: method %s not allowed; %s uses %s", errMethod, r.Method, ep.protocol, ep.methods[0])
	}
	if err != nil {
		h.fail(w, ep, req, err)
		return
	}
	data, releaseBytes, err := h.readBody(w, r, req.buffers(), ep.encoding, ep.decodeFactor)
	defer releaseBytes()
	if err != nil {
		h.fail(w, ep, req, err)
		return
	}
	release, err := h.w.Acquire(r.Context())
	if err != nil {
		h.fail(w, ep, req, err)
		return
	}
	defer release()
	b, err := req.decode(r.Context(), data)
	if err != nil {
		h.fail(w, ep, req, err)
		return
	}
	written, err := h.w.Write(r.Context(), b)
	h.samples[ep.name].Add(written.Samples + written.Histograms)
	if err := req.answer(w, written, err); err != nil {
		h.fail(w, ep, req, err)
	}
}

var (
	errMethod = errors.New("method not allowed")
	errBody   = errors.New("cannot read request")
)

// StatusOf maps a write-path error to its HTTP status: the one place where
// that mapping lives.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, errBody), errors.Is(err, context.Canceled):
		return http.StatusBadRequest
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrStorage), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// reasonOf names a rejected request's reason for the rejected counter.
func reasonOf(status int) string {
	switch status {
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusBadRequest:
		return "bad_request"
	}
	return "internal"
}

// retryAfterSeconds is the Retry-After value sent with every 503.
const retryAfterSeconds = "5"

// fail answers a failed write request: counted by reason
// (telltale_ingest_failed_requests_total) and logged, the status from
// StatusOf, Retry-After on 503, then the error body req's protocol
// prescribes (plain text for the Prometheus endpoints, InfluxDB's JSON
// errors, OTLP's google.rpc.Status).
func (h *Handlers) fail(w http.ResponseWriter, ep *endpoint, req request, err error) {
	status := StatusOf(err)
	h.set.GetOrCreateCounter(`telltale_ingest_failed_requests_total{endpoint="` + ep.name + `",reason="` + reasonOf(status) + `"}`).Inc()
	if status >= 500 {
		h.log.Warn("write failed", "endpoint", ep.name, "status", status, "err", err)
	} else {
		h.log.Debug("write rejected", "endpoint", ep.name, "status", status, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	contentType, body := req.failure(w, status, err)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// noContent answers a request whose batch was written in full with 204, as
// the Prometheus and Influx endpoints do.
type noContent struct{}

func (noContent) answer(w http.ResponseWriter, _ Written, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// plainText answers a failed request with the message as plain text, as the
// Prometheus endpoints do.
type plainText struct{}

func (plainText) failure(_ http.ResponseWriter, _ int, err error) (string, []byte) {
	return "text/plain; charset=utf-8", []byte(err.Error() + "\n")
}
