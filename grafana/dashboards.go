package grafana

// Dashboards: the folder and the dashboards the dashboards tool pushes,
// through GET/POST /api/folders and POST /api/dashboards/db.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	gapi "github.com/grafana/grafana-api-golang-client"
)

// dashboardsWrite is the permission pushing dashboards into their folder
// needs.
const dashboardsWrite = "dashboards:write or folders:create"

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
		err := c.call(ctx, "get folder "+uid, "folders:read", func(api *gapi.Client) error {
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
	err = c.call(ctx, "create folder "+uid, dashboardsWrite, func(api *gapi.Client) error {
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
	err := c.call(ctx, "save dashboard "+uid, dashboardsWrite, func(api *gapi.Client) error {
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
