package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestSelfMetricsRecorded runs the real collector with -self-metrics (the
// default; collectortest turns it off for other tests) and checks that its
// own series land in its own storage with the labels the Telltale
// dashboard reads, and that the startup hint names the console and the
// next commands.
func TestSelfMetricsRecorded(t *testing.T) {
	in := collectortest.Start(t, "-self-metrics=true", "-self-metrics.interval=200ms")
	host, _ := os.Hostname()
	_, port, _ := strings.Cut(in.Addr, ":")
	wantInstance := host + ":" + port
	eventually(t, "the collector's own series in its storage", func() string {
		res := in.Query(t.Context(), `telltale_storage_head_series{job="telltale-collector"}`, time.Time{})
		if len(res) != 1 {
			return fmt.Sprintf("%d series", len(res))
		}
		if got := res[0].Metric["instance"]; got != wantInstance {
			return fmt.Sprintf("instance=%q, want %q", got, wantInstance)
		}
		return ""
	})
	// What the Telltale dashboard's panels read: TSDB, process and ingest
	// series, all through the normal write path.
	for _, q := range []string{
		`prometheus_tsdb_head_series{job="telltale-collector"}`,
		`process_resident_memory_bytes{job="telltale-collector"}`,
		`telltale_query_request_duration_seconds{job="telltale-collector"}`,
	} {
		eventually(t, q, func() string {
			if n := len(in.Query(t.Context(), q, time.Time{})); n == 0 {
				return "no series"
			}
			return ""
		})
	}
	log := in.Log()
	for _, want := range []string{
		"Telltale collector is up. Next:",
		"open      " + in.URL + "/",
		"go run ./instrument/demo -collector " + in.URL,
		"go run ./annotator deploy -collector " + in.URL + " -service demo -env dev",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("startup output lacks %q:\n%s", want, log)
		}
	}
}

// TestHostMetricsPauseForAgent runs the collector with its in-process host
// metrics beside a real agent on the same host: the collector sees the
// agent's telltale_agent_info for its own instance, pauses its host
// metrics (gauge and one warning) so the host's series are not recorded
// twice.
func TestHostMetricsPauseForAgent(t *testing.T) {
	in := collectortest.Start(t, "-host-metrics=true", "-host-metrics.interval=100ms")
	eventually(t, "in-process host metrics", func() string {
		if len(in.Query(t.Context(), `node_load1{job="node"}`, time.Time{})) == 0 {
			return "no node_load1"
		}
		return ""
	})
	if got := in.Metric(t.Context(), "telltale_collector_host_metrics_paused"); got != 0 {
		t.Fatalf("telltale_collector_host_metrics_paused = %v before any agent; want 0", got)
	}

	collectortest.StartProcess(t, exec.Command(collectortest.Build(t, "github.com/telltale-dev/telltale/agent"),
		"-collector", in.URL, "-interval", "200ms", "-spool-dir", t.TempDir()))

	eventually(t, "host metrics paused for the agent", func() string {
		if got := in.Metric(t.Context(), "telltale_collector_host_metrics_paused"); got != 1 {
			return fmt.Sprintf("telltale_collector_host_metrics_paused=%v", got)
		}
		return ""
	})
	if n := strings.Count(in.Log(), "an agent records this host"); n != 1 {
		t.Fatalf("got %d warnings that an agent records this host; want 1:\n%s", n, in.Log())
	}
	// The host's series now come from the agent alone: one node_load1 series.
	if res := in.Query(t.Context(), `node_load1`, time.Time{}); len(res) != 1 {
		t.Fatalf("got %d node_load1 series; want 1: %v", len(res), res)
	}
}
