package changelog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/impact"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// ImpactOptions turns on impact analysis (Options.Impact): once the after
// window of a change of one of changes.Kinds has passed (impact.DueAt: change time
// + window + impact.Grace), the Service runs impact.Analyze on it, stores
// the report with the change and sends the one-line summary on. The
// analysis is an outbox entry (target "impact") due at that time, so it
// survives restarts: a change whose analysis fell due while the collector
// was down is analysed after start, and a stored report is never
// recomputed. The report names every other change of the service (any
// kind) inside its windows.
type ImpactOptions struct {
	// Kinds are the kinds analysed; nil means DefaultImpactKinds.
	Kinds []string
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

// DefaultImpactKinds are the kinds whose impact is analysed by default:
// the changes that change behaviour.
var DefaultImpactKinds = []string{changes.KindDeploy, changes.KindSwitch, changes.KindConfig}

// impactRunner is the resolved impact configuration of a Service.
type impactRunner struct {
	kinds    []string
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
		return nil, errors.New("change impact: BUG: ImpactOptions without a Querier")
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
			return nil, fmt.Errorf("impact config: %w", err)
		}
	}
	opts := o.Analyze
	co := cfg.Options()
	opts.Window, opts.Step, opts.Now = co.Window, co.Step, now
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	kinds := o.Kinds
	if kinds == nil {
		kinds = DefaultImpactKinds
	}
	return &impactRunner{
		kinds:   kinds,
		querier: o.Querier, cfg: cfg, opts: opts, window: cfg.Window, timeout: o.Timeout,
		done:     set.GetOrCreateCounter(`telltale_impact_analyses_total{outcome="done"}`),
		failed:   set.GetOrCreateCounter(`telltale_impact_analyses_total{outcome="error"}`),
		duration: set.GetOrCreateHistogram(`telltale_impact_analysis_duration_seconds`),
	}, nil
}

// analyses reports whether changes of kind get an impact analysis.
func (r *impactRunner) analyses(kind string) bool { return slices.Contains(r.kinds, kind) }

// backfillSettle is how long after it was recorded a change whose window
// has already passed waits for its analysis.
const backfillSettle = 5 * time.Second

// dueAt is when change c's impact can be analysed: once its after window
// (plus impact.Grace) has passed, and no sooner than backfillSettle after
// it was recorded. The second bound matters for changes recorded after
// their window passed (a backfill, a CI run that reports late): the
// changes recorded with them (within seconds) are then in the log when the
// report lists the overlapping ones, instead of whichever one the worker
// reaches first missing the others.
func (r *impactRunner) dueAt(c changes.Change) time.Time {
	due := impact.DueAt(impactChange(c), r.window)
	if settled := c.CreatedAt.Add(backfillSettle); settled.After(due) {
		return settled
	}
	return due
}

func impactChange(c changes.Change) impact.Change {
	return impact.Change{ID: c.ID, Kind: c.Kind, Title: c.Title(), Service: c.Service, Env: c.Env, Time: c.Time}
}

// deliverImpact runs the impact analysis of change c and stores the
// report, enqueueing its summary for the series, Grafana, the webhooks and
// the targets in the same transaction. A change that already has a report
// (a crash after storing it, before the outbox entry was marked done) is
// not analysed again.
func (s *Service) deliverImpact(ctx context.Context, e Entry, c changes.Change) error {
	if c.Impact != nil && c.Impact.Status == changes.ImpactDone {
		return nil
	}
	if e.Event != eventAnalyse {
		return &permanentError{fmt.Errorf("BUG: unknown impact outbox event %q", e.Event)}
	}
	r := s.impact
	others, err := s.neighbours(ctx, c)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := impact.Analyze(ctx, r.querier, impactChange(c), others, r.cfg.Signals(c.Service, c.Env), r.opts)
	r.duration.UpdateDuration(start)
	if err != nil {
		r.failed.Inc()
		return fmt.Errorf("impact analysis: %w", err)
	}
	if noRequests(rep) {
		rep.Hint = s.noRequestsHint(ctx, c, rep)
		rep.SummaryText = rep.Summary()
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		return &permanentError{fmt.Errorf("BUG: cannot encode impact report: %w", err)}
	}
	rec := ImpactRecord{Verdict: string(rep.Verdict), Summary: rep.SummaryText, Regressions: rep.Regressions(),
		ComputedAt: rep.ComputedAt, Report: raw}
	err = s.log.Update(ctx, s.opts.Now(), func(tx *Tx) error {
		if err := tx.SetImpact(ctx, c.ID, rec); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, c, EventImpact)
	})
	if err != nil {
		return err
	}
	r.done.Inc()
	s.logger.Info("change impact analysed", "change_id", c.ID, "kind", c.Kind, "service", c.Service, "env", c.Env,
		"verdict", rep.Verdict, "regressions", rec.Regressions, "summary", rep.SummaryText, "took", time.Since(start).Round(time.Millisecond))
	at := rep.ComputedAt.UTC().Truncate(time.Millisecond)
	c.Impact = &changes.Impact{Status: changes.ImpactDone, Verdict: rec.Verdict, Summary: rec.Summary,
		Regressions: rec.Regressions, ComputedAt: &at}
	s.kick()
	if s.opts.OnRecorded != nil {
		s.opts.OnRecorded(c)
	}
	return nil
}

// noRequests reports whether rep found no requests to judge in either
// window: the service or env of the change may match no data.
func noRequests(rep *impact.Report) bool {
	none := func(v impact.Float) bool { return math.IsNaN(float64(v)) || v == 0 }
	return none(rep.RequestsBefore) && none(rep.RequestsAfter)
}

// neighbours returns the other changes (every kind) of c's service and env
// inside c's windows and the same windows a day earlier, for the report's
// overlap notes and the daily-pattern check.
func (s *Service) neighbours(ctx context.Context, c changes.Change) ([]impact.Change, error) {
	w := s.impact.window
	var out []impact.Change
	for _, center := range []time.Time{c.Time, c.Time.Add(-24 * time.Hour)} {
		list, err := s.log.List(ctx, changes.Filter{Service: c.Service, Env: c.Env, EnvlessToo: true,
			From: center.Add(-w), To: center.Add(w), Limit: changes.MaxListLimit})
		if err != nil {
			return nil, err
		}
		for _, o := range list {
			if o.ID != c.ID {
				out = append(out, impactChange(o))
			}
		}
	}
	return out, nil
}

// impactState fills c.Impact from the impact target's outbox state when the
// analysis is not done yet.
func impactState(c *changes.Change, t TargetState) {
	if c.Impact != nil {
		c.Impact.Attempts = t.Attempts
		return
	}
	im := &changes.Impact{Attempts: t.Attempts, LastError: t.LastError}
	switch t.Status {
	case changes.DeliveryPending:
		im.Status = changes.ImpactPending
		next := t.NextAttempt
		im.DueAt = &next
	case changes.DeliveryFailed:
		im.Status = changes.ImpactFailed
	default:
		return // delivered without a report: read between the two writes
	}
	c.Impact = im
}

// handleImpact serves GET /api/v1/{changes,deploys}/{id}/impact: the
// report once the analysis is done, else its state ("pending: due at ...").
func (a *api) handleImpact(w http.ResponseWriter, r *http.Request) {
	s := a.s
	id := r.PathValue("id")
	c, err := a.get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := s.withDelivery(r.Context(), []*changes.Change{&c}); err != nil {
		a.fail(w, r, s.storeError(err))
		return
	}
	if c.Impact == nil {
		why := "it was recorded while impact analysis was off"
		switch {
		case s.impact == nil:
			why = "impact analysis is off on this collector (enable it with -impact.enabled)"
		case !s.impact.analyses(c.Kind):
			why = fmt.Sprintf("changes of kind %s are not analysed (the analysed kinds are %s)", c.Kind, strings.Join(s.impact.kinds, ", "))
		}
		writeJSON(w, http.StatusNotFound, changes.Response[any]{Status: "error", ErrorType: "not_found",
			Error: fmt.Sprintf("%s %q has no impact analysis: %s", a.noun(), id, why)})
		return
	}
	ans := changes.ImpactAnswer{DeployID: c.ID, Kind: c.Kind, Impact: *c.Impact}
	switch c.Impact.Status {
	case changes.ImpactPending:
		ans.Message = "pending: due at " + c.Impact.DueAt.UTC().Format(time.RFC3339)
		if c.Impact.LastError != "" {
			ans.Message += "; the last attempt failed: " + c.Impact.LastError
		}
	case changes.ImpactFailed:
		ans.Message = "failed: " + c.Impact.LastError
	default:
		report, ok, err := s.log.ImpactReport(r.Context(), c.ID)
		if err != nil {
			a.fail(w, r, s.storeError(err))
			return
		}
		if ok {
			ans.Report = report
		}
		ans.Message = c.Impact.Verdict + ": " + c.Impact.Summary
	}
	writeData(w, http.StatusOK, ans)
}

// storedReport decodes the stored impact report of change c.
func (s *Service) storedReport(ctx context.Context, c changes.Change) (*impact.Report, error) {
	raw, ok, err := s.log.ImpactReport(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &permanentError{fmt.Errorf("BUG: impact event of change %q without a stored report", c.ID)}
	}
	var rep impact.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, &permanentError{fmt.Errorf("stored impact report of change %q does not decode: %w", c.ID, err)}
	}
	return &rep, nil
}
