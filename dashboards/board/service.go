package board

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Selector bodies of the Service dashboard: {S} is the service and env,
// {R} adds the chosen routes.
const (
	serviceSel = `service=~"$service",env=~"$env"`
	// changeSel selects the changes that mark the service's graphs: a
	// change without env (no env label) marks every env.
	changeSel = `service=~"$service",env=~"$env|"`
	routeSel  = serviceSel + `,route=~"$route"`
)

// svcQ replaces {S} and {R} in expr with the service and route matchers.
func svcQ(expr string) string {
	return strings.NewReplacer("{S}", serviceSel, "{R}", routeSel).Replace(expr)
}

// The request panels read the dashboards' recorded series (recorded.go),
// request rates by service, env, route and code and duration bucket rates
// by service, env, route and le, 1m rates recorded every 30s; with
// Options.RawQueries they compute the same from the raw series.

// requests is the request rate summed by the given labels ("" for all);
// extra adds matchers (",code=~...").
func requests(o Options, by, extra string) string {
	src := "rate(http_requests_total{{R}" + extra + "}[$__rate_interval])"
	if !o.RawQueries {
		src = RecHTTPRequests + "{{R}" + extra + "}"
	}
	if by == "" {
		return svcQ("sum(" + src + ")")
	}
	return svcQ("sum by (" + by + ") (" + src + ")")
}

// errorRatio is the share of 5xx answers by the given labels; it reads 0,
// not "no data", while there are requests but no errors.
func errorRatio(o Options, by string) string {
	total, errs := requests(o, by, ""), requests(o, by, `,code=~"5.."`)
	return "(" + errs + " / " + total + ") or (" + total + " * 0)"
}

// quantile is histogram_quantile(q) of the request duration by the labels
// ("" for all, "route"), whether the app sends a classic histogram
// (http_request_duration_seconds_bucket with le) or a native one
// (http_request_duration_seconds, no le: remote write 2.0 or 1.0's
// histograms, OTLP exponential histograms, NHCB):
//
//	histogram_quantile(q, sum by (le, X) (classic)) or histogram_quantile(q, sum by (X) (native))
//
// Both halves end with the labels X (histogram_quantile drops le), so
// `or` keeps the classic result of a label set and adds the native one
// only where no classic one exists: a series is never drawn twice, and
// an app scraped with both forms (Prometheus' always_scrape_classic_histograms)
// shows its classic quantile. The choice is per label set and per step,
// so an app moving from classic to native shows one line that changes
// source when the classic buckets stop; a route whose instances send both
// forms at once shows only its classic instances' quantile. Float series
// named http_request_duration_seconds (a summary's quantiles) give the
// native half nothing: histogram_quantile ignores floats without le.
func quantile(o Options, q, by string) string {
	classic := "rate(http_request_duration_seconds_bucket{{R}}[$__rate_interval])"
	native := "rate(http_request_duration_seconds{{R}}[$__rate_interval])"
	if !o.RawQueries {
		classic, native = RecHTTPDurationBuckets+"{{R}}", RecHTTPDuration+"{{R}}"
	}
	sumBy := func(labels string) string {
		if labels == "" {
			return "sum"
		}
		return "sum by (" + labels + ")"
	}
	le := "le"
	if by != "" {
		le += ", " + by
	}
	return svcQ(fmt.Sprintf(`histogram_quantile(%s, %s (%s)) or histogram_quantile(%s, %s (%s))`,
		q, sumBy(le), classic, q, sumBy(by), native))
}

// durationHeatmap is the request duration's distribution over time: the
// rate of requests in each duration bucket, all chosen routes summed. Two
// queries, one per form of the histogram, both in Grafana's heatmap
// format:
//
//	A: sum by (le) (classic)                          one series per le bucket
//	B: sum(native) unless on() count(classic)        one native histogram
//
// As in quantile, the classic form wins: the native query answers only at
// the steps where no classic bucket exists, so an app sending both is drawn
// once. Grafana turns A's cumulative le series into cells and reads B's
// native histogram buckets as cells itself; the console draws both.
func durationHeatmap(o Options) *heatmap.PanelBuilder {
	classic := "rate(http_request_duration_seconds_bucket{{R}}[$__rate_interval])"
	native := "rate(http_request_duration_seconds{{R}}[$__rate_interval])"
	if !o.RawQueries {
		classic, native = RecHTTPDurationBuckets+"{{R}}", RecHTTPDuration+"{{R}}"
	}
	q := func(refID, expr, legend string) *prometheus.DataqueryBuilder {
		return rangeQ(refID, svcQ(expr), legend).Format(prometheus.PromQueryFormatHeatmap)
	}
	return heatmap.NewPanelBuilder().
		Title("Request duration heatmap").
		Description("Requests per second in each duration bucket of the http_request_duration_seconds histogram, all chosen routes: classic (le buckets) or, where the app sends no classic buckets, native. Darker cells hold more requests.").
		Datasource(datasource()).
		WithTarget(q("A", "sum by (le) ("+classic+")", "{{le}}")).
		WithTarget(q("B", "sum("+native+") unless on() count("+classic+")", "native")).
		Calculate(false).
		YAxis(heatmap.NewYAxisConfigBuilder().Unit(units.Seconds).AxisPlacement(common.AxisPlacementLeft)).
		RowsFrame(heatmap.NewRowsHeatmapOptionsBuilder().Layout(common.HeatmapCellLayoutAuto)).
		Color(heatmap.NewHeatmapColorOptionsBuilder().
			Mode(heatmap.HeatmapColorModeScheme).
			Scheme("Oranges").
			Fill("dark-orange").
			Scale(heatmap.HeatmapColorScaleExponential).
			Exponent(0.5).
			Steps(64)).
		CellValues(heatmap.NewCellValuesBuilder().Unit(units.RequestsPerSecond)).
		Tooltip(heatmap.NewHeatmapTooltipBuilder().Mode(common.TooltipDisplayModeSingle).YHistogram(true).ShowColorScale(true)).
		ShowLegend().
		Span(full).Height(tall)
}

// service is the per-service dashboard over the instrument library's
// metrics: RED by route, in-flight, runtime, feature switches.
func service(opts Options) (*dashboard.DashboardBuilder, string, string) {
	const title = "Service"
	b := newDashboard(UIDService, title,
		"Request rate, errors, latency and in-flight requests by route for one service in one env (instrument library metrics), its runtime, and its deploys.",
		[]string{"service"}, opts, deployFilter{matchers: changeSel, tags: []string{"service:$service"}, alerts: `,service=~"$service|"`},
		labelVariable("service", "service", "telltale_build_info", false),
		labelVariable("env", "env", `telltale_build_info{service=~"$service"}`, false),
		labelVariable("route", "route", `http_requests_total{service=~"$service",env=~"$env"}`, true))

	row(b, "Now")
	b.WithPanel(single("Version", "Versions running now (telltale_build_info), with how many instances run each.", units.Short,
		svcQ(`count by (version) (telltale_build_info{{S}})`), "{{version}}", quarter).
		TextMode(common.BigValueTextModeName))
	b.WithPanel(single("Requests", "Requests per second, all chosen routes (1m rate).", units.RequestsPerSecond,
		requests(opts, "", ""), "requests/s", quarter))
	b.WithPanel(single("Errors", "Share of requests answered 5xx.", units.PercentUnit,
		errorRatio(opts, "service, env"), "{{service}} {{env}} 5xx", quarter))
	b.WithPanel(single("p99 latency", "99th percentile request duration, all chosen routes.", units.Seconds,
		quantile(opts, "0.99", ""), "p99", quarter))

	row(b, "Requests")
	b.WithPanel(graph("Request rate by route", "Requests per second by route.", units.RequestsPerSecond, half,
		series{requests(opts, "route", ""), "{{route}}"}))
	b.WithPanel(graph("Error ratio by route", "Share of requests answered 5xx, by route.", units.PercentUnit, half,
		series{errorRatio(opts, "route"), "{{route}}"}))
	b.WithPanel(stacked(graph("Requests by status code", "Requests per second by HTTP status code.", units.RequestsPerSecond, half,
		series{requests(opts, "code", ""), "{{code}}"})))
	b.WithPanel(graph("In flight", "Requests being served right now (http_requests_in_flight).", units.Short, half,
		series{svcQ(`sum by (service, env) (http_requests_in_flight{{S}})`), "{{service}} {{env}}"}))

	row(b, "Latency")
	b.WithPanel(graph("Latency by route: p50, p90, p99", "Request duration percentiles by route, from the http_request_duration_seconds histogram, classic (le buckets) or native.", units.Seconds, full,
		series{quantile(opts, "0.5", "route"), "p50 {{route}}"},
		series{quantile(opts, "0.9", "route"), "p90 {{route}}"},
		series{quantile(opts, "0.99", "route"), "p99 {{route}}"}))
	b.WithPanel(durationHeatmap(opts))

	row(b, "Runtime")
	b.WithPanel(graph("CPU", "CPU seconds per second used by the process.", units.Short, quarter,
		series{svcQ(`rate(process_cpu_seconds_total{{S}}[$__rate_interval])`), "{{service}} {{env}}"}))
	b.WithPanel(graph("Memory", "Resident memory and Go heap in use.", units.BytesIEC, quarter,
		series{svcQ(`process_resident_memory_bytes{{S}}`), "{{service}} rss"},
		series{svcQ(`go_memstats_heap_inuse_bytes{{S}}`), "{{service}} heap"}))
	b.WithPanel(graph("Goroutines", "Live goroutines.", units.Short, quarter,
		series{svcQ(`go_goroutines{{S}}`), "{{service}} {{env}}"}))
	b.WithPanel(graph("GC", "Garbage collections per second.", units.OpsPerSecond, quarter,
		series{svcQ(`rate(go_gc_duration_seconds_count{{S}}[$__rate_interval])`), "{{service}} {{env}}"}))

	row(b, "Feature switches")
	b.WithPanel(graph("Feature switches", "Which contingency switches are on (1) or off (0) over time (telltale_switch_on, from the instrument library): a flip changes behaviour as much as a deploy does, and is recorded in the change log with who and why.", units.Short, full,
		series{svcQ(`max by (switch) (telltale_switch_on{{S}})`), "{{switch}}"}).
		LineInterpolation(common.LineInterpolationStepAfter).
		Min(0).Max(1))
	return b, UIDService, title
}
