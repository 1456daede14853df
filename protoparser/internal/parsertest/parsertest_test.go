package parsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/samples"
)

// recorder is a testing.TB that records failures instead of stopping the
// test, so the helpers' failures can be checked.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.failed = true
	r.msg = fmt.Sprint(args...)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"a.txt": "one", "b.txt": "two", "c.pb": "three"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := Files(t, filepath.Join(dir, "*.txt"), "")
	if len(got) != 2 || string(got[0]) != "one" || string(got[1]) != "two" {
		t.Fatalf("got %q; want [one two]", got)
	}

	r := &recorder{TB: t}
	Files(r, filepath.Join(dir, "*.json"), "run go test -update")
	if !r.failed || !strings.Contains(r.msg, "*.json") || !strings.HasSuffix(r.msg, ": run go test -update") {
		t.Fatalf("no match: got failed=%v %q; want a failure naming the pattern and ending with the hint", r.failed, r.msg)
	}
}

func TestCheckKeys(t *testing.T) {
	f := func(wantFail bool, series ...[]string) {
		t.Helper()
		var b samples.Batch
		for _, s := range series {
			var key []byte
			if s[0] != "" {
				key = []byte(s[0])
			}
			b.StartSeries(key)
			b.AddLabel("__name__", s[1])
			b.AddSample(0, 1)
		}
		r := &recorder{TB: t}
		CheckKeys(r, &b)
		if r.failed != wantFail {
			t.Fatalf("series %q: got failed=%v (%s); want %v", series, r.failed, r.msg, wantFail)
		}
	}
	f(false, []string{"k1", "a"}, []string{"k2", "b"}, []string{"k1", "a"})
	f(true, []string{"k1", "a"}, []string{"k1", "b"})
	f(false, []string{"", "a"}, []string{"", "b"}) // empty keys turn the cache off
}

func TestRender(t *testing.T) {
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", "up")
	b.AddLabel("job", `a"b`)
	b.AddSample(1000, 1)
	b.AddSample(2000, 0.5)
	b.StartSeries(nil)
	b.AddLabel("__name__", "down")
	b.AddSample(3000, 2)
	b.Metadata = append(b.Metadata, samples.Metadata{Name: "up", Type: "gauge", Help: "Is it up.", Unit: ""})
	got := Render(&b, func(v float64) string { return fmt.Sprintf("<%g>", v) })
	want := `__name__="up",job="a\"b" 1000 <1> 2000 <0.5>
__name__="down" 3000 <2>
meta "up" "gauge" "Is it up." ""
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
