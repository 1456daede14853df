package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// SelfJob is the job label of the collector's own series recorded by
// -self-metrics, like the agent's job="telltale-agent".
const SelfJob = "telltale-collector"

// addSelfMetrics records what /metrics serves into the collector's own
// storage every -self-metrics.interval, through the same Writer (limits,
// counters, WAL) as any write, with job="telltale-collector" and
// instance=<host name>:<listen port>. So the Telltale dashboard has data
// from the first minute without anything scraping /metrics.
func (a *app) addSelfMetrics(context.Context) error {
	if !a.cfg.selfMetrics {
		return nil
	}
	instance := selfInstance(a.cfg.listen)
	p := promtext.Parser{ExtraLabels: []samples.Label{{Name: "instance", Value: instance}, {Name: "job", Value: SelfJob}}}
	var buf bytes.Buffer
	var b samples.Batch
	a.addPeriodic("selfmetrics", "cannot record the collector's own metrics", a.cfg.selfInterval,
		a.set.NewCounter("telltale_collector_self_metrics_errors_total"),
		func(ctx context.Context, now time.Time) error {
			buf.Reset()
			b.Reset()
			a.writeMetrics(&buf)
			if err := p.Parse(buf.Bytes(), now.UnixMilli(), &b); err != nil {
				return fmt.Errorf("BUG: /metrics does not parse: %w", err)
			}
			_, err := a.writer.Write(ctx, &b)
			return err
		})
	return nil
}

// selfInstance is <host name>:<port of listen>, like the instance label a
// Prometheus scrape of this collector would give.
func selfInstance(listen string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}
