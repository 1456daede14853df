package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

// stubCatalog says service demo has data in env dev, nothing else.
type stubCatalog struct{}

func (stubCatalog) LabelValues(_ context.Context, label, selector string, _, _ time.Time) ([]string, error) {
	if strings.Contains(selector, `service="demo"`) || selector == `{__name__!~"telltale_(change|changes|deploy|deploys)_.*"}` {
		switch label {
		case "__name__":
			return []string{"http_requests_total"}, nil
		case "env":
			return []string{"dev"}, nil
		case "service":
			return []string{"demo"}, nil
		}
	}
	return nil, nil
}

// TestChangeCommands: note, incident open and close, changes with search,
// switch without switches, and the warnings of a deploy that marks no
// graph, through the real binary against the real change API.
func TestChangeCommands(t *testing.T) {
	svc, err := changelog.Open(t.Context(), changelog.Options{DBPath: filepath.Join(t.TempDir(), "deploys.db"),
		Logger: slog.New(slog.DiscardHandler), Catalog: stubCatalog{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })
	env := []string{"TELLTALE_COLLECTOR=" + srv.URL, "USER=carol"}

	annotator(t, env, "note", "-service", "demo", "-env", "dev", "raised", "the", "checkout", "timeout", "to", "5s").
		want(t, 0, "recorded change ", "")
	annotator(t, env, "note", "-service", "demo", "-kind", "config", "-subject", "nginx.conf", "-message", "worker_connections 4096").
		want(t, 0, "config nginx.conf (demo)", "")
	r := annotator(t, env, "incident", "open", "-service", "demo", "checkout", "errors", "-subject", "checkout-errors")
	r.want(t, 0, "close it with: annotator incident close -service demo ", "")
	annotator(t, env, "changes", "-open").want(t, 0, "incident checkout-errors (demo)", "")
	annotator(t, env, "incident", "close", "-service", "demo").want(t, 0, "incident checkout-errors (demo)", "")
	annotator(t, env, "incident", "close", "-service", "demo").want(t, 4, "", "no open incident of demo")
	annotator(t, env, "changes", "-q", "checkout timeout").want(t, 0, "raised the checkout timeout to 5s", "")
	if out := annotator(t, env, "changes", "-q", "checkout timeout").stdout; strings.Contains(out, "worker_connections") || strings.Count(out, "\n") != 2 {
		t.Errorf("search: got\n%s\nwant the header and the one note", out)
	}
	annotator(t, env, "changes", "-kind", "config", "-json").want(t, 0, `"subject": "nginx.conf"`, "")
	annotator(t, env, "changes", "-q", `"*`).want(t, 4, "", "has no words")
	annotator(t, env, "switch", "-service", "demo").want(t, 0, "no switches announced for demo", "")
	annotator(t, env, "switch", "-service", "demo", "slow_checkout", "off").want(t, 2, "", "missing -reason")
	annotator(t, env, "switch", "-service", "demo", "slow_checkout", "off", "-reason", "test").want(t, 4, "", `no live instance of service "demo" announced switch "slow_checkout"`)
	// The README's deploy: no env, service demo: marks every env, no warning.
	annotator(t, env, "deploy", "-service", "demo", "-version", "v1.2.3").want(t, 0, "recorded deploy ", "")
	if r := annotator(t, env, "deploy", "-service", "demo", "-version", "v1.2.4"); strings.Contains(r.stderr, "warning") {
		t.Errorf("deploy of demo without env: got stderr %q; want no warning", r.stderr)
	}
	annotator(t, env, "deploy", "-service", "web", "-version", "v1.2.3").want(t, 0, "recorded deploy ", `annotator: warning: no series has service="web"`)
	annotator(t, env, "deploy", "-service", "demo", "-env", "prod").want(t, 0, "recorded deploy ", `service "demo" has data in env dev, not "prod"`)
	list, err := svc.List(t.Context(), changes.Filter{Kinds: []string{changes.KindNote}})
	if err != nil || len(list) != 1 || list[0].Who != "carol" {
		t.Fatalf("notes: got %+v, %v; want one by carol (USER)", list, err)
	}
}
