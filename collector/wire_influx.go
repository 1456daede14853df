package main

import (
	"context"
	"net/http"

	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/influx"
)

// addInflux mounts Influx line protocol ingestion: /write (1.x) and
// /api/v2/write (2.x) behind the write scope, with Influx clients' ways of
// sending a token accepted (influx.AuthCompat), the same body limits,
// counters and write path as the other write endpoints; and the open
// probes Influx clients and Telegraf call, /ping and /health.
func (a *app) addInflux(context.Context) error {
	h := influx.NewHandler(a.ingest, influx.Options{
		MaxLineLen: a.cfg.influxMaxLineLen,
		Version:    buildVersion(),
		Ready:      a.ready.Load,
		Logger:     a.log,
	})
	write := func(f http.HandlerFunc) http.Handler {
		return influx.AuthCompat(a.auth.Require(auth.ScopeWrite, f))
	}
	a.mux.Handle(influx.PathV1, write(h.WriteV1))
	a.mux.Handle(influx.PathV2, write(h.WriteV2))
	// Probes stay open, like /healthz: they reveal nothing.
	a.mux.HandleFunc(influx.PathPing, h.Ping)
	a.mux.HandleFunc(influx.PathHealth, h.Health)
	return nil
}
