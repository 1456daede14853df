// Package rules runs Prometheus recording and alerting rules inside the
// collector: Prometheus' own rules engine (github.com/prometheus/prometheus/
// rules) evaluates the rule files against the collector's storage, writes
// what it records through the collector's write path, and notifies
// Alertmanagers (API v2, through Prometheus' notifier) and chat webhooks
// about the alerts, each alert annotated with the changes (deploys ...) of
// its service that preceded it.
//
// Promises:
//   - Rule files mean what they mean to Prometheus v0.316.0: same format,
//     same evaluation, same ALERTS and ALERTS_FOR_STATE series, same
//     /api/v1/rules and /api/v1/alerts objects (Manager is the web API's
//     RulesRetriever and AlertmanagerRetriever).
//   - Every sample a rule records or an alert writes (ALERTS,
//     ALERTS_FOR_STATE, staleness markers) goes through the BatchWriter, the
//     same path as ingested samples: the live tail sees it, limits apply.
//   - A reload (Reload) loads all files or none: a file that does not load
//     keeps the rules that run, and the error names the file, the line and
//     why, with what to do (CheckFile, the same check `collector
//     check-rules` runs).
//   - An alert's `for` state survives a restart: as Prometheus does, it is
//     restored from ALERTS_FOR_STATE (within Options.OutageTolerance), so a
//     firing alert keeps its start and a pending one the time it had
//     accrued.
//   - Notifications survive a restart: the notification ledger
//     (Options.StateFile, written before anything is sent) records every
//     firing alert told to the webhooks and Alertmanagers; after a restart
//     a still-firing alert is not announced again, and one that ended while
//     the collector was down is sent resolved. Webhook deliveries are
//     retried with exponential backoff for Options.RetryFor; Alertmanager
//     sends are retried with backoff within Options.ResendDelay, and firing
//     alerts are re-sent every ResendDelay as Prometheus does.
//   - Alerts of a service (label "service") carry, when the manager has a
//     Changes source, the annotations telltale_changes ("firing since
//     14:02 UTC, 4 min after deploy web v1.2.3 by alice: <link>; impact:
//     ...") and telltale_change_link, in notifications and in
//     /api/v1/alerts alike.
//
// Tests drive evaluation with chosen timestamps (the engine itself takes no
// clock: see evalAt in the tests); the running manager evaluates on
// Prometheus' own schedule.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/strutil"
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Files are rule file paths or globs (-rules.files). A pattern that
	// matches no file is an error.
	Files []string
	// Interval evaluates groups that set none; default 1m.
	Interval time.Duration
	// Builtin rule files are loaded (and reloaded) with Files.
	Builtin []Builtin

	// Writer receives every recorded sample; required.
	Writer BatchWriter
	// Queryable and Engine run the rules' queries; required.
	Queryable storage.Queryable
	Engine    promql.QueryEngine
	// Parser parses rule expressions; default Prometheus' default parser.
	Parser parser.Parser

	// ExternalURL is the collector as people reach it: alerts link to
	// <ExternalURL>/graph?g0.expr=... and templates see it as
	// $externalURL.
	ExternalURL string
	// OutageTolerance bounds how long the collector may have been down for
	// `for` state to be restored; default 1h (Prometheus' default).
	OutageTolerance time.Duration
	// ForGracePeriod is the least time a restored pending alert waits
	// before firing; default 10m (Prometheus' default).
	ForGracePeriod time.Duration
	// ResendDelay is how often a firing alert is re-sent to the
	// Alertmanagers; default 1m (Prometheus' default).
	ResendDelay time.Duration

	// Alertmanagers are the base URLs of Alertmanagers (API v2), each
	// http(s)://host:port[/prefix]; user:password@ in a URL is sent as
	// basic auth.
	Alertmanagers []string
	// AlertmanagerTimeout bounds one send attempt; default 10s.
	AlertmanagerTimeout time.Duration
	// Webhooks get a message when an alert fires and when it resolves.
	Webhooks []Webhook
	// Recorders are told, in process, when an alert fires and when it
	// resolves (the change log records alerts through one), with the same
	// durable ledger and retries as Webhooks.
	Recorders []Recorder
	// StateFile holds the notification ledger; required when Webhooks,
	// Recorders or Alertmanagers are set.
	StateFile string
	// HTTPClient posts to webhooks; default a client with a 10s timeout.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the retry backoff of webhook
	// deliveries and Alertmanager sends; defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// RetryFor is how long a webhook delivery is retried before it is
	// given up; default 24h.
	RetryFor time.Duration

	// Changes, when set, annotates alerts of a service with its changes in
	// the ChangesWindow (default 1h) before the alert became active.
	Changes       Changes
	ChangesWindow time.Duration

	Logger  *slog.Logger // nil means slog.Default()
	Metrics *metrics.Set // telltale_rules_*; default a private set
	// Registerer receives the engine's and the notifier's own metrics
	// (prometheus_rule_*, prometheus_notifications_*); nil drops them.
	Registerer prometheus.Registerer
	// Now is the clock of the ledger and the change annotations; default
	// time.Now. (The engine schedules on the wall clock.)
	Now func() time.Time
}

// Manager runs the rules. Create it with New, load the files with Reload,
// run Run in a goroutine. It is safe for concurrent use.
type Manager struct {
	opts     Options
	log      *slog.Logger
	prom     *promrules.Manager
	promOpts *promrules.ManagerOptions
	promCtx  context.Context
	cancel   context.CancelFunc
	am       *alertmanagers // nil without Alertmanagers
	ledger   *ledger        // nil without notification targets
	hooks    []*webhookWorker
	changes  *changeContext

	holds sync.Map // alertname \x00 expr -> hold duration, for notifications

	reloadMu sync.Mutex
	loaded   Loaded

	// manual, when set (tests only), are the groups evaluated by hand
	// instead of the engine's scheduled groups.
	manual []*promrules.Group

	m managerMetrics
}

type managerMetrics struct {
	reloadOK, reloadFailed *metrics.Counter
	lastReloadOK           *metrics.Gauge
	changeErrors           *metrics.Counter
}

// Loaded describes the rules a successful Reload loaded.
type Loaded struct {
	Files  []string
	Groups int
	Rules  int
}

// New checks opts and returns a Manager with no rules loaded.
func New(opts Options) (*Manager, error) {
	if opts.Writer == nil || opts.Queryable == nil || opts.Engine == nil {
		return nil, errors.New("BUG: rules.New needs Writer, Queryable and Engine")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Parser == nil {
		opts.Parser = parser.NewParser(parser.Options{})
	}
	setDefault(&opts.Interval, time.Minute)
	setDefault(&opts.OutageTolerance, time.Hour)
	setDefault(&opts.ForGracePeriod, 10*time.Minute)
	setDefault(&opts.ResendDelay, time.Minute)
	setDefault(&opts.AlertmanagerTimeout, 10*time.Second)
	setDefault(&opts.MinBackoff, time.Second)
	setDefault(&opts.MaxBackoff, 5*time.Minute)
	setDefault(&opts.RetryFor, 24*time.Hour)
	setDefault(&opts.ChangesWindow, time.Hour)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("rules: MaxBackoff %s is below MinBackoff %s", opts.MaxBackoff, opts.MinBackoff)
	}
	if opts.ExternalURL != "" {
		if u, err := url.Parse(opts.ExternalURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("-rules.external-url=%q is not an absolute http(s) URL: set it like http://collector.example:9470", opts.ExternalURL)
		}
	}
	m := &Manager{opts: opts, log: opts.Logger.With("component", "rules")}
	m.m = managerMetrics{
		reloadOK:     opts.Metrics.NewCounter(`telltale_rules_reloads_total{outcome="success"}`),
		reloadFailed: opts.Metrics.NewCounter(`telltale_rules_reloads_total{outcome="failure"}`),
		lastReloadOK: opts.Metrics.NewGauge(`telltale_rules_last_reload_successful`, nil),
		changeErrors: opts.Metrics.NewCounter(`telltale_rules_change_lookup_errors_total`),
	}
	opts.Metrics.NewGauge("telltale_rules_groups", func() float64 { return float64(len(m.RuleGroups())) })
	if opts.Changes != nil {
		m.changes = &changeContext{src: opts.Changes, window: opts.ChangesWindow, ttl: 30 * time.Second, now: opts.Now,
			onErr: func(err error) {
				m.m.changeErrors.Inc()
				m.log.Warn("cannot look up the changes of an alert's service", "err", err)
			}}
	}

	var err error
	if len(opts.Alertmanagers) > 0 {
		if m.am, err = newAlertmanagers(opts, m.log); err != nil {
			return nil, err
		}
	}
	hooks, err := checkWebhooks(opts.Webhooks)
	if err != nil {
		return nil, err
	}
	record := map[string]func(context.Context, WebhookAlert) error{}
	for _, r := range opts.Recorders {
		if !webhookNameRE.MatchString(r.Name) || r.Record == nil {
			return nil, fmt.Errorf("BUG: rules recorder %q needs a name of [A-Za-z0-9._-] and a Record func", r.Name)
		}
		hooks = append(hooks, Webhook{Name: r.Name})
		record[r.Name] = r.Record
	}
	if m.am != nil || len(hooks) > 0 {
		if opts.StateFile == "" {
			return nil, errors.New("BUG: rules.New with notification targets needs a StateFile")
		}
		targets := make([]string, 0, len(hooks))
		for _, h := range hooks {
			targets = append(targets, h.Name)
		}
		if m.ledger, err = openLedger(opts.StateFile, targets, opts.Now); err != nil {
			return nil, err
		}
		saveErrors := opts.Metrics.NewCounter("telltale_rules_ledger_write_errors_total")
		m.ledger.onSaveError = func(err error) {
			saveErrors.Inc()
			m.log.Error("cannot write the alert notification state; a restart now may repeat or miss a message", "file", opts.StateFile, "err", err)
		}
		for _, h := range hooks {
			ww := newWebhookWorker(m, h)
			ww.record = record[h.Name]
			m.hooks = append(m.hooks, ww)
		}
	}

	m.promCtx, m.cancel = context.WithCancel(context.Background())
	builtin := map[string][]byte{}
	for _, b := range opts.Builtin {
		builtin[b.Name] = b.Data
	}
	m.promOpts = &promrules.ManagerOptions{
		GroupLoader:     loader{builtin: builtin, parser: opts.Parser},
		ExternalURL:     parseOrNil(opts.ExternalURL),
		QueryFunc:       promrules.EngineQueryFunc(opts.Engine, opts.Queryable),
		NotifyFunc:      m.notify,
		Context:         m.promCtx,
		AppendableV2:    newAppendable(opts.Writer, opts.Metrics),
		Queryable:       opts.Queryable,
		Logger:          m.log,
		Registerer:      opts.Registerer,
		OutageTolerance: opts.OutageTolerance,
		ForGracePeriod:  opts.ForGracePeriod,
		ResendDelay:     opts.ResendDelay,
		Parser:          opts.Parser,
		// Rule groups added by a reload restore their `for` state too (a
		// file added while the collector runs may alert on series written
		// by a previous instance).
		RestoreNewRuleGroups: true,
	}
	m.prom = promrules.NewManager(m.promOpts)
	return m, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func parseOrNil(s string) *url.URL {
	if s == "" {
		return nil
	}
	u, _ := url.Parse(s)
	return u
}

// ExpandFiles resolves the -rules.files patterns to sorted, de-duplicated
// paths. A pattern matching nothing is an error naming it.
func ExpandFiles(patterns []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, pat := range patterns {
		fs, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("%w: -rules.files=%q is not a valid pattern: %v", ErrInvalidRules, pat, err)
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("%w: -rules.files=%q matches no file; check the path (relative paths are from the collector's working directory)", ErrInvalidRules, pat)
		}
		for _, f := range fs {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Reload reads the rule files again and swaps the running rules for them,
// keeping the state of alerts whose rule did not change. If any file does
// not load, nothing changes and the error (wrapping ErrInvalidRules) names
// each problem with its file and line.
func (m *Manager) Reload(ctx context.Context) (Loaded, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	l, err := m.reload(ctx)
	if err != nil {
		m.m.reloadFailed.Inc()
		m.m.lastReloadOK.Set(0)
		if m.loaded.Files != nil {
			err = fmt.Errorf("%w\n(the rules loaded before stay in effect)", err)
		}
		return l, err
	}
	m.m.reloadOK.Inc()
	m.m.lastReloadOK.Set(1)
	m.loaded = l
	m.log.Info("rules loaded", "files", len(l.Files), "groups", l.Groups, "rules", l.Rules)
	return l, nil
}

// files expands Files and appends the built-in files' names.
func (m *Manager) files() ([]string, error) {
	files, err := ExpandFiles(m.opts.Files)
	if err != nil {
		return nil, err
	}
	for _, b := range m.opts.Builtin {
		files = append(files, b.Name)
	}
	return files, nil
}

func (m *Manager) check(file string) FileResult {
	for _, b := range m.opts.Builtin {
		if b.Name == file {
			return CheckBytes(b.Name, b.Data, m.opts.Parser)
		}
	}
	return CheckFile(file, m.opts.Parser)
}

func (m *Manager) reload(ctx context.Context) (Loaded, error) {
	files, err := m.files()
	if err != nil {
		return Loaded{}, err
	}
	l := Loaded{Files: files}
	var problems []string
	for _, f := range files {
		if ctx.Err() != nil {
			return Loaded{}, ctx.Err()
		}
		r := m.check(f)
		for _, p := range r.Problems {
			if p.Lint {
				m.log.Warn("rule file lint", "file", f, "problem", p.String())
				continue
			}
			problems = append(problems, p.String())
		}
		l.Groups += r.Groups
		l.Rules += r.Rules
	}
	if len(problems) > 0 {
		return Loaded{}, fmt.Errorf("%w:\n%s", ErrInvalidRules, strings.Join(problems, "\n"))
	}
	if err := m.prom.Update(m.opts.Interval, files, labels.EmptyLabels(), m.opts.ExternalURL, m.iterate); err != nil {
		// The check above passed, so the files changed in between.
		return Loaded{}, fmt.Errorf("%w: %v (a rule file changed while it was loaded? reload again)", ErrInvalidRules, err)
	}
	return l, nil
}

// Loaded returns what the last successful Reload loaded.
func (m *Manager) Loaded() Loaded {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	return m.loaded
}

// Run evaluates the rules and delivers notifications until ctx is done,
// then stops the rule groups (each finishes its evaluation), sends what
// the Alertmanager queues hold and returns. Call Reload before Run to
// load the rules.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if m.am != nil {
		m.am.start()
	}
	for _, w := range m.hooks {
		wg.Go(func() { w.run(ctx) })
	}
	runDone := make(chan struct{})
	go func() { m.prom.Run(); close(runDone) }()
	<-ctx.Done()
	m.prom.Stop() // waits for the groups' evaluations to end
	<-runDone
	m.cancel()
	if m.am != nil {
		m.am.stop()
	}
	wg.Wait()
	return nil
}

// RuleGroups returns the loaded rule groups, sorted by file and name
// (v1.RulesRetriever). The retriever methods of a nil Manager report none.
func (m *Manager) RuleGroups() []*promrules.Group {
	if m == nil {
		return nil
	}
	if m.manual != nil {
		return m.manual
	}
	return m.prom.RuleGroups()
}

// AlertingRules returns the loaded alerting rules (v1.RulesRetriever).
func (m *Manager) AlertingRules() []*promrules.AlertingRule {
	if m == nil {
		return nil
	}
	if m.manual != nil {
		var out []*promrules.AlertingRule
		for _, g := range m.manual {
			for _, r := range g.Rules() {
				if ar, ok := r.(*promrules.AlertingRule); ok {
					out = append(out, ar)
				}
			}
		}
		return out
	}
	return m.prom.AlertingRules()
}

// Alertmanagers returns the Alertmanagers alerts are sent to
// (v1.AlertmanagerRetriever).
func (m *Manager) Alertmanagers() []*url.URL {
	if m == nil || m.am == nil {
		return nil
	}
	return m.am.n.Alertmanagers()
}

// DroppedAlertmanagers returns none: Alertmanagers come from flags, not
// service discovery (v1.AlertmanagerRetriever).
func (m *Manager) DroppedAlertmanagers() []*url.URL {
	if m == nil || m.am == nil {
		return nil
	}
	return m.am.n.DroppedAlertmanagers()
}

// iterate is the groups' evaluation step: Prometheus' own, then the change
// annotations of the group's alerts and the ledger's reconciliation.
func (m *Manager) iterate(ctx context.Context, g *promrules.Group, ts time.Time) {
	for _, r := range g.Rules() {
		if ar, ok := r.(*promrules.AlertingRule); ok {
			m.holds.Store(holdKey(ar.Name(), ar.Query().String()), ar.HoldDuration())
		}
	}
	promrules.DefaultEvalIterationFunc(ctx, g, ts)
	m.annotateLive(ctx, g)
	m.reconcile(ctx, ts)
}

func holdKey(alertname, expr string) string { return alertname + "\x00" + expr }

// holdOf returns the `for` of the alerting rule with that name and
// expression, 0 when unknown.
func (m *Manager) holdOf(alertname, expr string) time.Duration {
	if v, ok := m.holds.Load(holdKey(alertname, expr)); ok {
		return v.(time.Duration)
	}
	return 0
}

// annotateLive sets the change annotations on the group's active alerts,
// so /api/v1/alerts and /api/v1/rules show what notifications say. The
// changes are looked up outside the rule's lock.
func (m *Manager) annotateLive(ctx context.Context, g *promrules.Group) {
	if m.changes == nil {
		return
	}
	for _, r := range g.Rules() {
		ar, ok := r.(*promrules.AlertingRule)
		if !ok {
			continue
		}
		want := map[uint64]labels.Labels{}
		for _, a := range ar.ActiveAlerts() {
			want[a.Labels.Hash()] = m.changes.annotate(ctx, a.Labels, a.Annotations, a.ActiveAt, ar.HoldDuration(), a.State == promrules.StateFiring)
		}
		ar.ForEachActiveAlert(func(a *promrules.Alert) {
			if ann, ok := want[a.Labels.Hash()]; ok && a.ResolvedAt.IsZero() {
				a.Annotations = ann
			}
		})
	}
}

// notify is the engine's NotifyFunc: it annotates the alerts with their
// service's changes, sends them to the Alertmanagers and records them in
// the ledger for the webhooks.
func (m *Manager) notify(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	if len(alerts) == 0 {
		return
	}
	for _, a := range alerts {
		hold := m.holdOf(a.Labels.Get(labels.AlertName), expr)
		a.Annotations = m.changes.annotate(ctx, a.Labels, a.Annotations, a.ActiveAt, hold, true)
	}
	if m.am != nil {
		promrules.SendAlerts(m.am.n, m.opts.ExternalURL)(ctx, expr, alerts...)
	}
	if m.ledger != nil {
		gen := m.opts.ExternalURL + strutil.TableLinkForExpression(expr)
		if m.ledger.observe(alerts, gen) {
			m.kickHooks()
		}
	}
}

// reconcile resolves ledger episodes whose alert is no longer active
// although its rule has been restored: the alert ended while the collector
// was down, or its rule was removed by a reload. They are sent resolved
// to the Alertmanagers and queued for the webhooks.
func (m *Manager) reconcile(ctx context.Context, ts time.Time) {
	if m.ledger == nil || !m.ledger.hasOpen() {
		return
	}
	active := map[uint64]bool{}
	unrestored := map[string]bool{}
	for _, ar := range m.AlertingRules() {
		if !ar.Restored() {
			unrestored[ar.Name()] = true
			continue
		}
		for _, a := range ar.ActiveAlerts() {
			active[a.Labels.Hash()] = true
		}
	}
	ended := m.ledger.reconcile(active, unrestored, ts)
	if len(ended) == 0 {
		return
	}
	for _, e := range ended {
		m.log.Info("alert ended while it was not evaluated; sending it resolved", "alertname", e.Alertname,
			"fingerprint", e.Fingerprint, "active_since", e.ActiveAt)
	}
	if m.am != nil {
		var res []*notifier.Alert
		for _, e := range ended {
			res = append(res, e.notifierAlert())
		}
		m.am.n.Send(res...)
	}
	m.kickHooks()
}

func (m *Manager) kickHooks() {
	for _, w := range m.hooks {
		w.kickNow()
	}
}
