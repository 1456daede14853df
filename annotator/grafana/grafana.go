// Package grafana writes deploy annotations to Grafana's HTTP annotations API
// (POST/PUT/GET /api/annotations) with a service account token.
//
// The deploy API consumes it through the small Annotator interface; Client
// implements it on top of github.com/grafana/grafana-api-golang-client, which
// is archived upstream, so no package of the deploy path but this one touches
// that module. Package grafanahttp runs each call: it threads the context
// through the upstream client, which takes none, and turns Grafana's
// refusals into status errors this package maps to its sentinels.
//
// Promises: every call honours its context and the client timeout; no call
// retries by itself (the caller's outbox owns retries); errors map
// Grafana's answers to sentinels a caller can act on:
// ErrUnauthorized (401), ErrForbidden (403), ErrNotFound (404), ErrRejected
// (other 4xx except 408 and 429: retrying the same request will not help).
// Anything else (network errors, timeouts, 408, 429, 5xx) is transient.
//
// A Client is safe for concurrent use.
package grafana

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"

	"github.com/telltale-dev/telltale/grafanahttp"
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
	msg := (&grafanahttp.StatusError{Op: e.Op, Code: e.Code, Message: e.Message}).Error()
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
	conn grafanahttp.Conn
}

// Option changes a Client setting in New.
type Option func(*Client)

// WithTimeout bounds each API call (default 10s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.conn.Timeout = d } }

// WithTransport sets the HTTP transport (default http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.conn.Transport = rt } }

// New returns a client for the Grafana at baseURL (e.g.
// "http://grafana:3000") authenticating with the service account token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := grafanahttp.ParseURL(baseURL, "http://grafana:3000")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("grafana token is empty: create a Grafana service account with Editor role, add a token and configure it")
	}
	c := &Client{conn: grafanahttp.Conn{URL: u, Token: token, Timeout: 10 * time.Second, Transport: http.DefaultTransport}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// call runs fn through grafanahttp and turns Grafana's refusals into this
// package's StatusError.
func (c *Client) call(ctx context.Context, op string, fn func(*gapi.Client) error) error {
	err := c.conn.Call(ctx, op, fn)
	if se, ok := errors.AsType[*grafanahttp.StatusError](err); ok {
		return &StatusError{Op: se.Op, Code: se.Code, Message: se.Message}
	}
	return err
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
		return 0, fmt.Errorf("grafana create annotation: answer has no annotation id; is %s really Grafana?", c.conn.URL)
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
