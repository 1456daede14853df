package main

import (
	"context"
	"net/http"

	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/ingest"
)

// addInflux mounts Influx line protocol ingestion: /write (1.x) and
// /api/v2/write (2.x) behind the write scope, with Influx clients' ways of
// sending a token accepted (ingest.InfluxAuthCompat), the same body limits,
// counters and write path as the other write endpoints (ingest.Influx);
// and the open probes Influx clients and Telegraf call, /ping and /health.
func (a *app) addInflux(context.Context) error {
	h := ingest.NewInflux(a.ingest, ingest.InfluxOptions{
		MaxLineLen: a.cfg.influxMaxLineLen,
		Version:    buildVersion(),
		Ready:      a.ready.Load,
	})
	write := func(f http.HandlerFunc) http.Handler {
		return ingest.InfluxAuthCompat(a.auth.Require(auth.ScopeWrite, f))
	}
	a.mux.Handle(ingest.InfluxPathV1, write(h.WriteV1))
	a.mux.Handle(ingest.InfluxPathV2, write(h.WriteV2))
	// Probes stay open, like /healthz: they reveal nothing.
	a.mux.HandleFunc(ingest.InfluxPathPing, h.Ping)
	a.mux.HandleFunc(ingest.InfluxPathHealth, h.Health)
	return nil
}
