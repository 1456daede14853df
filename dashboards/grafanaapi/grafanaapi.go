// Package grafanaapi upserts dashboards and their folder through Grafana's
// HTTP API (GET/POST /api/folders, POST /api/dashboards/db) with a service
// account token.
//
// It is the only package of the dashboards tool that touches
// github.com/grafana/grafana-api-golang-client, which is archived upstream.
// Package grafanahttp runs each call: it threads the caller's context through
// the upstream client, which takes none, and records Grafana's status code
// and message, which this package maps to errors that say what to do.
//
// Promises: no call retries by itself; every call honours its context and
// the client timeout; Grafana's refusals map to sentinels a caller can act
// on with errors.Is: ErrUnauthorized (401), ErrForbidden (403),
// ErrVersionConflict and ErrNameExists (412), ErrNotFound (404). A Client is
// safe for concurrent use.
package grafanaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"

	"github.com/telltale-dev/telltale/grafanahttp"
)

// Errors a caller acts on; match them with errors.Is.
var (
	// ErrUnauthorized: Grafana did not accept the token (401).
	ErrUnauthorized = errors.New("grafana rejected the token (401 Unauthorized): it is wrong, expired or revoked; create a service account token (Administration > Users and access > Service accounts, role Editor)")
	// ErrForbidden: the token may not do this (403).
	ErrForbidden = errors.New("grafana token lacks dashboards:write or folders:create (403 Forbidden): the service account needs the Editor role")
	// ErrVersionConflict: the dashboard in Grafana is not the version the
	// save was based on (412 version-mismatch).
	ErrVersionConflict = errors.New("version conflict (412 version-mismatch): someone changed the dashboard in Grafana")
	// ErrNameExists: another dashboard in the folder has the same title
	// (412 name-exists).
	ErrNameExists = errors.New("another dashboard in the folder has the same title (412 name-exists)")
	// ErrNotFound: the folder or dashboard does not exist (404).
	ErrNotFound = errors.New("not found in grafana (404)")
)

// StatusError is a non-2xx answer from Grafana.
type StatusError struct {
	Op   string // e.g. "save dashboard telltale-hosts"
	Code int
	// Message is Grafana's "message" field, or the start of the body.
	Message string
	// Status is Grafana's "status" field of a 412 (version-mismatch,
	// name-exists, plugin-dashboard); "" otherwise.
	Status string
}

func (e *StatusError) Error() string {
	msg := (&grafanahttp.StatusError{Op: e.Op, Code: e.Code, Message: e.Message}).Error()
	for _, s := range []error{ErrUnauthorized, ErrForbidden, ErrVersionConflict, ErrNameExists} {
		if e.Is(s) {
			msg += "; " + s.Error()
		}
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
	}
	return false
}

// Client talks to one Grafana organization with one token.
type Client struct {
	conn grafanahttp.Conn
}

// Option changes a Client setting in New.
type Option func(*Client)

// WithTimeout bounds each API call (default 30s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.conn.Timeout = d } }

// WithTransport sets the HTTP transport (default http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.conn.Transport = rt } }

// New returns a client for the Grafana at baseURL (e.g.
// "http://localhost:3000") that authenticates with a service account token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := grafanahttp.ParseURL(baseURL, "http://localhost:3000")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("grafana token is empty: create a service account with the Editor role in Grafana, add a token and pass it")
	}
	c := &Client{conn: grafanahttp.Conn{URL: u, Token: token, Timeout: 30 * time.Second, Transport: http.DefaultTransport}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Folder is a Grafana folder.
type Folder struct {
	UID   string
	Title string
	URL   string
}

// EnsureFolder returns the folder with uid, creating it with title when it
// does not exist. created reports whether it was created. An existing
// folder keeps its title.
func (c *Client) EnsureFolder(ctx context.Context, uid, title string) (f Folder, created bool, err error) {
	get := func() (Folder, error) {
		var got *gapi.Folder
		err := c.call(ctx, "get folder "+uid, func(api *gapi.Client) error {
			var err error
			got, err = api.FolderByUID(uid)
			return err
		})
		if err != nil {
			return Folder{}, err
		}
		return Folder{UID: got.UID, Title: got.Title, URL: got.URL}, nil
	}
	f, err = get()
	if err == nil {
		return f, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Folder{}, false, err
	}
	var made gapi.Folder
	err = c.call(ctx, "create folder "+uid, func(api *gapi.Client) error {
		var err error
		made, err = api.NewFolder(title, uid)
		return err
	})
	var se *StatusError
	if errors.As(err, &se) && (se.Code == http.StatusConflict || se.Code == http.StatusPreconditionFailed) {
		// Created by someone else since the lookup.
		f, err = get()
		return f, false, err
	}
	if err != nil {
		return Folder{}, false, err
	}
	return Folder{UID: made.UID, Title: made.Title, URL: made.URL}, true, nil
}

// Dashboard is a dashboard to save.
type Dashboard struct {
	// JSON is the dashboard model; it must carry its uid.
	JSON      []byte
	FolderUID string
	// Overwrite replaces the dashboard whatever version Grafana holds.
	// Without it, saving over an existing dashboard fails with
	// ErrVersionConflict unless the model's version matches Grafana's.
	Overwrite bool
	// Message is recorded in the dashboard's version history.
	Message string
}

// Saved is Grafana's answer to a save.
type Saved struct {
	ID      int64
	UID     string
	URL     string // path of the dashboard below Grafana's URL: /d/<uid>/<slug>
	Status  string
	Version int64
	Slug    string
}

// SaveDashboard creates or updates the dashboard (POST /api/dashboards/db).
func (c *Client) SaveDashboard(ctx context.Context, d Dashboard) (Saved, error) {
	var model map[string]any
	if err := json.Unmarshal(d.JSON, &model); err != nil {
		return Saved{}, fmt.Errorf("dashboard JSON does not decode: %w", err)
	}
	uid, _ := model["uid"].(string)
	if uid == "" {
		return Saved{}, errors.New("dashboard JSON has no uid: give every dashboard a stable uid")
	}
	delete(model, "id") // Grafana finds the dashboard by uid
	var res *gapi.DashboardSaveResponse
	err := c.call(ctx, "save dashboard "+uid, func(api *gapi.Client) error {
		var err error
		res, err = api.NewDashboard(gapi.Dashboard{Model: model, FolderUID: d.FolderUID, Overwrite: d.Overwrite, Message: d.Message})
		return err
	})
	if err != nil {
		return Saved{}, err
	}
	if res.UID != uid {
		// Grafana gives a dashboard with overwrite the uid of an existing
		// one with the same title in the folder.
		return Saved{}, fmt.Errorf("grafana saved dashboard %s as uid %q: a dashboard with the same title already existed in the folder under that uid; delete it in Grafana and push again", uid, res.UID)
	}
	u := "/d/" + res.UID
	if res.Slug != "" {
		u += "/" + res.Slug
	}
	return Saved{ID: res.ID, UID: res.UID, URL: u, Status: res.Status, Version: res.Version, Slug: res.Slug}, nil
}

// call runs fn through grafanahttp and turns Grafana's refusals into this
// package's StatusError.
func (c *Client) call(ctx context.Context, op string, fn func(*gapi.Client) error) error {
	err := c.conn.Call(ctx, op, fn)
	if se, ok := errors.AsType[*grafanahttp.StatusError](err); ok {
		return &StatusError{Op: se.Op, Code: se.Code, Message: se.Message, Status: se.Status}
	}
	return err
}
