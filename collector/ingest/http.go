package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
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
	// (see ReadBody); 0 means no bound.
	MaxInflightBytes int64
	Logger           *slog.Logger
	Metrics          *metrics.Set
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handlers serve the write endpoints on top of a Writer.
type Handlers struct {
	w    *Writer
	opts HTTPOptions
	log  *slog.Logger
	set  *metrics.Set

	bufs     sync.Pool // *reqBuffers
	inflight inflight
	samples  map[string]*metrics.Counter
	reqs     map[string]*metrics.Counter
}

type reqBuffers struct {
	BodyBuffers
	batch samples.Batch
	text  promtext.Parser
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
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handlers{w: w, opts: opts, log: opts.Logger, set: opts.Metrics,
		samples: map[string]*metrics.Counter{}, reqs: map[string]*metrics.Counter{}}
	h.inflight.max = opts.MaxInflightBytes
	h.set.NewGauge("telltale_ingest_inflight_bytes", func() float64 { return float64(h.inflight.used.Load()) })
	h.set.NewGauge("telltale_ingest_inflight_bytes_limit", func() float64 { return float64(h.inflight.max) })
	for _, ep := range []string{"remote_write", "prometheus_text", "influx", "otlp"} {
		h.samples[ep] = h.set.GetOrCreateCounter(`telltale_ingest_samples_total{endpoint="` + ep + `"}`)
		h.reqs[ep] = h.set.GetOrCreateCounter(`telltale_ingest_requests_total{endpoint="` + ep + `"}`)
	}
	return h
}

// Writer returns the writer behind the handlers.
func (h *Handlers) Writer() *Writer { return h.w }

func (h *Handlers) getBuffers() *reqBuffers {
	if b, ok := h.bufs.Get().(*reqBuffers); ok {
		return b
	}
	return &reqBuffers{}
}

func (h *Handlers) putBuffers(b *reqBuffers) {
	ResetBatch(&b.batch)
	b.Trim()
	h.bufs.Put(b)
}

// Content types of remote write 1.0 and 2.0.
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// RemoteWrite serves POST /api/v1/write: Prometheus remote write 1.0 and
// 2.0, snappy-compressed protobuf, float samples, native histograms and
// exemplars. It answers 204 once every sample is committed; when part of
// the request is invalid it commits the rest and answers 400 naming what
// was rejected (Writer.Write). Remote write 2.0 answers carry the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written counts
// of what was stored, on 204 and 400 alike.
func (h *Handlers) RemoteWrite(w http.ResponseWriter, r *http.Request) {
	const ep = "remote_write"
	h.reqs[ep].Inc()
	if r.Method != http.MethodPost {
		h.fail(w, ep, fmt.Errorf("%w: method %s not allowed; remote write uses POST", errMethod, r.Method))
		return
	}
	version, err := remoteWriteVersion(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	bufs := h.getBuffers()
	defer h.putBuffers(bufs)
	data, releaseBytes, err := h.ReadBody(w, r, &bufs.BodyBuffers, Snappy, BatchFactor)
	defer releaseBytes()
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	release, err := h.w.Acquire(r.Context())
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	defer release()
	b := &bufs.batch
	if version == 2 {
		_, err = remotewrite.DecodeV2(data, b)
	} else {
		_, err = remotewrite.DecodeV1(data, b)
	}
	if err != nil {
		h.fail(w, ep, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	written, err := h.w.Write(r.Context(), b)
	h.samples[ep].Add(written.Samples + written.Histograms)
	if version == 2 {
		// What was stored, also when part of the request was rejected
		// (remote write 2.0 spec: the sender trusts these counts).
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written.Samples))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(written.Histograms))
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(written.Exemplars))
	}
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// remoteWriteVersion maps a Content-Type to the remote write version.
func remoteWriteVersion(ct string) (int, error) {
	if ct == "" {
		return 1, nil // remote write 1.0 senders predating the header
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, fmt.Errorf("%w: cannot parse Content-Type %q: %v", ErrUnsupportedMediaType, ct, err)
	}
	if mt != "application/x-protobuf" {
		return 0, fmt.Errorf("%w: Content-Type %q; remote write needs application/x-protobuf (proto=%s or %s)", ErrUnsupportedMediaType, ct, protoV1, protoV2)
	}
	switch params["proto"] {
	case "", protoV1:
		return 1, nil
	case protoV2:
		return 2, nil
	}
	return 0, fmt.Errorf("%w: proto=%q in Content-Type; supported: %s (remote write 1.0) and %s (2.0)", ErrUnsupportedMediaType, params["proto"], protoV1, protoV2)
}

// ImportPrometheus serves /api/v1/import/prometheus: Prometheus text
// exposition, plain or gzip, with optional millisecond timestamps (what
// VictoriaMetrics/metrics push sends). extra_label=name=value query params
// add labels to every series.
func (h *Handlers) ImportPrometheus(w http.ResponseWriter, r *http.Request) {
	const ep = "prometheus_text"
	h.reqs[ep].Inc()
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodGet:
	default:
		h.fail(w, ep, fmt.Errorf("%w: method %s not allowed; use POST", errMethod, r.Method))
		return
	}
	extra, err := extraLabels(r)
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	bufs := h.getBuffers()
	defer h.putBuffers(bufs)
	data, releaseBytes, err := h.ReadBody(w, r, &bufs.BodyBuffers, GzipOrIdentity, BatchFactor)
	defer releaseBytes()
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	release, err := h.w.Acquire(r.Context())
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	defer release()
	bufs.text.ExtraLabels = extra
	b := &bufs.batch
	if err := bufs.text.Parse(data, h.opts.Now().UnixMilli(), b); err != nil {
		h.fail(w, ep, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	written, err := h.w.Write(r.Context(), b)
	h.samples[ep].Add(written.Samples)
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// extraLabels parses the extra_label=name=value query parameters.
func extraLabels(r *http.Request) ([]samples.Label, error) {
	vals := r.URL.Query()["extra_label"]
	if len(vals) == 0 {
		return nil, nil
	}
	out := make([]samples.Label, 0, len(vals))
	for _, v := range vals {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: extra_label=%q: want extra_label=name=value", ErrInvalid, v)
		}
		out = append(out, samples.Label{Name: name, Value: value})
	}
	return out, nil
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

// fail answers a failed write request with the message as plain text,
// counted and logged by Reject.
func (h *Handlers) fail(w http.ResponseWriter, endpoint string, err error) {
	h.FailWith(w, endpoint, err, "text/plain; charset=utf-8", func(int) []byte { return []byte(err.Error() + "\n") })
}
