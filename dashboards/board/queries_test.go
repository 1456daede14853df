package board

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"host": "h1", "__rate_interval": "1m", "__range": "1h", "__range_s": "3600", "env": "dev"}
	f := func(in, want string) {
		t.Helper()
		got, err := Expand(in, vars)
		if err != nil {
			t.Fatalf("Expand(%q): %v", in, err)
		}
		if got != want {
			t.Fatalf("Expand(%q): got %q; want %q", in, got, want)
		}
	}
	f(`up`, `up`)
	f(`x{instance=~"$host"}`, `x{instance=~"h1"}`)
	f(`rate(x[$__rate_interval])`, `rate(x[1m])`)
	f(`rate(x[${__range}])`, `rate(x[1h])`)
	f(`${__range_s} $__range`, `3600 1h`) // longest name wins
	f(`x{env="${env:regex}"}`, `x{env="dev"}`)
	f(`x{env="[[env]]"}`, `x{env="dev"}`)
	f(`x{a=~"foo$"}`, `x{a=~"foo$"}`) // a regex anchor is no variable
	f(`$host$env`, `h1dev`)
}

func TestExpandUnknownVariable(t *testing.T) {
	_, err := Expand(`x{instance=~"$hots"} + $other`, map[string]string{"host": "h"})
	if err == nil || !strings.Contains(err.Error(), "$hots, $other") {
		t.Fatalf("got %v; want an error naming $hots and $other", err)
	}
}

func TestLabelValues(t *testing.T) {
	f := func(in, sel, label string) {
		t.Helper()
		s, l, err := LabelValues(in)
		if err != nil {
			t.Fatalf("LabelValues(%q): %v", in, err)
		}
		if s != sel || l != label {
			t.Fatalf("LabelValues(%q): got %q, %q; want %q, %q", in, s, l, sel, label)
		}
	}
	f(`label_values(node_uname_info, instance)`, `node_uname_info`, `instance`)
	f(` label_values( x{a=~"b, c"} ,env ) `, `x{a=~"b, c"}`, `env`)
	for _, bad := range []string{`label_values(env)`, `query_result(up)`, `label_values(, env)`, `label_values(x, 1a)`} {
		if _, _, err := LabelValues(bad); err == nil {
			t.Errorf("LabelValues(%q): got no error; want one", bad)
		}
	}
}

// Every query of the dashboards names its place, and variables name the
// label they list.
func TestQueriesDescribeTheirPlace(t *testing.T) {
	kinds := map[Kind]int{}
	for _, q := range mustQueries(t) {
		kinds[q.Kind]++
		if q.Dashboard == "" || q.Panel == "" || q.Expr == "" {
			t.Errorf("query %+v lacks its dashboard, panel or expression", q)
		}
		if (q.Kind == KindVariable) != (q.Label != "") {
			t.Errorf("%s: label %q; want a label exactly for variables", q, q.Label)
		}
		if q.Kind == KindPanel && (q.RefID == "" || q.PanelType == "") {
			t.Errorf("%s: panel query without refId or panel type", q)
		}
		if q.Kind == KindPanel && q.PanelType == "timeseries" && q.Instant {
			t.Errorf("%s: a time series panel with an instant query", q)
		}
	}
	if kinds[KindAnnotation] != 8 || kinds[KindVariable] == 0 || kinds[KindPanel] == 0 {
		t.Errorf("got %v; want 8 annotations (deploys and firing alerts on each dashboard), variables and panels", kinds)
	}
}

func FuzzExpand(f *testing.F) {
	qs, err := Queries(mustAll(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, q := range qs {
		f.Add(q.Expr)
	}
	f.Add(`${a:b}[[c:d]]$e${`)
	f.Fuzz(func(t *testing.T, in string) {
		// With every referenced variable defined as a plain word, Expand
		// succeeds and leaves no variable behind.
		vars := map[string]string{}
		for _, m := range varRE.FindAllStringSubmatch(in, -1) {
			vars[m[1]+m[2]+m[3]] = "v"
		}
		out, err := Expand(in, vars)
		if err != nil {
			t.Fatalf("Expand(%q) with all variables defined: %v", in, err)
		}
		if len(vars) > 0 && strings.Count(out, "v") < len(varRE.FindAllString(in, -1)) {
			t.Fatalf("Expand(%q) = %q: fewer substitutions than variables", in, out)
		}
		// Undefined variables are reported, never silently kept.
		if len(vars) > 0 {
			if _, err := Expand(in, nil); err == nil {
				t.Fatalf("Expand(%q, nil): got no error; want unknown variables reported", in)
			}
		}
	})
}

func FuzzLabelValues(f *testing.F) {
	qs, err := Queries(mustAll(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, q := range qs {
		if q.Kind == KindVariable {
			f.Add("label_values(" + q.Expr + ", " + q.Label + ")")
		}
	}
	f.Add(`label_values(x, )`)
	f.Fuzz(func(t *testing.T, in string) {
		sel, label, err := LabelValues(in)
		if err != nil {
			return
		}
		// A parsed query renders back to one that parses the same.
		sel2, label2, err := LabelValues("label_values(" + sel + ", " + label + ")")
		if err != nil || sel2 != sel || label2 != label {
			t.Fatalf("LabelValues(%q) = %q, %q; its rendering parses as %q, %q, %v", in, sel, label, sel2, label2, err)
		}
	})
}

func BenchmarkAll(b *testing.B) {
	b.ReportAllocs()
	var size int
	for b.Loop() {
		bs, err := All(Options{})
		if err != nil {
			b.Fatal(err)
		}
		size = 0
		for _, d := range bs {
			j, _ := d.JSON()
			size += len(j)
		}
	}
	b.ReportMetric(float64(size), "json_bytes")
}
