package main

import (
	"context"

	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/protoparser/otlp"
)

// addOTLP mounts OTLP/HTTP metrics ingestion on /v1/metrics and on
// /api/v1/otlp/v1/metrics (where Prometheus serves it), behind the write
// scope, with the same body limits, counters and write path as the other
// write endpoints (ingest.OTLP; decoding is protoparser/otlp).
func (a *app) addOTLP(context.Context) error {
	h := a.auth.Require(auth.ScopeWrite, ingest.NewOTLP(a.ingest, ingest.OTLPOptions{
		LookbackDelta:     a.cfg.lookbackDelta,
		Limits:            otlp.Limits{MaxAttributeDepth: a.cfg.otlpMaxDepth, MaxAttributes: a.cfg.otlpMaxAttrs},
		DeltaToCumulative: a.cfg.otlpDelta,
		DeltaMaxSeries:    a.cfg.otlpDeltaSeries,
		HistogramsToNHCB:  a.cfg.otlpNHCB,
		Logger:            a.log,
		Metrics:           a.set,
	}))
	a.mux.Handle(ingest.OTLPPath, h)
	a.mux.Handle(ingest.OTLPPrometheusPath, h)
	return nil
}
