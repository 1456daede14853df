// Package matrix talks to a Matrix homeserver with the client-server API
// (spec v1.x) in plain HTTP with an access token: it joins its rooms,
// sends each message as an m.notice (the msgtype bots use, which other
// bots do not answer) with PUT .../send/m.room.message/{txnId}, posts
// images (SendImage) as m.image events of files uploaded with the media
// API (POST /_matrix/media/v3/upload), and hears
// its rooms through a /sync long-poll that starts at the present (history
// from before the start is not replayed as commands).
//
// Rate limits: M_LIMIT_EXCEEDED (HTTP 429) becomes a *chat.RateLimitError
// with retry_after_ms (or Retry-After); M_UNKNOWN_TOKEN and
// M_MISSING_TOKEN chat.ErrRefused; a room the server will not let the bot
// into, or an event it will never take, chat.ErrRejected.
//
// Plain HTTP rather than maunium.net/go/mautrix: six endpoints do not
// need a client library and its dependencies, and end-to-end encrypted
// rooms (mautrix's main reason) are out of scope: invite the bot to an
// unencrypted room.
package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/retry"
)

// Options configures a Client. Homeserver, Token and Rooms are required.
type Options struct {
	// Name names the network in logs.
	Name string
	// Homeserver is the base URL, e.g. https://matrix.example.org.
	Homeserver string
	// Token is the bot account's access token.
	Token string
	// Rooms are room ids (!abc:example.org) or aliases (#ops:example.org).
	Rooms      []string
	HTTPClient *http.Client // default: a client without timeout (sync long-polls); calls carry their own
	// SyncTimeout is the long-poll of /sync (default 30s).
	SyncTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry of a failing sync (1s, 2m).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger // nil means slog.Default()
}

// Client is a Matrix bot account. Safe for concurrent use.
type Client struct {
	opts   Options
	logger *slog.Logger
	mu     sync.Mutex
	ids    map[string]string // room alias or id -> room id
	txn    int64
	start  string // unique per process: txn ids never repeat across restarts
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.Homeserver)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("matrix: homeserver %q is not an absolute http(s) URL, e.g. https://matrix.example.org", opts.Homeserver)
	}
	if opts.Token == "" {
		return nil, errors.New("matrix: no access token: put it in token_file or TELLTALE_MATRIX_TOKEN")
	}
	if len(opts.Rooms) == 0 {
		return nil, errors.New("matrix: no room: name one, e.g. https://matrix.example.org/#ops:example.org")
	}
	for _, r := range opts.Rooms {
		if !validRoom(r) {
			return nil, fmt.Errorf("matrix: room %q: want a room id !id:server or an alias #name:server", r)
		}
	}
	opts.Homeserver = strings.TrimRight(opts.Homeserver, "/")
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(2*time.Minute, opts.MinBackoff)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Name == "" {
		opts.Name = "matrix"
	}
	return &Client{opts: opts, logger: opts.Logger.With("component", "chat", "network", opts.Name), ids: map[string]string{},
		start: strconv.FormatInt(time.Now().UnixNano(), 36)}, nil
}

func validRoom(r string) bool {
	return len(r) > 3 && len(r) <= 255 && (r[0] == '!' || r[0] == '#') && strings.Contains(r, ":") && !strings.ContainsAny(r, " \r\n\x00")
}

// Limits: multi-line messages; a batch every 2s (homeservers limit
// messages per user, Synapse by default to a burst of 10 then one per 5s,
// and answer M_LIMIT_EXCEEDED with the wait).
func (c *Client) Limits() chat.Limits {
	return chat.Limits{MaxBytes: 8000, MultiLine: true, Every: 2 * time.Second, Linger: time.Second}
}

// apiError is a Matrix error answer.
type apiError struct {
	Status       int
	ErrCode      string `json:"errcode"`
	Message      string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("matrix HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// call does one client-server API request with in as its JSON body (nil:
// none) and decodes a 2xx answer into out; errors are mapped to the chat
// package's kinds.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	if in == nil {
		return c.do(ctx, method, path, "", nil, out)
	}
	b, _ := json.Marshal(in)
	return c.do(ctx, method, path, "application/json", b, out)
}

// do is call with a body of contentType ("": no body).
func (c *Client) do(ctx context.Context, method, path, contentType string, in []byte, out any) error {
	var body io.Reader
	if contentType != "" {
		body = bytes.NewReader(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.opts.Homeserver+path, body)
	if err != nil {
		return fmt.Errorf("%w: %v", chat.ErrRejected, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("matrix %s: %w", c.opts.Homeserver, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("matrix %s: %w", c.opts.Homeserver, err)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("matrix %s%s: answer is not the JSON the spec describes: %w", c.opts.Homeserver, strings.Split(path, "?")[0], err)
		}
		return nil
	}
	ae := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(raw, ae) != nil {
		ae.Message = chat.ClipText(strings.TrimSpace(string(raw)), 256)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || ae.ErrCode == "M_LIMIT_EXCEEDED":
		wait := time.Duration(min(ae.RetryAfterMS, chat.MaxRateLimitWait.Milliseconds())) * time.Millisecond
		if wait <= 0 {
			wait, _ = retry.After(resp.Header.Get("Retry-After"), time.Now(), chat.MaxRateLimitWait)
		}
		if wait <= 0 {
			wait = 5 * time.Second
		}
		return &chat.RateLimitError{After: wait, Err: ae}
	case ae.ErrCode == "M_UNKNOWN_TOKEN" || ae.ErrCode == "M_MISSING_TOKEN" || resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: %w; check the access token", chat.ErrRefused, ae)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest ||
		resp.StatusCode == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %w", chat.ErrRejected, ae)
	}
	return ae
}

// roomID returns the id of room (an alias or id), joining it on first use.
func (c *Client) roomID(ctx context.Context, room string) (string, error) {
	c.mu.Lock()
	id, ok := c.ids[room]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	var ans struct {
		RoomID string `json:"room_id"`
	}
	if err := c.call(ctx, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(room), struct{}{}, &ans); err != nil {
		return "", fmt.Errorf("cannot join %s: %w", room, err)
	}
	if ans.RoomID == "" {
		ans.RoomID = room
	}
	c.mu.Lock()
	c.ids[room], c.ids[ans.RoomID] = ans.RoomID, ans.RoomID
	c.mu.Unlock()
	return ans.RoomID, nil
}

// Send posts text to room as an m.notice. The transaction id is new per
// call: a retry after an unclear failure may post twice (at least once).
func (c *Client) Send(ctx context.Context, room, text string) error {
	return c.sendEvent(ctx, room, map[string]string{"msgtype": "m.notice", "body": text})
}

// maxUploadBytes bounds an image upload (Synapse's default
// max_upload_size is 50M; charts are tens of KiB).
const maxUploadBytes = 8 << 20

// SendImage uploads img with the media API (POST
// /_matrix/media/v3/upload) and posts an m.image event to room that
// refers to its mxc:// URI, with the file name, the title as caption and
// info (mimetype, w, h, size). A failed post after a good upload leaves
// the upload unreferenced; a retry uploads again.
func (c *Client) SendImage(ctx context.Context, room string, img chat.Image) error {
	if len(img.PNG) == 0 || len(img.PNG) > maxUploadBytes {
		return fmt.Errorf("%w: image of %d bytes; want 1 to %d", chat.ErrRejected, len(img.PNG), maxUploadBytes)
	}
	if _, err := c.roomID(ctx, room); err != nil { // join first: no upload for a room the bot cannot post to
		return err
	}
	name := img.Name
	if name == "" {
		name = "image.png"
	}
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	if err := c.do(ctx, http.MethodPost, "/_matrix/media/v3/upload?filename="+url.QueryEscape(name), "image/png", img.PNG, &up); err != nil {
		return fmt.Errorf("matrix media upload: %w", err)
	}
	if !strings.HasPrefix(up.ContentURI, "mxc://") {
		return fmt.Errorf("matrix media upload answered content_uri %q; want an mxc:// URI", chat.ClipText(up.ContentURI, 128))
	}
	body := img.Title
	if body == "" {
		body = name
	}
	return c.sendEvent(ctx, room, map[string]any{"msgtype": "m.image", "body": body, "filename": name, "url": up.ContentURI,
		"info": map[string]any{"mimetype": "image/png", "w": img.Width, "h": img.Height, "size": len(img.PNG)}})
}

// sendEvent posts an m.room.message with content to room.
func (c *Client) sendEvent(ctx context.Context, room string, content any) error {
	id, err := c.roomID(ctx, room)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.txn++
	txn := "tt" + c.start + "." + strconv.FormatInt(c.txn, 10)
	c.mu.Unlock()
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(id) + "/send/m.room.message/" + url.PathEscape(txn)
	err = c.call(ctx, http.MethodPut, path, content, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.ErrCode == "M_FORBIDDEN" {
		// Kicked or never joined: forget the room so the next try joins.
		c.mu.Lock()
		delete(c.ids, room)
		c.mu.Unlock()
	}
	return err
}

// syncFilter keeps /sync answers to room messages of the joined rooms.
const syncFilter = `{"presence":{"types":[]},"account_data":{"types":[]},"room":{"timeline":{"types":["m.room.message"],"limit":50},"state":{"types":[]},"ephemeral":{"types":[]},"account_data":{"types":[]}}}`

type syncAnswer struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					Type    string `json:"type"`
					Sender  string `json:"sender"`
					Content struct {
						MsgType string `json:"msgtype"`
						Body    string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

// Run joins the rooms and long-polls /sync until ctx is done, handing
// m.text messages of others to hear.
func (c *Client) Run(ctx context.Context, hear func(chat.Message)) error {
	var me string
	since := ""
	attempt := 0
	fail := func(what string, err error) bool {
		attempt++
		wait := retry.Backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff)
		var rl *chat.RateLimitError
		switch {
		case errors.As(err, &rl):
			wait = rl.After
		case errors.Is(err, chat.ErrRefused):
			wait = c.opts.MaxBackoff
		}
		c.logger.Warn("matrix "+what+" failed; retrying", "homeserver", c.opts.Homeserver, "retry_in", wait, "err", err)
		return retry.Sleep(ctx, wait) == nil
	}
	for ctx.Err() == nil {
		if me == "" {
			var who struct {
				UserID string `json:"user_id"`
			}
			if err := c.call(ctx, http.MethodGet, "/_matrix/client/v3/account/whoami", nil, &who); err != nil {
				if ctx.Err() != nil || !fail("whoami", err) {
					return nil
				}
				continue
			}
			me = who.UserID
			for _, r := range c.opts.Rooms {
				if _, err := c.roomID(ctx, r); err != nil && ctx.Err() == nil {
					c.logger.Error("matrix bot cannot join a room; invite it", "room", r, "err", err)
				}
			}
		}
		q := url.Values{"filter": {syncFilter}}
		timeout := c.opts.SyncTimeout
		if since == "" {
			timeout = 0 // the first sync only finds where now is
		} else {
			q.Set("since", since)
		}
		q.Set("timeout", strconv.FormatInt(timeout.Milliseconds(), 10))
		cctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
		var ans syncAnswer
		err := c.call(cctx, http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil, &ans)
		cancel()
		if err != nil {
			if ctx.Err() != nil || !fail("sync", err) {
				return nil
			}
			continue
		}
		attempt = 0
		first := since == ""
		since = ans.NextBatch
		if first {
			continue // history from before the start is not a command
		}
		for room, jr := range ans.Rooms.Join {
			for _, ev := range jr.Timeline.Events {
				if ev.Type != "m.room.message" || ev.Sender == me || ev.Content.MsgType != "m.text" {
					continue
				}
				hear(chat.Message{Channel: room, User: ev.Sender, Name: localpart(ev.Sender), Text: ev.Content.Body})
			}
		}
	}
	return nil
}

// localpart is "alice" of "@alice:example.org".
func localpart(user string) string {
	l, _, _ := strings.Cut(strings.TrimPrefix(user, "@"), ":")
	return l
}

// ParseURL reads -chat.matrix: https://homeserver/#alias:server or
// https://homeserver/!roomid:server (several rooms comma-separated). The
// token comes separately.
func ParseURL(raw string) (homeserver string, rooms []string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", nil, fmt.Errorf("%q: want https://matrix.example.org/#room:example.org (or /!roomid:example.org)", raw)
	}
	spec := strings.TrimPrefix(u.Path, "/")
	if u.Fragment != "" {
		spec += "#" + u.Fragment
	}
	for _, r := range strings.Split(spec, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if !validRoom(r) {
			return "", nil, fmt.Errorf("%q: room %q: want #alias:server or !roomid:server", raw, r)
		}
		rooms = append(rooms, r)
	}
	if len(rooms) == 0 {
		return "", nil, fmt.Errorf("%q names no room: want https://matrix.example.org/#room:example.org", raw)
	}
	return u.Scheme + "://" + u.Host, rooms, nil
}
