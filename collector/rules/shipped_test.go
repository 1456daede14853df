package rules

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	promrules "github.com/prometheus/prometheus/rules"
)

// TestShippedRulesFire runs rules/telltale.rules.yml over 90 minutes of
// synthetic data in which each alert's cause happens once, and checks that
// each fires for its cause (with the labels that name it) and no other.
func TestShippedRulesFire(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "rules", "telltale.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, t.TempDir(), string(src), nil)
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	regressedAt := start.Add(20 * time.Minute)
	silentFrom := start.Add(30 * time.Minute)
	fillFrom := start.Add(10 * time.Minute)
	rejectFrom := start.Add(40 * time.Minute)
	const gb = 1 << 30
	firing := map[string]time.Time{} // alertname/key label -> first firing time
	var rejected float64
	for ts := start; ts.Before(start.Add(90 * time.Minute)); ts = ts.Add(10 * time.Second) {
		for _, inst := range []string{"a", "b"} {
			if inst == "a" && !ts.Before(silentFrom) {
				continue // host a goes silent
			}
			h.write("node_boot_time_seconds", map[string]string{"job": "node", "instance": inst}, ts, 1.7e9)
			avail := 60.0 * gb
			if inst == "b" && ts.After(fillFrom) {
				avail = 30*gb - ts.Sub(fillFrom).Hours()*10*gb // 10 GB an hour off 30 GB free
			}
			fs := map[string]string{"job": "node", "instance": inst, "mountpoint": "/data", "fstype": "ext4", "device": "sda1"}
			h.write("node_filesystem_avail_bytes", fs, ts, avail)
			h.write("node_filesystem_size_bytes", fs, ts, 100*gb)
			h.write("node_filesystem_readonly", fs, ts, 0)
		}
		if !ts.Before(rejectFrom) {
			rejected += 3
		}
		h.write("telltale_ingest_rejected_total", map[string]string{"job": "telltale", "instance": "collector:9470", "reason": "too_many_labels"}, ts, rejected)
		if ts.Equal(regressedAt) {
			h.write("telltale_deploy_regressions", map[string]string{"service": "shop", "env": "prod"}, ts, 2)
		}
		if ts.Second()%30 != 0 {
			continue // the groups evaluate every 30 s
		}
		h.evalAt(ts)
		for _, a := range h.alerts() {
			if a.State != promrules.StateFiring {
				continue
			}
			k := a.Labels.Get("alertname") + "/" + a.Labels.Get("instance") + a.Labels.Get("service")
			if _, ok := firing[k]; !ok {
				firing[k] = ts
			}
		}
	}
	f := func(key string, cause time.Time, within time.Duration) {
		t.Helper()
		at, ok := firing[key]
		if !ok {
			t.Errorf("%s never fired; want it within %s of its cause", key, within)
			return
		}
		if at.Before(cause) || at.After(cause.Add(within)) {
			t.Errorf("%s fired %s after its cause; want within %s", key, at.Sub(cause), within)
		}
		delete(firing, key)
	}
	f("DeployRegressed/shop", regressedAt, 30*time.Second)
	f("HostSilent/a", silentFrom, 2*time.Minute+30*time.Second)
	// predict_linear over 1h needs some of the decline before it predicts
	// empty within 4 h (30 GB at 10 GB/h: from the first minutes), then
	// `for: 15m`.
	f("FilesystemFillsWithin4h/b", fillFrom.Add(15*time.Minute), 5*time.Minute)
	f("TelltaleRejectingInput/collector:9470", rejectFrom.Add(15*time.Minute), time.Minute)
	if len(firing) > 0 {
		keys := make([]string, 0, len(firing))
		for k := range firing {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Errorf("alerts fired without a cause: %v", keys)
	}
}
