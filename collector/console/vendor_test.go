package console

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestVendoredFiles checks the vendored uPlot files against the table in
// static/README.md: each file's sha256, and the version in the script's
// banner, so an upgrade cannot land without its record (or the record
// without the files).
func TestVendoredFiles(t *testing.T) {
	readme, err := os.ReadFile("static/README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|[^|]*\\| ([0-9][0-9.]*) \\| ([^|]+) \\| `([0-9a-f]{64})` \\|$")
	rows := row.FindAllStringSubmatch(string(readme), -1)
	if len(rows) != 3 {
		t.Fatalf("static/README.md: got %d vendored-file rows; want 3 (uPlot.iife.min.js, uPlot.min.css, uPlot.LICENSE)", len(rows))
	}
	versions := map[string]string{}
	for _, r := range rows {
		name, version, licence, sum := r[1], r[2], strings.TrimSpace(r[3]), r[4]
		versions[name] = version
		b, err := staticFS.ReadFile("static/" + name)
		if err != nil {
			t.Errorf("%s is in static/README.md but not embedded: %v", name, err)
			continue
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: got sha256 %x; want %s as static/README.md records: update the table with the file", name, got, sum)
		}
		if !strings.HasPrefix(licence, "MIT") {
			t.Errorf("%s: got licence %q; want MIT", name, licence)
		}
	}
	js, err := staticFS.ReadFile("static/uPlot.iife.min.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^/\*! https://github.com/leeoniya/uPlot \(v([0-9.]+)\) \*/`).FindSubmatch(js)
	if m == nil {
		t.Fatalf("uPlot.iife.min.js has no version banner: is it the npm dist file?")
	}
	if string(m[1]) != versions["uPlot.iife.min.js"] {
		t.Errorf("uPlot.iife.min.js banner says v%s; static/README.md records %s", m[1], versions["uPlot.iife.min.js"])
	}
	lic, _ := staticFS.ReadFile("static/uPlot.LICENSE")
	if !strings.Contains(string(lic), "MIT License") || !strings.Contains(string(lic), "Leon Sorokin") {
		t.Errorf("uPlot.LICENSE is not uPlot's MIT licence")
	}
}
