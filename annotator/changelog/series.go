package changelog

import (
	"context"
	"fmt"
	"time"

	"github.com/telltale-dev/telltale/annotator/impact"
	"github.com/telltale-dev/telltale/samples"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// changes.Change series names: every kind.
const (
	// MetricChangeInfo{kind,service,env,subject,version,commit,who,status}
	// is written at each change's time with that time in unix seconds as
	// value (status as recorded, so "running" for an open region). Mark
	// changes with max_over_time(telltale_change_info{...}[$__interval]).
	MetricChangeInfo = "telltale_change_info"
	// MetricChangeEndTime{same labels} is written at a region's end with
	// the end time in unix seconds; status is the final one.
	MetricChangeEndTime = "telltale_change_end_time_seconds"
	// MetricChangesTotal{kind,service,env} counts the changes of the kind
	// recorded so far, written at each change's time.
	MetricChangesTotal = "telltale_changes_total"
	// MetricChangeRegressions{kind,service,env} is written when a change's
	// impact analysis is done, at that time: the number of signals that
	// regressed (or, for the request rate, changed).
	MetricChangeRegressions = "telltale_change_regressions"
)

// Deploy series names: kind deploy only, written besides the change
// series so the dashboards and alerts written against them keep working.
const (
	// MetricDeploysTotal{service,env} is the number of deploys of the
	// service to the env so far, written at each deploy's time.
	MetricDeploysTotal = "telltale_deploys_total"
	// MetricDeployInfo{service,env,version,commit,who,status} is written at
	// each deploy's time with the deploy time in unix seconds as value.
	// A deploy without env has no env label: it marks every env, which
	// the dashboards select with env=~"$env|".
	MetricDeployInfo = "telltale_deploy_info"
	// MetricDeployEndTime{service,env,version,commit,who,status} is written
	// at a long deploy's end with the end time in unix seconds.
	MetricDeployEndTime = "telltale_deploy_end_time_seconds"
	// MetricDeployRegressions{service,env} is written when a deploy's
	// impact analysis is done, at that time. Alert on
	// last_over_time(telltale_deploy_regressions[1h]) > 0.
	MetricDeployRegressions = "telltale_deploy_regressions"
	// MetricDeployImpactSignals{service,env,verdict} is written with it:
	// how many signals got each verdict (all five verdicts, zeros
	// included, so the latest analysis replaces the previous one).
	MetricDeployImpactSignals = "telltale_deploy_impact_signals"
)

var (
	changeMetadata = []samples.Metadata{
		{Name: MetricChangesTotal, Type: "counter", Help: "Changes recorded so far per kind, service and env."},
		{Name: MetricChangeInfo, Type: "gauge", Help: "One sample per change at its time; the value is that time in unix seconds.", Unit: "seconds"},
		{Name: MetricChangeEndTime, Type: "gauge", Help: "One sample per finished region (a long deploy, a switch back to its default, a closed incident) at its end; the value is that time in unix seconds.", Unit: "seconds"},
		{Name: MetricChangeRegressions, Type: "gauge", Help: "Signals that regressed or changed after the latest analysed change of the kind, service and env; one sample per analysis, at its time."},
	}
	deployMetadata = []samples.Metadata{
		{Name: MetricDeploysTotal, Type: "counter", Help: "Deploys recorded so far per service and env."},
		{Name: MetricDeployInfo, Type: "gauge", Help: "One sample per deploy at the deploy time; the value is that time in unix seconds.", Unit: "seconds"},
		{Name: MetricDeployEndTime, Type: "gauge", Help: "One sample per finished long deploy at its end; the value is that time in unix seconds.", Unit: "seconds"},
		{Name: MetricDeployRegressions, Type: "gauge", Help: "Signals that regressed or changed after the latest analysed deploy of the service and env; one sample per analysis, at its time."},
		{Name: MetricDeployImpactSignals, Type: "gauge", Help: "Signals per verdict of the latest analysed deploy of the service and env; one sample per analysis, at its time."},
	}
)

// verdicts are the impact verdicts, in the order their series are written.
var verdicts = []impact.Verdict{impact.Regressed, impact.Changed, impact.Improved, impact.Unchanged, impact.NotEnoughData}

// deliverSeries writes the series of one outbox event.
func (s *Service) deliverSeries(ctx context.Context, e Entry, c changes.Change) error {
	var b samples.Batch
	switch e.Event {
	case EventRecorded:
		n, err := s.log.CountThrough(ctx, c)
		if err != nil {
			return err
		}
		recordedSeries(&b, c, n)
	case EventFinished:
		if c.EndTime == nil {
			return nil // reopened cannot happen; nothing to write
		}
		finishedSeries(&b, c)
	case EventImpact:
		rep, err := s.storedReport(ctx, c)
		if err != nil {
			return err
		}
		impactSeries(&b, c, rep)
	default:
		return &permanentError{fmt.Errorf("BUG: unknown outbox event %q", e.Event)}
	}
	if err := s.opts.Writer.WriteSamples(ctx, &b); err != nil {
		return fmt.Errorf("cannot write change series: %w", err)
	}
	return nil
}

// recordedSeries appends the series written when change c is recorded; n
// is the count of c's kind, service and env through c.
func recordedSeries(b *samples.Batch, c changes.Change, n int64) {
	t := c.Time.UnixMilli()
	b.Metadata = append(b.Metadata, changeMetadata[:2]...)
	b.StartSeries(nil)
	b.AddLabel("__name__", MetricChangesTotal)
	addLabel(b, "env", c.Env)
	addLabel(b, "kind", c.Kind)
	addLabel(b, "service", c.Service)
	b.AddSample(t, float64(n))
	changeLabels(b, MetricChangeInfo, c)
	b.AddSample(t, unixSeconds(c.Time))
	if c.Kind != changes.KindDeploy {
		return
	}
	b.Metadata = append(b.Metadata, deployMetadata[:2]...)
	b.StartSeries(nil)
	b.AddLabel("__name__", MetricDeploysTotal)
	addLabel(b, "env", c.Env)
	addLabel(b, "service", c.Service)
	b.AddSample(t, float64(n))
	deployLabels(b, MetricDeployInfo, c)
	b.AddSample(t, unixSeconds(c.Time))
}

// finishedSeries appends the end series of a finished region c.
func finishedSeries(b *samples.Batch, c changes.Change) {
	t := c.EndTime.UnixMilli()
	b.Metadata = append(b.Metadata, changeMetadata[2])
	changeLabels(b, MetricChangeEndTime, c)
	b.AddSample(t, unixSeconds(*c.EndTime))
	if c.Kind == changes.KindDeploy {
		b.Metadata = append(b.Metadata, deployMetadata[2])
		deployLabels(b, MetricDeployEndTime, c)
		b.AddSample(t, unixSeconds(*c.EndTime))
	}
}

// impactSeries appends the series written when change c's impact
// analysis rep is done, at its time.
func impactSeries(b *samples.Batch, c changes.Change, rep *impact.Report) {
	t := rep.ComputedAt.UnixMilli()
	b.Metadata = append(b.Metadata, changeMetadata[3])
	b.StartSeries(nil)
	b.AddLabel("__name__", MetricChangeRegressions)
	addLabel(b, "env", c.Env)
	addLabel(b, "kind", c.Kind)
	addLabel(b, "service", c.Service)
	b.AddSample(t, float64(rep.Regressions()))
	if c.Kind != changes.KindDeploy {
		return
	}
	b.Metadata = append(b.Metadata, deployMetadata[3:5]...)
	b.StartSeries(nil)
	b.AddLabel("__name__", MetricDeployRegressions)
	addLabel(b, "env", c.Env)
	addLabel(b, "service", c.Service)
	b.AddSample(t, float64(rep.Regressions()))
	for _, v := range verdicts {
		n := 0
		for _, sr := range rep.Signals {
			if sr.Verdict == v {
				n++
			}
		}
		b.StartSeries(nil)
		b.AddLabel("__name__", MetricDeployImpactSignals)
		addLabel(b, "env", c.Env)
		addLabel(b, "service", c.Service)
		b.AddLabel("verdict", string(v))
		b.AddSample(t, float64(n))
	}
}

// changeLabels starts a series with c's label set, in label name order.
// Free text (message, link, fields) never becomes a label; the rest is
// bounded by input validation.
func changeLabels(b *samples.Batch, name string, c changes.Change) { labels(b, name, c, true) }

// deployLabels starts a deploy series: no kind, no subject.
func deployLabels(b *samples.Batch, name string, c changes.Change) { labels(b, name, c, false) }

func labels(b *samples.Batch, name string, c changes.Change, kind bool) {
	b.StartSeries(nil)
	b.AddLabel("__name__", name)
	addLabel(b, "commit", c.Commit)
	addLabel(b, "env", c.Env)
	if kind {
		addLabel(b, "kind", c.Kind)
	}
	addLabel(b, "service", c.Service)
	addLabel(b, "status", c.Status)
	if kind {
		addLabel(b, "subject", c.Subject)
	}
	addLabel(b, "version", c.Version)
	addLabel(b, "who", c.Who)
}

// addLabel adds a label unless v is empty (Prometheus treats an empty value
// as no label).
func addLabel(b *samples.Batch, name, v string) {
	if v != "" {
		b.AddLabel(name, v)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1e3 }
