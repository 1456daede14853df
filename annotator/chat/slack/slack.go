// Package slack posts to Slack, and to the chats that take Slack's
// incoming-webhook JSON (Discord's /slack webhook URLs, Mattermost,
// Rocket.Chat): an incoming webhook (Webhook) or a bot token with
// chat.postMessage (Bot), in plain HTTP. Not Microsoft Teams: its
// Workflows webhooks take only Adaptive Cards, and the Office 365
// connectors that took {"text"} are being retired.
// The bot hears its channels through the Events API (Bot.EventsHandler),
// whose requests it checks against the app's signing secret, and shares
// !graph's images as uploaded files (Bot.SendImage). A webhook cannot
// hear, so no command is ever answered through one and it posts no
// images.
//
// Rate limits: a 429 answer becomes a *chat.RateLimitError with the wait
// from Retry-After (Slack, Discord) or a JSON retry_after in seconds
// (Discord), so the chat package holds the target back for exactly that
// long; nothing was posted. Credentials Slack refuses become
// chat.ErrRefused, channels or texts it will never take chat.ErrRejected.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/retry"
)

// limits: Slack allows about one message per second per channel (a batch
// every 2s stays well within it and reads calmer); Discord
// takes 2000 characters per message, the smallest of the Slack-compatible
// chats.
var limits = chat.Limits{MaxBytes: 1900, MultiLine: true, Every: 2 * time.Second, Linger: time.Second}

// defaultRetry is the wait after a 429 that names none.
const defaultRetry = 5 * time.Second

// Webhook posts to an incoming webhook URL. Its channel is fixed by the
// URL; Send ignores the channel argument. Safe for concurrent use.
type Webhook struct {
	url    string
	client *http.Client
}

// NewWebhook returns a Webhook posting to u (an absolute http(s) URL)
// with client (nil: a client with a 10s timeout).
func NewWebhook(u string, client *http.Client) (*Webhook, error) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return nil, errors.New("slack webhook: not an absolute http(s) URL, e.g. https://hooks.slack.com/services/T000/B000/XXXX")
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Webhook{url: u, client: client}, nil
}

func (w *Webhook) Limits() chat.Limits { return limits }

// Run waits for ctx: a webhook cannot hear.
func (w *Webhook) Run(ctx context.Context, _ func(chat.Message)) error {
	<-ctx.Done()
	return nil
}

// Send posts {"text": text}.
func (w *Webhook) Send(ctx context.Context, _, text string) error {
	body, _ := json.Marshal(map[string]string{"text": Escape(text)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", chat.ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		// The URL is a secret: say where without it.
		return fmt.Errorf("slack webhook at %s: %w", req.URL.Host, redact(err, w.url))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("slack webhook at %s answered HTTP %d: %s", req.URL.Host, resp.StatusCode, strings.TrimSpace(string(snippet)))
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return &chat.RateLimitError{After: retryAfter(resp, snippet), Err: err}
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w; check the webhook URL", chat.ErrRefused, err)
	case http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %w", chat.ErrRejected, err)
	}
	return err
}

// retryAfter reads the wait of a 429: Retry-After, else Discord's JSON
// retry_after (seconds, fractional), else defaultRetry; capped at
// chat.MaxRateLimitWait.
func retryAfter(resp *http.Response, body []byte) time.Duration {
	if d, ok := retry.After(resp.Header.Get("Retry-After"), time.Now(), chat.MaxRateLimitWait); ok {
		return d
	}
	var d struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &d) == nil && d.RetryAfter > 0 {
		return time.Duration(min(d.RetryAfter, chat.MaxRateLimitWait.Seconds()) * float64(time.Second))
	}
	return defaultRetry
}

func redact(err error, secret string) error {
	if !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "<webhook url>"))
}

// Escape escapes the three characters Slack's text treats as control.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// unescape undoes Escape on text Slack sends.
func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
