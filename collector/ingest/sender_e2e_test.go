package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/sender"
	"github.com/telltale-dev/telltale/agent/spool"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/samples"
)

// TestE2EAgentSenderPartialReject verifies, with the agent's real sender,
// client and spool against the real collector, that a batch the collector
// partly rejects (400: the good series stored) is neither retried nor
// spooled again: the agent treats every 4xx as permanent (issue 15).
func TestE2EAgentSenderPartialReject(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t, "-ingest.max-labels-per-series=3")
	for _, version := range []push.Version{push.V1, push.V2} {
		set := metrics.NewSet()
		client, err := push.New(push.Options{URL: in.URL + "/api/v1/write", Version: version, Logger: slog.New(slog.DiscardHandler), Metrics: set})
		if err != nil {
			t.Fatal(err)
		}
		sp, err := spool.Open(spool.Options{Dir: t.TempDir(), SyncInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		s := sender.New(sender.Options{Client: client, Spool: sp, Logger: slog.New(slog.DiscardHandler), Metrics: set})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		name := fmt.Sprintf("agent_partial_v%d", version)
		b := &samples.Batch{}
		now := time.Now().UnixMilli()
		for i := range 10 {
			b.StartSeries(nil)
			b.AddLabel("__name__", name)
			b.AddLabel("i", strconv.Itoa(i))
			if i == 3 {
				b.AddLabel("a", "1")
				b.AddLabel("b", "1") // 4 labels: over the limit
			}
			b.AddSample(now, 1)
		}
		reqsBefore := in.Metric(t.Context(), `telltale_ingest_requests_total{endpoint="remote_write"}`)
		enc := push.Encoder{Version: version, MaxSamples: 1000}
		if err := enc.Encode(b, func(body []byte, n int) error { s.Submit(body, n); return nil }); err != nil {
			t.Fatal(err)
		}
		// Wait until the sender has given up on the batch as rejected.
		for collectortest.Metric(set, `telltale_agent_samples_dropped_total{reason="rejected"}`) != 10 {
			select {
			case <-done:
				t.Fatal("sender stopped")
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Fatalf("Run: %v", err)
		}
		if _, records := sp.Size(); records != 0 {
			t.Fatalf("v%d: %d records spooled; want 0 (a 400 is permanent)", version, records)
		}
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
		if got := in.Metric(t.Context(), `telltale_ingest_requests_total{endpoint="remote_write"}`) - reqsBefore; got != 1 {
			t.Fatalf("v%d: the collector got %v requests; want 1 (no retry)", version, got)
		}
		if got := queryValue(t, in, "count("+name+")"); got != 9 {
			t.Fatalf("v%d: got %v series stored; want the 9 good ones", version, got)
		}
	}
}
