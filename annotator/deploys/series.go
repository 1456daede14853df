package deploys

import (
	"context"
	"fmt"
	"time"

	"github.com/telltale-dev/telltale/annotator/deploylog"
	"github.com/telltale-dev/telltale/annotator/impact"
	"github.com/telltale-dev/telltale/samples"
)

// Deploy series names.
const (
	// MetricDeploysTotal{service,env} is the number of deploys of the
	// service to the env so far, written at each deploy's time.
	MetricDeploysTotal = "telltale_deploys_total"
	// MetricDeployInfo{service,env,version,commit,who,status} is written at
	// each deploy's time with the deploy time in unix seconds as value;
	// status is the deploy's status when the series is written, normally
	// right after it was recorded (so "running" for a deploy in progress).
	MetricDeployInfo = "telltale_deploy_info"
	// MetricDeployEndTime{service,env,version,commit,who,status} is written
	// at a long deploy's end with the end time in unix seconds; status is
	// the final one.
	MetricDeployEndTime = "telltale_deploy_end_time_seconds"
	// MetricDeployRegressions{service,env} is written when a deploy's
	// impact analysis is done, at that time: the number of signals that
	// regressed (or, for the request rate, changed). Alert on
	// last_over_time(telltale_deploy_regressions[1h]) > 0.
	MetricDeployRegressions = "telltale_deploy_regressions"
	// MetricDeployImpactSignals{service,env,verdict} is written with it:
	// how many signals got each verdict (all five verdicts, zeros
	// included, so the latest analysis replaces the previous one).
	MetricDeployImpactSignals = "telltale_deploy_impact_signals"
)

var seriesMetadata = []samples.Metadata{
	{Name: MetricDeploysTotal, Type: "counter", Help: "Deploys recorded so far per service and env."},
	{Name: MetricDeployInfo, Type: "gauge", Help: "One sample per deploy at the deploy time; the value is that time in unix seconds.", Unit: "seconds"},
	{Name: MetricDeployEndTime, Type: "gauge", Help: "One sample per finished long deploy at its end; the value is that time in unix seconds.", Unit: "seconds"},
	{Name: MetricDeployRegressions, Type: "gauge", Help: "Signals that regressed or changed after the latest analysed deploy of the service and env; one sample per analysis, at its time."},
	{Name: MetricDeployImpactSignals, Type: "gauge", Help: "Signals per verdict of the latest analysed deploy of the service and env; one sample per analysis, at its time."},
}

// verdicts are the impact verdicts, in the order their series are written.
var verdicts = []impact.Verdict{impact.Regressed, impact.Changed, impact.Improved, impact.Unchanged, impact.NotEnoughData}

// deliverSeries writes the deploy series of one outbox event.
func (s *Service) deliverSeries(ctx context.Context, e deploylog.Entry, d Deploy) error {
	var b samples.Batch
	switch e.Event {
	case eventRecorded:
		n, err := s.log.CountThrough(ctx, d)
		if err != nil {
			return err
		}
		recordedSeries(&b, d, n)
	case eventFinished:
		if d.EndTime == nil {
			return nil // reopened cannot happen; nothing to write
		}
		finishedSeries(&b, d)
	case eventImpact:
		rep, err := s.storedReport(ctx, d)
		if err != nil {
			return err
		}
		impactSeries(&b, d, rep)
	default:
		return &permanentError{fmt.Errorf("BUG: unknown outbox event %q", e.Event)}
	}
	if err := s.opts.Writer.WriteSamples(ctx, &b); err != nil {
		return fmt.Errorf("cannot write deploy series: %w", err)
	}
	return nil
}

// recordedSeries appends the series written when deploy d is recorded; n is
// the deploy count of d's service and env through d.
func recordedSeries(b *samples.Batch, d Deploy, n int64) {
	t := d.Time.UnixMilli()
	b.Metadata = append(b.Metadata, seriesMetadata...)
	b.StartSeries(nil)
	b.AddLabel("__name__", MetricDeploysTotal)
	addLabel(b, "env", d.Env)
	addLabel(b, "service", d.Service)
	b.AddSample(t, float64(n))

	infoLabels(b, MetricDeployInfo, d, d.Status)
	b.AddSample(t, unixSeconds(d.Time))
}

// finishedSeries appends the end series of a finished deploy d.
func finishedSeries(b *samples.Batch, d Deploy) {
	b.Metadata = append(b.Metadata, seriesMetadata[2])
	infoLabels(b, MetricDeployEndTime, d, d.Status)
	b.AddSample(d.EndTime.UnixMilli(), unixSeconds(*d.EndTime))
}

// impactSeries appends the series written when deploy d's impact
// analysis rep is done, at its time.
func impactSeries(b *samples.Batch, d Deploy, rep *impact.Report) {
	t := rep.ComputedAt.UnixMilli()
	b.Metadata = append(b.Metadata, seriesMetadata[3:5]...)
	b.StartSeries(nil)
	b.AddLabel("__name__", MetricDeployRegressions)
	addLabel(b, "env", d.Env)
	addLabel(b, "service", d.Service)
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
		addLabel(b, "env", d.Env)
		addLabel(b, "service", d.Service)
		b.AddLabel("verdict", string(v))
		b.AddSample(t, float64(n))
	}
}

// infoLabels starts a series with d's label set, in label name order. Free
// text (message, link) never becomes a label; the rest is bounded by input
// validation.
func infoLabels(b *samples.Batch, name string, d Deploy, status string) {
	b.StartSeries(nil)
	b.AddLabel("__name__", name)
	addLabel(b, "commit", d.Commit)
	addLabel(b, "env", d.Env)
	addLabel(b, "service", d.Service)
	addLabel(b, "status", status)
	addLabel(b, "version", d.Version)
	addLabel(b, "who", d.Who)
}

// addLabel adds a label unless v is empty (Prometheus treats an empty value
// as no label).
func addLabel(b *samples.Batch, name, v string) {
	if v != "" {
		b.AddLabel(name, v)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1e3 }
