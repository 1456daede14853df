package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCheckBrokenFiles is the table of broken rule files and the message
// each gives: where (file and line), what is wrong, and what to do.
func TestCheckBrokenFiles(t *testing.T) {
	f := func(file, want string, lint bool) {
		t.Helper()
		path := filepath.Join("testdata", "bad", file)
		r := CheckFile(path, nil)
		if len(r.Problems) != 1 {
			t.Fatalf("%s: got %d problems %v; want 1", file, len(r.Problems), r.Problems)
		}
		p := r.Problems[0]
		if got := p.String(); got != path+want {
			t.Errorf("%s:\ngot  %s\nwant %s", file, got, path+want)
		}
		if p.Lint != lint || r.Failed() == lint {
			t.Errorf("%s: got lint %v, failed %v; want lint %v", file, p.Lint, r.Failed(), lint)
		}
	}
	f("yaml_syntax.yml", `:3: YAML: did not find expected '-' indicator; check the indentation (spaces, not tabs) from this line on, and quote values that contain ": " or start with { (or put them in a | block)`, false)
	f("unquoted_colon.yml", `:7: YAML: mapping values are not allowed in this context; check the indentation (spaces, not tabs) from this line on, and quote values that contain ": " or start with { (or put them in a | block)`, false)
	f("unknown_top_key.yml", `:1: YAML: field group not found in type rulefmt.RuleGroups; a rule file has one top-level key, groups`, false)
	f("unknown_rule_key.yml", `:5: YAML: field exp not found in type rulefmt.Rule; a rule's keys are record or alert, expr, for, keep_firing_for, labels and annotations`, false)
	f("bad_promql.yml", `:5: group "shop", rule "job:http_requests:rate5m": could not parse expression: 1:44: parse error: unclosed left parenthesis; fix the PromQL; try it on /api/v1/query or in the console first`, false)
	f("bad_template.yml", `:4: group "shop", rule "CheckoutSlow": annotation "summary": template: __alert_CheckoutSlow:1: unexpected "}" in operand; fix the Go template: {{ $labels.<name> }}, {{ $value }} and the functions of Prometheus' template reference`, false)
	f("bad_duration.yml", `:6: unknown unit " minutes" in duration "5 minutes"; write durations like 30s, 5m, 1h or 1d`, false)
	f("record_and_alert.yml", `:4: group "shop", rule "JobDown": only one of 'record' and 'alert' must be set; a rule either records or alerts: split it into two rules`, false)
	f("no_name.yml", `:4: group "shop", rule "#1": one of 'record' or 'alert' must be set; name the rule: record: <metric name> to record a series, or alert: <AlertName> to alert`, false)
	f("missing_expr.yml", `:4: group "shop", rule "JobDown": field 'expr' must be set in rule; add expr: <PromQL expression>`, false)
	f("for_in_record.yml", `:4: group "shop", rule "job:up:sum": invalid field 'for' in recording rule; for applies to alerts only: remove it, or make the rule an alert`, false)
	f("braces_in_record.yml", `:4: group "shop", rule "http_requests_total{job=\"shop\"}": braces present in the recording rule name; should it be in expr?: http_requests_total{job="shop"}; record names a metric; put label matchers in expr and extra labels under labels`, false)
	f("duplicate_group.yml", `:6: groupname: "shop" is repeated in the same file; give each group of a file its own name`, false)
	f("empty_group_name.yml", `:2: Groupname must not be empty; give the group a name: name: <group>`, false)
	f("duplicate_rule.yml", `:6: group "shop", rule "job:up:sum": duplicate rule: same name and labels (none) as the rule on line 4; both write the same series; remove one, or tell them apart with a label`, true)
	f("missing.yml", `: cannot read rule file: open testdata/bad/missing.yml: no such file or directory; check the path and its permissions`, false)
}

func TestCheckGoodFile(t *testing.T) {
	r := CheckFile(filepath.Join("testdata", "good", "shop.rules.yml"), nil)
	if len(r.Problems) != 0 || r.Groups != 1 || r.Rules != 2 {
		t.Fatalf("got %+v; want 1 group, 2 rules, no problems", r)
	}
}

// FuzzCheckBytes: any file content gives problems or rules, never a panic,
// and a problem always names the file.
func FuzzCheckBytes(f *testing.F) {
	for _, dir := range []string{"bad", "good"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yml"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		r := CheckBytes("fuzz.yml", data, nil)
		for _, p := range r.Problems {
			if p.File != "fuzz.yml" || p.Msg == "" || p.Line < 0 {
				t.Fatalf("problem %+v: want the file named, a message and a line >= 0", p)
			}
		}
	})
}
