package board

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// self is Telltale's own health: the collector's ingest, query, storage,
// tail and deploy delivery, and the agents' spools. The collector's series
// come from its /metrics (scraped into storage); the agents' from what they
// push about themselves.
func self(opts Options) (*dashboard.DashboardBuilder, string, string) {
	const title = "Telltale"
	b := newDashboard(UIDSelf, title,
		"Health of Telltale itself: what the collector ingests and rejects, how fast it answers queries, its head series and live-tail clients, change-log deliveries, the forward queues to a distributed engine, and the agents' spools.",
		[]string{"self"}, opts, deployFilter{})

	row(b, "Ingest")
	b.WithPanel(graph("Samples ingested", "Samples committed per second, by endpoint (remote write, text import, Influx, OTLP).", units.Short, half,
		series{`sum by (endpoint) (rate(telltale_ingest_samples_total[$__rate_interval]))`, "{{endpoint}}"}))
	b.WithPanel(graph("Write requests", "Write requests per second, by endpoint.", units.RequestsPerSecond, half,
		series{`sum by (endpoint) (rate(telltale_ingest_requests_total[$__rate_interval]))`, "{{endpoint}}"}))
	b.WithPanel(graph("Rejected input", "Series or samples refused per second, by reason (too many labels, too far in the future, out of order ...). 0 when nothing was refused.", units.Short, half,
		series{orZero(`sum by (reason) (rate(telltale_ingest_rejected_total[$__rate_interval]))`, "reason"), "{{reason}}"}))
	b.WithPanel(graph("Failed write requests", "Write requests answered 4xx or 5xx per second, by endpoint and reason. 0 when none failed.", units.RequestsPerSecond, half,
		series{orZero(`sum by (endpoint, reason) (rate(telltale_ingest_failed_requests_total[$__rate_interval]))`, "reason"), "{{endpoint}} {{reason}}"}))

	row(b, "Query and storage")
	b.WithPanel(graph("Query latency", "Query API latency by handler: median and 99th percentile over the summary's window.", units.Seconds, half,
		series{`max by (handler) (telltale_query_request_duration_seconds{quantile="0.5"})`, "p50 {{handler}}"},
		series{`max by (handler) (telltale_query_request_duration_seconds{quantile="0.99"})`, "p99 {{handler}}"}))
	b.WithPanel(graph("Head series", "Series in the TSDB head (in memory): grows with cardinality.", units.Short, half,
		series{`sum(telltale_storage_head_series)`, "head series"}))
	b.WithPanel(graph("Series limit offenders", "Samples refused by -storage.max-series or -storage.max-hourly-series, by the metric that brought the new series (the ten worst). A label with unbounded values (a request id) shows here; /api/v1/status/tsdb lists the head's biggest metrics. 0 when none.", units.Short, half,
		series{orZero(`topk(10, max by (metric) (telltale_ingest_series_limit_rejected_samples))`, "metric"), "{{metric}}"}))
	b.WithPanel(graph("Query admission", "Queries running and waiting for a slot (-query.max-concurrency, -query.max-queue), and queries refused per second by reason (overloaded: 503; too_complex: -query.max-depth/-max-length).", units.Short, half,
		series{`sum(telltale_query_running)`, "running"},
		series{`sum(telltale_query_queued)`, "queued"},
		series{orZero(`sum by (reason) (rate(telltale_query_rejected_total[$__rate_interval]))`, "reason"), "refused {{reason}}"}))
	b.WithPanel(graph("Query result cache", "Range-query steps per second answered from the result cache and computed; the cache's share is how much a dashboard refresh saves. Late samples and deletes drop cached steps (invalidations).", units.Short, half,
		series{`sum by (source) (rate(telltale_query_cache_steps_total[$__rate_interval]))`, "steps from {{source}}"},
		series{orZero(`sum by (reason) (rate(telltale_query_cache_invalidations_total[$__rate_interval]))`, "reason"), "invalidated {{reason}}"}))
	b.WithPanel(graph("Live-tail clients", "Websocket clients of the live tail (CLI and console).", units.Short, half,
		series{`sum(telltale_tail_clients)`, "clients"}))
	b.WithPanel(graph("Change deliveries", "Change log deliveries (deploys, switch flips, notes ...) per second by target (series, grafana, webhook, impact, other) and outcome; pending entries of the outbox.", units.Short, half,
		series{orZero(`sum by (target, outcome) (rate(telltale_change_deliveries_total[$__rate_interval]))`, "outcome"), "{{target}} {{outcome}}"},
		series{`sum(telltale_changes_outbox_pending)`, "pending"}))

	row(b, "Forward mode (scale-out)")
	b.WithPanel(graph("Forward queue backlog", "Bytes waiting in each collector's on-disk queue per remote write target: grows while the engine is unreachable or slow, drains when it keeps up. 0 (target none) outside forward mode.", units.BytesIEC, half,
		series{orZero(`sum by (instance, target) (telltale_forward_spool_bytes)`, "target"), "{{instance}} {{target}}"}))
	b.WithPanel(graph("Forward lag", "Age of the oldest queued write not yet accepted by the engine: how far behind the engine is what the collectors acknowledged.", units.Seconds, half,
		series{orZero(`max by (instance, target) (telltale_forward_oldest_age_seconds)`, "target"), "{{instance}} {{target}}"}))
	b.WithPanel(graph("Forwarded samples", "Samples per second queued and sent to the engine, per target.", units.Short, half,
		series{orZero(`sum by (target) (rate(telltale_forward_samples_queued_total[$__rate_interval]))`, "target"), "queued {{target}}"},
		series{orZero(`sum by (target) (rate(telltale_forward_samples_sent_total[$__rate_interval]))`, "target"), "sent {{target}}"}))
	b.WithPanel(graph("Forward drops", "Samples per second the engine refused (permanent 4xx) and queue records per second dropped because a queue was full: data lost. 0 when none.", units.Short, half,
		series{orZero(`sum by (target, reason) (rate(telltale_forward_dropped_samples_total[$__rate_interval]))`, "reason"), "samples {{target}} {{reason}}"},
		series{orZero(`sum by (target, reason) (rate(telltale_forward_spool_dropped_total[$__rate_interval]))`, "reason"), "records {{target}} {{reason}}"}))

	row(b, "Agents")
	b.WithPanel(graph("Agent spool", "Bytes waiting in each agent's disk spool: grows while the collector is unreachable, drains when it is back.", units.BytesIEC, half,
		series{`sum by (instance) (telltale_agent_spool_bytes)`, "{{instance}}"}))
	b.WithPanel(graph("Agent samples sent", "Samples per second each agent delivered to the collector.", units.Short, half,
		series{`sum by (instance) (rate(telltale_agent_samples_sent_total[$__rate_interval]))`, "{{instance}}"}))
	b.WithPanel(graph("Agent send retries", "Retried sends per second: the collector was down, slow or overloaded. 0 when none.", units.OpsPerSecond, half,
		series{orZero(`sum by (instance) (rate(telltale_agent_send_retries_total[$__rate_interval]))`, "instance"), "{{instance}}"}))
	b.WithPanel(graph("Agent spool drops", "Samples per second dropped because a spool was full: data lost. 0 when none.", units.Short, half,
		series{orZero(`sum by (instance) (rate(telltale_agent_spool_dropped_total[$__rate_interval]))`, "instance"), "{{instance}}"}))
	return b, UIDSelf, title
}
