package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/telltale-dev/telltale/agent/host"
	"github.com/telltale-dev/telltale/samples"
)

// agentSeenWindow is how recent an agent's telltale_agent_info sample for
// this host must be for the in-process host metrics to pause: six pushes
// at the agent's default 10s interval, so a slow or briefly unreachable
// agent does not make them flap.
const agentSeenWindow = time.Minute

// addHostMetrics records this host's metrics in-process with the agent's
// host package, so `go run ./collector` has real data to query at once.
//
// An agent on the same host records the same series (job="node", the same
// instance); both at once would interleave two copies of every host
// sample. So before each collection the collector looks for the agent's
// own series, telltale_agent_info{instance=<this host>}, in its storage:
// while one is fresher than agentSeenWindow the in-process collection
// pauses (logged once, with the way to keep it off for good:
// -host-metrics=false), and it resumes when the agent has been gone that
// long. An agent started with another -instance is a different host to the
// dashboards and is not detected.
func (a *app) addHostMetrics(context.Context) error {
	if !a.cfg.hostMetrics {
		return nil
	}
	hc := host.New(host.Options{Root: a.cfg.hostRoot})
	instance := hc.Instance()
	var paused atomic.Bool
	a.set.NewGauge("telltale_collector_host_metrics_paused", func() float64 {
		if paused.Load() {
			return 1
		}
		return 0
	})
	var b samples.Batch
	a.addPeriodic("hostmetrics", "cannot record host metrics", a.cfg.hostInterval,
		a.set.NewCounter("telltale_collector_host_metrics_errors_total"),
		func(ctx context.Context, now time.Time) error {
			agent, err := a.agentRecords(ctx, instance, now)
			if err != nil {
				return err
			}
			if agent != paused.Load() {
				paused.Store(agent)
				if agent {
					a.log.Warn("an agent records this host: in-process host metrics paused so host samples are not doubled; start the collector with -host-metrics=false to keep them off",
						"component", "hostmetrics", "instance", instance)
				} else {
					a.log.Info("no agent records this host any more: in-process host metrics resumed", "component", "hostmetrics", "instance", instance)
				}
			}
			if agent {
				return nil
			}
			b.Reset()
			var errs []error
			if err := hc.Collect(now, &b); err != nil {
				errs = append(errs, fmt.Errorf("some host metrics are unreadable (the rest are stored): %w", err))
			}
			if b.Len() > 0 {
				if _, err := a.writer.Write(ctx, &b); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		})
	return nil
}

// agentRecords tells whether an agent pushed telltale_agent_info with this
// instance within agentSeenWindow before now.
func (a *app) agentRecords(ctx context.Context, instance string, now time.Time) (bool, error) {
	q, err := a.store.Querier(now.Add(-agentSeenWindow).UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("cannot look for an agent of this host: %w", err)
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil,
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "telltale_agent_info"),
		labels.MustNewMatcher(labels.MatchEqual, "instance", instance))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		if it.Next() != chunkenc.ValNone { // any sample in range
			return true, nil
		}
	}
	if err := ss.Err(); err != nil {
		return false, fmt.Errorf("cannot look for an agent of this host: %w", err)
	}
	return false, nil
}
