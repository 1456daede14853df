// Package push is a Prometheus remote write client: it POSTs
// snappy-compressed remote write 1.0 or 2.0 bodies to a receiver (the
// Telltale collector, Prometheus, VictoriaMetrics, Mimir ...) following the
// spec's sender rules, and an Encoder that turns a samples.Batch into such
// bodies.
//
// What a Client promises:
//   - Headers: Content-Encoding: snappy; Content-Type
//     application/x-protobuf (1.0) or
//     application/x-protobuf;proto=io.prometheus.write.v2.Request (2.0);
//     X-Prometheus-Remote-Write-Version 0.1.0 or 2.0.0; User-Agent;
//     Authorization: Bearer <token> when a token is configured; and the
//     configured extra headers (a tenant's X-Scope-OrgID ...).
//   - 2xx is success. 5xx, 429 and network errors are retryable
//     (*RetryableError); any other status is permanent (*PermanentError,
//     carrying the receiver's message) and never retried: the same body
//     would be rejected again.
//   - Send retries with exponential backoff and jitter (retry.Backoff)
//     between Options.MinBackoff and MaxBackoff; a Retry-After header (seconds or
//     HTTP date) replaces the backoff, and until it has passed SendOnce
//     fails fast without touching the network, so every caller honours it.
//   - Failover: with several URLs (Options.URLs: collector replicas), a
//     request goes to the URL that last worked; a retryable failure moves
//     the next attempt to the next URL, and a URL whose Retry-After has not
//     passed is skipped while another is free. A request is sent to one URL
//     at a time, so a body reaches two replicas only when an attempt failed
//     without an answer (a timeout) after the first had it: the same samples
//     twice, which a TSDB stores once.
//
// A Client is safe for concurrent use.
package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/agent/spool"
	"github.com/telltale-dev/telltale/retry"
	"github.com/telltale-dev/telltale/secret"
)

// Version is a remote write protocol version.
type Version int

const (
	// V1 is remote write 1.0 (prometheus.WriteRequest).
	V1 Version = 1
	// V2 is remote write 2.0 (io.prometheus.write.v2.Request).
	V2 Version = 2
)

func (v Version) contentType() string {
	if v == V2 {
		return "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	return "application/x-protobuf"
}

func (v Version) header() string {
	if v == V2 {
		return "2.0.0"
	}
	return "0.1.0"
}

// Options configures a Client.
type Options struct {
	// URL is the write endpoint, e.g. http://127.0.0.1:9470/api/v1/write.
	URL string
	// URLs are more write endpoints of the same data (collector replicas),
	// tried in turn after URL when one fails.
	URLs []string
	// Version is the protocol version of the bodies; 0 means V1.
	Version Version
	// Token is sent as "Authorization: Bearer <Token>" when not empty.
	Token string
	// TokenFile, when set, holds the token instead; it is read by New and
	// read again whenever its modification time or size changes, so a
	// rotated token is picked up without a restart.
	TokenFile string
	// TLS configures https (a custom CA, a client certificate); nil means
	// Go's defaults. Ignored when Client is set.
	TLS *tls.Config
	// Client sends the requests; nil means a client built from TLS whose
	// requests time out after Timeout.
	Client *http.Client
	// Timeout bounds one attempt (connect, send, response). Zero means 30s.
	Timeout time.Duration
	// UserAgent is the User-Agent header. Zero means "telltale-agent/dev".
	UserAgent string
	// MinBackoff and MaxBackoff bound the wait between retries. Zero means
	// 100ms and 5s (Prometheus uses 30ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps a receiver's Retry-After. Zero means 5m.
	MaxRetryAfter time.Duration
	// MaxAttempts is how many attempts Send makes before it returns the
	// last retryable error. Zero means until ctx is done.
	MaxAttempts int
	// Logger gets one line per failed attempt at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics receives the client's counters; nil means none are kept.
	Metrics *metrics.Set
	// MetricPrefix starts the metric names. Zero means "telltale_agent_".
	MetricPrefix string
	// MetricLabels are added to every metric of the client, as
	// `name="value"` pairs separated by commas (e.g. `target="cortex"`),
	// for a process with several clients in one Set. Empty means none.
	MetricLabels string
	// Headers are sent with every request, e.g. X-Scope-OrgID: <tenant>
	// for Cortex or Thanos receive. They may not replace the headers the
	// protocol defines (Content-Type, Content-Encoding,
	// X-Prometheus-Remote-Write-Version).
	Headers map[string]string
	// Flags names the settings in the hints of error messages; zero
	// fields mean the agent's flags.
	Flags FlagNames
	// Sleep waits d or until ctx is done (returning ctx.Err()). Nil means a
	// timer; tests pass a fake to see the waits without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// FlagNames are the names of the settings a rejection's hint points to.
type FlagNames struct {
	// URL, Token and Version default to -collector, -token-file and
	// -remote-write-version.
	URL, Token, Version string
}

// Client sends remote write bodies to one URL.
type Client struct {
	version Version
	*state
}

// state is what the clients returned by WithVersion share.
type state struct {
	opts   Options
	url    string
	client *http.Client
	logger *slog.Logger

	endpoints []*endpoint
	current   atomic.Int64 // index of the endpoint to send to

	tokenMu      sync.Mutex
	token        string
	tokenModTime time.Time
	tokenSize    int64

	requests, retries, bytesSent *metrics.Counter
	errs                         map[string]*metrics.Counter
}

// Error reasons, the values of the send_errors_total reason label.
const (
	ReasonNetwork    = "network"           // connection refused, reset, DNS ...
	ReasonTimeout    = "timeout"           // no answer within Options.Timeout
	ReasonServer     = "server_error"      // 5xx
	ReasonTooMany    = "too_many_requests" // 429
	ReasonRejected   = "rejected"          // other 4xx: permanent
	ReasonBackingOff = "backing_off"       // not sent: the receiver's Retry-After has not passed
)

var reasons = []string{ReasonNetwork, ReasonTimeout, ReasonServer, ReasonTooMany, ReasonRejected, ReasonBackingOff}

// endpoint is one URL a client sends to.
type endpoint struct {
	url       string
	notBefore atomic.Int64 // unix nanos before which no request is sent (Retry-After)
}

// New checks opts and returns a Client. It fails when the URL is not an
// absolute http(s) URL or the token file cannot be read or is empty.
func New(opts Options) (*Client, error) {
	var eps []*endpoint
	for _, raw := range append([]string{opts.URL}, opts.URLs...) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("remote write URL %q is not an absolute http:// or https:// URL", raw)
		}
		eps = append(eps, &endpoint{url: u.String()})
	}
	if opts.Version == 0 {
		opts.Version = V1
	}
	if opts.Version != V1 && opts.Version != V2 {
		return nil, fmt.Errorf("remote write version %d is not supported: use 1 or 2", opts.Version)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "telltale-agent/dev"
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MetricPrefix == "" {
		opts.MetricPrefix = "telltale_agent_"
	}
	for k := range opts.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "Content-Length":
			return nil, fmt.Errorf("remote write header %q is set by the protocol and cannot be configured", k)
		}
	}
	if opts.Sleep == nil {
		opts.Sleep = retry.Sleep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st := &state{opts: opts, endpoints: eps, logger: opts.Logger.With("component", "push")}
	st.client = opts.Client
	if st.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = opts.TLS
		tr.MaxIdleConnsPerHost = 4
		st.client = &http.Client{Transport: tr, Timeout: opts.Timeout}
	}
	st.token = opts.Token
	if opts.TokenFile != "" {
		if err := st.reloadToken(true); err != nil {
			return nil, err
		}
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet() // counted, never exported
	}
	name := func(n, labels string) string {
		return spool.MetricName(opts.MetricPrefix, n, opts.MetricLabels, labels)
	}
	st.requests = set.GetOrCreateCounter(name("send_requests_total", ""))
	st.retries = set.GetOrCreateCounter(name("send_retries_total", ""))
	st.bytesSent = set.GetOrCreateCounter(name("send_bytes_total", ""))
	st.errs = make(map[string]*metrics.Counter, len(reasons))
	for _, r := range reasons {
		st.errs[r] = set.GetOrCreateCounter(name("send_errors_total", `reason="`+r+`"`))
	}
	return &Client{version: opts.Version, state: st}, nil
}

// Version returns the protocol version of the bodies c sends.
func (c *Client) Version() Version { return c.version }

// WithVersion returns a client for bodies of version v that shares c's
// connection pool, token, counters and Retry-After state; a spool written
// by an agent that used another version replays through it.
func (c *Client) WithVersion(v Version) *Client {
	return &Client{version: v, state: c.state}
}

// PermanentError is a rejection that retrying cannot fix: the receiver
// answered with a status other than 2xx, 429 or 5xx.
type PermanentError struct {
	StatusCode int
	// Message is the start of the receiver's response body, which says
	// what was wrong.
	Message string
	// Flags names the settings the hint points to; zero fields mean the
	// agent's flags.
	Flags FlagNames
}

func (e *PermanentError) Error() string {
	hint := ""
	f := func(set, def string) string {
		if set != "" {
			return set
		}
		return def
	}
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (check the bearer token: " + f(e.Flags.Token, "-token-file") + ")"
	case http.StatusUnsupportedMediaType:
		hint = " (the receiver may not speak this remote write version: try " + f(e.Flags.Version, "-remote-write-version") + "=1)"
	case http.StatusNotFound:
		hint = " (check the URL: " + f(e.Flags.URL, "-collector") + ")"
	}
	return fmt.Sprintf("receiver rejected the request with %d %s: %s; not retried%s",
		e.StatusCode, http.StatusText(e.StatusCode), e.Message, hint)
}

// RetryableError is a failure that may go away: a network error, a
// timeout, 429 or 5xx.
type RetryableError struct {
	// StatusCode is the HTTP status, 0 for network errors and timeouts.
	StatusCode int
	// Reason is one of the Reason constants.
	Reason string
	// RetryAfter is the receiver's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
	Err        error
}

func (e *RetryableError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

func (e *RetryableError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or an error it wraps) is a
// *PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// errBackingOff is the Err of a RetryableError for a request not sent
// because the receiver's Retry-After has not passed.
var errBackingOff = errors.New("receiver asked to back off; request not sent")

// SendOnce makes one attempt to send body (snappy-compressed remote write
// of c's version). It returns nil on 2xx, a *PermanentError or a
// *RetryableError. While a Retry-After from the receiver is pending it
// returns a *RetryableError at once.
func (c *Client) SendOnce(ctx context.Context, body []byte) error {
	ep, wait := c.pick()
	if wait > 0 {
		c.errs[ReasonBackingOff].Inc()
		return &RetryableError{Reason: ReasonBackingOff, RetryAfter: wait, Err: errBackingOff}
	}
	err := c.attempt(ctx, ep.url, body)
	if err != nil {
		var re *RetryableError
		var pe *PermanentError
		switch {
		case errors.As(err, &re):
			c.errs[re.Reason].Inc()
			if re.RetryAfter > 0 {
				ep.notBefore.Store(c.opts.Now().Add(re.RetryAfter).UnixNano())
			}
			if len(c.endpoints) > 1 && ctx.Err() == nil {
				// The next attempt goes to the next replica.
				c.current.CompareAndSwap(int64(c.index(ep)), int64((c.index(ep)+1)%len(c.endpoints)))
			}
		case errors.As(err, &pe):
			c.errs[ReasonRejected].Inc()
		}
	}
	return err
}

// Send sends body, retrying retryable failures with backoff until it
// succeeds, fails permanently, Options.MaxAttempts is reached, or ctx is
// done. It returns nil, a *PermanentError, the last *RetryableError, or
// ctx's error wrapping the last failure.
func (c *Client) Send(ctx context.Context, body []byte) error {
	// failovers counts attempts made without waiting since the last wait:
	// every other replica gets one at once before the backoff applies.
	failovers, backoffs := 0, 0
	for attempt := 1; ; attempt++ {
		err := c.SendOnce(ctx, body)
		if err == nil || IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		if c.opts.MaxAttempts > 0 && attempt >= c.opts.MaxAttempts {
			return err
		}
		var re *RetryableError
		if !errors.As(err, &re) {
			return err
		}
		c.retries.Inc()
		if failovers++; failovers < len(c.endpoints) && re.Reason != ReasonBackingOff {
			c.logger.Debug("send failed, trying the next replica", "err", err, "attempt", attempt)
			continue
		}
		failovers = 0
		backoffs++
		wait := re.RetryAfter
		if wait <= 0 {
			wait = retry.Backoff(backoffs, c.opts.MinBackoff, c.opts.MaxBackoff)
		}
		c.logger.Debug("send failed, will retry", "err", err, "attempt", attempt, "wait", wait)
		if err := c.opts.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w (last error: %v)", err, re)
		}
	}
}

// pick returns the endpoint to send to: the current one, or the first
// after it whose Retry-After has passed; when none is free, the current
// one and how long until the soonest is.
func (c *Client) pick() (*endpoint, time.Duration) {
	n := len(c.endpoints)
	cur := int(c.current.Load()) % n
	now := c.opts.Now().UnixNano()
	soonest := time.Duration(1<<63 - 1)
	for k := range n {
		ep := c.endpoints[(cur+k)%n]
		left := time.Duration(ep.notBefore.Load() - now)
		if left <= 0 {
			if k > 0 {
				c.current.CompareAndSwap(int64(cur), int64((cur+k)%n))
			}
			return ep, 0
		}
		soonest = min(soonest, left)
	}
	return c.endpoints[cur], soonest
}

func (c *Client) index(ep *endpoint) int {
	for i, e := range c.endpoints {
		if e == ep {
			return i
		}
	}
	return 0
}

func (c *Client) attempt(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("BUG: cannot build request: %w", err)
	}
	h := req.Header
	h.Set("Content-Encoding", "snappy")
	h.Set("Content-Type", c.version.contentType())
	h.Set("X-Prometheus-Remote-Write-Version", c.version.header())
	h.Set("User-Agent", c.opts.UserAgent)
	for k, v := range c.opts.Headers {
		h.Set(k, v)
	}
	if tok := c.currentToken(); tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	c.requests.Inc()
	resp, err := c.client.Do(req)
	if err != nil {
		reason := ReasonNetwork
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			reason = ReasonTimeout
		}
		return &RetryableError{Reason: reason, Err: fmt.Errorf("cannot send to %s: %w", url, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		c.bytesSent.Add(len(body))
		return nil
	}
	text := strings.TrimSpace(string(msg))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
		reason := ReasonServer
		if resp.StatusCode == http.StatusTooManyRequests {
			reason = ReasonTooMany
		}
		return &RetryableError{
			StatusCode: resp.StatusCode,
			Reason:     reason,
			RetryAfter: c.retryAfter(resp.Header.Get("Retry-After")),
			Err:        fmt.Errorf("receiver %s answered %d %s: %s", url, resp.StatusCode, http.StatusText(resp.StatusCode), text),
		}
	}
	return &PermanentError{StatusCode: resp.StatusCode, Message: text, Flags: c.opts.Flags}
}

// retryAfter reads a Retry-After header (retry.After): 0 for none or
// garbage, capped at MaxRetryAfter.
func (c *Client) retryAfter(v string) time.Duration {
	d, _ := retry.After(v, c.opts.Now(), c.opts.MaxRetryAfter)
	return d
}

func (c *Client) currentToken() string {
	if c.opts.TokenFile == "" {
		return c.token
	}
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if err := c.reloadTokenLocked(false); err != nil {
		c.logger.Warn("cannot re-read token file, keeping the previous token", "err", err)
	}
	return c.token
}

func (s *state) reloadToken(force bool) error {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	return s.reloadTokenLocked(force)
}

// reloadTokenLocked reads the token file when forced or when its mtime or
// size changed since the last read.
func (s *state) reloadTokenLocked(force bool) error {
	fi, err := os.Stat(s.opts.TokenFile)
	if err != nil {
		return fmt.Errorf("cannot read token file: %w", err)
	}
	if !force && fi.ModTime().Equal(s.tokenModTime) && fi.Size() == s.tokenSize {
		return nil
	}
	tok, err := secret.Read(s.opts.TokenFile, "token file", "the bearer token")
	if err != nil {
		return err
	}
	s.token, s.tokenModTime, s.tokenSize = tok, fi.ModTime(), fi.Size()
	return nil
}
