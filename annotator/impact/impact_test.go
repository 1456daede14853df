package impact

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.csv from the generator")

// scenarios are the committed fixtures.
func scenarios() []scenario {
	steady, heavy, ar := steadyRegime(), heavyRegime(), ar1Regime()
	return []scenario{
		{name: "steady", seed: 1, before: steady, after: steady, dayBefore: &steady, dayAfter: &steady},
		{name: "heavy_tail", seed: 2, before: heavy, after: heavy, dayBefore: &heavy, dayAfter: &heavy},
		{name: "ar1", seed: 3, before: ar, after: ar},
		{name: "regression", seed: 4, before: steady, after: regressedRegime(), dayBefore: &steady, dayAfter: &steady},
		{name: "improvement", seed: 5, before: steady, after: improvedRegime()},
		{name: "tiny_change", seed: 6, before: steady, after: tinyRegime()},
		{name: "low_traffic", seed: 7, before: lowRegime(), after: lowRegime()},
		{name: "missing_data", seed: 8, before: steady, after: regressedRegime(),
			gaps: []gap{{-9 * time.Minute, -6 * time.Minute}, {4 * time.Minute, 6 * time.Minute}}, missProb: 0.1},
		{name: "dark_after_deploy", seed: 9, before: steady, after: steady, gaps: []gap{{-time.Minute, 20 * time.Minute}}},
		{name: "daily_pattern", seed: 10, before: morningRegime(), after: busyRegime(), dayBefore: ptr(morningRegime()), dayAfter: ptr(busyRegime())},
	}
}

func ptr[T any](v T) *T { return &v }

// regressedRegime is the contingency switch of the demo: errors from 0.4%
// to about 2%, p50 ×1.6 and a much fatter tail (p99 about ×4); traffic,
// CPU and memory as before.
func regressedRegime() regime {
	r := steadyRegime()
	r.errRatio, r.latMedian, r.latSigma = 0.021, 0.056, 0.9
	return r
}

// improvedRegime has latency down by about half.
func improvedRegime() regime {
	r := steadyRegime()
	r.latMedian, r.latSigma = 0.019, 0.45
	return r
}

// tinyRegime is a real but small change: +8% traffic, +6% latency, +8%
// CPU per request.
func tinyRegime() regime {
	r := steadyRegime()
	r.rate *= 1.08
	r.latMedian *= 1.06
	r.cpuPerReq *= 1.08
	return r
}

// lowRegime is a service nobody calls: 0.05 req/s, 45 requests a window.
func lowRegime() regime {
	r := steadyRegime()
	r.rate = 0.05
	return r
}

// morningRegime and busyRegime are traffic before and after the morning
// ramp at deploy time, today and yesterday.
func morningRegime() regime { r := steadyRegime(); r.rate = 40; return r }
func busyRegime() regime    { r := steadyRegime(); r.rate = 60; return r }

// TestFixtures checks that testdata/ holds what the generator produces
// (-update rewrites it).
func TestFixtures(t *testing.T) {
	for _, sc := range scenarios() {
		got := generate(sc, Options{})
		data := got.encode()
		if *update {
			if err := os.WriteFile(fixturePath(sc.name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// Compare after a CSV round trip (values are written with 7 digits).
		gotRT, err := decodeFixture(data)
		if err != nil {
			t.Fatalf("%s: cannot decode generated fixture: %v", sc.name, err)
		}
		if err := sameFixture(loadFixture(t, sc.name), gotRT); err != nil {
			t.Errorf("%s: testdata differs from the generator (%v); run go test -run TestFixtures -update if the change is intended", sc.name, err)
		}
	}
}

func fixtureDeploy() Change {
	return Change{ID: "d-1", Service: fixtureService, Env: fixtureEnv, Time: fixtureDeployTime}
}

func fixtureOptions() Options {
	return Options{Now: func() time.Time { return fixtureDeployTime.Add(time.Hour) }}
}

func analyzeFixture(t testing.TB, name string, others []Change, opts Options) *Report {
	t.Helper()
	q := newFakeQuerier(loadFixture(t, name))
	r, err := Analyze(t.Context(), q, fixtureDeploy(), others, DefaultSignals(fixtureService, fixtureEnv), opts)
	if err != nil {
		t.Fatalf("%s: Analyze: %v", name, err)
	}
	return r
}

// verdicts lists the signal verdicts of r by name.
func verdicts(r *Report) map[string]Verdict {
	m := map[string]Verdict{}
	for _, s := range r.Signals {
		m[s.Name] = s.Verdict
	}
	return m
}

func signal(r *Report, name string) SignalReport {
	for _, s := range r.Signals {
		if s.Name == name {
			return s
		}
	}
	panic("no signal " + name)
}

func allSignals(v Verdict) map[string]Verdict {
	m := map[string]Verdict{}
	for _, n := range fixtureColumns {
		m[n] = v
	}
	return m
}

func with(m map[string]Verdict, kv ...any) map[string]Verdict {
	out := map[string]Verdict{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1].(Verdict)
	}
	return out
}

func describe(r *Report) string {
	var b strings.Builder
	for _, s := range r.Signals {
		fmt.Fprintf(&b, "\n  %-12s %-16s before=%v after=%v rel=%v p=%v boot=%v τ=%v note=%q", s.Name, s.Verdict,
			float64(s.Before.Median), float64(s.After.Median), float64(s.RelChange), float64(s.PValue), float64(s.BootstrapP), float64(s.Autocorr), s.Note)
	}
	return b.String()
}

func TestAnalyzeScenarios(t *testing.T) {
	f := func(name string, opts Options, want map[string]Verdict, wantOverall Verdict, check func(t *testing.T, r *Report)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			r := analyzeFixture(t, strings.Split(name, "/")[0], nil, opts)
			if got := verdicts(r); !mapsEqual(got, want) {
				t.Errorf("got verdicts %v; want %v%s", got, want, describe(r))
			}
			if r.Verdict != wantOverall {
				t.Errorf("got overall %q; want %q", r.Verdict, wantOverall)
			}
			if check != nil {
				check(t, r)
			}
		})
	}
	regressed3 := with(allSignals(Unchanged), SignalErrorRatio, Regressed, SignalP50Latency, Regressed, SignalP99Latency, Regressed)
	opts := fixtureOptions()

	f("steady", opts, allSignals(Unchanged), Unchanged, func(t *testing.T, r *Report) {
		if got, want := r.Summary(), "no significant change in 6 signals"; got != want {
			t.Errorf("got summary %q; want %q", got, want)
		}
		for _, s := range r.Signals {
			if s.DayBefore == nil || s.DayBefore.N < 50 {
				t.Errorf("%s: got day_before %+v; want stats of about 60 points", s.Name, s.DayBefore)
			}
			if s.Before.N != 60 || s.After.N != 60 {
				t.Errorf("%s: got n=%d/%d; want 60/60", s.Name, s.Before.N, s.After.N)
			}
		}
	})
	f("heavy_tail", opts, allSignals(Unchanged), Unchanged, nil)
	f("ar1", opts, allSignals(Unchanged), Unchanged, func(t *testing.T, r *Report) {
		if tau := float64(signal(r, SignalRequestRate).Autocorr); tau < 3 {
			t.Errorf("got request rate τ=%v; want ≥ 3 for AR(1) φ=0.9 noise", tau)
		}
	})
	f("regression", opts, regressed3, Regressed, func(t *testing.T, r *Report) {
		re := regexp.MustCompile(`^error ratio [0-9.]+% → [0-9.]+% ▲ regressed; p50 latency [0-9.]+ms → [0-9.]+ms ▲ regressed; p99 latency [0-9.]+ms → [0-9.]+ms ▲ regressed; no significant change in 3 signals$`)
		if got := r.Summary(); !re.MatchString(got) {
			t.Errorf("got summary %q; want it to match %s", got, re)
		}
		if got := r.Regressions(); got != 3 {
			t.Errorf("got %d regressions; want 3", got)
		}
		er := signal(r, SignalErrorRatio)
		if b, a := float64(er.Before.Median), float64(er.After.Median); !(b > 0.002 && b < 0.007 && a > 0.015 && a < 0.03) {
			t.Errorf("got error ratio %v → %v; want about 0.4%% → 2.1%%", b, a)
		}
		if !(float64(er.CILow) > 0) {
			t.Errorf("got error ratio CI [%v, %v]; want above 0", er.CILow, er.CIHigh)
		}
	})
	f("improvement", opts, with(allSignals(Unchanged), SignalP50Latency, Improved, SignalP99Latency, Improved), Improved, func(t *testing.T, r *Report) {
		if !strings.HasPrefix(r.Summary(), "p50 latency ") || !strings.Contains(r.Summary(), "▼ improved") {
			t.Errorf("got summary %q; want p50 latency ... ▼ improved first", r.Summary())
		}
		if got := r.Regressions(); got != 0 {
			t.Errorf("got %d regressions; want 0", got)
		}
	})
	f("tiny_change", opts, allSignals(Unchanged), Unchanged, func(t *testing.T, r *Report) {
		// The change must be statistically significant somewhere, or this
		// scenario would not show that the practical threshold holds it.
		n := 0
		for _, s := range r.Signals {
			if s.PValue < s.AlphaEach && s.BootstrapP < s.AlphaEach {
				n++
				if !strings.Contains(s.Note, "below the practical threshold") {
					t.Errorf("%s: got note %q; want it to say below the practical threshold", s.Name, s.Note)
				}
			}
		}
		if n == 0 {
			t.Errorf("got no statistically significant signal; want at least one (the scenario is too weak)%s", describe(r))
		}
	})
	f("low_traffic", opts, with(allSignals(NotEnoughData), SignalCPU, Unchanged, SignalMemory, Unchanged), NotEnoughData, func(t *testing.T, r *Report) {
		if b := float64(r.RequestsBefore); !(b > 10 && b < DefaultMinRequests) {
			t.Errorf("got requests before %v; want a few dozen", b)
		}
		if got := signal(r, SignalErrorRatio).Note; !strings.Contains(got, "requests before") {
			t.Errorf("got error ratio note %q; want it to mention the request counts", got)
		}
		want := "no significant change in 2 signals; not enough data for 4 signals (request rate, error ratio, p50 latency, p99 latency)"
		if got := r.Summary(); got != want {
			t.Errorf("got summary %q; want %q", got, want)
		}
	})
	f("missing_data", opts, regressed3, Regressed, func(t *testing.T, r *Report) {
		if !hasNaN(loadFixture(t, "missing_data")) {
			t.Fatal("got a fixture without NaN; want gaps")
		}
		if s := signal(r, SignalP99Latency); s.Before.N >= 60 || s.After.N >= 60 {
			t.Errorf("got p99 n=%d/%d; want fewer than 60 (gaps dropped)", s.Before.N, s.After.N)
		}
	})
	f("dark_after_deploy", opts, with(allSignals(NotEnoughData), SignalRequestRate, Changed), Changed, func(t *testing.T, r *Report) {
		if got := r.Summary(); !strings.HasPrefix(got, "request rate ") || !strings.Contains(got, "→ 0 req/s ▼ changed") {
			t.Errorf("got summary %q; want request rate ... → 0 req/s ▼ changed", got)
		}
		if got := r.Regressions(); got != 1 {
			t.Errorf("got %d regressions; want 1 (the traffic drop)", got)
		}
	})
	f("daily_pattern", opts, allSignals(Unchanged), Unchanged, func(t *testing.T, r *Report) {
		if s := signal(r, SignalRequestRate); !strings.Contains(s.Note, "daily pattern") || !(s.DayBeforeRelChange > 0.25) {
			t.Errorf("got request rate note %q day change %v; want the daily pattern noted and > 25%%", s.Note, s.DayBeforeRelChange)
		}
	})
	skip := opts
	skip.SkipDayBefore = true
	f("daily_pattern/without_day_before", skip, with(allSignals(Unchanged), SignalRequestRate, Changed, SignalCPU, Regressed), Regressed, func(t *testing.T, r *Report) {
		if s := signal(r, SignalRequestRate); s.DayBefore != nil {
			t.Errorf("got day_before %+v; want nil when skipped", s.DayBefore)
		}
	})
}

func mapsEqual(a, b map[string]Verdict) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestAnalyzeOverlapping(t *testing.T) {
	T := fixtureDeployTime
	others := []Change{
		{ID: "d-1", Service: fixtureService, Env: fixtureEnv, Time: T},                               // itself
		{ID: "d-3", Service: fixtureService, Env: fixtureEnv, Time: T.Add(12 * time.Minute)},         // after window
		{ID: "d-2", Service: fixtureService, Env: fixtureEnv, Time: T.Add(-5 * time.Minute)},         // before window
		{ID: "d-0", Service: fixtureService, Env: fixtureEnv, Time: T.Add(-time.Hour)},               // too early
		{ID: "x-1", Service: "search", Env: fixtureEnv, Time: T.Add(time.Minute)},                    // other service
		{ID: "s-1", Service: fixtureService, Env: "staging", Time: T.Add(time.Minute)},               // other env
		{ID: "d-4", Service: fixtureService, Env: fixtureEnv, Time: T.Add(16 * time.Minute)},         // after the window
		{ID: "y-1", Service: fixtureService, Env: fixtureEnv, Time: T.Add(-dayOffset + time.Minute)}, // day before
	}
	r := analyzeFixture(t, "steady", others, fixtureOptions())
	if want := []string{"d-2", "d-3"}; !slices.Equal(r.Overlapping, want) {
		t.Errorf("got overlapping %v; want %v", r.Overlapping, want)
	}
	if got, want := r.Summary(), "no significant change in 6 signals; low confidence: overlaps deploys d-2, d-3, changes may be theirs"; got != want {
		t.Errorf("got summary %q; want %q", got, want)
	}
	if r.Verdict != Unchanged {
		t.Errorf("got verdict %q; want unchanged (overlap still computes)", r.Verdict)
	}
	// With no overlap the list is empty, not nil, so JSON says [].
	r = analyzeFixture(t, "steady", nil, fixtureOptions())
	if r.Overlapping == nil || len(r.Overlapping) != 0 {
		t.Errorf("got overlapping %#v; want empty non-nil", r.Overlapping)
	}
}

// TestAnalyzeDayBeforeOverlapSkipsPattern: a deploy at the same time a day
// earlier makes the daily-pattern check unreliable, so it is skipped.
func TestAnalyzeDayBeforeOverlapSkipsPattern(t *testing.T) {
	others := []Change{{ID: "y-1", Service: fixtureService, Env: fixtureEnv, Time: fixtureDeployTime.Add(-dayOffset)}}
	r := analyzeFixture(t, "daily_pattern", others, fixtureOptions())
	s := signal(r, SignalRequestRate)
	if s.Verdict != Changed || !strings.Contains(s.Note, "daily-pattern check skipped") {
		t.Errorf("got %q note %q; want changed, daily-pattern check skipped", s.Verdict, s.Note)
	}
}

// TestNoFalseAlarms runs 200 seeds of each noise model with no change and
// requires every verdict to be unchanged. A companion run with a real
// regression shows the method is not simply blind.
func TestNoFalseAlarms(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	opts := fixtureOptions()
	opts.SkipDayBefore = true // no help from the daily-pattern check
	signals := DefaultSignals(fixtureService, fixtureEnv)
	for _, m := range []struct {
		name string
		r    regime
	}{{"steady", steadyRegime()}, {"heavy_tail", heavyRegime()}, {"ar1", ar1Regime()}} {
		t.Run(m.name, func(t *testing.T) {
			alarms, noisy, small := 0, 0, 0
			minP := 1.0
			for seed := range seeds {
				sc := scenario{name: m.name, seed: uint64(1000 + seed), before: m.r, after: m.r}
				r, err := Analyze(t.Context(), newFakeQuerier(generate(sc, opts)), fixtureDeploy(), nil, signals, opts)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range r.Signals {
					minP = math.Min(minP, float64(s.PValue))
					switch {
					case s.Verdict != Unchanged:
						alarms++
						t.Errorf("seed %d: %s got %s (%s → %s, p=%v, boot p=%v, τ=%v); want unchanged", sc.seed, s.Name, s.Verdict,
							formatValue(float64(s.Before.Median), s.Unit), formatValue(float64(s.After.Median), s.Unit), s.PValue, s.BootstrapP, s.Autocorr)
					case strings.Contains(s.Note, "not significantly"):
						noisy++
					case strings.Contains(s.Note, "below the practical"):
						small++
					}
				}
			}
			t.Logf("%s: %d seeds × %d signals: %d alarms; held back: %d practical-size moves as not significant, %d significant moves as too small; smallest p=%.2g",
				m.name, seeds, len(signals), alarms, noisy, small, minP)
		})
	}
	t.Run("regression_power", func(t *testing.T) {
		n := seeds / 4
		for seed := range n {
			sc := scenario{seed: uint64(5000 + seed), before: steadyRegime(), after: regressedRegime()}
			r, err := Analyze(t.Context(), newFakeQuerier(generate(sc, opts)), fixtureDeploy(), nil, signals, opts)
			if err != nil {
				t.Fatal(err)
			}
			want := with(allSignals(Unchanged), SignalErrorRatio, Regressed, SignalP50Latency, Regressed, SignalP99Latency, Regressed)
			if got := verdicts(r); !mapsEqual(got, want) {
				t.Errorf("seed %d: got %v; want %v%s", sc.seed, got, want, describe(r))
			}
		}
	})
}

func TestAnalyzeDeterministicJSON(t *testing.T) {
	a := analyzeFixture(t, "regression", nil, fixtureOptions())
	b := analyzeFixture(t, "regression", nil, fixtureOptions())
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("got different reports for the same input:\n%s\n%s", ja, jb)
	}
	var m map[string]any
	if err := json.Unmarshal(ja, &m); err != nil {
		t.Fatalf("report JSON does not decode: %v", err)
	}
	for _, k := range []string{"deploy_id", "window", "computed_at", "verdict", "signals", "overlapping", "summary"} {
		if _, ok := m[k]; !ok {
			t.Errorf("got JSON keys %v; want %q", keys(m), k)
		}
	}
	if m["window"] != "15m0s" || m["verdict"] != "regressed" || m["deploy_id"] != "d-1" {
		t.Errorf("got window=%v verdict=%v deploy_id=%v; want 15m0s, regressed, d-1", m["window"], m["verdict"], m["deploy_id"])
	}
	sig := m["signals"].([]any)[1].(map[string]any)
	for _, k := range []string{"name", "verdict", "before", "after", "day_before", "p_value", "rel_change", "abs_change", "unit", "note"} {
		if _, ok := sig[k]; !ok && k != "note" {
			t.Errorf("got signal JSON keys %v; want %q", keys(sig), k)
		}
	}
	if before := sig["before"].(map[string]any); before["n"] != 60.0 || before["median"] == nil || before["mean"] == nil {
		t.Errorf("got before %v; want median, mean and n=60", before)
	}
	// Round trip through the Go types.
	var back Report
	if err := json.Unmarshal(ja, &back); err != nil {
		t.Fatalf("cannot decode report: %v", err)
	}
	if back.Summary() != a.Summary() || back.Window != a.Window || len(back.Signals) != 6 {
		t.Errorf("got %q %v after a round trip; want %q %v", back.Summary(), back.Window, a.Summary(), a.Window)
	}
	// No day-before data: null.
	c := analyzeFixture(t, "ar1", nil, fixtureOptions())
	jc, _ := json.Marshal(c.Signals[0])
	if !strings.Contains(string(jc), `"day_before":null`) {
		t.Errorf("got %s; want day_before null without day-before data", jc)
	}
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func TestAnalyzeErrors(t *testing.T) {
	fx := loadFixture(t, "steady")
	sigs := DefaultSignals(fixtureService, fixtureEnv)
	f := func(name string, d Change, sigs []Signal, opts Options, want string) {
		t.Helper()
		_, err := Analyze(t.Context(), newFakeQuerier(fx), d, nil, sigs, opts)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v; want one containing %q", name, err, want)
		}
	}
	d := fixtureDeploy()
	opts := fixtureOptions()
	f("no id", Change{Time: d.Time}, sigs, opts, "no id")
	f("no time", Change{ID: "x"}, sigs, opts, "no time")
	f("no signals", d, nil, opts, "DefaultSignals")
	dup := append(slices.Clone(sigs), sigs[0])
	f("duplicate", d, dup, opts, `two signals are named "request rate"`)
	bad := slices.Clone(sigs)
	bad[1].Bad = "sideways"
	f("bad direction", d, bad, opts, "must be up, down or both")
	neg := slices.Clone(sigs)
	neg[2].MinRelChange = -1
	f("negative threshold", d, neg, opts, "must be a finite number ≥ 0")
	f("step too long", d, sigs, Options{Step: 5 * time.Minute, Now: opts.Now}, "use a shorter step")
	f("alpha", d, sigs, Options{Alpha: 2, Now: opts.Now}, "alpha 2 must be in (0, 1)")

	// Not due yet.
	early := Options{Now: func() time.Time { return d.Time.Add(10 * time.Minute) }}
	_, err := Analyze(t.Context(), newFakeQuerier(fx), d, nil, sigs, early)
	if !errors.Is(err, ErrNotDue) {
		t.Errorf("got %v; want ErrNotDue", err)
	}

	// Every query fails: an error. One fails: a note.
	q := newFakeQuerier(fx)
	for _, s := range sigs {
		q.fail[s.Name] = errors.New("storage is down")
	}
	if _, err := Analyze(t.Context(), q, d, nil, sigs, opts); err == nil || !strings.Contains(err.Error(), "all 6 signal queries failed") {
		t.Errorf("got %v; want all 6 signal queries failed", err)
	}
	q = newFakeQuerier(fx)
	q.fail[SignalMemory] = errors.New("too many samples")
	r, err := Analyze(t.Context(), q, d, nil, sigs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := signal(r, SignalMemory); s.Verdict != NotEnoughData || !strings.Contains(s.Note, "query failed: too many samples") {
		t.Errorf("got memory %q note %q; want not enough data with the query error", s.Verdict, s.Note)
	}

	// A cancelled context stops the analysis.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Analyze(ctx, newFakeQuerier(fx), d, nil, sigs, opts); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v; want context.Canceled", err)
	}
}

func TestDue(t *testing.T) {
	d := Change{ID: "d", Time: fixtureDeployTime}
	f := func(window, after time.Duration, want bool) {
		t.Helper()
		if got := Due(d, window, d.Time.Add(after)); got != want {
			t.Errorf("Due(window=%v, now=deploy+%v): got %v; want %v", window, after, got, want)
		}
	}
	f(0, 15*time.Minute, false) // the last samples may not have arrived
	f(0, 15*time.Minute+Grace-time.Nanosecond, false)
	f(0, 15*time.Minute+Grace, true)
	f(5*time.Minute, 5*time.Minute+Grace, true)
	f(5*time.Minute, 4*time.Minute, false)
	if got, want := DueAt(d, 0), d.Time.Add(DefaultWindow+Grace); !got.Equal(want) {
		t.Errorf("DueAt: got %v; want %v", got, want)
	}
}

func BenchmarkAnalyze(b *testing.B) {
	q := newFakeQuerier(loadFixture(b, "regression"))
	sigs := DefaultSignals(fixtureService, fixtureEnv)
	// 6 signals × 2 windows × 60 points, no longer history, no day before.
	opts := fixtureOptions()
	opts.History = opts.Window
	opts.SkipDayBefore = true
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(b.Context(), q, fixtureDeploy(), nil, sigs, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(sigs)*b.N)/b.Elapsed().Seconds(), "signals/s")
}

func BenchmarkAnalyzeDefaults(b *testing.B) {
	q := newFakeQuerier(loadFixture(b, "regression"))
	sigs := DefaultSignals(fixtureService, fixtureEnv)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(b.Context(), q, fixtureDeploy(), nil, sigs, fixtureOptions()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(sigs)*b.N)/b.Elapsed().Seconds(), "signals/s")
}
