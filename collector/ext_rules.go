package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/annotator/deployapi"
	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/rules"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// addRules wires the rules engine: the -rules.files and (with
// -rules.dashboards) the recording rules the built-in dashboards read are
// checked and loaded at start (a bad file stops the start with its file,
// line and why), then
// evaluated against the storage with results written through a.writer
// (so the live tail sees them); alerts go to -alertmanager.url, to
// -alert.webhook and (with -alert.deploy-webhooks) the -deploy.webhook
// chats, each annotated with its service's deploys from a.deploys.
// SIGHUP and POST /-/reload (admin scope) reload the files; a bad file keeps
// the rules that run and the answer (400) names the problem.
//
// Order: after addDeploys (alerts read the deploy log through a.deploys)
// and addTail (the writer's observer is set, so the tail sees rule
// results from the first evaluation).
func (a *app) addRules(ctx context.Context) error {
	webhooks, err := a.alertWebhooks()
	if err != nil {
		return err
	}
	external := a.cfg.rulesExternalURL
	if external == "" {
		external = "http://" + a.cfg.listen
		if a.cfg.tlsCert != "" {
			external = "https://" + a.cfg.listen
		}
	}
	var builtin []rules.Builtin
	if a.cfg.rulesDashboards {
		data, err := board.RulesFileEvery(a.cfg.rulesDashboardsIntv)
		if err != nil {
			return err
		}
		builtin = append(builtin, rules.Builtin{Name: "builtin/telltale-dashboards.rules.yml", Data: data})
	}
	m, err := rules.New(rules.Options{
		Files:               a.cfg.rulesFiles,
		Builtin:             builtin,
		Interval:            a.cfg.rulesInterval,
		Writer:              a.writer,
		Queryable:           a.query.Queryable(),
		Engine:              a.query.Engine(),
		Parser:              a.query.Parser(),
		ExternalURL:         external,
		OutageTolerance:     a.cfg.rulesOutageTol,
		ForGracePeriod:      a.cfg.rulesForGrace,
		ResendDelay:         a.cfg.rulesResendDelay,
		Alertmanagers:       a.cfg.alertmanagerURLs,
		AlertmanagerTimeout: a.cfg.alertmanagerTimeout,
		Webhooks:            webhooks,
		StateFile:           filepath.Join(a.cfg.dataDir, "rules", "notifications.json"),
		Changes:             deployChanges{h: a.deploys.Handler()},
		ChangesWindow:       a.cfg.rulesChangesWindow,
		Logger:              a.log,
		Metrics:             a.set,
		// The engine's and notifier's own prometheus_* metrics are served
		// on /metrics with the TSDB's.
		Registerer: a.store.Registry(),
	})
	if err != nil {
		return err
	}
	if _, err := m.Reload(ctx); err != nil {
		return fmt.Errorf("-rules.files: %w", err)
	}
	a.rules = m
	a.workers = append(a.workers, m.Run)

	// SIGHUP would end the process by default; from here on it reloads.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	a.workers = append(a.workers, func(ctx context.Context) error {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				if l, err := m.Reload(ctx); err != nil {
					a.log.Error("rules reload on SIGHUP failed", "component", "rules", "err", err)
				} else {
					a.log.Info("rules reloaded on SIGHUP", "component", "rules", "files", len(l.Files), "groups", l.Groups, "rules", l.Rules)
				}
			}
		}
	})
	a.mux.Handle("/-/reload", a.auth.Require(auth.ScopeAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload the rule files", http.StatusMethodNotAllowed)
			return
		}
		l, err := m.Reload(r.Context())
		switch {
		case errors.Is(err, rules.ErrInvalidRules):
			http.Error(w, err.Error(), http.StatusBadRequest)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			fmt.Fprintf(w, "rules reloaded: %d files, %d groups, %d rules\n", len(l.Files), l.Groups, l.Rules)
		}
	})))
	return nil
}

// alertWebhooks parses -alert.webhook and, with -alert.deploy-webhooks,
// -deploy.webhook into the webhooks alerts go to.
func (a *app) alertWebhooks() ([]rules.Webhook, error) {
	var out []rules.Webhook
	add := func(flagName string, list []string) error {
		for _, w := range list {
			format, u, ok := strings.Cut(w, "=")
			if !ok || (format != rules.FormatSlack && format != rules.FormatJSON) {
				return fmt.Errorf("-%s=%q: want slack=<url> or json=<url>", flagName, w)
			}
			for _, o := range out {
				if o.URL == u { // the same chat told once
					return nil
				}
			}
			out = append(out, rules.Webhook{URL: u, Format: format})
		}
		return nil
	}
	if err := add("alert.webhook", a.cfg.alertWebhooks); err != nil {
		return nil, err
	}
	if a.cfg.alertDeployWebhooks {
		if err := add("deploy.webhook", a.cfg.webhooks); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// deployChanges is rules.Changes over the deploy API of annotator/deploys,
// asked in-process (no network): the deploys of a service in a window,
// with their impact summaries. One small adapter, to be replaced when the
// change log serves a Go API.
type deployChanges struct{ h http.Handler }

func (d deployChanges) Recent(ctx context.Context, service string, from, to time.Time) ([]rules.Change, error) {
	q := url.Values{
		"service": {service},
		"from":    {strconv.FormatInt(from.Unix(), 10)},
		"to":      {strconv.FormatInt(to.Unix()+1, 10)},
		"limit":   {"20"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/deploys?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	d.h.ServeHTTP(rec, req)
	var env deployapi.Response[[]deployapi.Deploy]
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil || rec.status != http.StatusOK {
		return nil, fmt.Errorf("deploy log answered %d: %s", rec.status, strings.TrimSpace(env.Error))
	}
	out := make([]rules.Change, 0, len(env.Data))
	for _, dep := range env.Data {
		c := rules.Change{ID: dep.ID, Kind: "deploy", Service: dep.Service, Env: dep.Env, Version: dep.Version,
			Who: dep.Who, Link: dep.Link, Time: dep.Time}
		if dep.Impact != nil && dep.Impact.Status == deployapi.ImpactDone {
			c.Impact = dep.Impact.Summary
		}
		out = append(out, c)
	}
	return out, nil
}

// recorder is the least http.ResponseWriter for an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.status = code }
