package promtext

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/protoparser/internal/parsertest"
	"github.com/telltale-dev/telltale/samples"
)

// render prints a batch one series per line as name="value",... t v, values
// as the exposition writes them, with metadata after.
func render(b *samples.Batch) string {
	return parsertest.Render(b, func(v float64) string { return string(AppendFloat(nil, v)) })
}

func TestParse(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		var p Parser
		var b samples.Batch
		if err := p.Parse([]byte(in), 1000, &b); err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got := render(&b); got != want {
			t.Fatalf("Parse(%q):\ngot\n%s\nwant\n%s", in, got, want)
		}
	}
	f("", "")
	f("\n\n  \n# just a comment\n#\n", "")
	f("foo 1", "__name__=\"foo\" 1000 1\n")
	f("foo 1 2000\n", "__name__=\"foo\" 2000 1\n")
	f("foo -2 -1\r\n", "__name__=\"foo\" -1 -2\n")
	f("  foo\t 1.5e3 \t 7  ", "__name__=\"foo\" 7 1500\n")
	f("foo{} 1", "__name__=\"foo\" 1000 1\n")
	f("foo {a=\"b\"} 1", "__name__=\"foo\",a=\"b\" 1000 1\n")
	f(`http_requests_total{method="post",code="200",} 1027 1395066363000`,
		`__name__="http_requests_total",method="post",code="200" 1395066363000 1027`+"\n")
	f(`foo{ a = "1" , b="2" }1`, `__name__="foo",a="1",b="2" 1000 1`+"\n")
	f(`msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9`,
		`__name__="msdos_file_access_time_seconds",path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\"" 1000 1458255915`+"\n")
	f(`foo{a="x\ty\q"} 1`, `__name__="foo",a="x\\ty\\q" 1000 1`+"\n") // unknown escapes kept
	f("a NaN\nb +Inf\nc -Inf\nd nan\ne inf\n", "__name__=\"a\" 1000 NaN\n__name__=\"b\" 1000 +Inf\n__name__=\"c\" 1000 -Inf\n__name__=\"d\" 1000 NaN\n__name__=\"e\" 1000 +Inf\n")
	f("x 0.1\ny 9007199254740993\nz 1e-400\nw 2.2250738585072011e-308\n",
		"__name__=\"x\" 1000 0.1\n__name__=\"y\" 1000 9.007199254740992e+15\n__name__=\"z\" 1000 0\n__name__=\"w\" 1000 2.225073858507201e-308\n")
	f(`{"my.metric", "label.name"="v", a="b"} 3`, `__name__="my.metric",label.name="v",a="b" 1000 3`+"\n")
	f(`{"my.metric"} 3`, `__name__="my.metric" 1000 3`+"\n")
	f(`{a="b","my\"q"} 3`, `__name__="my\"q",a="b" 1000 3`+"\n")
	f(`foo{"a.b"="c"} 3`, `__name__="foo",a.b="c" 1000 3`+"\n")
	f("# HELP foo The foo.\n# TYPE foo counter\nfoo 1\n",
		"__name__=\"foo\" 1000 1\nmeta \"foo\" \"counter\" \"The foo.\" \"\"\n")
	f("# TYPE foo untyped\n# HELP foo Line one\\nline two \\\\ \\\" x\n# HELP bar\n# UNIT foo seconds\n",
		"meta \"foo\" \"unknown\" \"Line one\\nline two \\\\ \\\\\\\" x\" \"seconds\"\nmeta \"bar\" \"\" \"\" \"\"\n")
	f("# TYPE \"my.metric\" gauge\n{\"my.metric\"} 2\n", "__name__=\"my.metric\" 1000 2\nmeta \"my.metric\" \"gauge\" \"\" \"\"\n")
	f("# HELPER foo x\n# TYPEfoo\n#TYPE foo gauge\n", "meta \"foo\" \"gauge\" \"\" \"\"\n")
	// OpenMetrics bits in a 0.0.4 parse: exemplars skipped, _created kept, # EOF ends.
	f("# TYPE foo counter\nfoo_total 17 # {trace_id=\"abc\"} 1 1700000000\nfoo_created 1700000000\n# EOF\ngarbage{\n",
		"__name__=\"foo_total\" 1000 17\n__name__=\"foo_created\" 1000 1700000000\nmeta \"foo\" \"counter\" \"\" \"\"\n")
	f("foo 1 123 # {a=\"b\"} 2\n", "__name__=\"foo\" 123 1\n")
	// VictoriaMetrics histograms.
	f(`request_duration_seconds_bucket{path="/api",vmrange="1.000e-03...1.136e-03"} 5`+"\n"+`request_duration_seconds_bucket{path="/api",le="+Inf"} 7`,
		`__name__="request_duration_seconds_bucket",path="/api",vmrange="1.000e-03...1.136e-03" 1000 5`+"\n"+`__name__="request_duration_seconds_bucket",path="/api",le="+Inf" 1000 7`+"\n")
}

func TestParseOpenMetrics(t *testing.T) {
	in := `# TYPE req counter
# UNIT req requests
# HELP req Requests \"served\".
req_total{code="200"} 17 1700000000.5 # {trace_id="x"} 1 1700000000
req_created{code="200"} 1699999000
# TYPE g gauge
g_created 3
# TYPE h histogram
h_bucket{le="+Inf"} 2 1700000001
h_created 1
# EOF
`
	want := `__name__="req_total",code="200" 1700000000500 17
__name__="g_created" 42 3
__name__="h_bucket",le="+Inf" 1700000001000 2
meta "req" "counter" "Requests \"served\"." "requests"
meta "g" "gauge" "" ""
meta "h" "histogram" "" ""
`
	p := Parser{OpenMetrics: true}
	var b samples.Batch
	if err := p.Parse([]byte(in), 42, &b); err != nil {
		t.Fatal(err)
	}
	if got := render(&b); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		var p Parser
		var b samples.Batch
		err := p.Parse([]byte(in), 0, &b)
		if err == nil || err.Error() != want {
			t.Fatalf("Parse(%q):\ngot error  %v\nwant error %s", in, err, want)
		}
	}
	f("ok 1\n\nhttp_requests_total 12x", `line 3: cannot parse value "12x" of metric "http_requests_total": want a float such as 1.5, NaN or +Inf`)
	f("foo 1e400", `line 1: value "1e400" of metric "foo" is out of the float64 range`)
	f("foo 0x1p3", `line 1: cannot parse value "0x1p3" of metric "foo": want a float such as 1.5, NaN or +Inf`)
	f("foo 1_000", `line 1: cannot parse value "1_000" of metric "foo": want a float such as 1.5, NaN or +Inf`)
	f("foo", `line 1: metric "foo" has no value: want a line like foo 1.5`)
	f("foo  ", `line 1: metric "foo" has no value: want a line like foo 1.5`)
	f(`foo{a="b"}`, `line 1: metric "foo" has no value: want a line like foo{a="b"} 1.5`)
	f("1foo 1", `line 1: invalid metric name at "1foo 1": want [a-zA-Z_:][a-zA-Z0-9_:]*, or a quoted name in braces such as {"my.metric"}`)
	f("-foo 1", `line 1: invalid metric name at "-foo 1": want [a-zA-Z_:][a-zA-Z0-9_:]*, or a quoted name in braces such as {"my.metric"}`)
	f("foo-bar 1", `line 1: invalid character '-' after metric name "foo" in "foo-bar 1"`)
	f(`foo{a="b" 1`, `line 1: want ',' or '}' after label "a", got "1"`)
	f(`foo{a="b",`, `line 1: missing '}' at the end of the labels of "foo{a=\"b\","`)
	f(`foo{a="b"`, `line 1: missing '}' at the end of the labels of "foo{a=\"b\""`)
	f(`foo{a="b} 1`, `line 1: missing closing '"': value of label "a" in "foo{a=\"b} 1"`)
	f(`foo{a="b\"} 1`, `line 1: missing closing '"': value of label "a" in "foo{a=\"b\\\"} 1"`)
	f(`foo{a=b} 1`, `line 1: value of label "a" must be in double quotes in "foo{a=b} 1"`)
	f(`foo{a} 1`, `line 1: missing '=' after label name "a" in "foo{a} 1"`)
	f(`foo{1a="b"} 1`, `line 1: invalid label name at "1a=\"b\"} 1": want [a-zA-Z_][a-zA-Z0-9_]*, or a quoted name such as "my.label"`)
	f(`foo{a:b="c"} 1`, `line 1: missing '=' after label name "a" in "foo{a:b=\"c\"} 1"`)
	f(`foo{""="c"} 1`, `line 1: empty label name in "foo{\"\"=\"c\"} 1"`)
	f(`foo{"x"} 1`, `line 1: metric name given twice ("foo" and "x") in "foo{\"x\"} 1"`)
	f(`{"x", "y"} 1`, `line 1: metric name given twice ("x" and "y") in "{\"x\", \"y\"} 1"`)
	f(`{""} 1`, `line 1: empty metric name in "{\"\"} 1"`)
	f(`{a="b"} 1`, `line 1: metric name missing in "{a=\"b\"} 1": put it before the braces or quoted inside them, as {"my.metric", a="b"}`)
	f(`{"unterminated} 1`, `line 1: missing closing '"' in the labels of "{\"unterminated} 1"`)
	f("foo 1 1.5", `line 1: cannot parse timestamp "1.5" of metric "foo": want integer milliseconds since the Unix epoch such as 1700000000123 (an OpenMetrics body, with timestamps in seconds, must be sent with Content-Type application/openmetrics-text)`)
	f("foo 1 99999999999999999999", `line 1: cannot parse timestamp "99999999999999999999" of metric "foo": want integer milliseconds since the Unix epoch such as 1700000000123 (an OpenMetrics body, with timestamps in seconds, must be sent with Content-Type application/openmetrics-text)`)
	f("foo 1 2 3", `line 1: unexpected text "3" after the sample of metric "foo": want name{labels} value [timestamp]`)
	f("# TYPE foo bar", `line 1: unknown metric type "bar" in "# TYPE foo bar": want counter, gauge, histogram, summary, untyped (or an OpenMetrics type)`)
	f("# TYPE foo", `line 1: unknown metric type "" in "# TYPE foo": want counter, gauge, histogram, summary, untyped (or an OpenMetrics type)`)
	f("# TYPE", `line 1: invalid metric name in "# TYPE": want # TYPE name ..., the name matching [a-zA-Z_:][a-zA-Z0-9_:]* or quoted`)
	f("# HELP 9x y", `line 1: invalid metric name in "# HELP 9x y": want # HELP name ..., the name matching [a-zA-Z_:][a-zA-Z0-9_:]* or quoted`)
	f("# HELP foo-bar y", `line 1: want a space after the metric name in "# HELP foo-bar y"`)
	f(`# UNIT "foo`, `line 1: missing closing '"' in the metric name of "# UNIT \"foo"`)
	f(`# HELP "" x`, `line 1: empty metric name in "# HELP \"\" x"`)
	long := "foo{a=\"" + strings.Repeat("x", 100) + "\"} 12x"
	f(long, `line 1: cannot parse value "12x" of metric "foo": want a float such as 1.5, NaN or +Inf`)
	f("foo{a=\""+strings.Repeat("x", 100), `line 1: missing closing '"': value of label "a" in "foo{a=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...`)

	var p Parser
	var b samples.Batch
	err := (&Parser{OpenMetrics: true}).Parse([]byte("foo 1 17e"), 0, &b)
	if err == nil || !strings.Contains(err.Error(), `line 1: cannot parse timestamp "17e" of metric "foo": want seconds since the Unix epoch`) {
		t.Fatalf("got %v; want an OpenMetrics timestamp error", err)
	}
	_ = p
}

func TestExtraLabels(t *testing.T) {
	p := Parser{ExtraLabels: []samples.Label{{Name: "job", Value: "push"}, {Name: "instance", Value: "h1"}}}
	var b samples.Batch
	in := "foo{job=\"x\",a=\"1\"} 1\nbar 2\n{\"baz\",instance=\"y\"} 3\n"
	if err := p.Parse([]byte(in), 5, &b); err != nil {
		t.Fatal(err)
	}
	want := `__name__="foo",a="1",job="push",instance="h1" 5 1
__name__="bar",job="push",instance="h1" 5 2
__name__="baz",job="push",instance="h1" 5 3
`
	if got := render(&b); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// The key covers the extra labels: the same text with other extra
	// labels must give another key, and the same extra labels the same key.
	k1 := string(b.Series[0].Key)
	if k1[0] != 3 || !strings.HasSuffix(k1, `foo{job="x",a="1"}`) {
		t.Fatalf("got key %q; want 0x03, the extra labels, then the raw series text", k1)
	}
	var b2 samples.Batch
	p2 := Parser{ExtraLabels: []samples.Label{{Name: "job", Value: "other"}}}
	if err := p2.Parse([]byte(in), 5, &b2); err != nil {
		t.Fatal(err)
	}
	if string(b2.Series[0].Key) == k1 {
		t.Fatalf("got the same key %q for different extra labels", k1)
	}
	if err := p.Parse([]byte(in), 5, &b2); err != nil {
		t.Fatal(err)
	}
	if string(b2.Series[3].Key) != k1 {
		t.Fatalf("got key %q; want %q for the same text and extra labels", b2.Series[3].Key, k1)
	}

	// An extra __name__ replaces the metric name.
	p3 := Parser{ExtraLabels: []samples.Label{{Name: "__name__", Value: "renamed"}}}
	b.Reset()
	if err := p3.Parse([]byte("foo{a=\"1\"} 1"), 5, &b); err != nil {
		t.Fatal(err)
	}
	if got, want := render(&b), "a=\"1\",__name__=\"renamed\" 5 1\n"; got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
}

func TestKeys(t *testing.T) {
	var p Parser
	var b samples.Batch
	in := "foo{a=\"1\"} 1\nfoo{a=\"2\"} 1\nfoo{a=\"1\"} 2 5\nfoo 1\nfoo  3\n"
	if err := p.Parse([]byte(in), 0, &b); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(b.Series))
	for i := range b.Series {
		keys[i] = string(b.Series[i].Key)
	}
	want := []string{`foo{a="1"}`, `foo{a="2"}`, `foo{a="1"}`, "foo", "foo"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("got keys %q; want %q", keys, want)
	}
}

// TestReuse checks that a Parser and Batch can be reused, and that metadata
// dedup state does not leak between calls.
func TestReuse(t *testing.T) {
	var p Parser
	var b samples.Batch
	for range 3 {
		b.Reset()
		if err := p.Parse([]byte("# TYPE foo gauge\n# HELP foo h\nfoo{a=\"x\\\\y\"} 1\n"), 0, &b); err != nil {
			t.Fatal(err)
		}
		if got, want := render(&b), "__name__=\"foo\",a=\"x\\\\y\" 0 1\nmeta \"foo\" \"gauge\" \"h\" \"\"\n"; got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	}
}

func TestAppend(t *testing.T) {
	b := &samples.Batch{}
	b.Metadata = []samples.Metadata{
		{Name: "foo", Type: "counter", Help: "Foo \\ with\nnewline."},
		{Name: "my.metric", Type: "unknown", Unit: "seconds"},
		{Name: "bare"},
		{Name: "", Type: "gauge", Help: "dropped: no name"},
	}
	b.StartSeries(nil)
	b.AddLabel("__name__", "foo")
	b.AddLabel("path", "C:\\x \"q\"\n")
	b.AddSample(1, 1)
	b.AddSample(2, math.Inf(-1))
	b.StartSeries(nil)
	b.AddLabel("a", "b")
	b.AddLabel("__name__", "my.metric")
	b.AddLabel("label.name", "v")
	b.AddSample(3, 0.25)
	b.StartSeries(nil)
	b.AddLabel("__name__", "bare")
	b.AddSample(4, 1e20)
	b.AddSample(5, math.NaN())
	b.AddSample(6, math.Copysign(0, -1))

	want := `# HELP foo Foo \\ with\nnewline.
# TYPE foo counter
# TYPE "my.metric" untyped
# UNIT "my.metric" seconds
# HELP bare 
foo{path="C:\\x \"q\"\n"} 1 1
foo{path="C:\\x \"q\"\n"} -Inf 2
{"my.metric",a="b","label.name"="v"} 0.25 3
bare 1e+20 4
bare NaN 5
bare -0 6
`
	got := string(Append(nil, b, true))
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(Append([]byte("x\n"), b, false)); !strings.HasPrefix(got, "x\n# HELP") || !strings.Contains(got, "\nbare NaN\n") {
		t.Fatalf("without timestamps got\n%s", got)
	}
	// And it parses back to the same batch (label order aside: the name
	// comes first).
	var p Parser
	var b2 samples.Batch
	if err := p.Parse([]byte(want), 0, &b2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(render(&b2), `__name__="my.metric",a="b",label.name="v" 3 0.25`) {
		t.Fatalf("parsed back:\n%s", render(&b2))
	}
}

// TestTestdata parses every example body.
func TestTestdata(t *testing.T) {
	for _, data := range parsertest.Files(t, "testdata/*.txt", "") {
		var p Parser
		var b samples.Batch
		if err := p.Parse(data, 0, &b); err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 {
			t.Fatalf("no samples in\n%s", data)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, data := range parsertest.Files(f, "testdata/*.txt", "") {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// OpenMetrics mode must not panic either.
		var om samples.Batch
		_ = (&Parser{OpenMetrics: true}).Parse(data, 7, &om)

		for _, p := range []*Parser{{}, {ExtraLabels: []samples.Label{{Name: "job", Value: "fuzz"}}}} {
			var b samples.Batch
			if err := p.Parse(data, 7, &b); err != nil {
				return
			}
			parsertest.CheckKeys(t, &b)
			want := render(&b)
			text := Append(nil, &b, true)
			var b2 samples.Batch
			if err := p.Parse(text, 7, &b2); err != nil {
				t.Fatalf("re-emitted text does not parse: %v\n%s", err, text)
			}
			if got := render(&b2); got != want {
				t.Fatalf("round trip:\ngot\n%s\nwant\n%s\ntext\n%s", got, want, text)
			}
			if !bytes.Equal(Append(nil, &b2, true), text) {
				t.Fatalf("second re-emission differs")
			}
		}
	})
}
