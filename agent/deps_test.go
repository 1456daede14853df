package main

import (
	"os/exec"
	"strings"
	"testing"
)

// bannedImports keeps the agent small: no Prometheus server code, no
// Kubernetes, no cloud SDKs, no gRPC.
var bannedImports = []string{
	"github.com/prometheus/prometheus",
	"k8s.io",
	"cloud.google.com",
	"github.com/aws",
	"github.com/Azure",
	"google.golang.org/grpc",
}

func TestNoBannedImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages; the check would prove nothing", len(deps))
	}
	for _, d := range deps {
		for _, b := range bannedImports {
			if strings.HasPrefix(d, b) {
				t.Errorf("the agent depends on %s (banned prefix %s): keep it small, move that code to the collector", d, b)
			}
		}
	}
	// The list must contain what the agent is made of, or go list looked
	// at the wrong package.
	for _, want := range []string{"github.com/telltale-dev/telltale/agent/host", "github.com/telltale-dev/telltale/agent/spool"} {
		found := false
		for _, d := range deps {
			found = found || d == want
		}
		if !found {
			t.Errorf("go list -deps lacks %s", want)
		}
	}
}
