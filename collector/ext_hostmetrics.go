package main

import (
	"context"
	"time"

	"github.com/telltale-dev/telltale/agent/host"
	"github.com/telltale-dev/telltale/samples"
)

// addHostMetrics records this host's metrics in-process with the agent's
// host package, so `go run ./collector` has real data to query at once.
func (a *app) addHostMetrics(ctx context.Context) error {
	if !a.cfg.hostMetrics {
		return nil
	}
	hc := host.New(host.Options{Root: a.cfg.hostRoot})
	errs := a.set.NewCounter("telltale_collector_host_metrics_errors_total")
	a.workers = append(a.workers, func(ctx context.Context) error {
		var b samples.Batch
		lastErr := ""
		collect := func(now time.Time) {
			b.Reset()
			if err := hc.Collect(now, &b); err != nil {
				errs.Inc()
				// A source that stays unreadable is logged once, not every interval.
				if msg := err.Error(); msg != lastErr {
					lastErr = msg
					a.log.Warn("cannot read some host metrics; the rest are stored", "component", "hostmetrics", "err", err)
				}
			} else {
				lastErr = ""
			}
			if b.Len() == 0 {
				return
			}
			if _, err := a.writer.Write(ctx, &b); err != nil {
				errs.Inc()
				a.log.Warn("cannot store host metrics", "component", "hostmetrics", "err", err)
			}
		}
		collect(time.Now())
		t := time.NewTicker(a.cfg.hostInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-t.C:
				collect(now)
			}
		}
	})
	return nil
}
