// Package otlp decodes OpenTelemetry metrics export requests
// (ExportMetricsServiceRequest, protobuf or JSON) and translates them into
// a samples.Batch; collector/ingest serves them over OTLP/HTTP.
//
// Translation to Prometheus series is not ours: it is Prometheus' own OTLP
// translator (storage/remote/otlptranslator/prometheusremotewrite) with
// Prometheus' default settings (see DefaultSettings), appending into a
// samples.Batch instead of the TSDB. So a metric gets the same name and
// labels here as in Prometheus: resource service.name/service.instance.id
// become job/instance, other resource attributes go to target_info, sums
// become counters (_total) or gauges, histograms become classic
// _bucket{le}/_sum/_count series (or native histograms with custom
// buckets, ConvertOptions.HistogramsToNHCB), exponential histograms native
// histograms, summaries quantile/_sum/_count series.
//
// Promises:
//   - Decode checks a request against Limits (attribute nesting and
//     counts) before the protobuf decoder or the translator can recurse or
//     do quadratic work; its errors are the sender's fault and those over a
//     limit wrap ErrLimit and name the flag.
//   - Convert drops what Telltale does not store (delta points without a
//     Cumulator, metrics the translator cannot name, timestamps past 2262)
//     and reports each in Result.Rejections, by reason; it converts the
//     rest. A request may not expand to more than ConvertOptions.MaxSamples.
//   - Cumulator turns delta temporality cumulative, per series, bounded.
//
// The package depends on Prometheus and OpenTelemetry's pdata: only the
// collector imports it, never the agent.
package otlp
