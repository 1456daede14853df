package promq

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/telltale-dev/telltale/annotator/impact"
)

const (
	points   = 720 // 3h at 15s
	deployAt = 480 // index of the deploy: 2h after the start
)

// stepCounter is a counter growing by before per 15s until the deploy and
// by after from then on, in promqltest's load notation.
func stepCounter(labels string, before, after int) string {
	last := before * deployAt
	return fmt.Sprintf("  %s 0+%dx%d %d+%dx%d\n", labels, before, deployAt, last+after, after, points-deployAt-2)
}

// loadDemo is the demo service with its contingency switch flipped at the
// deploy: errors from 0.27% to 2%, latency up; traffic, CPU and memory flat.
func loadDemo() string {
	sel := `service="shop",env="prod",route="/",method="GET"`
	var b strings.Builder
	b.WriteString("load 15s\n")
	b.WriteString(stepCounter(`http_requests_total{`+sel+`,code="200"}`, 748, 735))
	b.WriteString(stepCounter(`http_requests_total{`+sel+`,code="500"}`, 2, 15))
	for _, bk := range []struct {
		le            string
		before, after int
	}{{"0.025", 300, 100}, {"0.05", 700, 400}, {"0.1", 740, 600}, {"0.25", 749, 700}, {"0.5", 750, 740}, {"1", 750, 750}, {"+Inf", 750, 750}} {
		b.WriteString(stepCounter(`http_request_duration_seconds_bucket{`+sel+`,le="`+bk.le+`"}`, bk.before, bk.after))
	}
	fmt.Fprintf(&b, "  process_cpu_seconds_total{service=\"shop\",env=\"prod\"} 0+1.5x%d\n", points-1)
	fmt.Fprintf(&b, "  process_resident_memory_bytes{service=\"shop\",env=\"prod\"} 157286400+0x%d\n", points-1)
	return b.String()
}

// TestDemoRegression runs the default signals through the real PromQL
// engine on the instrument library's metric names: the flipped switch must
// be regressed on exactly error ratio, p50 and p99 latency.
func TestDemoRegression(t *testing.T) {
	st := promqltest.LoadedStorage(t, loadDemo())
	engine := promqltest.NewTestEngine(t, false, 0, 50_000_000)
	q := New(engine, st)
	deploy := impact.Change{ID: "d-1", Service: "shop", Env: "prod", Time: time.Unix(deployAt*15, 0).UTC()}
	opts := impact.Options{Now: func() time.Time { return deploy.Time.Add(time.Hour) }}
	r, err := impact.Analyze(t.Context(), q, deploy, nil, impact.DefaultSignals("shop", "prod"), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]impact.Verdict{
		impact.SignalRequestRate: impact.Unchanged, impact.SignalErrorRatio: impact.Regressed,
		impact.SignalP50Latency: impact.Regressed, impact.SignalP99Latency: impact.Regressed,
		impact.SignalCPU: impact.Unchanged, impact.SignalMemory: impact.Unchanged,
	}
	for _, s := range r.Signals {
		if s.Verdict != want[s.Name] {
			t.Errorf("%s: got %s (%v → %v, p=%v, n=%d/%d, note %q); want %s", s.Name, s.Verdict,
				s.Before.Median, s.After.Median, s.PValue, s.Before.N, s.After.N, s.Note, want[s.Name])
		}
	}
	if got, want := r.Summary(), "error ratio 0.267% → 2% ▲ regressed; p50 latency 29.7ms → 47.9ms ▲ regressed; p99 latency 142ms → 625ms ▲ regressed; no significant change in 3 signals"; got != want {
		t.Errorf("got summary %q; want %q", got, want)
	}
}

func TestQueryRange(t *testing.T) {
	st := promqltest.LoadedStorage(t, loadDemo())
	q := New(promqltest.NewTestEngine(t, false, 0, 50_000_000), st)
	start := time.Unix(600, 0)
	// Two series (codes 200 and 500) are summed per step: 750 per 15s.
	got, err := q.QueryRange(t.Context(), `rate(http_requests_total[1m])`, start, start.Add(time.Minute), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("got %d values; want 5", len(got))
	}
	for i, v := range got {
		if math.Abs(v-50) > 1e-9 {
			t.Errorf("step %d: got %v; want 50 (the two series summed)", i, v)
		}
	}
	// No data before the first sample: NaN, not an error.
	got, err = q.QueryRange(t.Context(), `sum(rate(http_requests_total[1m]))`, time.Unix(-3600, 0), time.Unix(-3540, 0), 15*time.Second)
	if err != nil || len(got) != 5 || !math.IsNaN(got[0]) {
		t.Errorf("before the data: got %v, %v; want 5 NaN", got, err)
	}
	if _, err := q.QueryRange(t.Context(), `sum(rate(`, start, start, 15*time.Second); err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Errorf("bad query: got %v; want does not parse", err)
	}
	if _, err := q.QueryRange(t.Context(), `up`, start, start.Add(-time.Second), 15*time.Second); err == nil {
		t.Error("end before start: got nil error; want one")
	}
}
