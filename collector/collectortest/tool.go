package collectortest

import (
	"os"
	"path/filepath"
	"testing"
)

// Tool returns the path of a peer binary the end-to-end tests run (vmagent,
// Alertmanager, Prometheus): $env when set, else name in the tool cache
// .ci/run fills (~/.cache/telltale/bin). When it is missing the test fails
// under CI=true, where .ci/run must have installed it, and is skipped
// elsewhere; install says how to get it.
func Tool(t testing.TB, name, env, install string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "telltale", "bin", name)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found at %s; .ci/run installs it", name, p)
		}
		t.Skipf("%s not found at %s; %s", name, p, install)
	}
	return p
}
