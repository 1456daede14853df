package relabel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	yaml2 "go.yaml.in/yaml/v2"
	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/samples"
)

// The differential test: random relabel configs and label sets, run
// through Prometheus' model/relabel and through this package. Both must
// accept or refuse each config alike and, when they accept it, keep or
// drop the same series with the same labels.

var (
	diffNames  = []string{"__name__", "a", "b", "job", "instance", "__meta_kubernetes_pod_label_app", "__meta_x", "exported_job", "foo_bar", "Ünï", "__address__"}
	diffValues = []string{"x", "y", "1", "foo;bar", "a\nb", "Ünï", "node_cpu_seconds_total", "10.0.0.1:9100", "X"}
	diffRegex  = []string{"(.*)", "(.+)", "x|y", "a(.*)", "([a-z]+)_(.*)", "__meta_(.*)", "__meta_kubernetes_pod_label_(.+)", "f.*", "", "(?i)x", "(", "[0-9]+", ".*;.*", "a\\nb", "(x)(y)?"}
	diffTarget = []string{"a", "b", "job", "new", "${1}", "$1", "foo_$1", "${1}_${2}", "bad-name", "Ünï", "__tmp", "1abc", "$bad-"}
	diffRepl   = []string{"$1", "", "x", "${1}-${2}", "$2", "${1}", "$0", "pre_$1", "$$", "bad-$1"}
	diffSep    = []string{";", ",", "", "::"}
	diffAction = []string{"replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase", "Replace", "DROP"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// randomConfigYAML writes one relabel config with a random subset of keys.
func randomConfigYAML(r *rand.Rand) string {
	var sb strings.Builder
	// Actions with narrow valid shapes get them often enough.
	switch r.IntN(10) {
	case 0:
		fmt.Fprintf(&sb, "action: %s\nregex: %q\n", pick(r, []string{"labeldrop", "labelkeep", "LabelDrop"}), pick(r, diffRegex))
		return sb.String()
	case 2:
		fmt.Fprintf(&sb, "action: %s\nsource_labels: [%q, %q]\ntarget_label: %q\n", pick(r, []string{"keepequal", "dropequal"}),
			pick(r, diffNames), pick(r, diffNames), pick(r, diffNames))
		return sb.String()
	case 1:
		fmt.Fprintf(&sb, "action: hashmod\nsource_labels: [%q]\ntarget_label: %q\nmodulus: %d\n", pick(r, diffNames), pick(r, diffTarget), r.IntN(4))
		return sb.String()
	}
	if r.IntN(4) > 0 {
		var src []string
		for range r.IntN(3) + 1 {
			src = append(src, fmt.Sprintf("%q", pick(r, diffNames)))
		}
		fmt.Fprintf(&sb, "source_labels: [%s]\n", strings.Join(src, ", "))
	}
	if r.IntN(4) == 0 {
		fmt.Fprintf(&sb, "separator: %q\n", pick(r, diffSep))
	}
	if r.IntN(2) == 0 {
		fmt.Fprintf(&sb, "regex: %q\n", pick(r, diffRegex))
	}
	if r.IntN(5) == 0 {
		fmt.Fprintf(&sb, "modulus: %d\n", r.IntN(5))
	}
	if r.IntN(3) > 0 {
		t := pick(r, diffTarget)
		if r.IntN(2) == 0 {
			t = pick(r, diffTarget[:4])
		}
		fmt.Fprintf(&sb, "target_label: %q\n", t)
	}
	if r.IntN(3) == 0 {
		fmt.Fprintf(&sb, "replacement: %q\n", pick(r, diffRepl))
	}
	if r.IntN(6) > 0 {
		fmt.Fprintf(&sb, "action: %s\n", pick(r, diffAction))
	}
	if sb.Len() == 0 {
		sb.WriteString("{}\n")
	}
	return sb.String()
}

func randomLabels(r *rand.Rand) []samples.Label {
	m := map[string]string{}
	for range r.IntN(6) + 1 {
		m[pick(r, diffNames)] = pick(r, diffValues)
	}
	var ls []samples.Label
	for n, v := range m {
		ls = append(ls, samples.Label{Name: n, Value: v})
	}
	slices.SortFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

func promLabels(ls []samples.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

func fromProm(ls labels.Labels) []samples.Label {
	var out []samples.Label
	ls.Range(func(l labels.Label) { out = append(out, samples.Label{Name: l.Name, Value: l.Value}) })
	return out
}

func TestDifferentialAgainstPrometheus(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 1))
	var b Builder
	counts := map[string]int{}
	for i := range 30000 {
		n := r.IntN(3) + 1
		var docs []string
		for range n {
			docs = append(docs, randomConfigYAML(r))
		}
		scheme := UTF8
		promScheme := model.UTF8Validation
		if r.IntN(3) == 0 {
			scheme, promScheme = Legacy, model.LegacyValidation
		}

		var promCfgs []*promrelabel.Config
		promErr := error(nil)
		for _, d := range docs {
			var pc promrelabel.Config
			if err := yaml2.UnmarshalStrict([]byte(d), &pc); err != nil {
				promErr = err
				break
			}
			if err := pc.Validate(promScheme); err != nil {
				promErr = err
				break
			}
			promCfgs = append(promCfgs, &pc)
		}
		var rules []*Rule
		ourErr := error(nil)
		for _, d := range docs {
			var c Config
			if err := yaml.Unmarshal([]byte(d), &c); err != nil {
				ourErr = err
				break
			}
			rule, err := Compile(c, scheme)
			if err != nil {
				ourErr = err
				break
			}
			rules = append(rules, rule)
		}
		if (promErr == nil) != (ourErr == nil) {
			t.Fatalf("case %d: configs\n%s\nPrometheus error: %v\nour error: %v", i, strings.Join(docs, "---\n"), promErr, ourErr)
		}
		if promErr != nil {
			counts["invalid"]++
			continue
		}
		in := randomLabels(r)
		pb := labels.NewBuilder(promLabels(in))
		promKeep := promrelabel.ProcessBuilder(pb, promCfgs...)
		want := fromProm(pb.Labels())

		b.Reset(in)
		keep := Process(&b, rules...)
		got := b.Labels(nil)
		if keep != promKeep || keep && !slices.Equal(got, want) {
			t.Fatalf("case %d: configs\n%s\ninput %v\ngot keep=%v %v\nwant keep=%v %v", i, strings.Join(docs, "---\n"), in, keep, got, promKeep, want)
		}
		for _, r := range rules {
			counts["action "+string(r.cfg.Action)]++
		}
		if keep {
			counts["kept"]++
		} else {
			counts["dropped"]++
		}
		if !slices.Equal(got, in) && keep {
			counts["changed"]++
		}
	}
	// The generator must exercise every outcome, or the test proves little.
	for _, k := range []string{"invalid", "kept", "dropped", "changed"} {
		if counts[k] < 1000 {
			t.Errorf("only %d cases %s; the generator should produce more", counts[k], k)
		}
	}
	for _, a := range actions {
		if counts["action "+string(a)] < 200 {
			t.Errorf("only %d valid rules with action %s; the generator should produce more", counts["action "+string(a)], a)
		}
	}
	t.Logf("outcomes: %v", counts)
}

func TestMergeTargetMatchesPrometheus(t *testing.T) {
	// The cases of Prometheus' scrape tests for honor_labels and the
	// exported_ renaming, in Builder form.
	f := func(series, target []samples.Label, honor bool, want []samples.Label) {
		t.Helper()
		var b Builder
		b.Reset(series)
		b.MergeTarget(target, honor)
		if got := b.Labels(nil); !slices.Equal(got, want) {
			t.Errorf("MergeTarget(%v, %v, honor=%v) = %v; want %v", series, target, honor, got, want)
		}
	}
	ls := func(kv ...string) []samples.Label {
		var out []samples.Label
		for i := 0; i < len(kv); i += 2 {
			out = append(out, samples.Label{Name: kv[i], Value: kv[i+1]})
		}
		slices.SortFunc(out, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
		return out
	}
	target := ls("instance", "host:9100", "job", "node")
	f(ls("__name__", "up"), target, false, ls("__name__", "up", "instance", "host:9100", "job", "node"))
	f(ls("__name__", "m", "job", "app"), target, false, ls("__name__", "m", "exported_job", "app", "instance", "host:9100", "job", "node"))
	f(ls("__name__", "m", "job", "app"), target, true, ls("__name__", "m", "instance", "host:9100", "job", "app"))
	// exported_job taken: exported_exported_job.
	f(ls("__name__", "m", "job", "app", "exported_job", "old"), target, false,
		ls("__name__", "m", "exported_exported_job", "app", "exported_job", "old", "instance", "host:9100", "job", "node"))
	// Shorter names first: job before instance.
	f(ls("__name__", "m", "job", "j", "instance", "i", "exported_job", "i2"), ls("exported_instance", "t", "instance", "h", "job", "n"), false,
		ls("__name__", "m", "exported_exported_instance", "i", "exported_exported_job", "j", "exported_instance", "t", "exported_job", "i2", "instance", "h", "job", "n"))
}

func TestCompileErrors(t *testing.T) {
	f := func(doc, want string) {
		t.Helper()
		var c Config
		err := yaml.Unmarshal([]byte(doc), &c)
		if err == nil {
			_, err = Compile(c, UTF8)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v; want it to contain %q", doc, err, want)
		}
	}
	f("action: hashmod\ntarget_label: x\n", "requires non-zero modulus")
	f("action: replace\n", "requires 'target_label'")
	f("action: frobnicate\n", "unknown relabel action")
	f("regex: '('\ntarget_label: x\n", "does not compile")
	f("action: labeldrop\nsource_labels: [a]\n", "requires only 'regex'")
	f("action: keepequal\ntarget_label: a\nregex: (.*)\n", "requires only 'source_labels'")
	f("sorce_labels: [a]\n", `unknown key "sorce_labels"`)
}

func BenchmarkProcess(b *testing.B) {
	var rules []*Rule
	for _, d := range []string{
		"source_labels: [__name__]\nregex: go_.*\naction: drop\n",
		"action: labeldrop\nregex: pod_template_hash\n",
		"source_labels: [instance]\nregex: '([^:]+):.*'\ntarget_label: host\n",
	} {
		var c Config
		if err := yaml.Unmarshal([]byte(d), &c); err != nil {
			b.Fatal(err)
		}
		r, err := Compile(c, UTF8)
		if err != nil {
			b.Fatal(err)
		}
		rules = append(rules, r)
	}
	in := []samples.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: "200"}, {Name: "instance", Value: "10.0.0.1:8080"}, {Name: "job", Value: "app"}, {Name: "pod_template_hash", Value: "abc"}}
	var bl Builder
	var out []samples.Label
	b.ReportAllocs()
	for b.Loop() {
		bl.Reset(in)
		if Process(&bl, rules...) {
			out = bl.Labels(out[:0])
		}
	}
}

// FuzzDifferential feeds one relabel config and one label set (name=value
// lines) to Prometheus and to this package: they must agree on validity
// and, for valid configs, on the result.
func FuzzDifferential(f *testing.F) {
	f.Add("source_labels: [a]\nregex: (.*)x\ntarget_label: b\nreplacement: ${1}y\n", "a=1x\nc=2")
	f.Add("action: labelmap\nregex: __meta_(.+)\n", "__meta_x=1\nx=2")
	f.Add("action: hashmod\nsource_labels: [a]\nmodulus: 7\ntarget_label: h\n", "a=abc")
	f.Add("action: keepequal\nsource_labels: [a]\ntarget_label: b\n", "a=1\nb=1")
	f.Add("action: labeldrop\nregex: a|b\n", "a=1\nb=2\nc=3")
	f.Fuzz(func(t *testing.T, doc, lbls string) {
		var pc promrelabel.Config
		perr := yaml2.UnmarshalStrict([]byte(doc), &pc)
		if perr == nil {
			perr = pc.Validate(model.UTF8Validation)
		}
		var c Config
		var rule *Rule
		err := yaml.Unmarshal([]byte(doc), &c)
		if err == nil {
			rule, err = Compile(c, UTF8)
		}
		if (perr == nil) != (err == nil) {
			// YAML libraries differ on exotic documents (v2 and v3 read
			// tags, anchors and duplicate keys differently); only compare
			// documents both can read as a relabel config.
			if perr != nil && strings.Contains(perr.Error(), "yaml:") || err != nil && strings.Contains(err.Error(), "yaml:") {
				return
			}
			t.Fatalf("config %q: Prometheus error %v, ours %v", doc, perr, err)
		}
		if err != nil {
			return
		}
		m := map[string]string{}
		for _, line := range strings.Split(lbls, "\n") {
			if n, v, ok := strings.Cut(line, "="); ok && n != "" && v != "" && utf8.ValidString(n) && utf8.ValidString(v) {
				m[n] = v
			}
		}
		var in []samples.Label
		for n, v := range m {
			in = append(in, samples.Label{Name: n, Value: v})
		}
		slices.SortFunc(in, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
		pb := labels.NewBuilder(promLabels(in))
		pkeep := promrelabel.ProcessBuilder(pb, &pc)
		var b Builder
		b.Reset(in)
		keep := Process(&b, rule)
		if keep != pkeep || keep && !slices.Equal(b.Labels(nil), fromProm(pb.Labels())) {
			t.Fatalf("config %q labels %v: got %v %v; Prometheus %v %v", doc, in, keep, b.Labels(nil), pkeep, fromProm(pb.Labels()))
		}
	})
}
