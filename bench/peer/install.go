package peer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Module is a peer installed with `go install Path` from the module proxy.
type Module struct {
	Kind   Kind
	Binary string // file name in the cache folder
	Path   string // package@version
	// About is how long the build takes on a 2-core machine, for the
	// progress line.
	About string
	// Tags are build tags for go install, e.g. Prometheus without its
	// service-discovery plugins (remove_all_sd): peers here scrape
	// nothing, and the cloud SDKs are most of its build.
	Tags string
}

// Modules are the peers bench/ installs, pinned.
var Modules = []Module{
	{VictoriaMetrics, "victoria-metrics", "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0", "3 min", ""},
	{NodeExporter, "node_exporter", "github.com/prometheus/node_exporter@v1.12.1", "2 min", ""},
	{Prometheus, "prometheus", "github.com/prometheus/prometheus/cmd/prometheus@v0.316.0", "5 min", "remove_all_sd"},
	{VMAgent, "vmagent", "github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent@v1.151.0", "3 min", ""},
	// go install cannot build Cortex (its go.mod has replace directives):
	// .ci/run builds it inside a copy of the module with -tags
	// netgo,slicelabels; Install is not used for it.
	{Cortex, "cortex", "github.com/cortexproject/cortex/cmd/cortex@v1.21.1", "30 min, by .ci/run", ""},
}

// ModuleFor returns the module of kind k.
func ModuleFor(k Kind) (Module, bool) {
	for _, m := range Modules {
		if m.Kind == k {
			return m, true
		}
	}
	return Module{}, false
}

// DefaultBinDir is the cache folder .ci/run also installs into:
// $TELLTALE_TOOLS or ~/.cache/telltale/bin.
func DefaultBinDir() string {
	if d := os.Getenv("TELLTALE_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "telltale-bin")
	}
	return filepath.Join(home, ".cache", "telltale", "bin")
}

// Installed reports whether m's binary is in dir.
func (m Module) Installed(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, m.Binary))
	return err == nil && st.Mode().IsRegular()
}

// Install runs `go install -v [-tags m.Tags] m.Path` with GOBIN=dir and writes a progress
// line to progress every 15 s (builds of Prometheus take many minutes).
func Install(ctx context.Context, dir string, m Module, progress io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the binary cache %s: %w", dir, err)
	}
	fmt.Fprintf(progress, "installing %s from %s into %s (about %s on 2 cores)\n", m.Binary, m.Path, dir, m.About)
	args := []string{"install", "-v"}
	if m.Tags != "" {
		args = append(args, "-tags", m.Tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, m.Path)...)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	cmd.Dir = os.TempDir() // outside any module: go install pkg@version ignores the work tree
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot run go install: %w; is Go on PATH?", err)
	}
	var mu sync.Mutex
	var built, downloaded int
	var last []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if strings.HasPrefix(line, "go: downloading ") {
				downloaded++
			} else if !strings.Contains(line, " ") {
				built++ // -v prints each package it compiles
			}
			last = append(last, line)
			if len(last) > 20 {
				last = last[1:]
			}
			mu.Unlock()
		}
	}()
	start := time.Now()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			mu.Lock()
			fmt.Fprintf(progress, "  %s: %v, %d modules downloaded, %d packages compiled\n",
				m.Binary, time.Since(start).Round(time.Second), downloaded, built)
			mu.Unlock()
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go install %s: %w; its output ends:\n%s", m.Path, err, strings.Join(last, "\n"))
	}
	fmt.Fprintf(progress, "  %s installed in %v\n", m.Binary, time.Since(start).Round(time.Second))
	return nil
}

// Build runs `go build -o out pkg` in the module at root (Telltale's own
// binaries, rebuilt on every run so the numbers are for the work tree).
func Build(ctx context.Context, root, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// ModuleVersion returns the main module path and version recorded in a Go
// binary (`go version -m`), e.g. "github.com/prometheus/node_exporter v1.12.1".
func ModuleVersion(ctx context.Context, binary string) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "version", "-m", binary).Output()
	if err != nil {
		return "", fmt.Errorf("go version -m %s: %w", binary, err)
	}
	return parseModVersion(string(b)), nil
}

// parseModVersion picks the "mod" line of `go version -m` output.
func parseModVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "mod" {
			return f[1] + " " + f[2]
		}
	}
	return "unknown"
}

// StrippedSize returns the size in bytes of binary without symbol and debug
// tables: the size of a `strip` copy, or with ok false the unstripped size
// when strip is not installed.
func StrippedSize(ctx context.Context, binary, tmpDir string) (size int64, ok bool, err error) {
	st, err := os.Stat(binary)
	if err != nil {
		return 0, false, err
	}
	if _, err := exec.LookPath("strip"); err != nil {
		return st.Size(), false, nil
	}
	out := filepath.Join(tmpDir, filepath.Base(binary)+".stripped")
	if b, err := exec.CommandContext(ctx, "strip", "-o", out, binary).CombinedOutput(); err != nil {
		return 0, false, fmt.Errorf("strip %s: %w: %s", binary, err, b)
	}
	defer os.Remove(out)
	st, err = os.Stat(out)
	if err != nil {
		return 0, false, err
	}
	return st.Size(), true, nil
}
