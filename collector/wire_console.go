package main

import (
	"context"
	"fmt"

	"github.com/telltale-dev/telltale/collector/console"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// addConsole mounts the web console on "/" (exactly) and "/static/", open
// without a token: the page holds no data, the APIs it calls check the
// read scope. The dashboards are built from dashboards/board at start, the
// same Go definitions Grafana's JSON is generated from, with raw queries
// where Grafana's panels read recorded series: the console shows data
// written late or backfilled too, which recording rules never see.
func (a *app) addConsole(context.Context) error {
	boards, err := board.All(board.Options{RawQueries: true})
	if err != nil {
		return fmt.Errorf("console: cannot build the dashboards: %w", err)
	}
	ds := make([]console.Dashboard, 0, len(boards))
	for _, b := range boards {
		js, err := b.JSON()
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		ds = append(ds, console.Dashboard{UID: b.UID, Title: b.Title, JSON: js})
	}
	c, err := console.New(console.Options{
		Dashboards:           ds,
		GrafanaURL:           a.cfg.grafanaURL,
		TraceURL:             a.cfg.traceURL,
		GrafanaDatasourceUID: board.DatasourceUID,
		AuthEnabled:          a.auth.Enabled(),
		Version:              buildVersion(),
		Logger:               a.log,
		Metrics:              a.set,
	})
	if err != nil {
		return err
	}
	// "GET /{$}" is the root only; any other path not mounted elsewhere
	// (unknown /api/ paths included) still gets the mux's 404.
	a.mux.Handle("GET /{$}", c.Handler())
	a.mux.Handle("GET /static/", c.Handler())
	return nil
}
