// Package grafanahttp runs calls to Grafana's HTTP API for the Telltale
// packages that talk to Grafana (annotator/grafana for deploy annotations,
// dashboards/grafanaapi for folders and dashboards).
//
// Those packages use github.com/grafana/grafana-api-golang-client, which is
// archived upstream and takes no context. Conn.Call gives each call its own
// upstream client whose HTTP transport threads the caller's context through
// and records the status and the start of the body of the last response, so
// a refusal becomes a *StatusError with Grafana's message and the callers can
// map it to their own sentinels. Everything else about a Grafana client
// (which endpoints, which errors mean what) stays in the packages above.
//
// Promises: Call honours its context and Conn.Timeout, never retries, keeps
// at most 4 KiB of an error body, and is safe for concurrent use.
package grafanahttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"
)

// Conn says how to reach one Grafana organization. A Conn is a value; it is
// safe for concurrent use as long as nobody changes its fields.
type Conn struct {
	// URL is Grafana's base URL without a trailing slash, e.g.
	// "http://grafana:3000" (see ParseURL).
	URL string
	// Token is a service account token, sent as a bearer token.
	Token string
	// Timeout bounds each call, retries of the upstream client included;
	// zero means no bound but the context's.
	Timeout time.Duration
	// Transport carries the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
}

// ParseURL checks that baseURL is an absolute http(s) URL and returns it
// without trailing slashes. The error shows example (e.g.
// "http://grafana:3000") as the form to use.
func ParseURL(baseURL, example string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("grafana url %q is not an absolute http(s) URL: set it like %s", baseURL, example)
	}
	return strings.TrimRight(baseURL, "/"), nil
}

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
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("grafana %s: HTTP %d", e.Op, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Call runs fn with an upstream client for c whose requests carry ctx.
// op names the call in errors ("save dashboard telltale-hosts").
//
// When Grafana's last answer was 4xx or 5xx, Call returns a *StatusError
// whatever fn returned. Otherwise a failure of fn is returned wrapped: with
// context.Cause(ctx) when ctx ended, else with a hint to check that Grafana
// runs at c.URL.
func (c Conn) Call(ctx context.Context, op string, fn func(*gapi.Client) error) error {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	rec := &recorder{ctx: ctx, base: base}
	api, err := gapi.New(c.URL, gapi.Config{
		APIKey: c.Token,
		Client: &http.Client{Transport: rec, Timeout: c.Timeout},
	})
	if err != nil {
		return fmt.Errorf("BUG: grafana client for %q: %w", c.URL, err)
	}
	err = fn(api)
	if rec.status >= 400 {
		se := &StatusError{Op: op, Code: rec.status}
		se.Message, se.Status = parseBody(rec.body.Bytes())
		return se
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("grafana %s at %s: %w", op, c.URL, context.Cause(ctx))
		}
		return fmt.Errorf("grafana %s at %s: %w; is Grafana running and the URL right?", op, c.URL, err)
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
