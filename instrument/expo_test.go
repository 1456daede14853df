package instrument

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var testLabels = []constLabel{newConstLabel("service", "shop"), newConstLabel("env", "prod")}

func TestAppendExposition(t *testing.T) {
	f := func(in string, ts int64, want string, wantSamples, wantDropped int) {
		t.Helper()
		got, n, bad := appendExposition(nil, []byte(in), testLabels, ts)
		if string(got) != want {
			t.Errorf("appendExposition(%q)\ngot  %q\nwant %q", in, got, want)
		}
		if n != wantSamples || bad != wantDropped {
			t.Errorf("appendExposition(%q): got %d samples, %d dropped; want %d, %d", in, n, bad, wantSamples, wantDropped)
		}
	}
	// no labels, no timestamp wanted
	f("a 1\n", -1, "a{service=\"shop\",env=\"prod\"} 1\n", 1, 0)
	// timestamp appended
	f("a 1\n", 1700000000123, "a{service=\"shop\",env=\"prod\"} 1 1700000000123\n", 1, 0)
	// existing labels keep their order after ours
	f(`a{x="1",y="2"} 3`, 5, `a{service="shop",env="prod",x="1",y="2"} 3 5`+"\n", 1, 0)
	// a label the line has wins: no duplicate
	f(`a{env="staging",x="1"} 3`, -1, `a{service="shop",env="staging",x="1"} 3`+"\n", 1, 0)
	// existing timestamp kept
	f(`a{x="1"} 3 99`, 5, `a{service="shop",env="prod",x="1"} 3 99`+"\n", 1, 0)
	// escaped quotes, commas and braces inside values
	f(`a{x="q\"}{,\\"} 1`, -1, `a{service="shop",env="prod",x="q\"}{,\\"} 1`+"\n", 1, 0)
	// trailing comma, blanks, tabs, CRLF
	f("  a { x = \"1\" , }\t2\r\n", -1, `a{service="shop",env="prod",x = "1"} 2`+"\n", 1, 0)
	// empty label set
	f("a{} 1", -1, `a{service="shop",env="prod"} 1`+"\n", 1, 0)
	// comments kept, blank lines dropped silently
	f("# TYPE a counter\n\n\na 1\n", -1, "# TYPE a counter\n"+`a{service="shop",env="prod"} 1`+"\n", 1, 0)
	// malformed lines dropped and counted
	f("a\n{x=\"1\"} 2\na{x=\"1\" 2\na{x=1} 2\na 1 2 3\nb 4\n", -1, `b{service="shop",env="prod"} 4`+"\n", 1, 5)
	// names a collector would refuse the whole body for
	f("a.b 1\n9a 1\na{x.y=\"1\"} 1\na{0=\"1\"} 1\n", -1, "", 0, 4)
}

func TestAppendExpositionNoLabels(t *testing.T) {
	got, _, _ := appendExposition(nil, []byte("a{} 1\nb{x=\"y\"} 2\n"), nil, -1)
	if want := "a 1\nb{x=\"y\"} 2\n"; string(got) != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

// TestAppendExpositionParses checks the rewritten fixture with a real
// Prometheus text parser.
func TestAppendExpositionParses(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "vm_exposition.prom"))
	if err != nil {
		t.Fatal(err)
	}
	out, n, bad := appendExposition(nil, in, testLabels, 1700000000000)
	if bad != 0 {
		t.Fatalf("got %d dropped lines; want 0", bad)
	}
	got, err := parseText(out)
	if err != nil {
		t.Fatalf("rewritten exposition does not parse: %v\n%s", err, out)
	}
	if len(got) != n {
		t.Fatalf("parsed %d samples; appendExposition reported %d", len(got), n)
	}
	for _, s := range got {
		if s.labels["env"] != "prod" {
			t.Errorf("%s: got env=%q; want prod", s.name, s.labels["env"])
		}
		want := "shop"
		if s.name == "with_service" {
			want = "mine"
		}
		if s.labels["service"] != want {
			t.Errorf("%s: got service=%q; want %q", s.name, s.labels["service"], want)
		}
		wantTS := int64(1700000000000)
		if s.ts != wantTS {
			t.Errorf("%s: got ts %d; want %d", s.name, s.ts, wantTS)
		}
		if s.name == "weird_value" && s.labels["path"] != "a \"quoted\" \\ back\nslash" {
			t.Errorf("weird_value: got path=%q; escapes not kept", s.labels["path"])
		}
	}
}

// gluedValue matches a sample line whose value follows the metric name
// without a blank.
var gluedValue = regexp.MustCompile(`(?m)^[ \t]*[a-zA-Z_:][a-zA-Z0-9_:]*[^a-zA-Z0-9_:{ \t\r\n#]`)

func FuzzAppendExposition(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.prom"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for line := range bytes.Lines(b) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, n, bad := appendExposition(nil, in, testLabels, 1700000000000)
		if n+bad > bytes.Count(in, []byte("\n"))+1 {
			t.Fatalf("got %d samples + %d dropped from at most %d lines", n, bad, bytes.Count(in, []byte("\n"))+1)
		}
		if bytes.Count(out, []byte("\n")) < n {
			t.Fatalf("output has fewer lines than %d samples", n)
		}
		// Valid input (per the Prometheus parser) must stay valid, keep every
		// sample and get the labels.
		if quotedName.Match(in) || bytes.IndexByte(in, 0) >= 0 { // the parser stops at NUL
			return
		}
		// Prometheus' lexer also reads a value glued to the name ("A+00" is
		// A = +0); the rewriter wants a blank or '{' after the name and drops
		// such lines. No exposition writer emits them.
		if gluedValue.Match(in) {
			return
		}
		inSamples, err := parseText(in)
		if err != nil || !lineByLine(in, len(inSamples)) {
			return
		}
		outSamples, err := parseText(out)
		if err != nil {
			t.Fatalf("valid input became invalid: %v\nin:  %q\nout: %q", err, in, out)
		}
		if len(outSamples) != len(inSamples) {
			t.Fatalf("got %d samples; want %d\nin:  %q\nout: %q", len(outSamples), len(inSamples), in, out)
		}
		for i, s := range outSamples {
			if !s.hasTS {
				t.Fatalf("sample %d has no timestamp", i)
			}
			if s.labels["service"] == "" || s.labels["env"] == "" {
				t.Fatalf("sample %d lacks the standard labels: %v", i, s.labels)
			}
			if !inSamples[i].hasTS && s.ts != 1700000000000 {
				t.Fatalf("sample %d: got ts %d; want 1700000000000", i, s.ts)
			}
		}
	})
}

// lineByLine reports whether in parses line by line into n samples; the
// Prometheus parser also accepts a raw newline inside a label value, which
// no exposition writer produces and the line-based rewriter does not keep.
func lineByLine(in []byte, n int) bool {
	got := 0
	for line := range bytes.Lines(in) {
		s, err := parseText(line)
		if err != nil {
			return false
		}
		got += len(s)
	}
	return got == n
}

func BenchmarkAppendExposition(b *testing.B) {
	reg := NewRegistry(RegistryOptions{ProcessMetrics: true})
	for i := range 50 {
		reg.Counter("orders_placed_total", "kind", string(rune('a'+i%26))+"x", "shop", "s"+string(rune('0'+i%10))).Inc()
	}
	var raw bytes.Buffer
	reg.writeRaw(&raw)
	in := raw.Bytes()
	labels := append(testLabels[:len(testLabels):len(testLabels)], newConstLabel("instance", "host-1"))
	var out []byte
	var n int
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		out, n, _ = appendExposition(out[:0], in, labels, 1700000000000)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
