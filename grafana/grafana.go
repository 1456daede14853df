// Package grafana is Telltale's client of Grafana's HTTP API: organization
// annotations for the change log (POST/PUT/GET /api/annotations, see
// annotations.go) and folders and dashboards for the dashboards tool
// (GET/POST /api/folders, POST /api/dashboards/db, see dashboards.go), with a
// service account token.
//
// It is the only Telltale package that touches
// github.com/grafana/grafana-api-golang-client, which is archived upstream
// and takes no context. Each call gets its own upstream client whose HTTP
// transport threads the caller's context through and records the status and
// the start of the body of the last response, so a refusal becomes a
// *StatusError carrying Grafana's message. Consumers see only Client's
// methods, through interfaces of their own (annotator/changelog's Annotator,
// the dashboards tool's grafanaAPI).
//
// Promises: every call honours its context and the client timeout; no call
// retries by itself (the change log's outbox and the person running
// dashboards push own retries); at most 4 KiB of an error body is kept.
// Grafana's refusals map to sentinels a caller can act on with errors.Is:
// ErrUnauthorized (401), ErrForbidden (403), ErrNotFound (404),
// ErrVersionConflict and ErrNameExists (412), ErrRejected (every 4xx but
// 401, 403, 408 and 429: retrying the same request will not help).
// Anything else (network errors, timeouts, 408, 429, 5xx) is transient.
//
// A Client is safe for concurrent use.
package grafana

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

	gapi "github.com/grafana/grafana-api-golang-client"
)

// Errors a caller acts on; match them with errors.Is.
var (
	// ErrUnauthorized: Grafana did not accept the token (401).
	ErrUnauthorized = errors.New("grafana rejected the token (401 Unauthorized): it is wrong, expired or revoked; create a service account token with Editor role (Grafana: Administration > Users and access > Service accounts)")
	// ErrForbidden: the token is valid but may not do this (403); the
	// StatusError names the permission the call needs.
	ErrForbidden = errors.New("grafana token lacks a permission (403 Forbidden): create a service account token with Editor role")
	// ErrNotFound: the annotation, folder or dashboard does not exist (404).
	ErrNotFound = errors.New("not found in grafana (404)")
	// ErrVersionConflict: the dashboard in Grafana is not the version the
	// save was based on (412 version-mismatch).
	ErrVersionConflict = errors.New("version conflict (412 version-mismatch): someone changed the dashboard in Grafana")
	// ErrNameExists: another dashboard in the folder has the same title
	// (412 name-exists).
	ErrNameExists = errors.New("another dashboard in the folder has the same title (412 name-exists)")
	// ErrRejected: Grafana refused the request as invalid (a 4xx other than
	// 401, 403, 408 and 429); retrying it unchanged will not help.
	ErrRejected = errors.New("grafana rejected the request")
)

// StatusError is a 4xx or 5xx answer from Grafana.
type StatusError struct {
	Op   string // what the call did, e.g. "create annotation"
	Code int    // HTTP status code
	// Message is Grafana's "message" field, or the start of the body (at
	// most 200 bytes) when the body is not Grafana's JSON error.
	Message string
	// Status is Grafana's "status" field (a 412 carries version-mismatch,
	// name-exists or plugin-dashboard); "" when absent.
	Status string
	// Permission is what the call needs of the token, e.g.
	// "annotations:write", named in the message of a 403.
	Permission string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("grafana %s: HTTP %d", e.Op, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch {
	case e.Code == http.StatusUnauthorized:
		msg += "; " + ErrUnauthorized.Error()
	case e.Code == http.StatusForbidden:
		msg += fmt.Sprintf("; grafana token lacks %s (403 Forbidden): create a service account token with Editor role", e.Permission)
	case e.Is(ErrVersionConflict):
		msg += "; " + ErrVersionConflict.Error()
	case e.Is(ErrNameExists):
		msg += "; " + ErrNameExists.Error()
	}
	return msg
}

// Is maps the answer to the package sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrVersionConflict:
		return e.Code == http.StatusPreconditionFailed && e.Status == "version-mismatch"
	case ErrNameExists:
		return e.Code == http.StatusPreconditionFailed && e.Status == "name-exists"
	case ErrRejected:
		return e.Code >= 400 && e.Code < 500 && e.Code != http.StatusRequestTimeout && e.Code != http.StatusTooManyRequests &&
			e.Code != http.StatusUnauthorized && e.Code != http.StatusForbidden
	}
	return false
}

// Client talks to one Grafana organization with one token.
type Client struct {
	url   string // without a trailing slash
	token string
	// timeout bounds each call, retries of the upstream client included.
	timeout   time.Duration
	transport http.RoundTripper
}

// Option changes a Client setting in New.
type Option func(*Client)

// WithTimeout bounds each API call (default 10s); 0 means no bound but the
// context's.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithTransport sets the HTTP transport (default http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.transport = rt } }

// New returns a client for the Grafana at baseURL (e.g.
// "http://grafana:3000") that authenticates with a service account token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := parseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("grafana token is empty: create a service account with the Editor role in Grafana, add a token and configure it")
	}
	c := &Client{url: u, token: token, timeout: 10 * time.Second, transport: http.DefaultTransport}
	for _, o := range opts {
		o(c)
	}
	if c.transport == nil {
		c.transport = http.DefaultTransport
	}
	return c, nil
}

// parseURL checks that baseURL is an absolute http(s) URL and returns it
// without trailing slashes.
func parseURL(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("grafana url %q is not an absolute http(s) URL: set it like http://grafana:3000 or http://localhost:3000", baseURL)
	}
	return strings.TrimRight(baseURL, "/"), nil
}

// call runs fn with an upstream client whose requests carry ctx. op names
// the call in errors ("save dashboard telltale-hosts"), permission what it
// needs of the token (named when Grafana answers 403).
//
// When Grafana's last answer was 4xx or 5xx, call returns a *StatusError
// whatever fn returned. Otherwise a failure of fn is returned wrapped: with
// context.Cause(ctx) when ctx ended, else with a hint to check that Grafana
// runs at the client's URL.
func (c *Client) call(ctx context.Context, op, permission string, fn func(*gapi.Client) error) error {
	rec := &recorder{ctx: ctx, base: c.transport}
	api, err := gapi.New(c.url, gapi.Config{
		APIKey: c.token,
		Client: &http.Client{Transport: rec, Timeout: c.timeout},
	})
	if err != nil {
		return fmt.Errorf("BUG: grafana client for %q: %w", c.url, err)
	}
	err = fn(api)
	if rec.status >= 400 {
		se := &StatusError{Op: op, Code: rec.status, Permission: permission}
		se.Message, se.Status = parseBody(rec.body.Bytes())
		return se
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("grafana %s at %s: %w", op, c.url, context.Cause(ctx))
		}
		return fmt.Errorf("grafana %s at %s: %w; is Grafana running and the URL right?", op, c.url, err)
	}
	return nil
}

// maxMessage bounds StatusError.Message taken from a body that is not
// Grafana's JSON error.
const maxMessage = 200

// parseBody extracts Grafana's {"message": ..., "status": ...} or the start
// of the body.
func parseBody(body []byte) (msg, status string) {
	var m struct {
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	if json.Unmarshal(body, &m) == nil && (m.Message != "" || m.Status != "") {
		return m.Message, m.Status
	}
	s := strings.TrimSpace(string(body))
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return s, ""
}

// recorder is the transport of one call: it attaches the call's context and
// keeps the status and the start of the body of the last response.
type recorder struct {
	ctx    context.Context
	base   http.RoundTripper
	status int
	body   bytes.Buffer
}

// maxRecordedBody bounds how much of an error body a call keeps.
const maxRecordedBody = 4 << 10

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req.WithContext(r.ctx))
	if err != nil {
		return nil, err
	}
	r.status = resp.StatusCode
	r.body.Reset()
	if resp.StatusCode >= 400 {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(resp.Body, &limitedWriter{w: &r.body, n: maxRecordedBody}), resp.Body}
	}
	return resp, nil
}

// limitedWriter writes the first n bytes to w and drops the rest, reporting
// every write as complete so the reader it tees from is never cut short.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
