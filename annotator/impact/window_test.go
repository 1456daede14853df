package impact

import (
	"strings"
	"testing"
	"time"
)

func TestStepFor(t *testing.T) {
	f := func(window, want time.Duration) {
		t.Helper()
		if got := StepFor(window); got != want {
			t.Errorf("StepFor(%v): got %v; want %v", window, got, want)
		}
		if n := window / StepFor(window); n < 10 || n > 1000 {
			t.Errorf("StepFor(%v) gives %d points; want 10..1000", window, n)
		}
	}
	f(time.Minute, time.Second)
	f(2*time.Minute, 2*time.Second)
	f(5*time.Minute, 5*time.Second)
	f(15*time.Minute, 15*time.Second)
	f(time.Hour, 15*time.Second)
	f(6*time.Hour, 22*time.Second) // 1440 points at 15s is over the 1000 limit
}

func TestRateWindowFor(t *testing.T) {
	f := func(window, step, want time.Duration) {
		t.Helper()
		if got := RateWindowFor(window, step); got != want {
			t.Errorf("RateWindowFor(%v, %v): got %v; want %v", window, step, got, want)
		}
	}
	f(15*time.Minute, 15*time.Second, time.Minute)
	f(2*time.Minute, 2*time.Second, 8*time.Second)
	f(time.Minute, time.Second, 4*time.Second)
	f(5*time.Minute, 15*time.Second, time.Minute) // four steps of 15s
	f(time.Hour, 15*time.Second, time.Minute)
}

func TestDefaultSignalsWith(t *testing.T) {
	def := DefaultSignals("shop", "prod")
	same := DefaultSignalsWith("shop", "prod", 0)
	short := DefaultSignalsWith("shop", "prod", 8*time.Second)
	for i := range def {
		if def[i] != same[i] {
			t.Errorf("%s: rate window 0: got %q; want the default %q", def[i].Name, same[i].Query, def[i].Query)
		}
		if strings.Contains(def[i].Query, "rate(") && !strings.Contains(def[i].Query, "[1m]") {
			t.Errorf("%s: default query %q lacks [1m]", def[i].Name, def[i].Query)
		}
		if got, want := short[i].Query, strings.ReplaceAll(def[i].Query, "[1m]", "[8s]"); got != want {
			t.Errorf("%s: got %q; want %q", def[i].Name, got, want)
		}
	}
	if got := promDuration(1500 * time.Millisecond); got != "1500ms" {
		t.Errorf("promDuration(1.5s): got %q; want 1500ms", got)
	}
}

func TestConfigWithWindow(t *testing.T) {
	f := func(yml string, window, wantStep time.Duration, wantRate string) {
		t.Helper()
		var c *Config
		if yml != "-" {
			var err error
			if c, err = ParseConfig([]byte(yml)); err != nil {
				t.Fatalf("ParseConfig(%q): %v", yml, err)
			}
		}
		got, err := c.WithWindow(window)
		if err != nil {
			t.Fatalf("WithWindow(%v) of %q: %v", window, yml, err)
		}
		if got.Window != window || got.Step != wantStep {
			t.Errorf("WithWindow(%v) of %q: got window %v step %v; want %v %v", window, yml, got.Window, got.Step, window, wantStep)
		}
		o := got.Options()
		if o.Window != window || o.Step != wantStep {
			t.Errorf("Options: got %v %v; want %v %v", o.Window, o.Step, window, wantStep)
		}
		if q := got.Signals("shop", "prod")[0].Query; !strings.Contains(q, "["+wantRate+"]") {
			t.Errorf("request rate query %q; want rate window [%s]", q, wantRate)
		}
		if c != nil && c.Window == window && got == c {
			t.Error("WithWindow returned c itself; want a copy")
		}
	}
	f("-", 15*time.Minute, 15*time.Second, "1m")
	f("-", 2*time.Minute, 2*time.Second, "8s")
	f("", 2*time.Minute, 2*time.Second, "8s")                        // the default 15s step would leave 8 points
	f("step: 30s\n", 20*time.Minute, 30*time.Second, "1m")           // 40 points: kept
	f("step: 30s\n", 10*time.Minute, 10*time.Second, "40s")          // 20 points: too few, derived
	f("rate_window: 20s\n", 2*time.Minute, 2*time.Second, "20s")     // an explicit rate window stays
	f("window: 2m\n", 3*time.Minute, 2*time.Second, "12s")           // the derived 2s step leaves 90 points: kept
	f("window: 2m\nstep: 4s\n", 2*time.Minute, 4*time.Second, "16s") // 30 points: kept

	var c *Config
	if _, err := c.WithWindow(30 * time.Second); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("WithWindow(30s): got %v; want outside [1m, 6h]", err)
	}
	big, _ := ParseConfig([]byte("rate_window: 5m\nwindow: 30m\n"))
	if _, err := big.WithWindow(2 * time.Minute); err == nil || !strings.Contains(err.Error(), "rate_window") {
		t.Errorf("WithWindow(2m) with rate_window 5m: got %v; want a rate_window error", err)
	}
}

func TestConfigRateWindow(t *testing.T) {
	c, err := ParseConfig([]byte("window: 2m\nservices:\n  shop:\n    - name: orders\n      query: sum(rate(orders_total{service=\"$service\"}[$rate_window]))\n      bad: down\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Step != 2*time.Second {
		t.Errorf("window 2m without step: got step %v; want 2s", c.Step)
	}
	sigs := c.Signals("shop", "prod")
	if got, want := sigs[len(sigs)-1].Query, `sum(rate(orders_total{service="shop"}[8s]))`; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	for _, bad := range []string{"rate_window: 500ms\n", "window: 2m\nrate_window: 3m\n"} {
		if _, err := ParseConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), "rate_window:") {
			t.Errorf("ParseConfig(%q): got %v; want a rate_window error", bad, err)
		}
	}
}
