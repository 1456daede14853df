package slack

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
)

// DefaultAPI is Slack's Web API base URL.
const DefaultAPI = "https://slack.com/api"

// BotOptions configures a Bot. Token is required.
type BotOptions struct {
	// Token is the bot token (xoxb-...) with the chat:write scope (and
	// files:write for !graph's images).
	Token string
	// API is the Web API base URL (default DefaultAPI).
	API string
	// SigningSecret checks the Events API requests; "" turns hearing off.
	SigningSecret string
	HTTPClient    *http.Client // default: a 10s timeout
	// Now is the clock for the signature's timestamp check (default
	// time.Now).
	Now func() time.Time
}

// Bot posts with chat.postMessage, shares images as uploaded files
// (SendImage), and hears through the Events API.
// Safe for concurrent use.
type Bot struct {
	opts BotOptions
	mu   sync.Mutex
	hear func(chat.Message)
	seen map[string]bool // event ids handled (Slack retries deliveries)
}

// NewBot checks opts and returns a Bot.
func NewBot(opts BotOptions) (*Bot, error) {
	if opts.Token == "" {
		return nil, errors.New("slack bot: no token: put the bot token (xoxb-...) in token_file or TELLTALE_SLACK_TOKEN")
	}
	if opts.API == "" {
		opts.API = DefaultAPI
	}
	opts.API = strings.TrimRight(opts.API, "/")
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Bot{opts: opts, seen: map[string]bool{}}, nil
}

func (b *Bot) Limits() chat.Limits { return limits }

// Run lets EventsHandler hand messages to hear until ctx is done.
func (b *Bot) Run(ctx context.Context, hear func(chat.Message)) error {
	b.mu.Lock()
	b.hear = hear
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	b.hear = nil
	b.mu.Unlock()
	return nil
}

// Send posts text to channel (a channel id, or #name) with
// chat.postMessage.
func (b *Bot) Send(ctx context.Context, channel, text string) error {
	body, _ := json.Marshal(map[string]string{"channel": channel, "text": Escape(text)})
	if err := b.call(ctx, "chat.postMessage", "application/json; charset=utf-8", body, nil); err != nil {
		return fmt.Errorf("%w (channel %s)", err, channel)
	}
	return nil
}

// maxUploadBytes bounds an image upload (charts are tens of KiB).
const maxUploadBytes = 8 << 20

// SendImage shares img in channel (a channel id) with Slack's external
// upload: files.getUploadURLExternal for an upload URL, a POST of the
// bytes to it, and files.completeUploadExternal with channel_id to share
// it (files.upload is retired). The bot token needs the files:write
// scope. A 429 or ratelimited answer on any of the three is a
// *chat.RateLimitError; a retry starts a new upload.
func (b *Bot) SendImage(ctx context.Context, channel string, img chat.Image) error {
	if len(img.PNG) == 0 || len(img.PNG) > maxUploadBytes {
		return fmt.Errorf("%w: image of %d bytes; want 1 to %d", chat.ErrRejected, len(img.PNG), maxUploadBytes)
	}
	name := img.Name
	if name == "" {
		name = "image.png"
	}
	form := url.Values{"filename": {name}, "length": {strconv.Itoa(len(img.PNG))}}
	if img.Title != "" {
		form.Set("alt_txt", chat.ClipText(img.Title, 1000))
	}
	var up struct {
		UploadURL string `json:"upload_url"`
		FileID    string `json:"file_id"`
	}
	if err := b.call(ctx, "files.getUploadURLExternal", "application/x-www-form-urlencoded", []byte(form.Encode()), &up); err != nil {
		return err
	}
	if u, err := url.Parse(up.UploadURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || up.FileID == "" {
		return fmt.Errorf("slack files.getUploadURLExternal answered upload_url %q, file_id %q; want an http(s) URL and an id", chat.ClipText(up.UploadURL, 128), up.FileID)
	}
	if err := b.post(ctx, up.UploadURL, img.PNG); err != nil {
		return err
	}
	files, _ := json.Marshal([]map[string]string{{"id": up.FileID, "title": chat.ClipText(img.Title, 250)}})
	done := url.Values{"files": {string(files)}, "channel_id": {channel}}
	return b.call(ctx, "files.completeUploadExternal", "application/x-www-form-urlencoded", []byte(done.Encode()), nil)
}

// post sends data to an upload URL (no token: the URL is the
// credential).
func (b *Bot) post(ctx context.Context, uploadURL string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uploadURL, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %v", chat.ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("slack file upload to %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return &chat.RateLimitError{After: retryAfter(resp, raw), Err: fmt.Errorf("slack file upload: HTTP 429")}
	case resp.StatusCode == http.StatusRequestEntityTooLarge || resp.StatusCode == http.StatusBadRequest:
		return fmt.Errorf("%w: slack file upload answered HTTP %d: %s", chat.ErrRejected, resp.StatusCode, clip(raw))
	}
	return fmt.Errorf("slack file upload answered HTTP %d: %s", resp.StatusCode, clip(raw))
}

// call posts body to the Web API method and decodes an ok answer into
// out; errors are mapped to the chat package's kinds.
func (b *Bot) call(ctx context.Context, method, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.opts.API+"/"+method, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", chat.ErrRejected, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+b.opts.Token)
	resp, err := b.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("slack %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ans struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	jerr := json.Unmarshal(raw, &ans)
	if resp.StatusCode == http.StatusTooManyRequests {
		return &chat.RateLimitError{After: retryAfter(resp, raw), Err: fmt.Errorf("slack %s: HTTP 429 %s", method, ans.Error)}
	}
	if resp.StatusCode/100 != 2 || jerr != nil {
		return fmt.Errorf("slack %s answered HTTP %d: %s", method, resp.StatusCode, clip(raw))
	}
	if ans.OK {
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("slack %s: %w", method, err)
			}
		}
		return nil
	}
	err = fmt.Errorf("slack %s: %s", method, ans.Error)
	switch ans.Error {
	case "ratelimited":
		return &chat.RateLimitError{After: retryAfter(resp, nil), Err: err}
	case "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "missing_scope", "no_permission":
		return fmt.Errorf("%w: %w; check the bot token and its scopes (chat:write; files:write for !graph images)", chat.ErrRefused, err)
	case "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text", "invalid_blocks", "restricted_action",
		"file_not_found", "invalid_arguments", "file_uploads_disabled", "file_upload_size_restricted":
		return fmt.Errorf("%w: %w", chat.ErrRejected, err)
	}
	return err
}

func clip(b []byte) string { return chat.ClipText(strings.TrimSpace(string(b)), 256) }

// maxEventBody bounds an Events API request.
const maxEventBody = 1 << 20

// maxSkew is how old a signed request may be (Slack's advice: 5 min).
const maxSkew = 5 * time.Minute

// EventsHandler serves the Events API request URL: it answers Slack's
// url_verification challenge and hands message events of users (not
// bots, not edits) to Run's hear. Requests without a valid signature
// (X-Slack-Signature over the body with the signing secret, timestamp
// within 5 minutes) get 401. Serve it without bearer auth: Slack signs
// instead.
func (b *Bot) EventsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if b.opts.SigningSecret == "" {
			http.Error(w, "the Slack bot has no signing secret (signing_secret_file): events are off", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := b.verify(r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var env struct {
			Type      string `json:"type"`
			Challenge string `json:"challenge"`
			EventID   string `json:"event_id"`
			Event     struct {
				Type    string `json:"type"`
				Subtype string `json:"subtype"`
				BotID   string `json:"bot_id"`
				User    string `json:"user"`
				Channel string `json:"channel"`
				Text    string `json:"text"`
			} `json:"event"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, "not JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if env.Type == "url_verification" {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, env.Challenge)
			return
		}
		w.WriteHeader(http.StatusOK)
		ev := env.Event
		if env.Type != "event_callback" || ev.Type != "message" || ev.Subtype != "" || ev.BotID != "" || ev.User == "" {
			return
		}
		b.mu.Lock()
		hear, dup := b.hear, b.seen[env.EventID]
		if env.EventID != "" {
			if len(b.seen) > 10_000 {
				b.seen = map[string]bool{}
			}
			b.seen[env.EventID] = true
		}
		b.mu.Unlock()
		if hear != nil && !dup {
			hear(chat.Message{Channel: ev.Channel, User: ev.User, Name: ev.User, Text: unescape(ev.Text)})
		}
	})
}

// verify checks Slack's request signature.
func (b *Bot) verify(h http.Header, body []byte) error {
	ts, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("missing X-Slack-Request-Timestamp or X-Slack-Signature")
	}
	if d := b.opts.Now().Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return errors.New("X-Slack-Request-Timestamp is more than 5 minutes off: a replay, or a clock to fix")
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(b.opts.SigningSecret, ts, body))) {
		return errors.New("X-Slack-Signature does not match: check signing_secret_file")
	}
	return nil
}

// Sign is the X-Slack-Signature of body sent at timestamp ts.
func Sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}
