// Package instrument puts a Go service's own metrics on the shared Telltale
// dashboards in a few lines: counters, gauges and Prometheus histograms that
// carry the standard labels (service, env), HTTP middleware with bounded
// label cardinality, Go runtime and process metrics, a build-info series,
// a pusher to the collector that loses nothing in a short outage, and
// contingency switches (switches.go) whose flips are recorded in the
// collector's change log.
//
// Quick start:
//
//	stop, err := instrument.Start(ctx, instrument.Options{
//		Collector: "http://127.0.0.1:9470", Service: "shop", Env: "prod",
//	})
//	if err != nil { ... }
//	defer stop() // pushes the last samples
//	http.ListenAndServe(addr, instrument.Middleware(mux))
//	instrument.Counter("orders_placed_total", "kind", "book").Inc()
//
// What it promises:
//
//   - Every pushed sample carries the time it was measured (ms since the
//     epoch), so samples retried after a collector outage land where they
//     belong: no hole, no shifted points.
//   - A failed push is kept in a buffer bounded by Options.BufferBytes and
//     retried with exponential backoff (or the collector's Retry-After) on
//     5xx, 429, 408 and network errors; the oldest intervals are dropped when
//     the buffer is full and counted in
//     telltale_instrument_push_dropped_samples_total{reason="buffer_full"}.
//     Intervals are delivered oldest first, so per-series order holds.
//   - Any other 4xx means the collector refuses that body: it is dropped,
//     counted (reason="rejected") and the collector's message is logged once
//     per distinct message.
//   - Label values are bounded: each (metric, label) pair admits at most
//     RegistryOptions.MaxLabelValues distinct values; further values are
//     recorded as "other" and counted in
//     telltale_instrument_label_overflow_total{metric,label}.
//   - Label values are made valid UTF-8 and cut to 256 bytes, so one odd
//     value cannot make the collector reject a whole push.
//
// Package-level state is limited to the default Registry, which uses
// VictoriaMetrics/metrics' default Set: metrics created with that package's
// own functions (metrics.NewCounter ...) are exported too. Tests and
// libraries can use their own Registry from NewRegistry.
//
// Invalid metric or label names and an odd number of label arguments are
// programming errors: the metric helpers panic on them, as
// VictoriaMetrics/metrics does, so they surface on the first run.
package instrument
