package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestComposeScaleOutProfile: the scale-out profile loads, its replicas'
// flags parse with the real collector, they route NATS to each other and
// each reads from the Cortex node it writes to.
func TestComposeScaleOutProfile(t *testing.T) {
	root, _ := filepath.Abs(repoRoot)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithResolvedPaths(true), cli.WithProfiles([]string{"scale-out"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker-compose.yml with --profile scale-out does not load: %v", err)
	}
	for _, name := range []string{"collector-a", "collector-b", "cortex-1", "cortex-2", "cortex-3"} {
		if _, err := p.GetService(name); err != nil {
			t.Fatalf("profile scale-out lacks %s: %v", name, err)
		}
	}
	for name, other := range map[string]string{"collector-a": "collector-b", "collector-b": "collector-a"} {
		s, _ := p.GetService(name)
		w, _ := flagValue(s.Command, "storage.remote-write-url")
		q, _ := flagValue(s.Command, "storage.query-url")
		if node := strings.Split(strings.TrimPrefix(w, "http://"), ":")[0]; !strings.HasPrefix(q, "http://"+node+":") {
			t.Errorf("%s writes to %s but reads from %s; want the same Cortex node", name, w, q)
		}
		if r, _ := flagValue(s.Command, "nats.routes"); r != "nats-route://"+other+":6222" {
			t.Errorf("%s -nats.routes=%s; want nats-route://%s:6222", name, r, other)
		}
		if testing.Short() {
			continue
		}
		out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), append(s.Command, "-version")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s %q -version: %v\n%s", name, s.Command, err, out)
		}
	}
}
