package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/telltale-dev/telltale/collector/fanout"
	"github.com/telltale-dev/telltale/samples"
)

// addFanout connects this replica to the others over NATS when -nats.url
// or -nats.listen is set: the live tail shows what every replica ingests
// and records, and in forward mode the query result cache learns of late
// writes that came through other replicas. Needs a.tail and a.query: wire
// after addTail. The bus closes before the hub (closers run in reverse).
func (a *app) addFanout(ctx context.Context) error {
	cfg := a.cfg
	if cfg.natsURL == "" && cfg.natsListen == "" {
		if cfg.forwardMode() && a.query.Observer() != nil {
			a.log.Info("forward mode without NATS: the query cache sees late writes of this replica only; with several replicas set -nats.url or -nats.listen, or -query.cache-size=0",
				"component", "fanout")
		}
		return nil
	}
	opts := fanout.Options{
		URL: cfg.natsURL, Subject: cfg.natsSubject, Replica: cfg.natsReplica,
		ParseSelector: a.query.Parser().ParseMetricSelector,
		Tail:          a.tail,
		Logger:        a.log, Metrics: a.set,
	}
	if cfg.natsListen != "" {
		opts.Embed = &fanout.Embed{Listen: cfg.natsListen, ClusterListen: cfg.natsClusterListen}
		if cfg.natsRoutes != "" {
			opts.Embed.Routes = strings.Split(cfg.natsRoutes, ",")
		}
	}
	if o := a.query.Observer(); o != nil && cfg.forwardMode() {
		opts.Late = func(b *samples.Batch) { o.Observe(b, nil) }
		opts.ClearCache = a.query.ClearCache
	}
	if opts.Replica == "" {
		opts.Replica = cfg.listen
	}
	bus, err := fanout.New(opts)
	if err != nil {
		return fmt.Errorf("-nats.*: %w", err)
	}
	a.fanout = bus
	a.addObserver(bus)
	a.workers = append(a.workers, bus.Run)
	a.closers = append(a.closers, bus.Close)
	a.log.Info("connected to the other replicas over NATS", "component", "fanout", "url", cfg.natsURL,
		"embedded", bus.ClientURL(), "subject", opts.Subject, "replica", opts.Replica)
	return nil
}
