package rules

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"gopkg.in/yaml.v3"
)

// ErrInvalidRules marks rule files that do not load: a syntax error, bad
// PromQL, a bad template, a duplicate group. The collector answers a reload
// that fails this way with 400 and keeps the rules it had.
var ErrInvalidRules = errors.New("invalid rule file")

// maxRuleFileBytes bounds a rule file read by the checker and the manager.
const maxRuleFileBytes = 16 << 20

// Problem is one thing wrong with a rule file.
type Problem struct {
	File string
	// Line is the 1-based line of the problem, or of the rule or group it
	// is about; 0 when the file could not be read.
	Line int
	// Group and Rule name what the problem is about, when known.
	Group, Rule string
	// Msg says what is wrong, Fix what to do about it ("" when the message
	// says it already).
	Msg, Fix string
	// Lint marks a finding that does not stop the file from loading (a
	// duplicate rule), as promtool's lint does.
	Lint bool
}

// String renders p as `file:line: group "g", rule "r": msg; fix`.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	var where []string
	if p.Group != "" {
		where = append(where, fmt.Sprintf("group %q", p.Group))
	}
	if p.Rule != "" {
		where = append(where, fmt.Sprintf("rule %q", p.Rule))
	}
	if len(where) > 0 {
		b.WriteString(strings.Join(where, ", ") + ": ")
	}
	b.WriteString(p.Msg)
	if p.Fix != "" {
		b.WriteString("; " + p.Fix)
	}
	return b.String()
}

// FileResult is what checking one rule file found.
type FileResult struct {
	File     string
	Groups   int
	Rules    int
	Problems []Problem
}

// Failed reports whether the file has a problem that stops it from loading.
func (r FileResult) Failed() bool {
	return slices.ContainsFunc(r.Problems, func(p Problem) bool { return !p.Lint })
}

// Linted reports whether the file has lint findings.
func (r FileResult) Linted() bool {
	return slices.ContainsFunc(r.Problems, func(p Problem) bool { return p.Lint })
}

// CheckFile validates one rule file exactly as the rules manager loads it
// (rulefmt with unknown keys refused, PromQL parsed with p, templates
// parsed), plus promtool's duplicate-rule lint. Every problem carries the
// line of what it is about. p nil means Prometheus' default parser.
func CheckFile(path string, p parser.Parser) FileResult {
	res := FileResult{File: path}
	data, err := readRuleFile(path)
	if err != nil {
		res.Problems = append(res.Problems, Problem{File: path, Msg: err.Error(), Fix: "check the path and its permissions"})
		return res
	}
	return CheckBytes(path, data, p)
}

// readRuleFile reads path, refusing files over maxRuleFileBytes.
func readRuleFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rule file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRuleFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read rule file: %w", err)
	}
	if len(data) > maxRuleFileBytes {
		return nil, fmt.Errorf("rule file is over %d MiB: split it", maxRuleFileBytes>>20)
	}
	return data, nil
}

// CheckBytes is CheckFile on the file's content; name is used in problems.
func CheckBytes(name string, data []byte, p parser.Parser) FileResult {
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	res := FileResult{File: name}
	idx := indexRuleFile(data)
	rgs, errs := rulefmt.Parse(data, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		pr := problemOf(name, err, idx)
		if pr.Line == 0 {
			pr.Line = idx.lineOf(pr.Msg, data)
		}
		// rulefmt decodes the file twice (values and positions), so YAML
		// errors come twice.
		if !slices.Contains(res.Problems, pr) {
			res.Problems = append(res.Problems, pr)
		}
	}
	if rgs != nil {
		res.Groups = len(rgs.Groups)
		for _, g := range rgs.Groups {
			res.Rules += len(g.Rules)
		}
		if !res.Failed() {
			res.Problems = append(res.Problems, duplicates(name, rgs, idx)...)
		}
	}
	slices.SortStableFunc(res.Problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return res
}

// ruleIndex maps groups and rules of a rule file to their lines, so a
// problem without a position still points at its rule.
type ruleIndex struct {
	groups []groupPos
}

type groupPos struct {
	name  string
	line  int
	rules []int // line of each rule
}

var (
	repeatedGroup = regexp.MustCompile(`groupname: "(.*)" is repeated`)
	quotedValue   = regexp.MustCompile(`in duration "([^"]+)"|"([^"]+)"`)
)

// lineOf finds the line a message without a position is about: the group
// a group-level message names, or the first line holding the value a
// message quotes (a bad duration, say); 0 if none.
func (x ruleIndex) lineOf(msg string, data []byte) int {
	if m := repeatedGroup.FindStringSubmatch(msg); m != nil {
		n := 0
		for _, g := range x.groups {
			if g.name == m[1] {
				if n++; n == 2 {
					return g.line
				}
			}
		}
	}
	if strings.Contains(msg, "Groupname must not be empty") {
		for _, g := range x.groups {
			if g.name == "" {
				return g.line
			}
		}
	}
	if m := quotedValue.FindStringSubmatch(msg); m != nil {
		v := m[1] + m[2]
		for i, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, v) {
				return i + 1
			}
		}
	}
	return 0
}

func indexRuleFile(data []byte) ruleIndex {
	var doc struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []yaml.Node `yaml:"rules"`
		} `yaml:"groups"`
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || root.Decode(&doc) != nil {
		return ruleIndex{}
	}
	var idx ruleIndex
	// Group lines come from the sequence items themselves.
	var groupNodes []*yaml.Node
	if len(root.Content) > 0 {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "groups" && m.Content[i+1].Kind == yaml.SequenceNode {
				groupNodes = m.Content[i+1].Content
			}
		}
	}
	for i, g := range doc.Groups {
		gp := groupPos{name: g.Name}
		if i < len(groupNodes) {
			gp.line = groupNodes[i].Line
		}
		for _, r := range g.Rules {
			gp.rules = append(gp.rules, r.Line)
		}
		idx.groups = append(idx.groups, gp)
	}
	return idx
}

// ruleLine returns the line of rule n (1-based) of the group named group.
func (x ruleIndex) ruleLine(group string, n int) int {
	for _, g := range x.groups {
		if g.name != group {
			continue
		}
		if n >= 1 && n <= len(g.rules) {
			return g.rules[n-1]
		}
		return g.line
	}
	return 0
}

var (
	posPrefix  = regexp.MustCompile(`^(\d+):(\d+): (?:(\d+):(\d+): )?`)
	yamlLine   = regexp.MustCompile(`^yaml: (?:unmarshal errors:\s*)?line (\d+): `)
	yamlLineIn = regexp.MustCompile(`(?m)^\s*line (\d+): (.*)$`)
)

// problemOf turns one rulefmt error into a Problem with a line and a fix.
func problemOf(file string, err error, idx ruleIndex) Problem {
	p := Problem{File: file, Msg: err.Error()}
	var re *rulefmt.Error
	if errors.As(err, &re) {
		p.Group, p.Rule = re.Group, re.RuleName
		p.Msg = re.Err.Error()
		if m := posPrefix.FindStringSubmatch(p.Msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Msg = p.Msg[len(m[0]):]
		}
		if p.Line == 0 { // no position, or the zero node of a missing key
			p.Line = idx.ruleLine(re.Group, re.Rule)
		}
		if p.Rule == "" {
			p.Rule = "#" + strconv.Itoa(re.Rule)
		}
	} else if m := posPrefix.FindStringSubmatch(p.Msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = p.Msg[len(m[0]):]
	} else if m := yamlLine.FindStringSubmatch(p.Msg); m != nil && !strings.Contains(p.Msg, "\n") {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = "YAML: " + p.Msg[len(m[0]):]
	} else if ms := yamlLineIn.FindAllStringSubmatch(p.Msg, -1); len(ms) > 0 {
		// yaml's "unmarshal errors:" lists one problem per line; keep the
		// first with its line and count the rest.
		p.Line, _ = strconv.Atoi(ms[0][1])
		p.Msg = "YAML: " + ms[0][2]
		if len(ms) > 1 {
			p.Msg += fmt.Sprintf(" (and %d more on lines %s)", len(ms)-1, joinLines(ms[1:]))
		}
	}
	p.Fix = fixFor(p.Msg)
	return p
}

func joinLines(ms [][]string) string {
	var s []string
	for _, m := range ms {
		s = append(s, m[1])
	}
	return strings.Join(s, ", ")
}

// fixes maps what a rulefmt message says to what the user should do.
var fixes = []struct{ contains, fix string }{
	{"could not parse expression", "fix the PromQL; try it on /api/v1/query or in the console first"},
	{"not found in type rulefmt.RuleGroups", "a rule file has one top-level key, groups"},
	{"not found in type rulefmt.ruleGroups", "a rule file has one top-level key, groups"},
	{"not found in type rulefmt.RuleGroup", "a group's keys are name, interval, query_offset, limit, labels and rules"},
	{"not found in type rulefmt.Rule", "a rule's keys are record or alert, expr, for, keep_firing_for, labels and annotations"},
	{"one of 'record' or 'alert' must be set", "name the rule: record: <metric name> to record a series, or alert: <AlertName> to alert"},
	{"only one of 'record' and 'alert' must be set", "a rule either records or alerts: split it into two rules"},
	{"field 'expr' must be set", "add expr: <PromQL expression>"},
	{"invalid field 'for' in recording rule", "for applies to alerts only: remove it, or make the rule an alert"},
	{"invalid field 'keep_firing_for' in recording rule", "keep_firing_for applies to alerts only: remove it"},
	{"invalid field 'annotations' in recording rule", "annotations apply to alerts only: remove them, or make the rule an alert"},
	{"braces present in the recording rule name", "record names a metric; put label matchers in expr and extra labels under labels"},
	{"invalid recording rule name", "use a metric name such as job:http_requests:rate5m"},
	{"is repeated in the same file", "give each group of a file its own name"},
	{"Groupname must not be empty", "give the group a name: name: <group>"},
	{"template:", "fix the Go template: {{ $labels.<name> }}, {{ $value }} and the functions of Prometheus' template reference"},
	{"in duration", "write durations like 30s, 5m, 1h or 1d"},
	{"not a valid duration", "write durations like 30s, 5m, 1h or 1d"},
	{"cannot unmarshal", "check the value's type: durations and names are strings, labels and annotations are maps"},
	{"invalid label name", "label names are letters, digits and _ and do not start with a digit or __"},
	{"invalid annotation name", "annotation names are letters, digits and _"},
	{"YAML: ", "check the indentation (spaces, not tabs) from this line on, and quote values that contain \": \" or start with { (or put them in a | block)"},
}

func fixFor(msg string) string {
	for _, f := range fixes {
		if strings.Contains(msg, f.contains) {
			return f.fix
		}
	}
	return ""
}

// duplicates is promtool's duplicate-rules lint: two rules of a file with
// the same name and labels record into (or alert as) the same series.
func duplicates(file string, rgs *rulefmt.RuleGroups, idx ruleIndex) []Problem {
	type key struct{ name, labels string }
	seen := map[key]int{} // -> line of the first
	var out []Problem
	for _, g := range rgs.Groups {
		for i, r := range g.Rules {
			name := r.Record
			if r.Alert != "" {
				name = r.Alert
			}
			ls := promrules.FromMaps(g.Labels, r.Labels)
			k := key{name, ls.String()}
			line := idx.ruleLine(g.Name, i+1)
			if first, ok := seen[k]; ok {
				out = append(out, Problem{File: file, Line: line, Group: g.Name, Rule: name, Lint: true,
					Msg: fmt.Sprintf("duplicate rule: same name and labels %s as the rule on line %d; both write the same series", labelsOrNone(ls), first),
					Fix: "remove one, or tell them apart with a label"})
				continue
			}
			seen[k] = line
		}
	}
	return out
}

func labelsOrNone(ls labels.Labels) string {
	if ls.IsEmpty() {
		return "(none)"
	}
	return ls.String()
}
