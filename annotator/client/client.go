// Package client talks to a Telltale collector's change API
// (/api/v1/changes, /api/v1/deploys, /api/v1/switches) for the annotator
// CLI and for tests. It depends on the standard library and the change
// model (annotator/changes) only, so the CLI stays small.
//
// Promises: every request carries the bearer token when one is set; network
// errors, 5xx and 429 answers are retried with exponential backoff (honouring
// Retry-After) up to Options.Retries times, and only requests that are safe
// to repeat are retried: creates always carry an id (a random one when the
// caller gave none), so a retried create never records a change twice.
// Switch flips are not retried (the relay answers per instance). Warnings
// of an accepted request (e.g. a change that marks no graph) are returned,
// not dropped.
// Errors say what to do: ErrUnreachable for a collector that cannot be
// reached, *APIError for an answer that refused the request.
//
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/retry"
)

// ErrUnreachable is wrapped by errors for a collector that could not be
// reached (connection refused, DNS failure, timeout) after all retries.
var ErrUnreachable = errors.New("collector unreachable")

// APIError is an error answer of the change API.
type APIError struct {
	StatusCode int
	// Type is the envelope's errorType, e.g. bad_data, not_found.
	Type    string
	Message string
}

func (e *APIError) Error() string {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Sprintf("collector refused the token (HTTP 401): set TELLTALE_TOKEN to a token with the deploy scope: %s", e.Message)
	case http.StatusForbidden:
		return fmt.Sprintf("collector refused the token (HTTP 403): the token lacks the deploy scope: %s", e.Message)
	}
	return fmt.Sprintf("collector answered HTTP %d: %s", e.StatusCode, e.Message)
}

// Options configures a Client. Zero values take the defaults.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>" when not empty.
	Token string
	// HTTPClient sends the requests; default a client with a 10s timeout.
	HTTPClient *http.Client
	// Retries is how many times a failed request is repeated (default 4;
	// negative: none).
	Retries int
	// MinBackoff and MaxBackoff bound the waits between tries (defaults
	// 500ms and 8s).
	MinBackoff, MaxBackoff time.Duration
	// UserAgent is sent as User-Agent (default "telltale-annotator").
	UserAgent string
}

// Client is a change API client for one collector.
type Client struct {
	base string
	opts Options
}

// New returns a client for the collector at baseURL, e.g.
// "http://127.0.0.1:9470".
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("collector URL %q is not an absolute http(s) URL: set -collector or TELLTALE_COLLECTOR like http://collector:9470", baseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(8*time.Second, opts.MinBackoff)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "telltale-annotator"
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), opts: opts}, nil
}

// NewID returns a random change id.
func NewID() string {
	var b [10]byte
	crand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}

// Recorded is the answer to Create.
type Recorded struct {
	Change changes.Change
	// Created is false when the collector already had a change with that
	// id (a retry).
	Created bool
	// Warnings say when the change may not do what was meant, e.g. its
	// service has no data, so it marks no graph of the Service dashboard.
	Warnings []string
}

// Create records a change. When req.ID is empty it is set to a random id
// first, so retries are idempotent. A deploy (Kind "" or "deploy", no
// Subject or Fields) goes to /api/v1/deploys, which every collector
// serves; any other change to /api/v1/changes.
func (c *Client) Create(ctx context.Context, req changes.CreateRequest) (Recorded, error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	path := "/api/v1/changes"
	if (req.Kind == "" || req.Kind == changes.KindDeploy) && req.Subject == "" && len(req.Fields) == 0 {
		path, req.Kind = "/api/v1/deploys", ""
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Recorded{}, fmt.Errorf("BUG: cannot encode change: %w", err)
	}
	var r Recorded
	code, warnings, err := c.do(ctx, http.MethodPost, path, body, &r.Change, true)
	r.Created, r.Warnings = code == http.StatusCreated, warnings
	return r, err
}

// Update ends or changes change id (PATCH).
func (c *Client) Update(ctx context.Context, id string, req changes.PatchRequest) (changes.Change, error) {
	var ch changes.Change
	body, err := json.Marshal(req)
	if err != nil {
		return ch, fmt.Errorf("BUG: cannot encode patch: %w", err)
	}
	_, _, err = c.do(ctx, http.MethodPatch, "/api/v1/changes/"+url.PathEscape(id), body, &ch, true)
	return ch, err
}

// Get returns change id.
func (c *Client) Get(ctx context.Context, id string) (changes.Change, error) {
	var ch changes.Change
	_, _, err := c.do(ctx, http.MethodGet, "/api/v1/changes/"+url.PathEscape(id), nil, &ch, true)
	return ch, err
}

// Impact returns the impact analysis of change id: its state (pending
// with the due time, done, failed) and, once done, the report. A change
// without analysis, or an unknown one, is an *APIError with StatusCode
// 404.
func (c *Client) Impact(ctx context.Context, id string) (changes.ImpactAnswer, error) {
	var a changes.ImpactAnswer
	_, _, err := c.do(ctx, http.MethodGet, "/api/v1/changes/"+url.PathEscape(id)+"/impact", nil, &a, true)
	return a, err
}

// ListOptions filters List; zero fields do not filter.
type ListOptions struct {
	Kinds        []string
	Service, Env string
	Subject      string
	// Text is a full-text search: every word must occur.
	Text     string
	OpenOnly bool
	From, To time.Time
	Limit    int
}

// List returns changes newest first (GET /api/v1/changes): a change
// without env matches every Env, and From/To select the changes whose
// span overlaps them.
func (c *Client) List(ctx context.Context, o ListOptions) ([]changes.Change, error) {
	q := url.Values{}
	if len(o.Kinds) > 0 {
		q.Set("kind", strings.Join(o.Kinds, ","))
	}
	for k, v := range map[string]string{"service": o.Service, "env": o.Env, "subject": o.Subject, "q": o.Text} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.OpenOnly {
		q.Set("open", "true")
	}
	if !o.From.IsZero() {
		q.Set("from", o.From.Format(time.RFC3339Nano))
	}
	if !o.To.IsZero() {
		q.Set("to", o.To.Format(time.RFC3339Nano))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	path := "/api/v1/changes"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []changes.Change
	_, _, err := c.do(ctx, http.MethodGet, path, nil, &out, true)
	return out, err
}

// Switches returns the switches apps announced to the collector; service
// and env "" do not filter.
func (c *Client) Switches(ctx context.Context, service, env string) ([]changes.SwitchView, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if env != "" {
		q.Set("env", env)
	}
	path := "/api/v1/switches"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []changes.SwitchView
	_, _, err := c.do(ctx, http.MethodGet, path, nil, &out, true)
	return out, err
}

// Flip asks the collector to flip switch name of service on every live
// instance, with a reason. It is not retried: a flip that reached some
// instances must not be sent twice blindly. An answer where no instance
// took it is an *APIError (502) whose message says why.
func (c *Client) Flip(ctx context.Context, service, name string, req changes.FlipRequest) (changes.FlipResult, error) {
	var res changes.FlipResult
	body, err := json.Marshal(req)
	if err != nil {
		return res, fmt.Errorf("BUG: cannot encode flip: %w", err)
	}
	_, _, err = c.do(ctx, http.MethodPost, "/api/v1/switches/"+url.PathEscape(service)+"/"+url.PathEscape(name), body, &res, false)
	return res, err
}

// do sends a request, with retries when retrying is set, and decodes the
// envelope's data into out.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any, retrying bool) (int, []string, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		code, retryAfter, warnings, err := c.once(ctx, method, path, body, out)
		if err == nil {
			return code, warnings, nil
		}
		lastErr = err
		if !retrying || !retryable(code, err) || attempt >= c.opts.Retries || ctx.Err() != nil {
			break
		}
		if err := retry.Sleep(ctx, c.backoff(attempt, retryAfter)); err != nil {
			return 0, nil, c.finalError(err)
		}
	}
	return 0, nil, c.finalError(lastErr)
}

func retryable(code int, err error) bool {
	if code == 0 {
		return !errors.Is(err, context.Canceled)
	}
	return code >= 500 || code == http.StatusTooManyRequests
}

// backoff is the wait after the failed try number attempt (0-based): the
// exponential backoff, or the collector's Retry-After when that is longer,
// never above MaxBackoff.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := retry.Backoff(attempt+1, c.opts.MinBackoff, c.opts.MaxBackoff)
	if retryAfter > 0 {
		d = min(max(d, retryAfter), c.opts.MaxBackoff)
	}
	return d
}

// once sends one request. code is 0 when no answer came.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (code int, retryAfter time.Duration, warnings []string, err error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("BUG: cannot build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, 0, nil, err
	}
	retryAfter, _ = retry.After(resp.Header.Get("Retry-After"), time.Now(), c.opts.MaxBackoff)
	var env changes.Response[json.RawMessage]
	if jerr := json.Unmarshal(raw, &env); jerr != nil || env.Status == "" {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if resp.StatusCode/100 == 2 {
			return resp.StatusCode, 0, nil, fmt.Errorf("collector at %s answered HTTP %d without the JSON envelope (%q): is -collector pointing at a Telltale collector?", c.base, resp.StatusCode, msg)
		}
		return resp.StatusCode, retryAfter, nil, &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	if env.Status != "success" {
		return resp.StatusCode, retryAfter, nil, &APIError{StatusCode: resp.StatusCode, Type: env.ErrorType, Message: env.Error}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return resp.StatusCode, 0, nil, fmt.Errorf("cannot decode the collector's answer: %w", err)
		}
	}
	return resp.StatusCode, 0, env.Warnings, nil
}

// finalError turns a transport error into one that says what to do.
func (c *Client) finalError(err error) error {
	var apiErr *APIError
	if errors.As(err, &apiErr) || errors.Is(err, context.Canceled) {
		return err
	}
	var urlErr *url.Error
	if !errors.As(err, &urlErr) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("cannot reach collector at %s: %s; is it running? set -collector or TELLTALE_COLLECTOR: %w", c.base, cause(err), ErrUnreachable)
}

// cause names the reason a connection failed in a few words.
func cause(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dnsErr):
		return "no such host " + dnsErr.Name
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err.Error()
	}
	return err.Error()
}
