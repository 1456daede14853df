package main

import (
	"context"

	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/otlp"
)

// addOTLP mounts OTLP/HTTP metrics ingestion on /v1/metrics and on
// /api/v1/otlp/v1/metrics (where Prometheus serves it), behind the write
// scope, with the same body limits, counters and write path as the other
// write endpoints.
func (a *app) addOTLP(context.Context) error {
	h := a.auth.Require(auth.ScopeWrite, otlp.NewHandler(a.ingest, otlp.Options{
		LookbackDelta:     a.cfg.lookbackDelta,
		Limits:            otlp.Limits{MaxAttributeDepth: a.cfg.otlpMaxDepth, MaxAttributes: a.cfg.otlpMaxAttrs},
		DeltaToCumulative: a.cfg.otlpDelta,
		DeltaMaxSeries:    a.cfg.otlpDeltaSeries,
		HistogramsToNHCB:  a.cfg.otlpNHCB,
		Logger:            a.log,
		Metrics:           a.set,
	}))
	a.mux.Handle(otlp.Path, h)
	a.mux.Handle(otlp.PrometheusPath, h)
	return nil
}
