// Package client talks to a Telltale collector's deploy API
// (/api/v1/deploys) for the annotator CLI and for tests.
//
// Promises: every request carries the bearer token when one is set; network
// errors, 5xx and 429 answers are retried with exponential backoff (honouring
// Retry-After) up to Options.Retries times, and only requests that are safe
// to repeat are retried: creates always carry an id (a random one when the
// caller gave none), so a retried create never records a deploy twice.
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
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/annotator/deployapi"
)

// ErrUnreachable is wrapped by errors for a collector that could not be
// reached (connection refused, DNS failure, timeout) after all retries.
var ErrUnreachable = errors.New("collector unreachable")

// APIError is an error answer of the deploy API.
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

// Client is a deploy API client for one collector.
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

// NewID returns a random deploy id.
func NewID() string {
	var b [10]byte
	crand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}

// Create records a deploy. When req.ID is empty it is set to a random id
// first, so retries are idempotent. created is false when the collector
// already had a deploy with that id (a retry).
func (c *Client) Create(ctx context.Context, req deployapi.CreateRequest) (d deployapi.Deploy, created bool, err error) {
	if req.ID == "" {
		req.ID = NewID()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return d, false, fmt.Errorf("BUG: cannot encode deploy: %w", err)
	}
	code, err := c.do(ctx, http.MethodPost, "/api/v1/deploys", body, &d)
	return d, code == http.StatusCreated, err
}

// Update closes or changes deploy id (PATCH).
func (c *Client) Update(ctx context.Context, id string, req deployapi.ChangeRequest) (deployapi.Deploy, error) {
	var d deployapi.Deploy
	body, err := json.Marshal(req)
	if err != nil {
		return d, fmt.Errorf("BUG: cannot encode change: %w", err)
	}
	_, err = c.do(ctx, http.MethodPatch, "/api/v1/deploys/"+url.PathEscape(id), body, &d)
	return d, err
}

// Get returns deploy id.
func (c *Client) Get(ctx context.Context, id string) (deployapi.Deploy, error) {
	var d deployapi.Deploy
	_, err := c.do(ctx, http.MethodGet, "/api/v1/deploys/"+url.PathEscape(id), nil, &d)
	return d, err
}

// Impact returns the impact analysis of deploy id: its state
// (pending with the due time, done, failed) and, once done, the report.
// A deploy without analysis, or an unknown one, is an *APIError with
// StatusCode 404.
func (c *Client) Impact(ctx context.Context, id string) (deployapi.ImpactAnswer, error) {
	var a deployapi.ImpactAnswer
	_, err := c.do(ctx, http.MethodGet, "/api/v1/deploys/"+url.PathEscape(id)+"/impact", nil, &a)
	return a, err
}

// ListOptions filters List; zero fields do not filter.
type ListOptions struct {
	Service, Env string
	From, To     time.Time
	Limit        int
}

// List returns deploys newest first.
func (c *Client) List(ctx context.Context, o ListOptions) ([]deployapi.Deploy, error) {
	q := url.Values{}
	if o.Service != "" {
		q.Set("service", o.Service)
	}
	if o.Env != "" {
		q.Set("env", o.Env)
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
	path := "/api/v1/deploys"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []deployapi.Deploy
	_, err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// do sends a request with retries and decodes the envelope's data into out.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		code, retryAfter, err := c.once(ctx, method, path, body, out)
		if err == nil {
			return code, nil
		}
		lastErr = err
		if !retryable(code, err) || attempt >= c.opts.Retries || ctx.Err() != nil {
			break
		}
		wait := c.backoff(attempt, retryAfter)
		select {
		case <-ctx.Done():
			return 0, c.finalError(ctx.Err())
		case <-time.After(wait):
		}
	}
	return 0, c.finalError(lastErr)
}

func retryable(code int, err error) bool {
	if code == 0 {
		return !errors.Is(err, context.Canceled)
	}
	return code >= 500 || code == http.StatusTooManyRequests
}

func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := c.opts.MinBackoff << min(attempt, 20)
	d = min(d, c.opts.MaxBackoff)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1)) // jitter
	if retryAfter > 0 {
		d = min(max(d, retryAfter), c.opts.MaxBackoff)
	}
	return d
}

// once sends one request. code is 0 when no answer came.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (code int, retryAfter time.Duration, err error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, 0, fmt.Errorf("BUG: cannot build request: %w", err)
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
		return 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, 0, err
	}
	if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	var env deployapi.Response[json.RawMessage]
	if jerr := json.Unmarshal(raw, &env); jerr != nil || env.Status == "" {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if resp.StatusCode/100 == 2 {
			return resp.StatusCode, 0, fmt.Errorf("collector at %s answered HTTP %d without the JSON envelope (%q): is -collector pointing at a Telltale collector?", c.base, resp.StatusCode, msg)
		}
		return resp.StatusCode, retryAfter, &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	if env.Status != "success" {
		return resp.StatusCode, retryAfter, &APIError{StatusCode: resp.StatusCode, Type: env.ErrorType, Message: env.Error}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return resp.StatusCode, 0, fmt.Errorf("cannot decode the collector's answer: %w", err)
		}
	}
	return resp.StatusCode, 0, nil
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
