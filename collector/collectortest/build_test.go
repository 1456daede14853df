package collectortest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	bin := Build(t, "./testdata/hello")
	if again := Build(t, "./testdata/hello"); again != bin {
		t.Fatalf("second Build: got %s; want the first build %s", again, bin)
	}
	abs, _ := filepath.Abs("testdata/hello")
	if byDir := Build(t, abs); byDir != bin {
		t.Fatalf("Build by absolute dir: got %s; want the build of ./testdata/hello %s", byDir, bin)
	}
	if filepath.Base(bin) != "hello" {
		t.Fatalf("binary name: got %s; want hello", filepath.Base(bin))
	}
	out, err := exec.Command(bin, "world").CombinedOutput()
	if err != nil || string(out) != "hello world\n" {
		t.Fatalf("run %s: got %q, %v; want \"hello world\\n\"", bin, out, err)
	}

	Cleanup()
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Fatalf("after Cleanup: stat %s: got %v; want not exist", bin, err)
	}
	if rebuilt := Build(t, "./testdata/hello"); rebuilt == bin {
		t.Fatalf("Build after Cleanup: got the removed %s; want a new build", rebuilt)
	} else if _, err := os.Stat(rebuilt); err != nil {
		t.Fatalf("Build after Cleanup: %v", err)
	}
}

// fatalTB records what a test would fail with and stops its goroutine the
// way testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// buildFails runs Build(pkg) with a fatalTB and returns what it failed
// with, or "" when it returned.
func buildFails(pkg string) string {
	tb := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Build(tb, pkg)
	}()
	<-done
	return tb.msg
}

func TestBuildFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	// The package that does not compile is written at test time, so no
	// broken Go file is committed for go vet or an editor to trip over. It
	// must sit inside the module for go build to take it; testdata keeps it
	// out of ./... patterns.
	dir, err := os.MkdirTemp("testdata", "broken-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src := "package main\n\nfunc main() {\n\tundefinedOnPurpose()\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := "./" + filepath.ToSlash(dir)
	msg := buildFails(pkg)
	if !strings.Contains(msg, "go build") || !strings.Contains(msg, "undefinedOnPurpose") {
		t.Fatalf("got %q; want go build's output naming undefinedOnPurpose", msg)
	}
	// The failure is remembered, not built again.
	if again := buildFails(pkg); again != msg {
		t.Fatalf("second Build: got %q; want the first failure %q", again, msg)
	}
}
