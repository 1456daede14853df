package impact

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseConfigFull(t *testing.T) {
	data, err := os.ReadFile("testdata/config/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if c.Window != 20*time.Minute || c.Step != 30*time.Second {
		t.Errorf("got window %v step %v; want 20m 30s", c.Window, c.Step)
	}
	if o := c.Options(); o.Window != 20*time.Minute || o.Step != 30*time.Second {
		t.Errorf("got options %+v; want window 20m step 30s", o)
	}
	sigs := c.Signals("checkout", "prod")
	var names []string
	for _, s := range sigs {
		names = append(names, s.Name)
	}
	want := []string{"request rate", "error ratio", "p50 latency", "p99 latency", "cpu", "payment failures"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("got signals %v; want %v (memory disabled, custom appended)", names, want)
	}
	p99 := sigs[3]
	def := DefaultSignals("checkout", "prod")[3]
	if p99.MinRelChange != 0.5 || p99.MinAbsChange != 0.02 || p99.Query != def.Query || p99.Bad != Up || p99.Unit != UnitSeconds || !p99.PerRequest {
		t.Errorf("got retuned p99 %+v; want the default with threshold 0.5 and min_abs_change 0.02", p99)
	}
	pay := sigs[5]
	wantPay := Signal{Name: "payment failures", Query: `sum(rate(payments_failed_total{service="checkout",env="prod"}[1m]))`,
		Bad: Up, MinRelChange: 0.5, MinAbsChange: 0.05, BigAbsChange: 1, Unit: "1/s"}
	if pay != wantPay {
		t.Errorf("got %+v; want %+v", pay, wantPay)
	}
	// Other services get only the defaults; $service values are escaped.
	other := c.Signals(`we"ird`, "prod")
	if len(other) != 6 || !strings.Contains(other[0].Query, `service="we\"ird"`) {
		t.Errorf("got %d signals, query %s; want 6 defaults with an escaped service", len(other), other[0].Query)
	}
	search := c.Signals("search", `st\age`)
	if got := search[6].Query; !strings.Contains(got, `env="st\\age"`) || search[6].Bad != Down || !search[6].PerRequest {
		t.Errorf("got %+v; want env escaped, bad down, per request", search[6])
	}
	var nilConfig *Config
	if got := nilConfig.Signals("x", "y"); !reflect.DeepEqual(got, DefaultSignals("x", "y")) {
		t.Errorf("nil config: got %v; want the defaults", got)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "window: 15m\nstep: 15s\n"} {
		c, err := ParseConfig([]byte(in))
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", in, err)
		}
		if c.Window != DefaultWindow || c.Step != DefaultStep || len(c.Services) != 0 {
			t.Errorf("ParseConfig(%q): got %+v; want the defaults", in, c)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, err := ParseConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%q): got error %v; want one containing %q", in, err, want)
		}
	}
	unknown, err := os.ReadFile("testdata/config/unknown_key.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f(string(unknown), "field treshold not found")
	f("windw: 15m\n", "field windw not found")
	f("window: 900\n", "cannot decode deploy impact config")
	f("window: 10s\n", "window: 10s is outside [1m0s, 6h0m0s]")
	f("step: 500ms\n", "step: 500ms is below 1s")
	f("window: 6h\nstep: 1s\n", "points per window, need 10..1000")
	f("window: 15m\nstep: 5m\n", "points per window, need 10..1000")
	f("window: 15m\n---\nwindow: 20m\n", "more than one YAML document")
	f("services:\n  shop:\n    - name: x\n      query: up\n      bad: sideways\n", "services.shop[0].bad: \"sideways\" must be up, down or both")
	f("services:\n  shop:\n    - name: x\n      bad: up\n", "services.shop[0].query: missing")
	f("services:\n  shop:\n    - name: x\n      query: up\n", "services.shop[0].bad: missing")
	f("services:\n  shop:\n    - query: up\n      bad: up\n", "services.shop[0].name: missing")
	f("services:\n  shop:\n    - name: x\n      disabled: true\n", "is not a default signal")
	f("services:\n  shop:\n    - name: cpu\n      threshold: -1\n", "services.shop[0].threshold: -1 must be a finite number ≥ 0")
	f("services:\n  shop:\n    - name: cpu\n      min_abs_change: .nan\n", "min_abs_change: NaN must be")
	f("services:\n  shop:\n    - name: cpu\n    - name: cpu\n", `services.shop[1].name: "cpu" appears twice`)
	f("services:\n  \"\":\n    - name: cpu\n", "a service name is empty")
	f("services:\n  shop:\n    - name: "+strings.Repeat("n", 65)+"\n      query: up\n      bad: up\n", "limit 64")
	many := "services:\n  shop:\n"
	for i := range MaxSignalsPerService + 1 {
		many += "    - {name: s" + string(rune('a'+i)) + ", query: up, bad: up}\n"
	}
	f(many, "21 signals, limit 20")
	f(strings.Repeat("#", MaxConfigBytes+1), "over 1048576 bytes")
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "impact.yaml")
	if err := os.WriteFile(path, []byte("window: 30m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil || c.Window != 30*time.Minute {
		t.Errorf("LoadConfig: got %+v, %v; want window 30m", c, err)
	}
	if err := os.WriteFile(path, []byte("window: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadConfig(bad): got %v; want an error naming the file", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("LoadConfig(missing): got nil error; want one")
	}
}

// FuzzConfig: ParseConfig never panics; what it accepts gives valid,
// uniquely named signals for every service, and survives a YAML round trip.
func FuzzConfig(f *testing.F) {
	seeds, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/config: %v", err)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		check := func(c *Config) {
			for svc := range c.Services {
				seen := map[string]bool{}
				for _, s := range c.Signals(svc, "prod") {
					if err := s.validate(); err != nil {
						t.Fatalf("service %q: accepted config gives an invalid signal: %v", svc, err)
					}
					if seen[s.Name] {
						t.Fatalf("service %q: two signals named %q", svc, s.Name)
					}
					seen[s.Name] = true
				}
			}
		}
		check(c)
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("cannot marshal accepted config: %v", err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalized(c), normalized(back)) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}

// normalized makes empty and nil maps and slices alike, which YAML does
// not tell apart.
func normalized(c *Config) *Config {
	out := *c
	out.Services = nil
	for svc, sigs := range c.Services {
		if out.Services == nil {
			out.Services = map[string][]SignalConfig{}
		}
		if len(sigs) == 0 {
			sigs = nil
		}
		out.Services[svc] = sigs
	}
	return &out
}

func BenchmarkParseConfig(b *testing.B) {
	data, err := os.ReadFile("testdata/config/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConfig(data); err != nil {
			b.Fatal(err)
		}
	}
}
