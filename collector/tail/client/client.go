// Package client is the Go client of the collector's live tail (the
// protocol is documented in package tail): Dial subscribes once, Follow
// keeps a subscription going across disconnects and restarts with backoff,
// and Printer renders messages for people. The collector's `tail` command is
// built on it.
//
// A Conn is not safe for concurrent use, except Close, which may be called
// from any goroutine to end a blocked Next.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/retry"
)

// Options say where to subscribe and to what.
type Options struct {
	// URL is the collector's base URL, e.g. http://127.0.0.1:9470; https
	// means TLS. ws:// and wss:// are accepted too. A path, if any, is
	// replaced by /api/v1/tail.
	URL string
	// Selectors are PromQL series selectors; a series is streamed when it
	// matches any of them.
	Selectors []string
	// MaxRate asks the server to thin the stream to this many samples per
	// second; 0 means no limit.
	MaxRate float64
	// Token is a bearer token with the read scope; empty sends none.
	Token string
	// Header holds extra request headers (e.g. Origin).
	Header http.Header
	// Dialer dials the websocket; nil means one with a 10s handshake
	// timeout.
	Dialer *websocket.Dialer
}

// MaxMessageBytes bounds one message read from the server.
const MaxMessageBytes = 64 << 20

// HandshakeError is the server's refusal of a subscription, before the
// upgrade: its HTTP status and the message it gave.
type HandshakeError struct {
	StatusCode int
	Message    string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("collector refused the subscription: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Retryable reports whether trying again later may succeed (503 and other
// server-side failures); 4xx answers need the request or token fixed.
func (e *HandshakeError) Retryable() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}

// Conn is one live-tail subscription.
type Conn struct {
	ws   *websocket.Conn
	stop func() bool
	// Subscribed is the server's first message: the subscription as it
	// understood it.
	Subscribed tail.Message
	// SubscribedRaw is that message's JSON.
	SubscribedRaw []byte
}

// TailURL returns the websocket URL of the subscription opts describe.
func TailURL(opts Options) (string, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("collector URL %q: want http://host:port or https://host:port", opts.URL)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("collector URL %q: scheme %q, want http or https", opts.URL, u.Scheme)
	}
	if len(opts.Selectors) == 0 {
		return "", errors.New("no series selector: give at least one, e.g. 'up{job=\"api\"}'")
	}
	q := url.Values{}
	for _, s := range opts.Selectors {
		q.Add("match[]", s)
	}
	if opts.MaxRate > 0 {
		q.Set("max_rate", strconv.FormatFloat(opts.MaxRate, 'g', -1, 64))
	}
	u.Path = "/api/v1/tail"
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Dial subscribes and reads the server's subscribed message. Cancelling ctx
// closes the connection (also after Dial returned). A refusal before the
// upgrade is a *HandshakeError.
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	u, err := TailURL(opts)
	if err != nil {
		return nil, err
	}
	d := opts.Dialer
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	h := opts.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if opts.Token != "" {
		h.Set("Authorization", "Bearer "+opts.Token)
	}
	ws, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			return nil, &HandshakeError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(body))}
		}
		return nil, fmt.Errorf("cannot connect to the collector at %s (is it running? is the URL right?): %w", opts.URL, err)
	}
	ws.SetReadLimit(MaxMessageBytes)
	c := &Conn{ws: ws}
	c.stop = context.AfterFunc(ctx, func() { _ = ws.Close() })
	m, raw, err := c.Next()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("no subscribed message from %s: %w", opts.URL, err)
	}
	if m.Type != tail.TypeSubscribed {
		c.Close()
		return nil, fmt.Errorf("first message from %s is %q, want %q; is this a Telltale collector?", opts.URL, m.Type, tail.TypeSubscribed)
	}
	c.Subscribed, c.SubscribedRaw = m, raw
	return c, nil
}

// Next returns the next message and its JSON (valid until the next call).
// When the server closes the stream the error is a *websocket.CloseError
// with the server's reason; see Describe.
func (c *Conn) Next() (tail.Message, []byte, error) {
	_, raw, err := c.ws.ReadMessage()
	if err != nil {
		return tail.Message{}, nil, err
	}
	var m tail.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return tail.Message{}, raw, fmt.Errorf("bad message from the collector: %w", err)
	}
	return m, raw, nil
}

// Close ends the subscription with a normal close frame and closes the
// connection. It is safe to call more than once and from any goroutine.
func (c *Conn) Close() {
	c.stop()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.ws.Close()
}

// Describe turns a Dial or Next error into a sentence for people, e.g.
// "the collector closed the stream: server shutting down (1001)".
func Describe(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code == websocket.CloseAbnormalClosure {
			return "connection to the collector lost"
		}
		if ce.Text == "" {
			return fmt.Sprintf("the collector closed the stream (%d)", ce.Code)
		}
		return fmt.Sprintf("the collector closed the stream: %s (%d)", ce.Text, ce.Code)
	}
	return err.Error()
}

// FollowOptions configure Follow.
type FollowOptions struct {
	// OnMessage (required) is called for every message, each connection's
	// subscribed message included; raw is valid only during the call. An error from
	// it ends Follow with that error.
	OnMessage func(m tail.Message, raw []byte) error
	// Logf reports disconnects and reconnects, e.g. to stderr; nil is
	// silent.
	Logf func(format string, args ...any)
	// MinBackoff and MaxBackoff bound the wait before reconnecting, which
	// doubles after each failure. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
}

// Follow subscribes and delivers messages until ctx is done, reconnecting
// with backoff after disconnects, server restarts and 503s. It returns
// ctx's error, the error of OnMessage, or a refusal that retrying cannot
// fix (a *HandshakeError with a 4xx status).
func Follow(ctx context.Context, opts Options, fo FollowOptions) error {
	if fo.OnMessage == nil {
		return errors.New("BUG: client.Follow needs FollowOptions.OnMessage")
	}
	if fo.MinBackoff <= 0 {
		fo.MinBackoff = 500 * time.Millisecond
	}
	if fo.MaxBackoff < fo.MinBackoff {
		fo.MaxBackoff = max(30*time.Second, fo.MinBackoff)
	}
	logf := fo.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	failures := 0 // consecutive, since the last connection that worked for a while
	for {
		start := time.Now()
		c, err := Dial(ctx, opts)
		if err == nil {
			if hErr := fo.OnMessage(c.Subscribed, c.SubscribedRaw); hErr != nil {
				c.Close()
				return hErr
			}
			err = c.pump(fo.OnMessage)
			c.Close()
			var hErr handlerError
			if errors.As(err, &hErr) {
				return hErr.err
			}
			if time.Since(start) > 10*fo.MinBackoff {
				failures = 0 // it worked for a while: start over
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he *HandshakeError
		if errors.As(err, &he) && !he.Retryable() {
			return err
		}
		failures++
		wait := retry.Backoff(failures, fo.MinBackoff, fo.MaxBackoff) // jittered, so restarted servers are not hit at once
		logf("%s; reconnecting in %s", Describe(err), wait.Round(time.Millisecond))
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// pump delivers messages until the connection fails or handle errs.
func (c *Conn) pump(handle func(tail.Message, []byte) error) error {
	for {
		m, raw, err := c.Next()
		if err != nil {
			return err
		}
		if err := handle(m, raw); err != nil {
			return handlerError{err}
		}
	}
}
