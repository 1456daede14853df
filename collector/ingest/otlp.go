package ingest

// The OTLP/HTTP metrics endpoint (POST /v1/metrics, and
// /api/v1/otlp/v1/metrics where Prometheus serves it), protobuf or JSON,
// plain or gzip. Decoding and translation to Prometheus series are
// protoparser/otlp's (Prometheus' own OTLP translator with its defaults).
//
// Promises, as the OTLP/HTTP specification asks:
//   - 200 with an ExportMetricsServiceResponse, in the request's encoding,
//     once every accepted sample is committed. Sums, gauges and summaries
//     become float series, exponential histograms native histograms (and
//     explicit-bucket ones too with -otlp.histograms-as-nhcb), exemplars
//     go to the exemplar storage, delta temporality is turned cumulative
//     with -otlp.delta-to-cumulative (see otlp.Cumulator for why and the
//     price). Data points Telltale does not store (delta ones without that
//     flag, metrics the translator cannot name, samples the ingest path
//     rejects such as a series over a label limit) are dropped, counted
//     (telltale_ingest_rejected_total{reason=...}) and reported in
//     partial_success (rejected_data_points, error_message) with a 200, as
//     the OTLP specification prescribes for partly accepted requests (the
//     one exception to "2xx means all was stored"); the rest is written.
//     The sender must not retry those.
//   - 400 for a body over the shape limits (otlp.Limits: attribute values
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

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/telltale-dev/telltale/protoparser/otlp"
	"github.com/telltale-dev/telltale/samples"
)

// Paths where the OTLP handler is mounted: the OTLP/HTTP default, and the
// one Prometheus serves OTLP on (so senders configured for Prometheus
// work).
const (
	OTLPPath           = "/v1/metrics"
	OTLPPrometheusPath = "/api/v1/otlp/v1/metrics"
)

// OTLPOptions configure NewOTLP.
type OTLPOptions struct {
	// LookbackDelta is the query lookback delta; target_info gets a sample
	// every LookbackDelta/2 between a resource's first and last data
	// point. 0 means 5m.
	LookbackDelta time.Duration
	// Limits bound attribute nesting and counts (-otlp.*); zero values mean
	// the defaults.
	Limits otlp.Limits
	// DeltaToCumulative turns delta sums and histograms into cumulative
	// ones (see otlp.Cumulator) instead of rejecting them; DeltaMaxSeries
	// bounds the series it tracks (0: 100,000).
	DeltaToCumulative bool
	DeltaMaxSeries    int
	// HistogramsToNHCB stores explicit-bucket histograms as native
	// histograms with custom buckets (see otlp.ConvertOptions).
	HistogramsToNHCB bool
	Logger           *slog.Logger // nil means slog.Default()
	// Metrics receives telltale_otlp_* gauges; nil means none.
	Metrics *metrics.Set
}

// OTLP serves OTLP/HTTP metrics. It is safe for concurrent use.
type OTLP struct {
	in    *Handlers
	ep    endpoint
	opts  OTLPOptions
	log   *slog.Logger
	delta *otlp.Cumulator // nil unless DeltaToCumulative
}

// otlpDecodeFactor is the bytes an OTLP request holds per decompressed
// body byte while it is decoded: pdata's objects (4.3 per protobuf byte
// measured on BenchmarkDecodeConvert's request; 6 leaves room for
// attribute-heavy ones) and the batch (batchFactor).
const otlpDecodeFactor = 6 + batchFactor

// NewOTLP returns the OTLP handler writing through in's Writer, with in's
// body limits and counters.
func NewOTLP(in *Handlers, opts OTLPOptions) *OTLP {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &OTLP{in: in, opts: opts, log: opts.Logger.With("component", "otlp"),
		ep: endpoint{name: "otlp", protocol: "OTLP/HTTP export", methods: []string{http.MethodPost},
			encoding: gzipOrIdentity, decodeFactor: otlpDecodeFactor}}
	h.ep.requests.New = func() any { return &otlpRequest{h: h} }
	if opts.DeltaToCumulative {
		h.delta = otlp.NewCumulator(otlp.CumulatorOptions{MaxSeries: opts.DeltaMaxSeries})
		if opts.Metrics != nil {
			opts.Metrics.NewGauge("telltale_otlp_delta_series", func() float64 { return float64(h.delta.Len()) })
		}
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *OTLP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.in.serve(w, r, &h.ep)
}

// otlpRequest is one OTLP export request.
type otlpRequest struct {
	h      *OTLP
	body   bodyBuffers
	batch  samples.Batch
	conv   *otlp.Converter // made on first use, kept with the pooled state
	format otlp.Format     // of the request, and so of the answer
	result otlp.Result     // what Convert dropped
}

func (q *otlpRequest) reset() {
	q.body.trim()
	resetBatch(&q.batch)
	q.result = otlp.Result{}
}

func (q *otlpRequest) buffers() *bodyBuffers { return &q.body }

func (q *otlpRequest) check(r *http.Request) (err error) {
	q.format, err = otlpFormat(r.Header.Get("Content-Type"))
	return err
}

func (q *otlpRequest) decode(ctx context.Context, data []byte) (*samples.Batch, error) {
	w := q.h.in.w
	md, err := otlp.Decode(data, q.format, q.h.opts.Limits)
	if err != nil {
		if reason := otlp.LimitReason(err); reason != "" {
			w.CountRejected(reason, 1)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if q.conv == nil {
		q.conv = otlp.NewConverter(otlp.ConvertOptions{LookbackDelta: q.h.opts.LookbackDelta, Delta: q.h.delta, HistogramsToNHCB: q.h.opts.HistogramsToNHCB})
	}
	limit := otlp.MaxSamplesFor(len(data))
	q.conv.SetMaxSamples(limit)
	res, err := q.conv.Convert(ctx, md, &q.batch)
	if err != nil {
		if errors.Is(err, otlp.ErrTooManySamples) {
			err = fmt.Errorf("%w: %d-byte OTLP request expands to more than %d samples; its data point timestamps probably span a long time "+
				"(target_info gets a sample every lookback-delta/2 between a resource's first and last point): send smaller batches with current timestamps",
				ErrTooLarge, len(data), limit)
		} else if ctx.Err() == nil {
			err = fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil, err
	}
	q.result = res
	return &q.batch, nil
}

func (q *otlpRequest) answer(w http.ResponseWriter, _ Written, err error) error {
	res := &q.result
	var perr *PartialError
	if errors.As(err, &perr) {
		// OTLP reports a partly accepted request as 200 with
		// partial_success (the specification's rule), not 400; the writer
		// counted the rejections already.
		res.Rejected += perr.Rejected
		res.WriteRejections = perr.Error()
	} else if err != nil {
		return err
	}
	for _, rj := range res.Rejections {
		q.h.in.w.CountRejected(rj.Reason, max(rj.Points, 1))
	}
	if res.Rejected > 0 || len(res.Rejections) > 0 {
		q.h.log.Debug("otlp data points rejected", "rejected", res.Rejected, "message", res.Message())
	}
	// 200 and an ExportMetricsServiceResponse, with partial_success when
	// data points were dropped.
	resp := pmetricotlp.NewExportResponse()
	if msg := res.Message(); msg != "" {
		resp.PartialSuccess().SetRejectedDataPoints(int64(res.Rejected))
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	var body []byte
	if q.format == otlp.JSON {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil {
		// The data is committed; an empty 200 still tells the sender so.
		q.h.log.Warn("cannot encode otlp response", "err", err)
		body = nil
	}
	w.Header().Set("Content-Type", q.format.ContentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// failure is a google.rpc.Status in the request's format.
func (q *otlpRequest) failure(_ http.ResponseWriter, status int, err error) (string, []byte) {
	return q.format.ContentType(), encodeStatus(q.format, grpcCode(status), err.Error())
}

// otlpFormat maps a Content-Type to the body format. An unknown type is an
// error wrapping ErrUnsupportedMediaType; the format returned then is the
// one to answer in (JSON, readable by a person with curl).
func otlpFormat(ct string) (otlp.Format, error) {
	if ct == "" {
		return otlp.JSON, fmt.Errorf("%w: no Content-Type; OTLP/HTTP needs Content-Type: application/x-protobuf or application/json", ErrUnsupportedMediaType)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return otlp.JSON, fmt.Errorf("%w: cannot parse Content-Type %q: %v; OTLP/HTTP needs application/x-protobuf or application/json", ErrUnsupportedMediaType, ct, err)
	}
	switch strings.ToLower(mt) {
	case "application/x-protobuf", "application/protobuf":
		return otlp.Protobuf, nil
	case "application/json":
		return otlp.JSON, nil
	}
	return otlp.JSON, fmt.Errorf("%w: Content-Type %q; OTLP/HTTP needs application/x-protobuf or application/json", ErrUnsupportedMediaType, ct)
}

// gRPC status codes used in google.rpc.Status bodies.
const (
	codeInvalidArgument   = 3
	codePermissionDenied  = 7
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeInternal          = 13
	codeUnavailable       = 14
	codeUnauthenticated   = 16
)

// grpcCode maps an HTTP status to the gRPC code of the Status body, as
// gRPC-gateway maps them.
func grpcCode(status int) int32 {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return codeInvalidArgument
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusRequestEntityTooLarge:
		return codeResourceExhausted
	case http.StatusMethodNotAllowed:
		return codeUnimplemented
	case http.StatusServiceUnavailable:
		return codeUnavailable
	}
	return codeInternal
}

// encodeStatus encodes a google.rpc.Status{code, message}, the body
// OTLP/HTTP prescribes for failures, as protobuf or JSON.
func encodeStatus(f otlp.Format, code int32, msg string) []byte {
	if f == otlp.JSON {
		b, _ := json.Marshal(struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}{code, msg})
		return b
	}
	b := make([]byte, 0, len(msg)+16)
	if code != 0 {
		b = append(b, 0x08) // field 1, varint
		b = binary.AppendUvarint(b, uint64(uint32(code)))
	}
	if msg != "" {
		b = append(b, 0x12) // field 2, length-delimited
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	return b
}
