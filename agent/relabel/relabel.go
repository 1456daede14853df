// Package relabel implements Prometheus' relabeling (relabel_configs and
// metric_relabel_configs) and the label rules of its scrape loop
// (honor_labels, exported_ renaming) for the agent, without importing
// Prometheus.
//
// It promises Prometheus' semantics exactly, as of model/relabel in
// Prometheus v3 (v0.316.0): the same YAML keys and defaults (separator ";",
// regex "(.*)" anchored at both ends and matching newlines, replacement
// "$1", action replace), the same validation errors, every action (replace,
// keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop,
// labelkeep, lowercase, uppercase), and the same label order while
// relabeling (see Builder), which decides the result when labelmap maps
// two labels to one name. relabel_test.go checks this against Prometheus'
// own package on the same inputs.
//
// Config values come from YAML; Compile checks them and returns Rules,
// which are immutable and safe for concurrent use. Process needs a Builder
// per goroutine.
package relabel

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/samples"
)

// Action is what a rule does.
type Action string

// The actions of Prometheus' relabel_config.
const (
	Replace   Action = "replace"
	Keep      Action = "keep"
	Drop      Action = "drop"
	KeepEqual Action = "keepequal"
	DropEqual Action = "dropequal"
	HashMod   Action = "hashmod"
	LabelMap  Action = "labelmap"
	LabelDrop Action = "labeldrop"
	LabelKeep Action = "labelkeep"
	Lowercase Action = "lowercase"
	Uppercase Action = "uppercase"
)

var actions = []Action{Replace, Keep, Drop, KeepEqual, DropEqual, HashMod, LabelMap, LabelDrop, LabelKeep, Lowercase, Uppercase}

// Defaults of a relabel_config entry.
const (
	DefaultSeparator   = ";"
	DefaultRegex       = "(.*)"
	DefaultReplacement = "$1"
)

// Config is one relabel_configs or metric_relabel_configs entry, with
// Prometheus' YAML keys. Unmarshal it from YAML to get Prometheus'
// defaults for the keys that are absent.
type Config struct {
	SourceLabels []string `yaml:"source_labels,flow"`
	Separator    string   `yaml:"separator"`
	Regex        string   `yaml:"regex"`
	Modulus      uint64   `yaml:"modulus"`
	TargetLabel  string   `yaml:"target_label"`
	Replacement  string   `yaml:"replacement"`
	Action       Action   `yaml:"action"`

	// regexSet records that the YAML gave a regex (even "(.*)"): Prometheus
	// then refuses it for keepequal and dropequal.
	regexSet bool
}

// Default returns a Config with Prometheus' defaults (action replace,
// separator ";", regex "(.*)", replacement "$1").
func Default() Config {
	return Config{Separator: DefaultSeparator, Regex: DefaultRegex, Replacement: DefaultReplacement, Action: Replace}
}

var configKeys = []string{"source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action"}

// UnmarshalYAML fills the defaults, then the keys present; an unknown key
// is an error that lists the valid ones. The action is case-insensitive,
// as in Prometheus.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	regexSet := false
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			regexSet = regexSet || k == "regex"
			if !containsString(configKeys, k) {
				return fmt.Errorf("line %d: unknown key %q in a relabel config: valid keys are %s", n.Content[i].Line, k, strings.Join(configKeys, ", "))
			}
		}
	}
	*c = Default()
	type plain Config
	if err := n.Decode((*plain)(c)); err != nil {
		return err
	}
	a := Action(strings.ToLower(string(c.Action)))
	if !containsString(actions, a) {
		return fmt.Errorf("line %d: unknown relabel action %q: use one of %s", n.Line, c.Action, joinActions())
	}
	c.Action = a
	c.regexSet = regexSet
	return nil
}

func containsString[S ~string](list []S, s S) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func joinActions() string {
	var s []string
	for _, a := range actions {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

// NameValidation is how label names made by relabeling are checked:
// Prometheus 3's "utf8" (the default: any non-empty valid UTF-8) or
// "legacy" ([a-zA-Z_][a-zA-Z0-9_]*).
type NameValidation int

const (
	UTF8 NameValidation = iota
	Legacy
)

// ValidLabelName reports whether name is a label name under v.
func (v NameValidation) ValidLabelName(name string) bool {
	if name == "" {
		return false
	}
	if v == UTF8 {
		return utf8.ValidString(name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// relabelTargetLegacy is a legacy label name that may hold ${1}-style
// references, for target_label and labelmap replacements.
var relabelTargetLegacy = regexp.MustCompile(`^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`)

// Rule is a checked, compiled Config.
type Rule struct {
	cfg     Config
	re      *regexp.Regexp
	names   NameValidation
	defRe   bool // the regex is the default (.*): replace's fast path applies
	tmplVar bool // target_label or replacement holds a $ reference
}

// Config returns the rule's configuration.
func (r *Rule) Config() Config { return r.cfg }

// Compile checks cfg as Prometheus' Config.Validate does and compiles its
// regex, anchored at both ends. Errors say which key is wrong.
func Compile(cfg Config, names NameValidation) (*Rule, error) {
	if cfg.Action == "" {
		return nil, errors.New("relabel action cannot be empty")
	}
	if !containsString(actions, cfg.Action) {
		return nil, fmt.Errorf("unknown relabel action %q: use one of %s", cfg.Action, joinActions())
	}
	if cfg.Modulus == 0 && cfg.Action == HashMod {
		return nil, errors.New("relabel configuration for hashmod requires non-zero modulus")
	}
	switch cfg.Action {
	case Replace, HashMod, Lowercase, Uppercase, KeepEqual, DropEqual:
		if cfg.TargetLabel == "" {
			return nil, fmt.Errorf("relabel configuration for %s action requires 'target_label' value", cfg.Action)
		}
	}
	hasVar := func(s string) bool { return strings.Contains(s, "$") }
	validWithVars := func(s string) bool {
		if names == UTF8 {
			return names.ValidLabelName(s)
		}
		return relabelTargetLegacy.MatchString(s)
	}
	if cfg.Action == Replace && !hasVar(cfg.TargetLabel) && !names.ValidLabelName(cfg.TargetLabel) {
		return nil, fmt.Errorf("%q is invalid 'target_label' for %s action", cfg.TargetLabel, cfg.Action)
	}
	if cfg.Action == Replace && hasVar(cfg.TargetLabel) && !validWithVars(cfg.TargetLabel) {
		return nil, fmt.Errorf("%q is invalid 'target_label' for %s action", cfg.TargetLabel, cfg.Action)
	}
	switch cfg.Action {
	case Lowercase, Uppercase, KeepEqual, DropEqual:
		if !names.ValidLabelName(cfg.TargetLabel) {
			return nil, fmt.Errorf("%q is invalid 'target_label' for %s action", cfg.TargetLabel, cfg.Action)
		}
		if cfg.Replacement != DefaultReplacement {
			return nil, fmt.Errorf("'replacement' can not be set for %s action", cfg.Action)
		}
	}
	if cfg.Action == LabelMap && !validWithVars(cfg.Replacement) {
		return nil, fmt.Errorf("%q is invalid 'replacement' for %s action", cfg.Replacement, cfg.Action)
	}
	if cfg.Action == HashMod && !names.ValidLabelName(cfg.TargetLabel) {
		return nil, fmt.Errorf("%q is invalid 'target_label' for %s action", cfg.TargetLabel, cfg.Action)
	}
	if cfg.Action == DropEqual || cfg.Action == KeepEqual {
		if cfg.regexSet || cfg.Regex != DefaultRegex || cfg.Modulus != 0 || cfg.Separator != DefaultSeparator || cfg.Replacement != DefaultReplacement {
			return nil, fmt.Errorf("%s action requires only 'source_labels' and `target_label`, and no other fields", cfg.Action)
		}
	}
	if cfg.Action == LabelDrop || cfg.Action == LabelKeep {
		if cfg.SourceLabels != nil || cfg.TargetLabel != "" || cfg.Modulus != 0 || cfg.Separator != DefaultSeparator || cfg.Replacement != DefaultReplacement {
			return nil, fmt.Errorf("%s action requires only 'regex', and no other fields", cfg.Action)
		}
	}
	re, err := regexp.Compile("^(?s:" + cfg.Regex + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q does not compile: %w", cfg.Regex, err)
	}
	return &Rule{cfg: cfg, re: re, names: names, defRe: cfg.Regex == DefaultRegex,
		tmplVar: hasVar(cfg.TargetLabel) || hasVar(cfg.Replacement)}, nil
}

// Process applies rules to the labels in b, in order, and reports whether
// the series (or target) is kept: false as soon as a rule drops it.
func Process(b *Builder, rules ...*Rule) bool {
	for _, r := range rules {
		if !r.apply(b) {
			return false
		}
	}
	return true
}

func (r *Rule) apply(b *Builder) bool {
	cfg := &r.cfg
	var val string
	switch len(cfg.SourceLabels) {
	case 0:
	case 1:
		val = b.Get(cfg.SourceLabels[0])
	default:
		var sb strings.Builder
		for i, n := range cfg.SourceLabels {
			if i > 0 {
				sb.WriteString(cfg.Separator)
			}
			sb.WriteString(b.Get(n))
		}
		val = sb.String()
	}
	switch cfg.Action {
	case Drop:
		if r.re.MatchString(val) {
			return false
		}
	case Keep:
		if !r.re.MatchString(val) {
			return false
		}
	case DropEqual:
		if b.Get(cfg.TargetLabel) == val {
			return false
		}
	case KeepEqual:
		if b.Get(cfg.TargetLabel) != val {
			return false
		}
	case Replace:
		// Prometheus' fast path to add or delete a label.
		if val == "" && r.defRe && !r.tmplVar {
			b.Set(cfg.TargetLabel, cfg.Replacement)
			break
		}
		idx := r.re.FindStringSubmatchIndex(val)
		if idx == nil {
			break
		}
		target := string(r.re.ExpandString(nil, cfg.TargetLabel, val, idx))
		if !r.names.ValidLabelName(target) {
			break
		}
		res := r.re.ExpandString(nil, cfg.Replacement, val, idx)
		if len(res) == 0 {
			b.Del(target)
			break
		}
		b.Set(target, string(res))
	case Lowercase:
		b.Set(cfg.TargetLabel, strings.ToLower(val))
	case Uppercase:
		b.Set(cfg.TargetLabel, strings.ToUpper(val))
	case HashMod:
		sum := md5.Sum([]byte(val))
		// The last 8 bytes, as Prometheus has always used.
		mod := binary.BigEndian.Uint64(sum[8:]) % cfg.Modulus
		b.Set(cfg.TargetLabel, strconv.FormatUint(mod, 10))
	case LabelMap:
		b.Range(func(l samples.Label) {
			if r.re.MatchString(l.Name) {
				b.Set(r.re.ReplaceAllString(l.Name, cfg.Replacement), l.Value)
			}
		})
	case LabelDrop:
		b.Range(func(l samples.Label) {
			if r.re.MatchString(l.Name) {
				b.Del(l.Name)
			}
		})
	case LabelKeep:
		b.Range(func(l samples.Label) {
			if !r.re.MatchString(l.Name) {
				b.Del(l.Name)
			}
		})
	default:
		panic(fmt.Sprintf("BUG: relabel: unknown action %q passed Compile", cfg.Action))
	}
	return true
}
