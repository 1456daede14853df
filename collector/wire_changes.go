package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/impact"
	"github.com/telltale-dev/telltale/annotator/impact/promq"
	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/grafana"
	"github.com/telltale-dev/telltale/secret"
)

// addChanges wires the change log and its APIs (/api/v1/changes,
// /api/v1/deploys, /api/v1/switches): POST/PATCH need the deploy scope,
// GET the read scope. Changes go to the storage (change and deploy
// series), to Grafana when -grafana.url is set, to -deploy.webhook
// targets, to the chat networks (addChat), and to live tail clients (deploys as deploy messages, other
// kinds as change messages). With -impact.enabled the impact of each
// deploy, switch flip and config change is analysed on the collector's
// own PromQL engine once -impact.window has passed. The storage doubles as
// the catalog that tells a client when its change marks no graph. Needs
// a.tail and a.query: wire after addTail.
func (a *app) addChanges(ctx context.Context) error {
	pq := promq.New(a.query.Engine(), a.query.Queryable())
	opts := changelog.Options{
		DBPath:   a.changeLogPath(),
		ClaimFor: a.cfg.changesClaim,
		Logger:   a.log, // the changelog package adds component=changes
		Metrics:  a.set,
		Writer:   a.writer,
		Catalog:  pq,
		OnRecorded: func(c changes.Change) {
			if c.Kind == changes.KindDeploy {
				a.tail.PublishDeploy(c)
			} else {
				a.tail.PublishChange(c)
			}
			if a.fanout != nil {
				a.fanout.PublishChange(c.Kind == changes.KindDeploy, c)
			}
		},
	}
	if a.cfg.grafanaURL != "" {
		token, err := grafanaToken(a.cfg.grafanaTokenFile)
		if err != nil {
			return err
		}
		g, err := grafana.New(a.cfg.grafanaURL, token)
		if err != nil {
			return fmt.Errorf("-grafana.url: %w", err)
		}
		opts.Grafana = g
	}
	for _, w := range a.cfg.webhooks {
		format, u, ok := strings.Cut(w, "=")
		if !ok || (format != changelog.FormatSlack && format != changelog.FormatJSON) {
			return fmt.Errorf("-deploy.webhook=%q: want slack=<url> or json=<url>", w)
		}
		wc := changelog.WebhookConfig{URL: u, Format: format}
		if a.cfg.alertDeployWebhooks {
			// The rules engine tells these webhooks about alerts in its
			// own words (-alert.deploy-webhooks): not a second time.
			wc.SkipKinds = []string{changes.KindAlert}
		}
		opts.Webhooks = append(opts.Webhooks, wc)
	}
	if a.cfg.impactEnabled {
		im, err := a.impactOptions(pq)
		if err != nil {
			return err
		}
		opts.Impact = im
	}
	if err := a.addChat(&opts); err != nil {
		return err
	}
	svc, err := changelog.Open(ctx, opts)
	if err != nil {
		return fmt.Errorf("cannot open change log (%s): %w", a.changeLogFlag(), err)
	}
	a.changes = svc
	a.startChat(svc)
	a.closers = append(a.closers, svc.Close)
	a.workers = append(a.workers, svc.Run)

	h := svc.Handler()
	read := a.auth.Require(auth.ScopeRead, h)
	write := a.auth.Require(auth.ScopeDeploy, h)
	byMethod := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			read.ServeHTTP(w, r)
			return
		}
		write.ServeHTTP(w, r)
	})
	for _, p := range []string{"/api/v1/changes", "/api/v1/deploys", "/api/v1/switches"} {
		a.mux.Handle(p, byMethod)
		a.mux.Handle(p+"/", byMethod)
	}
	return nil
}

// grafanaToken reads the token from the file, or TELLTALE_GRAFANA_TOKEN.
func grafanaToken(file string) (string, error) {
	t, err := secret.FileOrEnv(file, "TELLTALE_GRAFANA_TOKEN", "-grafana.token-file", "a Grafana service account token (Editor role)")
	if t != "" || err != nil {
		return t, err
	}
	return "", fmt.Errorf("-grafana.url is set but no token: set -grafana.token-file or TELLTALE_GRAFANA_TOKEN to a Grafana service account token (Editor role)")
}

// impactOptions builds the impact settings from -impact.config and
// -impact.window, analysing with the collector's query engine and storage.
func (a *app) impactOptions(pq *promq.Querier) (*changelog.ImpactOptions, error) {
	var cfg *impact.Config
	if a.cfg.impactConfig != "" {
		c, err := impact.LoadConfig(a.cfg.impactConfig)
		if err != nil {
			return nil, fmt.Errorf("-impact.config: %w", err)
		}
		cfg = c
	}
	if cfg == nil || a.cfg.impactWindow.set {
		c, err := cfg.WithWindow(a.cfg.impactWindow.d)
		if err != nil {
			return nil, fmt.Errorf("-impact.window=%v: %w", a.cfg.impactWindow.d, err)
		}
		cfg = c
	}
	a.log.Info("change impact analysis on", "component", "changes", "window", cfg.Window, "step", cfg.Step,
		"rate_window", cfg.EffectiveRateWindow(), "services_configured", len(cfg.Services), "kinds", changelog.DefaultImpactKinds)
	return &changelog.ImpactOptions{Querier: pq, Config: cfg}, nil
}

// windowFlag is a duration flag that knows whether it was given.
type windowFlag struct {
	d   time.Duration
	set bool
}

// init sets the default and returns f for flag.Var.
func (f *windowFlag) init(d time.Duration) *windowFlag { f.d = d; return f }

func (f *windowFlag) String() string {
	if f == nil {
		return ""
	}
	return f.d.String()
}

func (f *windowFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 15m: %w", err)
	}
	f.d, f.set = d, true
	return nil
}
