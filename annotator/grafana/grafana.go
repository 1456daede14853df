// Package grafana writes deploy annotations to Grafana's HTTP annotations API
// (POST/PUT/GET /api/annotations) with a service account token.
//
// The deploy API consumes it through the small Annotator interface; Client
// implements it on top of github.com/grafana/grafana-api-golang-client, which
// is archived upstream, so nothing outside this package touches that module.
//
// Promises: every call honours its context and the client timeout (the
// upstream client takes no context; this package threads one through its
// HTTP transport); no call retries by itself (the caller's outbox owns
// retries); errors map Grafana's answers to sentinels a caller can act on:
// ErrUnauthorized (401), ErrForbidden (403), ErrNotFound (404), ErrRejected
// (other 4xx except 408 and 429: retrying the same request will not help).
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
	"strconv"
	"strings"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"
)

// Annotation is an organization-wide Grafana annotation (no dashboard, no
// panel): a point at Time, or a region from Time to TimeEnd.
type Annotation struct {
	Time time.Time
	// TimeEnd is zero for a point annotation.
	TimeEnd time.Time
	Tags    []string
	// Text is shown in the annotation tooltip; Grafana renders it as HTML.
	Text string
}

// Annotator creates and updates annotations. Implementations must be safe
// for concurrent use.
type Annotator interface {
	// CreateAnnotation creates a and returns its Grafana id.
	CreateAnnotation(ctx context.Context, a Annotation) (id int64, err error)
	// UpdateAnnotation replaces every property of annotation id with a.
	UpdateAnnotation(ctx context.Context, id int64, a Annotation) error
	// FindAnnotation returns the oldest annotation carrying tag, if any.
	FindAnnotation(ctx context.Context, tag string) (id int64, found bool, err error)
}

// Errors a caller acts on; match them with errors.Is.
var (
	// ErrUnauthorized: Grafana did not accept the token (401).
	ErrUnauthorized = errors.New("grafana rejected the token (401 Unauthorized): the service account token is wrong, expired or revoked; create a new service account token with Editor role")
	// ErrForbidden: the token is valid but may not write annotations (403).
	ErrForbidden = errors.New("grafana token lacks annotations:write (403 Forbidden); create a service account token with Editor role")
	// ErrNotFound: the annotation does not exist (404).
	ErrNotFound = errors.New("grafana annotation not found (404)")
	// ErrRejected: Grafana refused the request as invalid; retrying it
	// unchanged will not help.
	ErrRejected = errors.New("grafana rejected the request")
)

// StatusError is a non-2xx answer from Grafana.
type StatusError struct {
	Op   string // e.g. "create annotation"
	Code int
	// Message is Grafana's "message" field, or the start of the body.
	Message string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("grafana %s: HTTP %d", e.Op, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch e.Code {
	case http.StatusUnauthorized:
		msg += "; " + ErrUnauthorized.Error()
	case http.StatusForbidden:
		msg += "; " + ErrForbidden.Error()
	}
	return msg
}

// Is maps the status code to the package sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrRejected:
		return e.Code >= 400 && e.Code < 500 && e.Code != http.StatusRequestTimeout && e.Code != http.StatusTooManyRequests &&
			e.Code != http.StatusUnauthorized && e.Code != http.StatusForbidden
	}
	return false
}

// Client talks to one Grafana organization with one token.
type Client struct {
	url       string
	token     string
	timeout   time.Duration
	transport http.RoundTripper
}

// Option changes a Client setting in New.
type Option func(*Client)

// WithTimeout bounds each API call (default 10s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithTransport sets the HTTP transport (default http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.transport = rt } }

// New returns a client for the Grafana at baseURL (e.g.
// "http://grafana:3000") authenticating with the service account token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("grafana url %q is not an absolute http(s) URL: set it like http://grafana:3000", baseURL)
	}
	if token == "" {
		return nil, errors.New("grafana token is empty: create a Grafana service account with Editor role, add a token and configure it")
	}
	c := &Client{url: strings.TrimRight(baseURL, "/"), token: token, timeout: 10 * time.Second, transport: http.DefaultTransport}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// call runs fn with an upstream client whose requests carry ctx and whose
// responses are recorded, and turns the outcome into this package's errors.
func (c *Client) call(ctx context.Context, op string, fn func(*gapi.Client) error) error {
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
		return &StatusError{Op: op, Code: rec.status, Message: message(rec.body.Bytes())}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("grafana %s at %s: %w", op, c.url, context.Cause(ctx))
		}
		return fmt.Errorf("grafana %s at %s: %w; is Grafana running and the URL right?", op, c.url, err)
	}
	return nil
}

// CreateAnnotation implements Annotator.
func (c *Client) CreateAnnotation(ctx context.Context, a Annotation) (int64, error) {
	var id int64
	err := c.call(ctx, "create annotation", func(api *gapi.Client) error {
		var err error
		id, err = api.NewAnnotation(toAPI(a))
		return err
	})
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, fmt.Errorf("grafana create annotation: answer has no annotation id; is %s really Grafana?", c.url)
	}
	return id, nil
}

// UpdateAnnotation implements Annotator.
func (c *Client) UpdateAnnotation(ctx context.Context, id int64, a Annotation) error {
	return c.call(ctx, "update annotation "+strconv.FormatInt(id, 10), func(api *gapi.Client) error {
		_, err := api.UpdateAnnotation(id, toAPI(a))
		return err
	})
}

// FindAnnotation implements Annotator.
func (c *Client) FindAnnotation(ctx context.Context, tag string) (int64, bool, error) {
	var found []gapi.Annotation
	err := c.call(ctx, "find annotation", func(api *gapi.Client) error {
		var err error
		found, err = api.Annotations(url.Values{"tags": {tag}, "type": {"annotation"}, "limit": {"100"}})
		return err
	})
	if err != nil {
		return 0, false, err
	}
	var id int64
	for _, a := range found {
		if a.ID > 0 && (id == 0 || a.ID < id) {
			id = a.ID
		}
	}
	return id, id != 0, nil
}

func toAPI(a Annotation) *gapi.Annotation {
	out := &gapi.Annotation{Time: a.Time.UnixMilli(), Tags: a.Tags, Text: a.Text}
	if !a.TimeEnd.IsZero() {
		out.TimeEnd = a.TimeEnd.UnixMilli()
		out.IsRegion = out.TimeEnd > out.Time
	}
	return out
}

// message extracts Grafana's {"message": ...} or the start of the body.
func message(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		return m.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// recorder is the transport of one call: it attaches the call's context and
// remembers the status and the start of the body of the last response.
type recorder struct {
	ctx    context.Context
	base   http.RoundTripper
	status int
	body   bytes.Buffer
}

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
