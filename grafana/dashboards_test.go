package grafana

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/grafana/grafanatest"
)

const token = "glsa_test"

func newDashboardsClient(t *testing.T, url, tok string) *Client {
	t.Helper()
	c, err := New(url, tok)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureFolder(t *testing.T) {
	g := grafanatest.New(t, token)
	c := newDashboardsClient(t, g.URL, token)
	f, created, err := c.EnsureFolder(t.Context(), "telltale", "Telltale")
	if err != nil {
		t.Fatal(err)
	}
	if !created || f.UID != "telltale" || f.Title != "Telltale" {
		t.Fatalf("got %+v created=%v; want folder telltale created", f, created)
	}
	f, created, err = c.EnsureFolder(t.Context(), "telltale", "Other title")
	if err != nil {
		t.Fatal(err)
	}
	if created || f.Title != "Telltale" {
		t.Fatalf("got %+v created=%v; want the existing folder found, title kept", f, created)
	}
	want := []string{"GET /api/folders/telltale", "POST /api/folders", "GET /api/folders/telltale"}
	if got := g.RequestLog(); !slices.Equal(got, want) {
		t.Fatalf("got requests %q; want %q", got, want)
	}
}

const hostsJSON = `{"uid":"telltale-hosts","title":"Hosts","id":17,"panels":[]}`

func TestSaveDashboard(t *testing.T) {
	g := grafanatest.New(t, token)
	c := newDashboardsClient(t, g.URL, token)
	ctx := t.Context()
	if _, _, err := c.EnsureFolder(ctx, "telltale", "Telltale"); err != nil {
		t.Fatal(err)
	}
	save := func(overwrite bool) (Saved, error) {
		return c.SaveDashboard(ctx, Dashboard{JSON: []byte(hostsJSON), FolderUID: "telltale", Overwrite: overwrite, Message: "push"})
	}
	s, err := save(true)
	if err != nil {
		t.Fatal(err)
	}
	if s.UID != "telltale-hosts" || s.Version != 1 || s.URL != "/d/telltale-hosts/hosts" || s.Status != "success" {
		t.Fatalf("got %+v; want version 1 of telltale-hosts at /d/telltale-hosts/hosts", s)
	}
	d, _ := g.Dashboard("telltale-hosts")
	if d.FolderUID != "telltale" || d.Message != "push" {
		t.Fatalf("stored in folder %q with message %q; want telltale and push", d.FolderUID, d.Message)
	}

	// Idempotent with overwrite, even over an edit in the UI.
	g.EditInUI("telltale-hosts", "Hosts (edited)")
	if s, err = save(true); err != nil || s.Version != 3 {
		t.Fatalf("got %+v, %v; want version 3", s, err)
	}
	if d, _ := g.Dashboard("telltale-hosts"); d.Model["title"] != "Hosts" {
		t.Fatalf("title %v; want the code's Hosts back", d.Model["title"])
	}

	// Without overwrite, an existing dashboard is a version conflict.
	_, err = save(false)
	if !errors.Is(err, ErrVersionConflict) || !strings.Contains(err.Error(), "someone changed the dashboard in Grafana") {
		t.Fatalf("got %v; want ErrVersionConflict saying someone changed it", err)
	}
}

func TestSaveDashboardNameTaken(t *testing.T) {
	g := grafanatest.New(t, token)
	c := newDashboardsClient(t, g.URL, token)
	ctx := t.Context()
	if _, _, err := c.EnsureFolder(ctx, "telltale", "Telltale"); err != nil {
		t.Fatal(err)
	}
	g.AddDashboard("hand-made", "Hosts", "telltale")
	_, err := c.SaveDashboard(ctx, Dashboard{JSON: []byte(hostsJSON), FolderUID: "telltale"})
	if !errors.Is(err, ErrNameExists) {
		t.Fatalf("got %v; want ErrNameExists", err)
	}
	// With overwrite Grafana would give it the other dashboard's uid.
	_, err = c.SaveDashboard(ctx, Dashboard{JSON: []byte(hostsJSON), FolderUID: "telltale", Overwrite: true})
	if err == nil || !strings.Contains(err.Error(), `"hand-made"`) || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("got %v; want an error naming the uid Grafana used and what to do", err)
	}
}

func TestDashboardAuthErrors(t *testing.T) {
	g := grafanatest.New(t, token)
	ctx := t.Context()

	_, _, err := newDashboardsClient(t, g.URL, "wrong").EnsureFolder(ctx, "telltale", "Telltale")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "create a service account token") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("got %v; want 401 telling to create a service account token", err)
	}

	g.SetReadOnly(true)
	c := newDashboardsClient(t, g.URL, token)
	_, _, err = c.EnsureFolder(ctx, "telltale", "Telltale")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "Editor") {
		t.Fatalf("got %v; want 403 asking for the Editor role", err)
	}
	_, err = c.SaveDashboard(ctx, Dashboard{JSON: []byte(hostsJSON)})
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "dashboards:write") {
		t.Fatalf("got %v; want 403 naming dashboards:write", err)
	}
}

func TestSaveDashboardBadInput(t *testing.T) {
	g := grafanatest.New(t, token)
	c := newDashboardsClient(t, g.URL, token)
	f := func(js, wantInErr string) {
		t.Helper()
		_, err := c.SaveDashboard(t.Context(), Dashboard{JSON: []byte(js)})
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Fatalf("SaveDashboard(%s): got %v; want an error containing %q", js, err, wantInErr)
		}
	}
	f(`{`, "does not decode")
	f(`{"title":"x"}`, "has no uid")
	_, err := c.SaveDashboard(t.Context(), Dashboard{JSON: []byte(`{"uid":"x","title":"X"}`), FolderUID: "missing"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 400: folder not found") {
		t.Fatalf("got %v; want Grafana's 400 folder not found passed on", err)
	}
}

func TestUnreachableAndCanceled(t *testing.T) {
	g := grafanatest.New(t, token)
	url := g.URL
	g.Close()
	_, _, err := newDashboardsClient(t, url, token).EnsureFolder(t.Context(), "telltale", "Telltale")
	if err == nil || !strings.Contains(err.Error(), "is Grafana running") {
		t.Fatalf("got %v; want a hint to check Grafana is running", err)
	}

	g2 := grafanatest.New(t, token)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err = newDashboardsClient(t, g2.URL, token).EnsureFolder(ctx, "telltale", "Telltale")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct{ url, tok, want string }{
		{"localhost:3000", "t", "http://localhost:3000"},
		{"http://", "t", "not an absolute"},
		{"http://localhost:3000", "", "token is empty"},
	} {
		if _, err := New(tc.url, tc.tok); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %q): got %v; want an error containing %q", tc.url, tc.tok, err, tc.want)
		}
	}
}
