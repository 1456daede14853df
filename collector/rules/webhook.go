package rules

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/retry"
)

// Webhook formats: the same two the deploy webhooks use.
const (
	FormatSlack = "slack" // Slack-compatible {"text": ...}: Slack, Mattermost, Rocket.Chat, Discord's /slack endpoint
	FormatJSON  = "json"  // the alert object (WebhookAlert)
)

// Webhook is one chat webhook told when an alert fires and when it
// resolves.
type Webhook struct {
	// Name identifies the webhook in the ledger, metrics and logs; default
	// the URL's host and a short hash of the URL (the URL, often a
	// secret, is never shown).
	Name string
	URL  string
	// Format is FormatSlack (default) or FormatJSON.
	Format string
}

// WebhookAlert is the body of a FormatJSON message: the alert in the shape
// of Alertmanager's webhook alerts, plus the event and fingerprint.
type WebhookAlert struct {
	Status       string            `json:"status"` // firing or resolved
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	ActiveAt     time.Time         `json:"activeAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	Fingerprint  string            `json:"fingerprint"`
}

var webhookNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkWebhooks validates the webhooks and fills in defaults.
func checkWebhooks(list []Webhook) ([]Webhook, error) {
	out := make([]Webhook, 0, len(list))
	for i, w := range list {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("alert webhook %d: url is not an absolute http(s) URL: set it like https://hooks.slack.com/services/...", i)
		}
		switch w.Format {
		case "":
			w.Format = FormatSlack
		case FormatSlack, FormatJSON:
		default:
			return nil, fmt.Errorf("alert webhook %d: format %q is unknown: use %q or %q", i, w.Format, FormatSlack, FormatJSON)
		}
		if w.Name == "" {
			sum := sha256.Sum256([]byte(w.URL))
			w.Name = u.Hostname() + "-" + hex.EncodeToString(sum[:3])
		}
		if !webhookNameRE.MatchString(w.Name) {
			return nil, fmt.Errorf("alert webhook %d: name %q must be 1-64 characters of [A-Za-z0-9._-]", i, w.Name)
		}
		if slices.ContainsFunc(out, func(o Webhook) bool { return o.Name == w.Name }) {
			return nil, fmt.Errorf("alert webhook %d: name %q is used twice: give each webhook its own name", i, w.Name)
		}
		out = append(out, w)
	}
	return out, nil
}

// webhookWorker delivers the ledger's due events to one webhook, oldest
// episode first; a failing webhook delays only itself.
type webhookWorker struct {
	m    *Manager
	w    Webhook
	kick chan struct{}
	// record, when set, delivers in process instead of posting to w.URL.
	record func(context.Context, WebhookAlert) error

	delivered, retried, failed *metrics.Counter
}

func newWebhookWorker(m *Manager, w Webhook) *webhookWorker {
	c := func(outcome string) *metrics.Counter {
		return m.opts.Metrics.GetOrCreateCounter(`telltale_rules_webhook_deliveries_total{webhook="` + w.Name + `",outcome="` + outcome + `"}`)
	}
	return &webhookWorker{m: m, w: w, kick: make(chan struct{}, 1),
		delivered: c("delivered"), retried: c("retry"), failed: c("failed")}
}

func (ww *webhookWorker) kickNow() {
	select {
	case ww.kick <- struct{}{}:
	default:
	}
}

// idleWait is the longest a worker sleeps without being kicked.
const idleWait = time.Minute

func (ww *webhookWorker) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ww.kick:
		case <-timer.C:
		}
		wait := ww.round(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// round delivers everything due and returns how long to sleep.
func (ww *webhookWorker) round(ctx context.Context) time.Duration {
	m := ww.m
	for ctx.Err() == nil {
		now := m.opts.Now()
		e, event, d, wait := m.ledger.due(ww.w.Name, now)
		if event == "" {
			if wait == 0 {
				return idleWait
			}
			return min(wait, idleWait)
		}
		err := ww.deliver(ctx, &e, event)
		if ctx.Err() != nil {
			return 0 // shutting down: the event stays due
		}
		now = m.opts.Now()
		var perm *permanentError
		since := e.StartsAt
		if event == eventResolved {
			since = e.EndsAt
		}
		giveUp := err != nil && (errors.As(err, &perm) || now.Sub(since) >= m.opts.RetryFor)
		retryAt := now.Add(retry.Backoff(d.Attempts+1, m.opts.MinBackoff, m.opts.MaxBackoff))
		switch {
		case err == nil:
			ww.delivered.Inc()
		case giveUp:
			ww.failed.Inc()
			m.log.Error("alert notification failed for good", "webhook", ww.w.Name, "alertname", e.Alertname, "event", event,
				"attempts", d.Attempts+1, "err", err)
		default:
			ww.retried.Inc()
			m.log.Warn("alert notification failed; will retry", "webhook", ww.w.Name, "alertname", e.Alertname, "event", event,
				"attempts", d.Attempts+1, "retry_at", retryAt, "err", err)
		}
		if serr := m.ledger.outcome(ww.w.Name, e.Fingerprint, e.ActiveAt, event, err, retryAt, giveUp); serr != nil {
			m.log.Error("cannot record alert notification outcome; it may be repeated", "webhook", ww.w.Name, "err", serr)
		}
		if err != nil && !giveUp {
			// The webhook is down: wait for it before trying the others.
			return retryAt.Sub(now)
		}
	}
	return 0
}

// Recorder is told in process when an alert fires and when it resolves.
// Record gets the event (Status firing or resolved) at least once; an error
// is retried with backoff, one wrapped by Permanent is not.
type Recorder struct {
	Name   string
	Record func(ctx context.Context, a WebhookAlert) error
}

// Permanent marks a Recorder failure that retrying will not fix.
func Permanent(err error) error { return &permanentError{err} }

// deliver posts one event of e (or hands it to the recorder).
func (ww *webhookWorker) deliver(ctx context.Context, e *episode, event string) error {
	if ww.record != nil {
		return ww.record(ctx, webhookAlert(e, event))
	}
	var body []byte
	switch ww.w.Format {
	case FormatJSON:
		body, _ = json.Marshal(webhookAlert(e, event))
	default:
		body, _ = json.Marshal(map[string]string{"text": slackAlertText(e, event)})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ww.w.URL, bytes.NewReader(body))
	if err != nil {
		return &permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "telltale-rules")
	req.Header.Set("X-Telltale-Event", "alert_"+event)
	// Delivery is at least once: receivers that must not show a message
	// twice dedupe on this header.
	req.Header.Set("X-Telltale-Delivery", e.id()+"/"+event)
	resp, err := ww.m.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %s", ww.w.Name, strings.ReplaceAll(err.Error(), ww.w.URL, "<"+ww.w.Name+" url>"))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("webhook %s answered HTTP %d: %s", ww.w.Name, resp.StatusCode, strings.TrimSpace(string(snippet)))
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusRequestEntityTooLarge, http.StatusUnauthorized, http.StatusForbidden:
		return &permanentError{fmt.Errorf("%w; check the webhook URL, its token and format", err)}
	}
	return err
}

// permanentError is a delivery failure retrying will not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func webhookAlert(e *episode, event string) WebhookAlert {
	a := WebhookAlert{Status: event, Labels: e.Labels, Annotations: e.Annotations, StartsAt: e.StartsAt,
		ActiveAt: e.ActiveAt, GeneratorURL: e.GeneratorURL, Fingerprint: e.Fingerprint}
	if event == eventResolved {
		a.EndsAt = e.EndsAt
	}
	return a
}

// slackAlertText renders an alert event as Slack mrkdwn:
//
//	:rotating_light: Firing: *HighLatency* shop (prod), severity page
//	p99 latency of shop is 1.2 s
//	firing since 2024-05-01 14:02 UTC, 4 min after deploy shop v1.2.3 by alice: <link>
func slackAlertText(e *episode, event string) string {
	esc := func(s string) string { return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s) }
	var b strings.Builder
	if event == eventResolved {
		b.WriteString(":white_check_mark: Resolved: ")
	} else {
		b.WriteString(":rotating_light: Firing: ")
	}
	b.WriteString("*" + esc(e.Alertname) + "*")
	if s := e.Labels[ServiceLabel]; s != "" {
		b.WriteString(" " + esc(s))
		if env := e.Labels["env"]; env != "" {
			b.WriteString(" (" + esc(env) + ")")
		}
	}
	if s := e.Labels["severity"]; s != "" {
		b.WriteString(", severity " + esc(s))
	}
	if event == eventResolved {
		fmt.Fprintf(&b, ", after %s", human(e.EndsAt.Sub(e.StartsAt)))
	}
	for _, k := range []string{"summary", "description"} {
		if v := e.Annotations[k]; v != "" {
			b.WriteString("\n" + esc(v))
		}
	}
	if v := e.Annotations[AnnotationChanges]; v != "" {
		b.WriteString("\n" + esc(v))
	}
	var links []string
	if v := e.Annotations[AnnotationChangeLink]; v != "" {
		links = append(links, "<"+slackURL(v)+"|change>")
	}
	if e.GeneratorURL != "" {
		links = append(links, "<"+slackURL(e.GeneratorURL)+"|query>")
	}
	if len(links) > 0 {
		b.WriteString("\n" + strings.Join(links, " · "))
	}
	return b.String()
}

func slackURL(u string) string {
	return strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(u)
}
