// Package slo turns service level objectives, written per service in a
// small YAML file, into Prometheus rules: for every service, recording
// rules of its error ratio and slow-request ratio over each window, and
// multi-window multi-burn-rate alerts on both (the Google SRE workbook's
// "alerting on SLOs", chapter 5), over the request metrics the instrument
// library exports (http_requests_total{code}, and the
// http_request_duration_seconds histogram).
//
// A config:
//
//	interval: 30s              # evaluation interval of the generated groups
//	services:
//	  - service: shop
//	    env: prod              # optional: only this env (default: every env, each alerting on its own)
//	    availability: 99.5     # % of requests not answered 5xx
//	    latency:
//	      threshold: 0.25      # seconds: a bucket bound of http_request_duration_seconds
//	      target: 99           # % of requests faster than threshold
//	windows:                   # optional: default DefaultWindows (30-day budget)
//	  - {severity: page, long: 1h, short: 5m, burn_rate: 14.4, for: 2m}
//
// Promises: the output is deterministic (same config, same bytes), passes
// the collector's rule check, and every alert reads only the recording
// rules generated with it. Bad configs are refused with the key, the
// service and what to write instead; unknown keys are errors.
package slo

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"gopkg.in/yaml.v3"
)

// Config is an SLO file.
type Config struct {
	// Interval evaluates the generated groups; default 30s.
	Interval model.Duration `yaml:"interval,omitempty"`
	Services []Service      `yaml:"services"`
	// Windows are the burn-rate windows; default DefaultWindows.
	Windows []Window `yaml:"windows,omitempty"`
}

// Service is the objectives of one service.
type Service struct {
	Service string `yaml:"service"`
	// Env, when set, limits the objectives to that env.
	Env string `yaml:"env,omitempty"`
	// Availability is the % of requests that must not be answered 5xx
	// (e.g. 99.5); 0 means no availability objective.
	Availability float64 `yaml:"availability,omitempty"`
	// Latency is the latency objective; nil means none.
	Latency *Latency `yaml:"latency,omitempty"`
}

// Latency is a latency objective: Target % of requests take at most
// Threshold seconds.
type Latency struct {
	// Threshold in seconds must be an upper bound (le) of a bucket of
	// http_request_duration_seconds; instrument's default buckets are
	// 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10.
	Threshold float64 `yaml:"threshold"`
	Target    float64 `yaml:"target"`
}

// Window is one burn-rate alert condition: the budget burns at least
// BurnRate times too fast over both the Long and the Short window.
type Window struct {
	Severity string         `yaml:"severity"`
	Long     model.Duration `yaml:"long"`
	Short    model.Duration `yaml:"short"`
	BurnRate float64        `yaml:"burn_rate"`
	// For is how long the condition must hold; the alert of a severity
	// uses the shortest For of its windows.
	For model.Duration `yaml:"for,omitempty"`
}

// DefaultWindows are the SRE workbook's windows for a 30-day budget: page
// when 2% of it is spent in an hour or 5% in six hours, open a ticket when
// 10% is spent in a day or three days.
var DefaultWindows = []Window{
	{Severity: "page", Long: dur(time.Hour), Short: dur(5 * time.Minute), BurnRate: 14.4, For: dur(2 * time.Minute)},
	{Severity: "page", Long: dur(6 * time.Hour), Short: dur(30 * time.Minute), BurnRate: 6, For: dur(2 * time.Minute)},
	{Severity: "ticket", Long: dur(24 * time.Hour), Short: dur(2 * time.Hour), BurnRate: 3, For: dur(15 * time.Minute)},
	{Severity: "ticket", Long: dur(3 * 24 * time.Hour), Short: dur(6 * time.Hour), BurnRate: 1, For: dur(15 * time.Minute)},
}

func dur(d time.Duration) model.Duration { return model.Duration(d) }

// Metric names the generated rules read and write.
const (
	RequestsMetric = "http_requests_total"
	BucketMetric   = "http_request_duration_seconds_bucket"
	CountMetric    = "http_request_duration_seconds_count"

	// ErrorRatioRecord and SlowRatioRecord are the recorded ratios, with
	// the window appended: service_env:slo_errors:ratio_rate5m.
	ErrorRatioRecord = "service_env:slo_errors:ratio_rate"
	SlowRatioRecord  = "service_env:slo_slow_requests:ratio_rate"

	// Alert names; labels slo (availability or latency) and severity tell
	// them apart further.
	ErrorBudgetAlert   = "SLOErrorBudgetBurn"
	LatencyBudgetAlert = "SLOLatencyBudgetBurn"
)

// Parse decodes and checks an SLO file strictly.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("SLO file: %w; keys are interval, services (service, env, availability, latency: threshold, target) and windows (severity, long, short, burn_rate, for)", err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

var labelValue = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func (c *Config) check() error {
	if c.Interval < 0 {
		return errors.New("SLO file: interval must be positive, e.g. 30s")
	}
	if len(c.Services) == 0 {
		return errors.New("SLO file: services is empty: list at least one service with its availability or latency objective")
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		where := fmt.Sprintf("SLO file: services[%d] (%s)", i, s.Service)
		if !labelValue.MatchString(s.Service) {
			return fmt.Errorf("%s: service must be the service label's value, 1-128 characters of [A-Za-z0-9._-]", where)
		}
		if s.Env != "" && !labelValue.MatchString(s.Env) {
			return fmt.Errorf("%s: env must be the env label's value, 1-128 characters of [A-Za-z0-9._-]", where)
		}
		key := s.Service + "/" + s.Env
		if seen[key] {
			return fmt.Errorf("%s: service and env are listed twice: merge the entries", where)
		}
		seen[key] = true
		if s.Availability == 0 && s.Latency == nil {
			return fmt.Errorf("%s: no objective: set availability (e.g. 99.5) or latency (threshold and target)", where)
		}
		if s.Availability != 0 && !percent(s.Availability) {
			return fmt.Errorf("%s: availability %v is not a percentage above 0 and below 100, e.g. 99.5", where, s.Availability)
		}
		if l := s.Latency; l != nil {
			if !(l.Threshold > 0) || math.IsInf(l.Threshold, 0) {
				return fmt.Errorf("%s: latency threshold %v must be a positive number of seconds, the bound of a histogram bucket such as 0.25", where, l.Threshold)
			}
			if !percent(l.Target) {
				return fmt.Errorf("%s: latency target %v is not a percentage above 0 and below 100, e.g. 99", where, l.Target)
			}
		}
	}
	for i, w := range c.windows() {
		where := fmt.Sprintf("SLO file: windows[%d]", i)
		if !labelValue.MatchString(w.Severity) {
			return fmt.Errorf("%s: severity must be a label value such as page or ticket", where)
		}
		if w.Short <= 0 || w.Long <= w.Short {
			return fmt.Errorf("%s: want 0 < short < long, got short %s and long %s", where, w.Short, w.Long)
		}
		if !(w.BurnRate > 0) || math.IsInf(w.BurnRate, 0) {
			return fmt.Errorf("%s: burn_rate %v must be a positive number, e.g. 14.4", where, w.BurnRate)
		}
		if w.For < 0 {
			return fmt.Errorf("%s: for must not be negative", where)
		}
	}
	return nil
}

func percent(v float64) bool { return v > 0 && v < 100 }

func (c *Config) windows() []Window {
	if len(c.Windows) == 0 {
		return DefaultWindows
	}
	return c.Windows
}

// Groups generates one rule group per service: the recording rules of its
// ratios over every window, then its burn-rate alerts per severity.
func (c *Config) Groups() rulefmt.RuleGroups {
	interval := c.Interval
	if interval == 0 {
		interval = dur(30 * time.Second)
	}
	ws := c.windows()
	var ranges []model.Duration // every window, shortest first, once
	for _, w := range ws {
		for _, d := range []model.Duration{w.Short, w.Long} {
			if !slices.Contains(ranges, d) {
				ranges = append(ranges, d)
			}
		}
	}
	slices.Sort(ranges)
	var severities []string
	for _, w := range ws {
		if !slices.Contains(severities, w.Severity) {
			severities = append(severities, w.Severity)
		}
	}

	var out rulefmt.RuleGroups
	for _, s := range c.Services {
		sel := fmt.Sprintf(`service=%q`, s.Service)
		name := "slo-" + s.Service
		if s.Env != "" {
			sel += fmt.Sprintf(`,env=%q`, s.Env)
			name += "-" + s.Env
		}
		g := rulefmt.RuleGroup{Name: name, Interval: interval}
		if s.Availability != 0 {
			for _, r := range ranges {
				total := fmt.Sprintf("sum by (service, env) (rate(%s{%s}[%s]))", RequestsMetric, sel, r)
				errs := fmt.Sprintf(`sum by (service, env) (rate(%s{%s,code=~"5.."}[%s]))`, RequestsMetric, sel, r)
				g.Rules = append(g.Rules, rulefmt.Rule{
					Record: ErrorRatioRecord + r.String(),
					// "or total * 0": the ratio is 0, not absent, while
					// nothing fails.
					Expr: fmt.Sprintf("(%s\n  or\n%s * 0)\n/\n%s", errs, total, total),
				})
			}
		}
		if s.Latency != nil {
			le := leMatcher(s.Latency.Threshold)
			for _, r := range ranges {
				fast := fmt.Sprintf("sum by (service, env) (rate(%s{%s,%s}[%s]))", BucketMetric, sel, le, r)
				all := fmt.Sprintf("sum by (service, env) (rate(%s{%s}[%s]))", CountMetric, sel, r)
				g.Rules = append(g.Rules, rulefmt.Rule{
					Record: SlowRatioRecord + r.String(),
					Expr:   fmt.Sprintf("1 - (\n%s\n/\n%s)", fast, all),
				})
			}
		}
		for _, sev := range severities {
			if s.Availability != 0 {
				g.Rules = append(g.Rules, burnAlert(ErrorBudgetAlert, "availability", ErrorRatioRecord, sel, sev, ws,
					1-s.Availability/100,
					fmt.Sprintf("{{ $labels.service }} in {{ $labels.env }} fails {{ $value | humanizePercentage }} of its requests: its error budget (availability objective %s%%) burns too fast", fmtNum(s.Availability))))
			}
			if s.Latency != nil {
				g.Rules = append(g.Rules, burnAlert(LatencyBudgetAlert, "latency", SlowRatioRecord, sel, sev, ws,
					1-s.Latency.Target/100,
					fmt.Sprintf("{{ $labels.service }} in {{ $labels.env }} answers {{ $value | humanizePercentage }} of its requests slower than %s s: its latency budget (%s%% within %s s) burns too fast", fmtNum(s.Latency.Threshold), fmtNum(s.Latency.Target), fmtNum(s.Latency.Threshold))))
			}
		}
		out.Groups = append(out.Groups, g)
	}
	return out
}

// burnAlert is the alert of one SLO and severity: any of the severity's
// windows burning over both its long and short range.
func burnAlert(name, slo, record, sel, severity string, ws []Window, budget float64, summary string) rulefmt.Rule {
	var conds, desc []string
	var hold model.Duration = -1
	for _, w := range ws {
		if w.Severity != severity {
			continue
		}
		th := fmtNum(w.BurnRate) + " * " + fmtNum(roundBudget(budget))
		conds = append(conds, fmt.Sprintf("(\n  %s%s{%s} > (%s)\nand\n  %s%s{%s} > (%s)\n)",
			record, w.Long, sel, th, record, w.Short, sel, th))
		desc = append(desc, fmt.Sprintf("%s× over %s and %s", fmtNum(w.BurnRate), w.Long, w.Short))
		if hold < 0 || w.For < hold {
			hold = w.For
		}
	}
	return rulefmt.Rule{
		Alert: name,
		Expr:  strings.Join(conds, "\nor\n"),
		For:   max(hold, 0),
		Labels: map[string]string{
			"severity": severity,
			"slo":      slo,
		},
		Annotations: map[string]string{
			"summary":     summary,
			"description": fmt.Sprintf("The %s budget is %s of requests; the burn rate is the observed share divided by it. This alert fires at a burn rate of %s.", slo, fmtPct(budget), strings.Join(desc, "; ")),
		},
	}
}

// leMatcher matches the bucket bound v as clients write it: "0.25", and
// both "1" and "1.0" for whole numbers (Prometheus 3 normalises le).
func leMatcher(v float64) string {
	s := fmtNum(v)
	if v == math.Trunc(v) {
		return fmt.Sprintf(`le=~"%s|%s\\.0"`, s, s)
	}
	return fmt.Sprintf(`le="%s"`, s)
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// roundBudget drops float noise such as 0.0050000000000000044.
func roundBudget(v float64) float64 { return math.Round(v*1e9) / 1e9 }

func fmtPct(v float64) string { return fmtNum(roundBudget(v)*100) + "%" }

// Header starts every generated file.
const Header = "# Generated by `collector slo-rules` from the SLO file named below; do not edit.\n# Regenerate: go run ./collector slo-rules FILE > OUT\n"

// Render generates the rule file for the config, marked as generated from
// source.
func (c *Config) Render(source string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(Header)
	b.WriteString("# Source: " + source + "\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Groups()); err != nil {
		return nil, fmt.Errorf("BUG: cannot render SLO rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
