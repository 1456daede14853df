package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
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
// Order: after addChanges (alerts read the change log through a.changes)
// and addTail (the writer's observer is set, so the tail sees rule
// results from the first evaluation).
func (a *app) addRules(ctx context.Context) error {
	webhooks, err := a.alertWebhooks()
	if err != nil {
		return err
	}
	external := a.externalURL()
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
		Recorders:           []rules.Recorder{{Name: "changelog", Record: changeLogChanges{log: a.changes}.RecordAlert}},
		StateFile:           filepath.Join(a.cfg.dataDir, "rules", "notifications.json"),
		Changes:             changeLogChanges{log: a.changes},
		ChangesWindow:       a.cfg.rulesChangesWindow,
		Logger:              a.log,
		Metrics:             a.set,
		// The engine's and notifier's own prometheus_* metrics are served
		// on /metrics with the TSDB's.
		Registerer: a.registry,
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

// changeLogChanges is rules.Changes over the change log: every change of a
// service in a window (but alerts), with its impact summary. Its
// RecordAlert records alerts there as changes of kind alert: a region from
// when the alert fired to when it resolved, so alerts reach every graph,
// Grafana, the chat and the search like any other change.
type changeLogChanges struct{ log *changelog.Service }

func (c changeLogChanges) Recent(ctx context.Context, service string, from, to time.Time) ([]rules.Change, error) {
	list, err := c.log.List(ctx, changes.Filter{Service: service, From: from, To: to, Limit: 50})
	if err != nil {
		return nil, err
	}
	out := make([]rules.Change, 0, len(list))
	for _, ch := range list {
		if ch.Kind == changes.KindAlert {
			continue
		}
		rc := rules.Change{ID: ch.ID, Kind: ch.Kind, Service: ch.Service, Env: ch.Env, Subject: ch.Subject,
			Version: ch.Version, Who: ch.Who, Link: ch.Link, Time: ch.Time}
		if ch.Impact != nil && ch.Impact.Status == changes.ImpactDone {
			rc.Impact = ch.Impact.Summary
		}
		out = append(out, rc)
	}
	return out, nil
}

// RecordAlert is the rules.Recorder of the change log: a firing alert is
// recorded as a running change of kind alert (its id derived from the
// alert's fingerprint and start, so a repeated delivery is a no-op), and
// its resolution ends that region.
func (c changeLogChanges) RecordAlert(ctx context.Context, al rules.WebhookAlert) error {
	id := fmt.Sprintf("alert-%s-%d", al.Fingerprint, al.ActiveAt.Unix())
	if al.Status == "resolved" {
		end := al.EndsAt
		_, err := c.log.Update(ctx, id, changes.Patch{EndTime: &end, Status: changes.StatusResolved})
		if !errors.Is(err, changelog.ErrNotFound) {
			return permanentIfInvalid(err)
		}
		// The firing event never made it (the log was down): record the
		// whole region.
	}
	name := al.Labels["alertname"]
	msg := name + " " + al.Status
	for _, k := range []string{"summary", "description", rules.AnnotationChanges} {
		if v := al.Annotations[k]; v != "" {
			msg += ": " + v
		}
	}
	if len(msg) > changes.MaxMessageBytes {
		msg = strings.ToValidUTF8(msg[:changes.MaxMessageBytes], "")
	}
	ch := changes.Change{ID: id, Kind: changes.KindAlert, Service: alertService(al.Labels), Env: al.Labels["env"],
		Who: "telltale-rules", Message: msg, Time: al.StartsAt, Status: changes.StatusRunning,
		Fields: map[string]string{"alertname": name, "fingerprint": al.Fingerprint}}
	if sev := al.Labels["severity"]; sev != "" {
		ch.Fields["severity"] = sev
	}
	if strings.HasPrefix(al.GeneratorURL, "http://") || strings.HasPrefix(al.GeneratorURL, "https://") {
		ch.Link = al.GeneratorURL
	}
	if al.Status == "resolved" {
		end := al.EndsAt
		ch.EndTime, ch.Status = &end, changes.StatusResolved
	}
	_, err := c.log.Record(ctx, ch)
	return permanentIfInvalid(err)
}

// alertService is the service an alert's change is about: its service
// label, else its job, else "alerts", made a valid service name.
func alertService(ls map[string]string) string {
	s := ls["service"]
	if s == "" {
		s = ls["job"]
	}
	if s == "" {
		return "alerts"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// permanentIfInvalid keeps the rules engine from retrying a change the
// log refuses as invalid.
func permanentIfInvalid(err error) error {
	var re *changes.RequestError
	if errors.As(err, &re) {
		return rules.Permanent(err)
	}
	return err
}
