package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBlocksReadsMeta(t *testing.T) {
	bs, err := Blocks("testdata/tsdb")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("got %d blocks; want 1 (wal is not a block)", len(bs))
	}
	b := bs[0]
	if b.Samples != 546000 || b.Series != 2000 || b.MinTime != 1700000000000 || b.MaxTime != 1700007200000 {
		t.Fatalf("got %+v; want the meta.json figures", b)
	}
	// index (5000 bytes) and meta.json take at least their length on disk.
	if b.Bytes < 5000 || b.IndexBytes < 5000 || b.IndexBytes > b.Bytes || b.ChunkBytes != 0 {
		t.Fatalf("block bytes %d, index %d, chunks %d; want at least 5000, the index at least 5000 of them, no chunks", b.Bytes, b.IndexBytes, b.ChunkBytes)
	}
	total, err := DiskUsage("testdata/tsdb")
	if err != nil {
		t.Fatal(err)
	}
	if total < b.Bytes+3000 {
		t.Fatalf("data dir %d bytes; want at least the block (%d) and the wal (3000)", total, b.Bytes)
	}
}

func TestBlocksBadMeta(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "b1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b1", "meta.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Blocks(dir); err == nil || !strings.Contains(err.Error(), "bad meta.json") {
		t.Fatalf("got %v; want a bad meta.json error", err)
	}
	if _, err := Blocks(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("listing a missing directory succeeded")
	}
}

func TestParseModVersion(t *testing.T) {
	f := func(out, want string) {
		t.Helper()
		if got := parseModVersion(out); got != want {
			t.Fatalf("got %q; want %q", got, want)
		}
	}
	f("/bin/node_exporter: go1.26.8\n\tpath\tgithub.com/prometheus/node_exporter\n\tmod\tgithub.com/prometheus/node_exporter\tv1.12.1\th1:abc=\n\tdep\tx\tv1\n",
		"github.com/prometheus/node_exporter v1.12.1")
	f("/bin/x: go1.26.8\n\tpath\tx\n", "unknown")
}

func TestStartReportsAnEarlyExit(t *testing.T) {
	_, err := Start(t.Context(), Spec{Kind: Telltale, Binary: "/bin/false", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "exited while starting") {
		t.Fatalf("got %v; want exited while starting", err)
	}
	_, err = Start(t.Context(), Spec{Kind: Telltale, Binary: filepath.Join(t.TempDir(), "nope"), Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "bench install") {
		t.Fatalf("got %v; want a hint to install", err)
	}
	_, err = Start(t.Context(), Spec{Kind: "influxdb", Binary: "/bin/true", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "unknown system") {
		t.Fatalf("got %v; want unknown system", err)
	}
}

func TestPidUsageOfSelf(t *testing.T) {
	u, err := PidUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS < 1<<20 || u.CPU < 0 {
		t.Fatalf("got %+v; want an RSS of at least 1 MiB for a Go test binary", u)
	}
	// Burn CPU until the run time this process is charged grows by 30 ms:
	// a reader that does not follow the kernel's counter never gets there.
	// How much wall time that takes depends on how busy the machine is, so
	// the loop waits for the condition, not for a duration.
	deadline := time.Now().Add(2 * time.Minute)
	x := 0
	for {
		for i := 0; i < 1_000_000; i++ {
			x += i
		}
		v, err := PidUsage(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if v.RunTime-u.RunTime >= 0.03 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run time grew %.3fs in 2 minutes of busy looping (%d); want 0.03s", v.RunTime-u.RunTime, x)
		}
	}
}

func TestModules(t *testing.T) {
	for _, k := range []Kind{VictoriaMetrics, NodeExporter, Prometheus} {
		m, ok := ModuleFor(k)
		if !ok || !strings.Contains(m.Path, "@v") || m.Binary == "" {
			t.Fatalf("%s: got %+v, %v; want a pinned module", k, m, ok)
		}
	}
	if _, ok := ModuleFor(Telltale); ok {
		t.Fatal("Telltale is built, not installed")
	}
	t.Setenv("TELLTALE_TOOLS", "/x/y")
	if got := DefaultBinDir(); got != "/x/y" {
		t.Fatalf("DefaultBinDir with TELLTALE_TOOLS: got %q; want /x/y", got)
	}
}

func TestStrippedSize(t *testing.T) {
	// A binary with symbols and DWARF (go test binaries have none).
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(dir, "hello")
	if err := Build(t.Context(), dir, ".", self); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(self)
	if err != nil {
		t.Fatal(err)
	}
	size, stripped, err := StrippedSize(t.Context(), self, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if stripped && (size <= 0 || size >= st.Size()) {
		t.Fatalf("stripped size %d; want between 0 and the unstripped %d", size, st.Size())
	}
	if !stripped && size != st.Size() {
		t.Fatalf("without strip: got %d; want the file size %d", size, st.Size())
	}
}

func TestParseSchedstat(t *testing.T) {
	b, err := os.ReadFile("testdata/schedstat")
	if err != nil {
		t.Fatal(err)
	}
	if ns, err := parseSchedstat(b); err != nil || ns != 195624018 {
		t.Fatalf("got %d, %v; want 195624018", ns, err)
	}
	f := func(in, want string) {
		t.Helper()
		if _, err := parseSchedstat([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("parseSchedstat(%q): got %v; want an error containing %q", in, err, want)
		}
	}
	f("1 2", "want 3")
	f("x 2 3", `run time "x"`)
	f("-1 2 3", `run time "-1"`)
}

// FuzzParseSchedstat: no panics; a parsed run time re-formats to the field.
func FuzzParseSchedstat(f *testing.F) {
	b, err := os.ReadFile("testdata/schedstat")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := parseSchedstat(b)
		if err != nil {
			return
		}
		if got := strings.Fields(string(b))[0]; strings.TrimLeft(got, "+0") != strings.TrimLeft(fmt.Sprint(ns), "0") {
			t.Fatalf("parsed %q as %d", got, ns)
		}
	})
}
