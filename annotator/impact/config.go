package impact

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits of the YAML config.
const (
	MaxConfigBytes       = 1 << 20
	MaxConfigServices    = 1000
	MaxSignalsPerService = 20
	MaxSignalQueryBytes  = 4096
	MaxSignalNameBytes   = 64
	minConfigWindow      = time.Minute
	maxConfigWindow      = 6 * time.Hour
)

// Config is the YAML file that tunes deploy impact:
//
//	window: 15m        # before/after window; default 15m, 1m..6h
//	step: 15s          # query resolution; default StepFor(window): 15s for 15m; window/step in 10..1000
//	rate_window: 1m    # rate() window of the default signals; default RateWindowFor(window, step): 1m for 15m
//	services:
//	  checkout:        # the deploy's service name
//	    - name: payment failures
//	      query: sum(rate(payments_failed_total{service="$service",env="$env"}[1m]))
//	      bad: up      # up, down or both
//	      threshold: 0.5         # min relative change of the median (0.5 = 50%)
//	      min_abs_change: 0.05   # optional absolute floor, in unit
//	      unit: "1/s"            # optional: req/s, ratio, s, bytes, cores or free text
//	    - name: p99 latency      # a default signal's name: retune it
//	      threshold: 0.5
//	    - name: memory
//	      disabled: true         # or drop it
//
// $service and $env in a query are replaced by the deploy's (escaped for a
// PromQL string), $rate_window by the rate window ("1m"). Unknown keys are errors. Use ParseConfig or LoadConfig,
// which validate.
type Config struct {
	Window time.Duration `yaml:"window"`
	Step   time.Duration `yaml:"step"`
	// RateWindow is the rate() window of the default signals and of
	// $rate_window in configured queries; 0 means RateWindowFor(Window,
	// Step).
	RateWindow time.Duration             `yaml:"rate_window,omitempty"`
	Services   map[string][]SignalConfig `yaml:"services"`
}

// minStepPoints is the least number of steps per window WithWindow keeps a
// configured step for.
const minStepPoints = 30

// StepFor is the default query step for a window: a sixtieth of it in
// whole seconds, between 1s and 15s (15s for the default 15m window), and
// long enough that a window has at most 1000 steps.
func StepFor(window time.Duration) time.Duration {
	s := (window / 60).Truncate(time.Second)
	s = min(max(s, time.Second), DefaultStep)
	if window/s > 1000 {
		s = (window/1000 + time.Second - 1).Truncate(time.Second) // round up
	}
	return s
}

// RateWindowFor is the default rate() window for a window and step: a
// fifteenth of the window, at least four steps, at most 1m (1m for the
// default 15m window at 15s). A short window needs a short rate window, or
// each value averages over most of the window and the before and after
// windows blur into each other; it should still cover four scrape or push
// intervals of the service, so a 2m window suits services that push every
// second or two.
func RateWindowFor(window, step time.Duration) time.Duration {
	return min(DefaultRateWindow, max(window/15, 4*step))
}

// SignalConfig is one signal of a service in the YAML config. A name that
// is a default signal's retunes it (query optional, unset fields keep the
// default); any other name adds a signal and needs query and bad.
type SignalConfig struct {
	Name         string    `yaml:"name"`
	Query        string    `yaml:"query,omitempty"`
	Bad          Direction `yaml:"bad,omitempty"`
	Threshold    *float64  `yaml:"threshold,omitempty"`
	MinAbsChange *float64  `yaml:"min_abs_change,omitempty"`
	BigAbsChange *float64  `yaml:"big_abs_change,omitempty"`
	Unit         string    `yaml:"unit,omitempty"`
	PerRequest   *bool     `yaml:"per_request,omitempty"`
	Disabled     bool      `yaml:"disabled,omitempty"`
}

// LoadConfig reads and parses the YAML config at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open deploy impact config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read deploy impact config %q: %w", path, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates a YAML config strictly: unknown keys,
// a second document and out-of-range values are errors naming the key.
// Empty input gives the defaults.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("deploy impact config is over %d bytes: split it or drop unused services", MaxConfigBytes)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("cannot decode deploy impact config (keys: window, step, rate_window, services.<service>[].{name, query, bad, threshold, min_abs_change, big_abs_change, unit, per_request, disabled}): %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("deploy impact config has more than one YAML document: keep one")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Step == 0 {
		c.Step = StepFor(c.Window)
	}
	return &c, nil
}

// WithWindow returns a copy of c with the window set elsewhere (the
// collector's -impact.window flag): c's step is kept when it leaves at
// least 30 steps per window, else it becomes StepFor(window); a rate
// window c does not set follows the new window. A nil c means the
// defaults.
func (c *Config) WithWindow(window time.Duration) (*Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	if window < minConfigWindow || window > maxConfigWindow {
		return nil, fmt.Errorf("window %v is outside [%v, %v]; 15m suits most services", window, minConfigWindow, maxConfigWindow)
	}
	out.Window = window
	if out.Step == 0 || window/out.Step < minStepPoints {
		out.Step = StepFor(window)
	}
	if err := out.validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

// EffectiveRateWindow is the configured rate window or the default for the window
// and step.
func (c *Config) EffectiveRateWindow() time.Duration {
	if c == nil {
		return DefaultRateWindow
	}
	if c.RateWindow > 0 {
		return c.RateWindow
	}
	w, s := c.Window, c.Step
	if w == 0 {
		w = DefaultWindow
	}
	if s == 0 {
		s = StepFor(w)
	}
	return RateWindowFor(w, s)
}

func (c *Config) validate() error {
	w, s := c.Window, c.Step
	if w == 0 {
		w = DefaultWindow
	}
	if s == 0 {
		s = StepFor(w)
	}
	switch {
	case w < minConfigWindow || w > maxConfigWindow:
		return fmt.Errorf("window: %v is outside [%v, %v]; 15m suits most services", c.Window, minConfigWindow, maxConfigWindow)
	case s < time.Second:
		return fmt.Errorf("step: %v is below 1s; use 15s or 30s", c.Step)
	case w/s < 10 || w/s > 1000:
		return fmt.Errorf("step: window %v / step %v gives %d points per window, need 10..1000: change step", w, s, w/s)
	case c.RateWindow != 0 && (c.RateWindow < time.Second || c.RateWindow > w):
		return fmt.Errorf("rate_window: %v must be in [1s, window %v]; leave it out for %v", c.RateWindow, w, RateWindowFor(w, s))
	case len(c.Services) > MaxConfigServices:
		return fmt.Errorf("services: %d services, limit %d", len(c.Services), MaxConfigServices)
	}
	defaults := DefaultSignals("", "")
	for svc, sigs := range c.Services {
		if strings.TrimSpace(svc) == "" {
			return errors.New("services: a service name is empty: use the service label of its deploys")
		}
		if len(sigs) > MaxSignalsPerService {
			return fmt.Errorf("services.%s: %d signals, limit %d: each one dilutes the others' significance", svc, len(sigs), MaxSignalsPerService)
		}
		seen := map[string]bool{}
		for i, sc := range sigs {
			key := fmt.Sprintf("services.%s[%d]", svc, i)
			if err := sc.validate(key, defaults); err != nil {
				return err
			}
			if seen[sc.Name] {
				return fmt.Errorf("%s.name: %q appears twice for service %q: names must be unique", key, sc.Name, svc)
			}
			seen[sc.Name] = true
		}
	}
	return nil
}

func (sc SignalConfig) validate(key string, defaults []Signal) error {
	isDefault := slices.ContainsFunc(defaults, func(s Signal) bool { return s.Name == sc.Name })
	switch {
	case strings.TrimSpace(sc.Name) == "":
		return fmt.Errorf("%s.name: missing: every signal needs a name", key)
	case len(sc.Name) > MaxSignalNameBytes:
		return fmt.Errorf("%s.name: %d bytes, limit %d", key, len(sc.Name), MaxSignalNameBytes)
	case len(sc.Query) > MaxSignalQueryBytes:
		return fmt.Errorf("%s.query: %d bytes, limit %d: use a recording rule", key, len(sc.Query), MaxSignalQueryBytes)
	case sc.Bad != "" && !sc.Bad.valid():
		return fmt.Errorf("%s.bad: %q must be up, down or both", key, sc.Bad)
	case sc.Disabled && !isDefault:
		return fmt.Errorf("%s.disabled: %q is not a default signal (%s): just remove it", key, sc.Name, defaultNames(defaults))
	case !isDefault && strings.TrimSpace(sc.Query) == "":
		return fmt.Errorf("%s.query: missing for %q (only the default signals %s may omit it)", key, sc.Name, defaultNames(defaults))
	case !isDefault && sc.Bad == "":
		return fmt.Errorf("%s.bad: missing for %q: say which direction is bad: up, down or both", key, sc.Name)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"threshold", sc.Threshold}, {"min_abs_change", sc.MinAbsChange}, {"big_abs_change", sc.BigAbsChange}} {
		if f.v != nil && (!(*f.v >= 0) || math.IsInf(*f.v, 0)) {
			return fmt.Errorf("%s.%s: %v must be a finite number ≥ 0", key, f.name, *f.v)
		}
	}
	return nil
}

func defaultNames(defaults []Signal) string {
	names := make([]string, len(defaults))
	for i, s := range defaults {
		names[i] = fmt.Sprintf("%q", s.Name)
	}
	return strings.Join(names, ", ")
}

// Signals returns the signals for a deploy of service in env: the defaults
// as retuned or disabled by the config, then the service's own signals in
// config order. A nil Config gives DefaultSignals.
func (c *Config) Signals(service, env string) []Signal {
	rw := c.EffectiveRateWindow()
	sigs := DefaultSignalsWith(service, env, rw)
	if c == nil {
		return sigs
	}
	for _, sc := range c.Services[service] {
		i := slices.IndexFunc(sigs, func(s Signal) bool { return s.Name == sc.Name })
		if sc.Disabled {
			if i >= 0 {
				sigs = slices.Delete(sigs, i, i+1)
			}
			continue
		}
		s := Signal{Name: sc.Name}
		if i >= 0 {
			s = sigs[i]
		}
		if sc.Query != "" {
			s.Query = expand(sc.Query, service, env, rw)
		}
		if sc.Bad != "" {
			s.Bad = sc.Bad
		}
		if sc.Threshold != nil {
			s.MinRelChange = *sc.Threshold
		}
		if sc.MinAbsChange != nil {
			s.MinAbsChange = *sc.MinAbsChange
		}
		if sc.BigAbsChange != nil {
			s.BigAbsChange = *sc.BigAbsChange
		}
		if sc.Unit != "" {
			s.Unit = sc.Unit
		}
		if sc.PerRequest != nil {
			s.PerRequest = *sc.PerRequest
		}
		if i >= 0 {
			sigs[i] = s
		} else {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// Options returns Analyze options with the config's window and step.
func (c *Config) Options() Options {
	if c == nil {
		return Options{}
	}
	return Options{Window: c.Window, Step: c.Step}
}
