package deploys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/deployapi"
	"github.com/telltale-dev/telltale/annotator/deploylog"
	"github.com/telltale-dev/telltale/annotator/impact"
)

// ImpactOptions turns on deploy impact analysis (Options.Impact): once a
// deploy's after window has passed (impact.DueAt: deploy time + window +
// impact.Grace), the Service runs impact.Analyze on it, stores the report
// with the deploy and sends the one-line summary on. The analysis is an
// outbox entry (target "impact") due at that time, so it survives restarts:
// a deploy whose analysis fell due while the collector was down is analysed
// after start, and a stored report is never recomputed.
type ImpactOptions struct {
	// Querier runs the signal queries; required. The collector passes
	// promq.New(engine, storage).
	Querier impact.Querier
	// Config gives the window, step, rate window and the signals per
	// service; nil means the defaults (impact.DefaultSignals, 15m window).
	Config *impact.Config
	// Analyze tunes the statistics (Alpha, MinRequests, Resamples, Seed,
	// History, SkipDayBefore). Its Window and Step come from Config, its
	// clock from Options.Now.
	Analyze impact.Options
	// Timeout bounds one analysis (default 2m).
	Timeout time.Duration
}

// impactRunner is the resolved impact configuration of a Service.
type impactRunner struct {
	querier  impact.Querier
	cfg      *impact.Config
	opts     impact.Options
	window   time.Duration
	timeout  time.Duration
	done     *metrics.Counter
	failed   *metrics.Counter
	duration *metrics.Histogram
}

func newImpactRunner(o ImpactOptions, now func() time.Time, set *metrics.Set) (*impactRunner, error) {
	if o.Querier == nil {
		return nil, errors.New("deploy impact: BUG: ImpactOptions without a Querier")
	}
	cfg := o.Config
	if cfg == nil {
		cfg = &impact.Config{}
	}
	if cfg.Window == 0 || cfg.Step == 0 {
		w := cfg.Window
		if w == 0 {
			w = impact.DefaultWindow
		}
		var err error
		if cfg, err = cfg.WithWindow(w); err != nil {
			return nil, fmt.Errorf("deploy impact config: %w", err)
		}
	}
	opts := o.Analyze
	co := cfg.Options()
	opts.Window, opts.Step, opts.Now = co.Window, co.Step, now
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	return &impactRunner{
		querier: o.Querier, cfg: cfg, opts: opts, window: cfg.Window, timeout: o.Timeout,
		done:     set.GetOrCreateCounter(`telltale_impact_analyses_total{outcome="done"}`),
		failed:   set.GetOrCreateCounter(`telltale_impact_analyses_total{outcome="error"}`),
		duration: set.GetOrCreateHistogram(`telltale_impact_analysis_duration_seconds`),
	}, nil
}

// dueAt is when deploy d's impact can be analysed.
func (r *impactRunner) dueAt(d Deploy) time.Time {
	return impact.DueAt(impact.Deploy{ID: d.ID, Service: d.Service, Env: d.Env, Time: d.Time}, r.window)
}

// deliverImpact runs the impact analysis of deploy d and stores the report,
// enqueueing its summary for the deploy series, Grafana and the webhooks in
// the same transaction. A deploy that already has a report (a crash after
// storing it, before the outbox entry was marked done) is not analysed
// again.
func (s *Service) deliverImpact(ctx context.Context, e deploylog.Entry, d Deploy) error {
	if d.Impact != nil && d.Impact.Status == deployapi.ImpactDone {
		return nil
	}
	if e.Event != eventAnalyse {
		return &permanentError{fmt.Errorf("BUG: unknown impact outbox event %q", e.Event)}
	}
	r := s.impact
	others, err := s.neighbours(ctx, d)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := impact.Analyze(ctx, r.querier, impact.Deploy{ID: d.ID, Service: d.Service, Env: d.Env, Time: d.Time},
		others, r.cfg.Signals(d.Service, d.Env), r.opts)
	r.duration.UpdateDuration(start)
	if err != nil {
		r.failed.Inc()
		return fmt.Errorf("deploy impact analysis: %w", err)
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		return &permanentError{fmt.Errorf("BUG: cannot encode impact report: %w", err)}
	}
	rec := deploylog.ImpactRecord{Verdict: string(rep.Verdict), Summary: rep.SummaryText, Regressions: rep.Regressions(),
		ComputedAt: rep.ComputedAt, Report: raw}
	err = s.log.Update(ctx, s.opts.Now(), func(tx *deploylog.Tx) error {
		if err := tx.SetImpact(ctx, d.ID, rec); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, d, eventImpact)
	})
	if err != nil {
		return err
	}
	r.done.Inc()
	s.logger.Info("deploy impact analysed", "deploy_id", d.ID, "service", d.Service, "env", d.Env,
		"verdict", rep.Verdict, "regressions", rec.Regressions, "summary", rep.SummaryText, "took", time.Since(start).Round(time.Millisecond))
	at := rep.ComputedAt.UTC().Truncate(time.Millisecond)
	d.Impact = &deployapi.Impact{Status: deployapi.ImpactDone, Verdict: rec.Verdict, Summary: rec.Summary,
		Regressions: rec.Regressions, ComputedAt: &at}
	s.kick()
	if s.opts.OnRecorded != nil {
		s.opts.OnRecorded(d)
	}
	return nil
}

// neighbours returns the other deploys of d's service and env inside d's
// windows and the same windows a day earlier, for the report's overlap
// notes and the daily-pattern check.
func (s *Service) neighbours(ctx context.Context, d Deploy) ([]impact.Deploy, error) {
	w := s.impact.window
	var out []impact.Deploy
	for _, center := range []time.Time{d.Time, d.Time.Add(-24 * time.Hour)} {
		list, err := s.log.List(ctx, deploylog.Filter{Service: d.Service, Env: d.Env,
			From: center.Add(-w), To: center.Add(w), Limit: MaxListLimit})
		if err != nil {
			return nil, err
		}
		for _, o := range list {
			if o.ID != d.ID && o.Env == d.Env {
				out = append(out, impact.Deploy{ID: o.ID, Service: o.Service, Env: o.Env, Time: o.Time})
			}
		}
	}
	return out, nil
}

// impactState fills d.Impact from the impact target's outbox state when the
// analysis is not done yet.
func impactState(d *Deploy, t deploylog.TargetState) {
	if d.Impact != nil {
		d.Impact.Attempts = t.Attempts
		return
	}
	im := &deployapi.Impact{Attempts: t.Attempts, LastError: t.LastError}
	switch t.Status {
	case deploylog.StatusPending:
		im.Status = deployapi.ImpactPending
		next := t.NextAttempt
		im.DueAt = &next
	case deploylog.StatusFailed:
		im.Status = deployapi.ImpactFailed
	default:
		return // delivered without a report: read between the two writes
	}
	d.Impact = im
}

// handleImpact serves GET /api/v1/deploys/{id}/impact: the report once
// the analysis is done, else its state ("pending: due at ...").
func (s *Service) handleImpact(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := s.log.Get(r.Context(), id)
	if err != nil {
		s.writeError(w, r, s.storeError(err))
		return
	}
	if err := s.withDelivery(r.Context(), []*Deploy{&d}); err != nil {
		s.writeError(w, r, s.storeError(err))
		return
	}
	if d.Impact == nil {
		why := "it was recorded while impact analysis was off"
		if s.impact == nil {
			why = "impact analysis is off on this collector (enable it with -impact.enabled)"
		}
		writeJSON(w, http.StatusNotFound, envelope{Status: "error", ErrorType: "not_found",
			Error: fmt.Sprintf("deploy %q has no impact analysis: %s", id, why)})
		return
	}
	ans := deployapi.ImpactAnswer{DeployID: d.ID, Impact: *d.Impact}
	switch d.Impact.Status {
	case deployapi.ImpactPending:
		ans.Message = "pending: due at " + d.Impact.DueAt.UTC().Format(time.RFC3339)
		if d.Impact.LastError != "" {
			ans.Message += "; the last attempt failed: " + d.Impact.LastError
		}
	case deployapi.ImpactFailed:
		ans.Message = "failed: " + d.Impact.LastError
	default:
		report, ok, err := s.log.ImpactReport(r.Context(), d.ID)
		if err != nil {
			s.writeError(w, r, s.storeError(err))
			return
		}
		if ok {
			ans.Report = report
		}
		ans.Message = d.Impact.Verdict + ": " + d.Impact.Summary
	}
	writeData(w, http.StatusOK, ans)
}

// storedReport decodes the stored impact report of deploy d.
func (s *Service) storedReport(ctx context.Context, d Deploy) (*impact.Report, error) {
	raw, ok, err := s.log.ImpactReport(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &permanentError{fmt.Errorf("BUG: impact event of deploy %q without a stored report", d.ID)}
	}
	var rep impact.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, &permanentError{fmt.Errorf("stored impact report of deploy %q does not decode: %w", d.ID, err)}
	}
	return &rep, nil
}
