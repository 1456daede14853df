package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/dashboards/board"
	"github.com/telltale-dev/telltale/dashboards/provision"
	"github.com/telltale-dev/telltale/grafana/grafanatest"
)

func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPush(t *testing.T) {
	g := grafanatest.New(t, "glsa_editor")
	args := []string{"push", "-grafana.url", g.URL, "-grafana.token-file", tokenFile(t, "glsa_editor")}
	var log bytes.Buffer
	if err := run(t.Context(), args, &log); err != nil {
		t.Fatalf("push: %v\n%s", err, log.String())
	}
	if f := g.Folders()[provision.FolderUID]; f.Title != provision.FolderTitle {
		t.Fatalf("got folders %v; want %q with uid %q", g.Folders(), provision.FolderTitle, provision.FolderUID)
	}
	boards, err := board.All(board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boards {
		d, ok := g.Dashboard(b.UID)
		if !ok {
			t.Fatalf("dashboard %s not pushed", b.UID)
		}
		if d.FolderUID != provision.FolderUID || d.Version != 1 {
			t.Errorf("%s: folder %q version %d; want folder %s version 1", b.UID, d.FolderUID, d.Version, provision.FolderUID)
		}
		// What Grafana stores is the generated JSON (plus the id and
		// version Grafana sets).
		var want map[string]any
		j, _ := b.JSON()
		json.Unmarshal(j, &want)
		want["id"], want["version"] = d.Model["id"], d.Model["version"]
		gotJSON, _ := json.Marshal(d.Model)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("%s: stored model differs from the generated JSON", b.UID)
		}
		if !strings.Contains(log.String(), g.URL+"/d/"+b.UID+"/") {
			t.Errorf("log does not show the URL of %s:\n%s", b.UID, log.String())
		}
	}

	// A second push is idempotent: same folder, each dashboard's next version.
	g.EditInUI(board.UIDHosts, "Hosts (edited in the UI)")
	if err := run(t.Context(), args, &log); err != nil {
		t.Fatalf("second push: %v", err)
	}
	if n := len(g.Folders()); n != 1 {
		t.Fatalf("got %d folders; want 1", n)
	}
	if d, _ := g.Dashboard(board.UIDService); d.Version != 2 {
		t.Errorf("service version %d; want 2", d.Version)
	}
	if d, _ := g.Dashboard(board.UIDHosts); d.Version != 3 || d.Model["title"] != "Hosts" {
		t.Errorf("hosts version %d title %v; want version 3 with the code's title", d.Version, d.Model["title"])
	}
	creates := 0
	for _, r := range g.RequestLog() {
		if r == "POST /api/folders" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("folder created %d times; want once (looked up by uid first)", creates)
	}

	// -overwrite=false refuses to replace what exists and says how to.
	err = run(t.Context(), append(args, "-overwrite=false"), &log)
	if err == nil || !strings.Contains(err.Error(), "version conflict") || !strings.Contains(err.Error(), "rerun with -overwrite") {
		t.Fatalf("push -overwrite=false: got %v; want a version conflict telling to rerun with -overwrite", err)
	}
}

func TestPushTokenFromEnv(t *testing.T) {
	g := grafanatest.New(t, "glsa_env")
	t.Setenv(tokenEnv, "glsa_env")
	var log bytes.Buffer
	if err := run(t.Context(), []string{"push", "-grafana.url", g.URL}, &log); err != nil {
		t.Fatalf("push with %s: %v", tokenEnv, err)
	}
	if _, ok := g.Dashboard(board.UIDSelf); !ok {
		t.Fatal("dashboards not pushed")
	}
}

func TestPushErrors(t *testing.T) {
	g := grafanatest.New(t, "glsa_editor")
	f := func(args []string, wantInErr ...string) {
		t.Helper()
		var log bytes.Buffer
		err := run(t.Context(), append([]string{"push"}, args...), &log)
		if err == nil {
			t.Fatalf("push %q: got no error; want one containing %q", args, wantInErr)
		}
		for _, w := range wantInErr {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("push %q: got %v; want it to contain %q", args, err, w)
			}
		}
	}
	t.Setenv(tokenEnv, "")
	f(nil, "-grafana.url is required")
	f([]string{"-grafana.url", g.URL}, "no Grafana token", "-grafana.token-file", tokenEnv)
	f([]string{"-grafana.url", g.URL, "-grafana.token-file", tokenFile(t, " ")}, "is empty")
	f([]string{"-grafana.url", g.URL, "-grafana.token-file", filepath.Join(t.TempDir(), "missing")}, "cannot read -grafana.token-file")
	f([]string{"-grafana.url", "localhost:3000", "-grafana.token-file", tokenFile(t, "x")}, "-grafana.url", "http://localhost:3000")
	f([]string{"-grafana.url", g.URL, "-grafana.token-file", tokenFile(t, "wrong")}, "401", "create a service account token", "-grafana.token-file")
	g.SetReadOnly(true)
	before := len(g.RequestLog())
	f([]string{"-grafana.url", g.URL, "-grafana.token-file", tokenFile(t, "glsa_editor")}, "403", "dashboards:write", "Editor")
	if reqs := g.RequestLog()[before:]; !slices.Equal(reqs, []string{"GET /api/folders/telltale", "POST /api/folders"}) {
		t.Errorf("got requests %q; want the push to stop at the refused folder", reqs)
	}
}
