package main

import (
	"context"

	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/tail"
)

// addTail wires the live tail: the hub watches every committed write,
// serves GET /api/v1/tail (read scope) and gets deploy events through
// a.tail.PublishDeploy. Its clients are closed ("server shutting down")
// after the HTTP server stopped and before storage closes.
func (a *app) addTail(ctx context.Context) error {
	hub := tail.New(tail.Options{
		MaxClients:    a.cfg.tailMaxClients,
		MaxSelectors:  a.cfg.tailMaxSelectors,
		QueueSize:     a.cfg.tailQueueSize,
		MaxLag:        a.cfg.tailMaxLag,
		WriteTimeout:  a.cfg.tailWriteTimeout,
		PingInterval:  a.cfg.tailPing,
		ParseSelector: a.query.Parser().ParseMetricSelector,
		Logger:        a.log,
		Metrics:       a.set,
		// Other replicas learn which selectors this one's clients want.
		OnSubscribersChange: func() {
			if a.fanout != nil {
				a.fanout.SubscribersChanged()
			}
		},
	})
	a.addObserver(hub)
	// More specific than "/api/v1/", so ServeMux routes it here.
	a.mux.Handle("/api/v1/tail", a.auth.Require(auth.ScopeRead, hub))
	a.tail = hub
	a.closers = append(a.closers, func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.shutdownGrace)
		defer cancel()
		return hub.Close(cctx)
	})
	return nil
}
