package otlp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/telltale-dev/telltale/samples"
	"github.com/telltale-dev/telltale/samples/promhistogram"
)

// Format is the encoding of an OTLP/HTTP request or response body.
type Format int

// The two encodings OTLP/HTTP defines.
const (
	Protobuf Format = iota // application/x-protobuf
	JSON                   // application/json
)

// ContentType returns the media type of f.
func (f Format) ContentType() string {
	if f == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// Decode parses body as an ExportMetricsServiceRequest in format f,
// within lim: protobuf bodies are checked against lim before they are
// decoded, JSON bodies have their nesting bounded before and their
// attributes checked after (CheckLimits). Its errors are the sender's fault
// (HTTP 400); those for a request over lim wrap ErrLimit.
func Decode(body []byte, f Format, lim Limits) (pmetric.Metrics, error) {
	lim = lim.withDefaults()
	var err error
	if f == JSON {
		err = guardJSON(body, lim)
	} else {
		err = guardProto(body, lim)
	}
	if err != nil {
		return pmetric.Metrics{}, err
	}
	req := pmetricotlp.NewExportRequest()
	if f == JSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return pmetric.Metrics{}, fmt.Errorf("cannot decode %d-byte %s body as an OTLP ExportMetricsServiceRequest: %v; send opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest encoded as the Content-Type says",
			len(body), f.ContentType(), err)
	}
	if f == JSON {
		if err := CheckLimits(req.Metrics(), lim); err != nil {
			return pmetric.Metrics{}, err
		}
	}
	return req.Metrics(), nil
}

// Reasons under which dropped data points are counted
// (telltale_ingest_rejected_total{reason=...}).
const (
	ReasonDelta           = "otlp_non_cumulative"
	ReasonDeltaOutOfOrder = "otlp_delta_out_of_order"
	ReasonDeltaLimit      = "otlp_delta_series_limit"
	ReasonInvalidMetric   = "otlp_invalid_metric"
	ReasonTimestamp       = "otlp_invalid_timestamp"
)

// Result tells what Convert did with a request.
type Result struct {
	// DataPoints is the number of OTLP data points in the request.
	DataPoints int
	// Rejected is the number of data points not converted; Rejections says
	// why. The OTLP response reports it as partial_success.
	Rejected   int
	Rejections []Rejection
	// WriteRejections describes what the writer rejected of the converted
	// samples (set by the caller, e.g. the OTLP endpoint from the ingest
	// path's partial error), or "". Message ends with it.
	WriteRejections string
}

// Rejection is one metric whose data points were dropped.
type Rejection struct {
	Reason string // one of the Reason* constants
	Metric string // the OTLP metric name
	Points int
	Detail string // what is wrong and what to do
}

// Message summarises the rejections for partial_success.error_message: the
// first few in full, then how many more. It is "" when nothing was rejected.
func (r *Result) Message() string {
	if len(r.Rejections) == 0 {
		return r.WriteRejections
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d of %d data points rejected: ", r.Rejected, r.DataPoints)
	const show = 3
	for i, rj := range r.Rejections {
		if i == show {
			fmt.Fprintf(&sb, "; and %d more metrics", len(r.Rejections)-show)
			break
		}
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(rj.Detail)
	}
	if r.WriteRejections != "" {
		sb.WriteString("; ")
		sb.WriteString(r.WriteRejections)
	}
	return sb.String()
}

func (r *Result) reject(reason, metric string, points int, detail string) {
	r.Rejected += points
	r.Rejections = append(r.Rejections, Rejection{Reason: reason, Metric: metric, Points: points, Detail: detail})
}

// ConvertOptions configure a Converter.
type ConvertOptions struct {
	// LookbackDelta is the PromQL lookback delta. As in Prometheus,
	// target_info gets a sample every LookbackDelta/2 between the first and
	// the last data point of a resource. 0 means 5m.
	LookbackDelta time.Duration
	// MaxSamples bounds the samples one request may expand to; a request
	// that expands to more fails with ErrTooManySamples. 0 means no bound.
	MaxSamples int
	// Delta, when set, turns delta sums and histograms into cumulative ones
	// (see Cumulator); without it they are rejected, as Prometheus rejects
	// them by default.
	Delta *Cumulator
	// HistogramsToNHCB makes explicit-bucket histograms native histograms
	// with custom buckets (one series instead of _bucket/_sum/_count), as
	// Prometheus' convert_histograms_to_nhcb does (-otlp.histograms-as-nhcb).
	HistogramsToNHCB bool
}

// MaxSamplesFor bounds what a request of n decoded bytes may expand to
// (ConvertOptions.MaxSamples). A float sample costs at least 8 bytes of
// protobuf (a histogram bucket count), so real requests stay far below one
// sample per byte; only target_info, with a sample every lookback/2
// between a resource's first and last point, can expand a small request,
// and this stops a request whose timestamps span years from filling
// memory.
func MaxSamplesFor(n int) int { return 100_000 + n }

// ErrTooManySamples is returned by Convert when a request expands to more
// than ConvertOptions.MaxSamples samples.
var ErrTooManySamples = errors.New("request expands to too many samples")

// Converter translates OTLP metrics into a samples.Batch with Prometheus'
// own OTLP translator (storage/remote/otlptranslator/prometheusremotewrite),
// configured as Prometheus' defaults configure it. It is not safe for
// concurrent use; keep one per goroutine or in a sync.Pool.
type Converter struct {
	opts     ConvertOptions
	settings prw.Settings
	conv     *prw.PrometheusConverter
	app      batchAppender
	scratch  samples.Batch // for isolating metrics the translator fails on
}

// SetMaxSamples changes ConvertOptions.MaxSamples for the next Convert
// (see MaxSamplesFor).
func (c *Converter) SetMaxSamples(n int) { c.opts.MaxSamples = n }

// NewConverter returns a Converter.
func NewConverter(opts ConvertOptions) *Converter {
	c := &Converter{opts: opts, settings: DefaultSettings(opts.LookbackDelta)}
	c.settings.ConvertHistogramsToNHCB = opts.HistogramsToNHCB
	c.conv = prw.NewPrometheusConverter(&c.app)
	return c
}

// DefaultSettings returns the translator settings Prometheus uses with its
// default configuration (config.DefaultOTLPConfig), as its own OTLP handler
// derives them:
//   - translation strategy UnderscoreEscapingWithSuffixes: metric and label
//     names are escaped to [a-zA-Z0-9_] and get unit and type suffixes
//     (http.server.duration in s -> http_server_duration_seconds, a
//     monotonic counter gets _total);
//   - service.name (with service.namespace as "ns/name") becomes job,
//     service.instance.id becomes instance, other resource attributes go to
//     target_info only (none are promoted to every series);
//   - explicit-bucket histograms as classic ones (_bucket{le}, _sum,
//     _count), exponential histograms as native ones;
//   - only cumulative temporality (the Converter turns delta into
//     cumulative before translating, see Cumulator);
//   - label names starting with a single "_" get a "key" prefix and runs of
//     underscores are kept, for compatibility, as Prometheus does.
func DefaultSettings(lookbackDelta time.Duration) prw.Settings {
	cfg := config.DefaultOTLPConfig
	return prw.Settings{
		AddMetricSuffixes:                    cfg.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !cfg.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            prw.NewPromoteResourceAttributes(cfg),
		KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
		AllowDeltaTemporality:                false,
		LookbackDelta:                        lookbackDelta,
		LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
	}
}

// Convert appends the samples, native histograms and exemplars of md to
// dst and returns what it did.
//
// Data points Telltale cannot store are removed from md first and reported
// in the Result, not as an error: delta sums and histograms without
// ConvertOptions.Delta (and, with it, delta points out of order or over
// its series limit), points with unrepresentable timestamps, and metrics
// the translator fails on (e.g. an attribute with an empty name).
func (c *Converter) Convert(ctx context.Context, md pmetric.Metrics, dst *samples.Batch) (Result, error) {
	var res Result
	c.prepare(md, &res)
	mark := markOf(dst)
	err := c.translate(ctx, md, dst, c.settings)
	if err == nil {
		return res, nil
	}
	if err := stopError(err); err != nil {
		return res, err
	}
	// Some metric failed to translate (and may be half in dst): find it by
	// translating each metric alone, drop the failures, and translate the
	// rest again. This only runs for faulty requests.
	mark.truncate(dst)
	if err := c.dropUntranslatable(ctx, md, &res); err != nil {
		return res, err
	}
	if err := c.translate(ctx, md, dst, c.settings); err != nil {
		mark.truncate(dst)
		if serr := stopError(err); serr != nil {
			return res, serr
		}
		return res, fmt.Errorf("cannot translate OTLP metrics: %v", err)
	}
	return res, nil
}

// translate runs Prometheus' translator over md into dst.
func (c *Converter) translate(ctx context.Context, md pmetric.Metrics, dst *samples.Batch, settings prw.Settings) error {
	c.app.reset(dst, c.opts.MaxSamples)
	c.conv.Reset(&c.app)
	_, err := c.conv.FromMetrics(ctx, md, settings)
	c.app.reset(nil, 0)
	c.conv.Reset(nil)
	return err
}

// stopError returns the error that stops the whole conversion, if err holds one.
func stopError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, ErrTooManySamples):
		return ErrTooManySamples
	}
	return nil
}

// dropUntranslatable translates every metric of md alone (without
// target_info), and removes from md those the translator fails on.
func (c *Converter) dropUntranslatable(ctx context.Context, md pmetric.Metrics, res *Result) error {
	settings := c.settings
	settings.DisableTargetInfo = true
	one := pmetric.NewMetrics()
	rms := md.ResourceMetrics()
	var stop error
	for i := range rms.Len() {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				if stop != nil {
					return false
				}
				one.ResourceMetrics().RemoveIf(func(pmetric.ResourceMetrics) bool { return true })
				orm := one.ResourceMetrics().AppendEmpty()
				rm.Resource().CopyTo(orm.Resource())
				orm.SetSchemaUrl(rm.SchemaUrl())
				osm := orm.ScopeMetrics().AppendEmpty()
				sm.Scope().CopyTo(osm.Scope())
				osm.SetSchemaUrl(sm.SchemaUrl())
				m.CopyTo(osm.Metrics().AppendEmpty())
				c.scratch.Reset()
				err := c.translate(ctx, one, &c.scratch, settings)
				if err == nil {
					return false
				}
				if stop = stopError(err); stop != nil {
					return false
				}
				res.reject(ReasonInvalidMetric, m.Name(), dataPoints(m),
					fmt.Sprintf("metric %q cannot be translated: %v; fix the metric or attribute name at the sender", m.Name(), err))
				return true
			})
		}
	}
	c.scratch.Reset()
	return stop
}

// prepare removes from md what Telltale does not store, records it in
// res, turns delta points cumulative (with c.opts.Delta) and counts the
// data points.
func (c *Converter) prepare(md pmetric.Metrics, res *Result) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				n := dataPoints(m)
				res.DataPoints += n
				if m.Type() == pmetric.MetricTypeEmpty {
					res.reject(ReasonInvalidMetric, m.Name(), 0,
						fmt.Sprintf("metric %q has no data (no gauge, sum, histogram or summary set)", m.Name()))
					return true
				}
				if bad := removeUnrepresentableTimes(m); bad > 0 {
					res.reject(ReasonTimestamp, m.Name(), bad,
						fmt.Sprintf("metric %q has %d data points with a time_unix_nano after 2262-04-11 (over 2^63-1 ns, which Prometheus timestamps cannot hold): fix the sender's timestamps", m.Name(), bad))
				}
				if isDelta(m) && c.opts.Delta != nil {
					rj := c.opts.Delta.accumulate(rm.Resource(), sm.Scope(), m)
					if rj.outOfOrder > 0 {
						res.reject(ReasonDeltaOutOfOrder, m.Name(), rj.outOfOrder,
							fmt.Sprintf("metric %q: %d delta data points are not later than the series' last point, so they would be counted twice: send each delta once, in order", m.Name(), rj.outOfOrder))
					}
					if rj.overLimit > 0 {
						res.reject(ReasonDeltaLimit, m.Name(), rj.overLimit,
							fmt.Sprintf("metric %q: %d delta data points start new series beyond -otlp.delta-max-series: export cumulative temporality or raise the flag", m.Name(), rj.overLimit))
					}
				}
				if t, ok := temporality(m); ok && t != pmetric.AggregationTemporalityCumulative {
					res.reject(ReasonDelta, m.Name(), dataPoints(m),
						fmt.Sprintf("metric %q has %s temporality; Telltale stores cumulative sums and histograms, converting delta ones only with -otlp.delta-to-cumulative: "+
							"turn it on or set the exporter's temporality preference to cumulative (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative)", m.Name(), t))
					return true
				}
				return false
			})
		}
	}
}

// removeUnrepresentableTimes removes the data points of m whose time is
// over maxTimestamp (such as 2^64-1, which would otherwise wrap to 1970 in
// the translator's int64 conversion) and returns how many there were.
func removeUnrepresentableTimes(m pmetric.Metric) int {
	n := 0
	bad := func(t pcommon.Timestamp) bool {
		if uint64(t) > maxTimestamp {
			n++
			return true
		}
		return false
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		m.Gauge().DataPoints().RemoveIf(func(p pmetric.NumberDataPoint) bool { return bad(p.Timestamp()) })
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().RemoveIf(func(p pmetric.NumberDataPoint) bool { return bad(p.Timestamp()) })
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().RemoveIf(func(p pmetric.HistogramDataPoint) bool { return bad(p.Timestamp()) })
	case pmetric.MetricTypeExponentialHistogram:
		m.ExponentialHistogram().DataPoints().RemoveIf(func(p pmetric.ExponentialHistogramDataPoint) bool { return bad(p.Timestamp()) })
	case pmetric.MetricTypeSummary:
		m.Summary().DataPoints().RemoveIf(func(p pmetric.SummaryDataPoint) bool { return bad(p.Timestamp()) })
	}
	return n
}

func temporality(m pmetric.Metric) (pmetric.AggregationTemporality, bool) {
	switch m.Type() {
	case pmetric.MetricTypeSum:
		return m.Sum().AggregationTemporality(), true
	case pmetric.MetricTypeHistogram:
		return m.Histogram().AggregationTemporality(), true
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().AggregationTemporality(), true
	}
	return 0, false
}

func dataPoints(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

// batchMark is a position in a Batch to truncate back to.
type batchMark struct {
	labels, series, samples, metadata, keys int
	histograms, exemplars, exemplarLabels   int
}

func markOf(b *samples.Batch) batchMark {
	return batchMark{len(b.Labels), len(b.Series), len(b.Samples), len(b.Metadata), len(b.KeyBuf),
		len(b.Histograms), len(b.Exemplars), len(b.ExemplarLabels)}
}

func (m batchMark) truncate(b *samples.Batch) {
	clear(b.Labels[m.labels:])
	b.Labels = b.Labels[:m.labels]
	b.Series = b.Series[:m.series]
	b.Samples = b.Samples[:m.samples]
	clear(b.Metadata[m.metadata:])
	b.Metadata = b.Metadata[:m.metadata]
	b.KeyBuf = b.KeyBuf[:m.keys]
	clear(b.Histograms[m.histograms:])
	b.Histograms = b.Histograms[:m.histograms]
	b.Exemplars = b.Exemplars[:m.exemplars]
	clear(b.ExemplarLabels[m.exemplarLabels:])
	b.ExemplarLabels = b.ExemplarLabels[:m.exemplarLabels]
}

// keyPrefix is the format byte of OTLP series keys (see samples.Series.Key):
// 0x05 followed by the sorted labels, each name and value prefixed by its
// length as a varint. No other Telltale format's keys begin with 0x05
// (remote write: 0x0a, 0x02; text: 0x03, a name character or '{'; Influx:
// 0x04, 0x06).
const keyPrefix = 0x05

// batchAppender is the storage.AppenderV2 the translator appends to: it
// adds each float sample to a samples.Batch and records the metric family
// metadata. It never touches storage; Commit and Rollback do nothing (the
// ingest Writer commits the batch).
type batchAppender struct {
	b          *samples.Batch
	max        int
	last       labels.Labels // labels of the last series, to merge its samples
	lastFamily string
	lastMeta   metadata.Metadata
}

var _ storage.AppenderV2 = (*batchAppender)(nil)

func (a *batchAppender) reset(b *samples.Batch, max int) {
	*a = batchAppender{b: b, max: max}
}

// Append implements storage.AppenderV2: a float sample (v), or a native
// histogram (h or fh: exponential histograms, and explicit ones with
// HistogramsToNHCB), with its exemplars.
func (a *batchAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	b := a.b
	if a.max > 0 && len(b.Samples)+len(b.Histograms) >= a.max {
		return 0, fmt.Errorf("%w: more than %d", ErrTooManySamples, a.max)
	}
	if opts.MetricFamilyName != a.lastFamily || opts.Metadata != a.lastMeta {
		// The family name only lives for this call; metadata strings may be kept.
		a.lastFamily = strings.Clone(opts.MetricFamilyName)
		a.lastMeta = opts.Metadata
		b.Metadata = append(b.Metadata, samples.Metadata{
			Name: a.lastFamily, Type: string(opts.Metadata.Type),
			Help: opts.Metadata.Help, Unit: opts.Metadata.Unit,
		})
	}
	if len(b.Series) == 0 || !labels.Equal(ls, a.last) {
		// Label strings from the translator are fresh allocations, never
		// reused, so the batch may alias them.
		start := len(b.KeyBuf)
		kb := append(b.KeyBuf, keyPrefix)
		b.StartSeries(nil)
		ls.Range(func(l labels.Label) {
			b.AddLabel(l.Name, l.Value)
			kb = binary.AppendUvarint(kb, uint64(len(l.Name)))
			kb = append(kb, l.Name...)
			kb = binary.AppendUvarint(kb, uint64(len(l.Value)))
			kb = append(kb, l.Value...)
		})
		b.KeyBuf = kb
		b.Series[len(b.Series)-1].Key = kb[start:len(kb):len(kb)]
		a.last = ls
	}
	switch {
	case h != nil:
		b.AddHistogram(promhistogram.FromPrometheus(t, h, nil))
	case fh != nil:
		b.AddHistogram(promhistogram.FromPrometheus(t, nil, fh))
	default:
		b.AddSample(t, v)
	}
	for _, e := range opts.Exemplars {
		start := len(b.ExemplarLabels)
		e.Labels.Range(func(l labels.Label) {
			b.ExemplarLabels = append(b.ExemplarLabels, samples.Label{Name: l.Name, Value: l.Value})
		})
		b.Exemplars = append(b.Exemplars, samples.Exemplar{T: e.Ts, V: e.Value, LabelsStart: int32(start), LabelsEnd: int32(len(b.ExemplarLabels))})
		b.Series[len(b.Series)-1].ExemplarsEnd = int32(len(b.Exemplars))
	}
	return 0, nil
}

// Commit implements storage.AppenderV2; the Writer commits.
func (a *batchAppender) Commit() error { return nil }

// Rollback implements storage.AppenderV2; Convert truncates the batch.
func (a *batchAppender) Rollback() error { return nil }
