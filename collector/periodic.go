package main

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// secondRun is when addPeriodic runs a step the second time: rate() needs
// two samples, so a fresh start has rate graphs within seconds instead of
// one interval later.
const secondRun = 2 * time.Second

// addPeriodic adds a worker that runs step at once, again after secondRun
// (when interval is longer), and then every interval until ctx is done:
// the in-process host metrics and the collector's own metrics. An error of step is counted in errs and logged
// (as msg, at warn) once per distinct error text, not every interval, so a
// source that stays broken does not flood the log; a later success logs
// nothing and re-arms the log line.
func (a *app) addPeriodic(component, msg string, interval time.Duration, errs *metrics.Counter, step func(ctx context.Context, now time.Time) error) {
	a.workers = append(a.workers, func(ctx context.Context) error {
		lastErr := ""
		run := func(now time.Time) {
			err := step(ctx, now)
			if err == nil {
				lastErr = ""
				return
			}
			errs.Inc()
			if s := err.Error(); s != lastErr {
				lastErr = s
				a.log.Warn(msg, "component", component, "err", err)
			}
		}
		run(time.Now())
		if interval > secondRun {
			select {
			case <-ctx.Done():
				return nil
			case now := <-time.After(secondRun):
				run(now)
			}
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-t.C:
				run(now)
			}
		}
	})
}
