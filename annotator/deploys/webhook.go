package deploys

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/deploylog"
	"github.com/telltale-dev/telltale/annotator/impact"
)

// deliverWebhook posts one deploy event to the webhook of e.Target.
// Delivery is at least once: receivers that must not show an event twice
// can dedupe on the X-Telltale-Delivery header.
func (s *Service) deliverWebhook(ctx context.Context, e deploylog.Entry, d Deploy) error {
	w, ok := s.webhooks[e.Target]
	if !ok {
		return &permanentError{fmt.Errorf("webhook %q is no longer configured", strings.TrimPrefix(e.Target, webhookPrefix))}
	}
	var body []byte
	switch w.Format {
	case FormatJSON:
		d.Delivery = nil
		body, _ = json.Marshal(d)
	default:
		body, _ = json.Marshal(map[string]string{"text": slackText(d, e.Event)})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("webhook %s: %w", w.Name, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "telltale-deploys")
	req.Header.Set("X-Telltale-Event", e.Event)
	req.Header.Set("X-Telltale-Delivery", d.ID+"/"+strconv.FormatInt(e.Seq, 10))
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		// The URL may hold a secret (Slack); name the webhook, not the URL.
		return fmt.Errorf("webhook %s: %w", w.Name, redactURL(err, w.URL, w.Name))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("webhook %s answered HTTP %d: %s", w.Name, resp.StatusCode, strings.TrimSpace(string(snippet)))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &authError{fmt.Errorf("%w; check the webhook URL's token", err)}
	case http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusRequestEntityTooLarge:
		return &permanentError{fmt.Errorf("%w; check the webhook URL and format", err)}
	}
	return err
}

// redactURL replaces the webhook URL in a client error with the webhook name.
func redactURL(err error, url, name string) error {
	msg := err.Error()
	if !strings.Contains(msg, url) {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(msg, url, "<"+name+" url>"))
}

// slackText renders a deploy event as Slack mrkdwn.
func slackText(d Deploy, event string) string {
	if event == eventImpact {
		return impactSlackText(d)
	}
	var b strings.Builder
	esc := slackEscape
	finished := event == eventFinished
	switch {
	case d.Status == StatusRunning:
		b.WriteString(":rocket: Deploy started: ")
	case d.Status == StatusSuccess:
		b.WriteString(":white_check_mark: Deployed: ")
	default:
		b.WriteString(":x: Deploy " + esc(d.Status) + ": ")
	}
	b.WriteString("*" + esc(d.Service) + "*")
	if d.Version != "" {
		b.WriteString(" " + esc(d.Version))
	}
	if d.Env != "" {
		b.WriteString(" to *" + esc(d.Env) + "*")
	}
	if d.Who != "" {
		b.WriteString(" by " + esc(d.Who))
	}
	if finished && d.EndTime != nil {
		b.WriteString(" (took " + d.EndTime.Sub(d.Time).Round(time.Second).String() + ")")
	}
	if d.Commit != "" {
		b.WriteString(" `" + esc(d.Commit) + "`")
	}
	if d.Message != "" {
		b.WriteString("\n" + esc(d.Message))
	}
	if d.Link != "" {
		b.WriteString("\n<" + strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(d.Link) + "|details>")
	}
	return b.String()
}

// impactSlackText renders a done impact analysis: "web v1.2.3 to prod:
// error ratio 0.4% → 2.1% ▲ regressed; no significant change in 5 signals".
func impactSlackText(d Deploy) string {
	esc := slackEscape
	var b strings.Builder
	verdict, summary := "", ""
	if d.Impact != nil {
		verdict, summary = d.Impact.Verdict, d.Impact.Summary
	}
	switch impact.Verdict(verdict) {
	case impact.Regressed, impact.Changed:
		b.WriteString(":warning: Deploy impact: ")
	case impact.NotEnoughData:
		b.WriteString(":grey_question: Deploy impact: ")
	default:
		b.WriteString(":white_check_mark: Deploy impact: ")
	}
	b.WriteString("*" + esc(d.Service) + "*")
	if d.Version != "" {
		b.WriteString(" " + esc(d.Version))
	}
	if d.Env != "" {
		b.WriteString(" to *" + esc(d.Env) + "*")
	}
	b.WriteString(": " + esc(summary))
	if d.Link != "" {
		b.WriteString("\n<" + strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(d.Link) + "|details>")
	}
	return b.String()
}

// slackEscape escapes the three characters Slack mrkdwn treats as control.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
