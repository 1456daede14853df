package impact

import (
	"encoding/json"
	"math"
	"testing"
)

func TestFormatValue(t *testing.T) {
	f := func(v float64, unit, want string) {
		t.Helper()
		if got := formatValue(v, unit); got != want {
			t.Errorf("formatValue(%v, %q): got %q; want %q", v, unit, got, want)
		}
	}
	f(0.004, UnitRatio, "0.4%")
	f(0.021, UnitRatio, "2.1%")
	f(0.0001, UnitRatio, "0.01%")
	f(0.12345, UnitRatio, "12.3%")
	f(0, UnitRatio, "0%")
	f(1, UnitRatio, "100%")
	f(0.12, UnitSeconds, "120ms")
	f(0.48, UnitSeconds, "480ms")
	f(0.1234, UnitSeconds, "123ms")
	f(0.0004, UnitSeconds, "400µs")
	f(1.5, UnitSeconds, "1.5s")
	f(0, UnitSeconds, "0s")
	f(900, UnitSeconds, "15m0s")
	f(-0.005, UnitSeconds, "-5ms")
	f(50, UnitReqPerSec, "50 req/s")
	f(12.345, UnitReqPerSec, "12.3 req/s")
	f(1234.5, UnitReqPerSec, "1230 req/s")
	f(0.05, UnitReqPerSec, "0.05 req/s")
	f(512, UnitBytes, "512B")
	f(1536, UnitBytes, "1.5KiB")
	f(150<<20, UnitBytes, "150MiB")
	f(1.2*(1<<30), UnitBytes, "1.2GiB")
	f(3<<40, UnitBytes, "3TiB")
	f(0.42, UnitCores, "0.42 cores")
	f(3.14159, "", "3.14")
	f(2, "1/s", "2 1/s")
	f(9.996, "", "10")
	f(math.NaN(), UnitSeconds, "n/a")
	f(math.Inf(1), UnitRatio, "∞")
}

func TestFormatChanges(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %q; want %q", got, want)
		}
	}
	f(formatRel(0.35), "+35%")
	f(formatRel(-0.123), "-12%")
	f(formatRel(0), "0%")
	f(formatRel(math.Inf(1)), "up from 0")
	f(formatRel(math.NaN()), "n/a")
	f(formatDelta(0.001, UnitRatio), "+0.1 pp")
	f(formatDelta(-0.02, UnitRatio), "-2 pp")
	f(formatDelta(0.0164, UnitSeconds), "+16.4ms")
	f(formatP(3.8e-6), "3.8e-06")
	f(formatP(0.0213), "0.021")
	f(formatP(1), "1")
	f(thresholdText(DefaultSignals("a", "b")[1]), "±100% and ±0.1 pp, or ±1 pp")
	f(thresholdText(DefaultSignals("a", "b")[3]), "±20% and ±5ms")
}

func sr(name, unit string, v Verdict, before, after float64) SignalReport {
	return SignalReport{Name: name, Unit: unit, Verdict: v, Before: Stats{Median: Float(before)}, After: Stats{Median: Float(after)}}
}

func TestSummary(t *testing.T) {
	f := func(r *Report, want string, wantRegressions int) {
		t.Helper()
		if got := r.Summary(); got != want {
			t.Errorf("got summary %q; want %q", got, want)
		}
		if got := r.Regressions(); got != wantRegressions {
			t.Errorf("got %d regressions; want %d", got, wantRegressions)
		}
	}
	f(&Report{Signals: []SignalReport{
		sr("request rate", UnitReqPerSec, Unchanged, 50, 51),
		sr("error ratio", UnitRatio, Regressed, 0.004, 0.021),
		sr("p50 latency", UnitSeconds, Unchanged, 0.04, 0.041),
		sr("p99 latency", UnitSeconds, Regressed, 0.12, 0.48),
		sr("cpu", UnitCores, Unchanged, 0.4, 0.4),
		sr("memory", UnitBytes, Unchanged, 150<<20, 151<<20),
	}}, "error ratio 0.4% → 2.1% ▲ regressed; p99 latency 120ms → 480ms ▲ regressed; no significant change in 4 signals", 2)

	six := make([]SignalReport, 6)
	for i := range six {
		six[i] = sr("s", "", Unchanged, 1, 1)
	}
	f(&Report{Signals: six}, "no significant change in 6 signals", 0)
	f(&Report{Signals: six[:1]}, "no significant change in 1 signal", 0)

	// Regressed before changed before improved, whatever the signal order;
	// then counts; then the overlap.
	f(&Report{Signals: []SignalReport{
		sr("p50 latency", UnitSeconds, Improved, 0.08, 0.05),
		sr("request rate", UnitReqPerSec, Changed, 50, 12),
		sr("memory", UnitBytes, NotEnoughData, math.NaN(), math.NaN()),
		sr("custom", "", Regressed, 1, 3),
		sr("cpu", UnitCores, Unchanged, 0.4, 0.4),
	}, Overlapping: []string{"d-9"}},
		"custom 1 → 3 ▲ regressed; request rate 50 req/s → 12 req/s ▼ changed; p50 latency 80ms → 50ms ▼ improved; no significant change in 1 signal; not enough data for 1 signal (memory); low confidence: overlaps deploy d-9, changes may be theirs", 2)
	f(&Report{}, "no signals", 0)
}

func TestFloatJSON(t *testing.T) {
	b, err := json.Marshal(struct{ A, B, C, D Float }{Float(math.NaN()), Float(math.Inf(1)), 1.5, 0})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"A":null,"B":null,"C":1.5,"D":0}`; got != want {
		t.Errorf("got %s; want %s", got, want)
	}
	var v struct{ A, C Float }
	if err := json.Unmarshal([]byte(`{"A":null,"C":2.5}`), &v); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(v.A)) || v.C != 2.5 {
		t.Errorf("got %v %v; want NaN 2.5", v.A, v.C)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"15m"`), &d); err != nil || d != Duration(DefaultWindow) {
		t.Errorf("got %v, %v; want 15m", d, err)
	}
	if err := json.Unmarshal([]byte(`900`), &d); err == nil {
		t.Error("got nil error for a number; want one")
	}
}
