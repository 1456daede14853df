// Package otlp receives OpenTelemetry metrics over OTLP/HTTP
// (POST /v1/metrics, and /api/v1/otlp/v1/metrics where Prometheus serves
// it), protobuf or JSON, plain or gzip, and writes them through the shared
// ingest path.
//
// Translation to Prometheus series is not ours: it is Prometheus' own OTLP
// translator (storage/remote/otlptranslator/prometheusremotewrite) with
// Prometheus' default settings (see DefaultSettings), appending into a
// samples.Batch instead of the TSDB. So a metric gets the same name and
// labels here as in Prometheus: resource service.name/service.instance.id
// become job/instance, other resource attributes go to target_info, sums
// become counters (_total) or gauges, histograms become classic
// _bucket{le}/_sum/_count series, summaries quantile/_sum/_count series.
//
// Promises, as the OTLP/HTTP specification asks:
//   - 200 with an ExportMetricsServiceResponse, in the request's encoding,
//     once every accepted sample is committed. Sums, gauges and summaries
//     become float series, exponential histograms native histograms (and
//     explicit-bucket ones too with -otlp.histograms-as-nhcb), exemplars
//     go to the exemplar storage, delta temporality is turned cumulative
//     with -otlp.delta-to-cumulative (see Cumulator for why and the price).
//     Data points Telltale does not store (delta ones without that flag,
//     metrics the translator cannot name, samples the ingest path rejects
//     such as a series over a label limit) are dropped, counted
//     (telltale_ingest_rejected_total{reason=...}) and reported in
//     partial_success (rejected_data_points, error_message) with a 200, as
//     the OTLP specification prescribes for partly accepted requests (the
//     one exception to "2xx means all was stored"); the rest is written.
//     The sender must not retry those.
//   - 400 for a body over the shape limits (Limits: attribute values
//     nested deeper than -otlp.max-attribute-depth, more attributes than
//     -otlp.max-attributes on one resource, scope, metric, data point or
//     exemplar), checked before the protobuf decoder or the translator can
//     recurse or do quadratic work, and counted by reason
//     (otlp_attribute_depth, otlp_too_many_attributes).
//   - Data points with a time_unix_nano over 2^63-1 (after 2262, which no
//     Prometheus timestamp holds) are dropped and reported in
//     partial_success (reason otlp_invalid_timestamp).
//   - 400 for a body that does not decode, 415 for a Content-Type other than
//     application/x-protobuf or application/json (or an unknown
//     Content-Encoding), 413 for a body over the limits, 503 with
//     Retry-After on overload or storage trouble; the body is a
//     google.rpc.Status in the request's encoding, its message saying what
//     to fix. Nothing of a failed request is written.
package otlp

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/samples"
)

// Paths where the handler is mounted: the OTLP/HTTP default, and the one
// Prometheus serves OTLP on (so senders configured for Prometheus work).
const (
	Path           = "/v1/metrics"
	PrometheusPath = "/api/v1/otlp/v1/metrics"
)

// endpoint is the endpoint label of the ingest counters.
const endpoint = "otlp"

// Options configure NewHandler.
type Options struct {
	// LookbackDelta is the query lookback delta; target_info gets a sample
	// every LookbackDelta/2 between a resource's first and last data
	// point. 0 means 5m.
	LookbackDelta time.Duration
	// Limits bound attribute nesting and counts (-otlp.*); zero values mean
	// the defaults.
	Limits Limits
	// DeltaToCumulative turns delta sums and histograms into cumulative
	// ones (see Cumulator) instead of rejecting them; DeltaMaxSeries bounds
	// the series it tracks (0: 100,000).
	DeltaToCumulative bool
	DeltaMaxSeries    int
	// HistogramsToNHCB stores explicit-bucket histograms as native
	// histograms with custom buckets (see ConvertOptions).
	HistogramsToNHCB bool
	Logger           *slog.Logger
	// Metrics receives telltale_otlp_* gauges; nil means none.
	Metrics *metrics.Set
}

// Handler serves OTLP/HTTP metrics. It is safe for concurrent use.
type Handler struct {
	delta *Cumulator // nil unless DeltaToCumulative
	in    *ingest.Handlers
	w     *ingest.Writer
	opts  Options
	log   *slog.Logger
	pool  sync.Pool // *state
}

// state is what one request needs, pooled.
type state struct {
	body  ingest.BodyBuffers
	batch samples.Batch
	conv  *Converter
}

// NewHandler returns the OTLP handler writing through in's Writer, with
// in's body limits and counters.
func NewHandler(in *ingest.Handlers, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{in: in, w: in.Writer(), opts: opts, log: opts.Logger}
	if opts.DeltaToCumulative {
		h.delta = NewCumulator(CumulatorOptions{MaxSeries: opts.DeltaMaxSeries})
		if opts.Metrics != nil {
			opts.Metrics.NewGauge("telltale_otlp_delta_series", func() float64 { return float64(h.delta.Len()) })
		}
	}
	return h
}

// decodeFactor is the bytes an OTLP request holds per decompressed body
// byte while it is decoded: pdata's objects (4.3 per protobuf byte measured
// on BenchmarkDecodeConvert's request; 6 leaves room for attribute-heavy
// ones) and the batch (ingest.BatchFactor).
const decodeFactor = 6 + ingest.BatchFactor

// maxSamples bounds what a request of n decoded bytes may expand to. A
// float sample costs at least 8 bytes of protobuf (a histogram bucket
// count), so real requests stay far below one sample per byte; only
// target_info, with a sample every lookback/2 between a resource's first
// and last point, can expand a small request, and this stops a request
// whose timestamps span years from filling memory.
func maxSamples(n int) int { return 100_000 + n }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.in.CountRequest(endpoint)
	format, ferr := requestFormat(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost {
		h.fail(w, format, fmt.Errorf("%w: method %s; OTLP/HTTP export uses POST", ingest.ErrMethodNotAllowed, r.Method))
		return
	}
	if ferr != nil {
		h.fail(w, format, ferr)
		return
	}
	st, _ := h.pool.Get().(*state)
	if st == nil {
		st = &state{}
	}
	defer h.put(st)
	data, releaseBytes, err := h.in.ReadBody(w, r, &st.body, ingest.GzipOrIdentity, decodeFactor)
	defer releaseBytes()
	if err != nil {
		h.fail(w, format, err)
		return
	}
	release, err := h.w.Acquire(r.Context())
	if err != nil {
		h.fail(w, format, err)
		return
	}
	defer release()
	md, err := Decode(data, format, h.opts.Limits)
	if err != nil {
		if reason := LimitReason(err); reason != "" {
			h.w.CountRejected(reason, 1)
		}
		h.fail(w, format, fmt.Errorf("%w: %v", ingest.ErrInvalid, err))
		return
	}
	if st.conv == nil {
		st.conv = NewConverter(ConvertOptions{LookbackDelta: h.opts.LookbackDelta, Delta: h.delta, HistogramsToNHCB: h.opts.HistogramsToNHCB})
	}
	st.conv.opts.MaxSamples = maxSamples(len(data))
	b := &st.batch
	res, err := st.conv.Convert(r.Context(), md, b)
	if err != nil {
		if errors.Is(err, ErrTooManySamples) {
			err = fmt.Errorf("%w: %d-byte OTLP request expands to more than %d samples; its data point timestamps probably span a long time "+
				"(target_info gets a sample every lookback-delta/2 between a resource's first and last point): send smaller batches with current timestamps",
				ingest.ErrTooLarge, len(data), st.conv.opts.MaxSamples)
		} else if r.Context().Err() == nil {
			err = fmt.Errorf("%w: %v", ingest.ErrInvalid, err)
		}
		h.fail(w, format, err)
		return
	}
	written, err := h.w.Write(r.Context(), b)
	h.in.CountSamples(endpoint, written.Samples+written.Histograms)
	var perr *ingest.PartialError
	if errors.As(err, &perr) {
		// OTLP reports a partly accepted request as 200 with
		// partial_success (the specification's rule), not 400; the writer
		// counted the rejections already.
		res.Rejected += perr.Rejected
		res.stored = perr.Error()
	} else if err != nil {
		h.fail(w, format, err)
		return
	}
	for _, rj := range res.Rejections {
		h.w.CountRejected(rj.Reason, max(rj.Points, 1))
	}
	if res.Rejected > 0 || len(res.Rejections) > 0 {
		h.log.Debug("otlp data points rejected", "component", "otlp", "rejected", res.Rejected, "message", res.Message())
	}
	h.respond(w, format, res)
}

func (h *Handler) put(st *state) {
	st.body.Trim()
	ingest.ResetBatch(&st.batch)
	h.pool.Put(st)
}

// respond answers a successful export: 200 and an
// ExportMetricsServiceResponse, with partial_success when data points were
// dropped.
func (h *Handler) respond(w http.ResponseWriter, f Format, res Result) {
	resp := pmetricotlp.NewExportResponse()
	if msg := res.Message(); msg != "" {
		resp.PartialSuccess().SetRejectedDataPoints(int64(res.Rejected))
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	var body []byte
	var err error
	if f == JSON {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil {
		// The data is committed; an empty 200 still tells the sender so.
		h.log.Warn("cannot encode otlp response", "component", "otlp", "err", err)
		body = nil
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// fail answers a failed export with the status ingest.StatusOf gives and a
// google.rpc.Status body in format f, counted and logged as every write
// endpoint's failures are.
func (h *Handler) fail(w http.ResponseWriter, f Format, err error) {
	h.in.FailWith(w, endpoint, err, f.ContentType(), func(status int) []byte {
		return encodeStatus(f, grpcCode(status), err.Error())
	})
}

// requestFormat maps a Content-Type to the body format. An unknown type is
// an error wrapping ingest.ErrUnsupportedMediaType; the format returned
// then is the one to answer in (JSON, readable by a person with curl).
func requestFormat(ct string) (Format, error) {
	if ct == "" {
		return JSON, fmt.Errorf("%w: no Content-Type; OTLP/HTTP needs Content-Type: application/x-protobuf or application/json", ingest.ErrUnsupportedMediaType)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return JSON, fmt.Errorf("%w: cannot parse Content-Type %q: %v; OTLP/HTTP needs application/x-protobuf or application/json", ingest.ErrUnsupportedMediaType, ct, err)
	}
	switch strings.ToLower(mt) {
	case "application/x-protobuf", "application/protobuf":
		return Protobuf, nil
	case "application/json":
		return JSON, nil
	}
	return JSON, fmt.Errorf("%w: Content-Type %q; OTLP/HTTP needs application/x-protobuf or application/json", ingest.ErrUnsupportedMediaType, ct)
}
