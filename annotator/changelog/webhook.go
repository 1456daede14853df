package changelog

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

	"github.com/telltale-dev/telltale/annotator/impact"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// deliverWebhook posts one change event to the webhook of e.Target.
// Delivery is at least once: receivers that must not show an event twice
// can dedupe on the X-Telltale-Delivery header.
func (s *Service) deliverWebhook(ctx context.Context, e Entry, d changes.Change) error {
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
	req.Header.Set("User-Agent", "telltale-changes")
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

// slackText renders a change event as Slack mrkdwn.
func slackText(d changes.Change, event string) string {
	if event == EventImpact {
		return impactSlackText(d)
	}
	if d.Kind != changes.KindDeploy {
		return changeSlackText(d, event)
	}
	var b strings.Builder
	esc := slackEscape
	finished := event == EventFinished
	switch {
	case d.Status == changes.StatusRunning:
		b.WriteString(":rocket: Deploy started: ")
	case d.Status == changes.StatusSuccess:
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
		b.WriteString(slackLink(d.Link))
	}
	return b.String()
}

// kindEmoji is the Slack emoji a change of kind starts with.
var kindEmoji = map[string]string{
	changes.KindSwitch: ":twisted_rightwards_arrows:", changes.KindConfig: ":gear:", changes.KindIncident: ":rotating_light:",
	changes.KindNote: ":memo:", changes.KindAlert: ":bell:",
}

// changeSlackText renders a change of any kind but deploy:
// ":twisted_rightwards_arrows: Switch: *slow_checkout on* (demo) to *dev* by alice".
func changeSlackText(c changes.Change, event string) string {
	esc := slackEscape
	var b strings.Builder
	emoji := kindEmoji[c.Kind]
	if emoji == "" {
		emoji = ":small_blue_diamond:"
	}
	if c.Kind == changes.KindIncident && !c.Open() {
		emoji = ":white_check_mark:"
	}
	b.WriteString(emoji + " " + esc(upperFirst(c.Kind)) + ": ")
	b.WriteString(slackSubject(c))
	if c.Env != "" {
		b.WriteString(" to *" + esc(c.Env) + "*")
	}
	if c.Who != "" {
		b.WriteString(" by " + esc(c.Who))
	}
	switch {
	case c.Open():
		b.WriteString(" (open)")
	case event == EventFinished && c.EndTime != nil:
		b.WriteString(" (ended after " + c.EndTime.Sub(c.Time).Round(time.Second).String() + ")")
	}
	if c.Message != "" {
		b.WriteString("\n" + esc(c.Message))
	}
	if c.Link != "" {
		b.WriteString(slackLink(c.Link))
	}
	return b.String()
}

// slackSubject is "*web* v1.2.3" for a deploy, "*slow_checkout on* (demo)"
// for a change with a subject, "*demo*" else.
func slackSubject(c changes.Change) string {
	esc := slackEscape
	if c.Subject == "" {
		s := "*" + esc(c.Service) + "*"
		if c.Version != "" {
			s += " " + esc(c.Version)
		}
		return s
	}
	s := c.Subject
	if st := c.Fields["state"]; st != "" {
		s += " " + st
	}
	return "*" + esc(s) + "* (" + esc(c.Service) + ")"
}

func slackLink(link string) string {
	return "\n<" + strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(link) + "|details>"
}

// impactSlackText renders a done impact analysis: "Deploy impact: *web*
// v1.2.3 to *prod*: error ratio 0.4% → 2.1% ▲ regressed; no significant
// change in 5 signals".
func impactSlackText(d changes.Change) string {
	esc := slackEscape
	var b strings.Builder
	verdict, summary := "", ""
	if d.Impact != nil {
		verdict, summary = d.Impact.Verdict, d.Impact.Summary
	}
	switch impact.Verdict(verdict) {
	case impact.Regressed, impact.Changed:
		b.WriteString(":warning: ")
	case impact.NotEnoughData:
		b.WriteString(":grey_question: ")
	default:
		b.WriteString(":white_check_mark: ")
	}
	b.WriteString(esc(upperFirst(d.Kind)) + " impact: " + slackSubject(d))
	if d.Env != "" {
		b.WriteString(" to *" + esc(d.Env) + "*")
	}
	b.WriteString(": " + esc(summary))
	if d.Link != "" {
		b.WriteString(slackLink(d.Link))
	}
	return b.String()
}

// slackEscape escapes the three characters Slack mrkdwn treats as control.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
