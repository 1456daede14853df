package ingest

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/otlp"
	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
)

// TestE2EHostileOTLP sends issue 22's hostile requests to the real
// collector binary: each gets a 4xx (or, for an unrepresentable timestamp,
// a partial success) naming the limit, the process stays up, stays within
// a memory bound, and still ingests.
func TestE2EHostileOTLP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector")
	}
	in := collectortest.Start(t)
	ctx := t.Context()
	now := time.Now()
	alive := func(name string) {
		t.Helper()
		select {
		case <-in.Exited():
			t.Fatalf("%s: the collector died (exit %d)", name, in.ExitCode())
		default:
		}
		in.WaitReady()
	}
	f := func(name, path string, body []byte, headers map[string]string, wantStatus int, wantMsg string) {
		t.Helper()
		status, resp := in.Post(ctx, path, body, headers)
		if status != wantStatus || !strings.Contains(resp, wantMsg) {
			t.Fatalf("%s (%d-byte body): got %d %.300q; want %d containing %q", name, len(body), status, resp, wantStatus, wantMsg)
		}
		alive(name)
	}
	pbGzip := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
	jsonGzip := map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}
	pb := map[string]string{"Content-Type": "application/x-protobuf"}

	// The 55 KB body: 850k levels of JSON arrays, gzipped.
	deepJSON := collectortest.Gzip(t, otlptest.DeepJSON(850_000))
	t.Logf("850k-deep JSON request: %d bytes gzipped", len(deepJSON))
	f("850k-deep attribute, JSON", OTLPPath, deepJSON, jsonGzip, 400, "-otlp.max-attribute-depth=16")
	f("850k-deep attribute, protobuf", OTLPPath, collectortest.Gzip(t, otlptest.DeepProto(850_000)), pbGzip, 400, "-otlp.max-attribute-depth=16")
	f("100k attributes, protobuf", OTLPPath, collectortest.Gzip(t, encodeOTLP(t, otlptest.ManyAttributes(100_000, now), otlp.Protobuf)), pbGzip, 400, "-otlp.max-attributes=128")
	f("100k attributes, JSON", OTLPPrometheusPath, collectortest.Gzip(t, encodeOTLP(t, otlptest.ManyAttributes(100_000, now), otlp.JSON)), jsonGzip, 400, "-otlp.max-attributes=128")
	f("time_unix_nano 2^64-1", OTLPPath, encodeOTLP(t, otlptest.MaxTimestamp(now), otlp.Protobuf), pb, 200, "after 2262")
	snappyHuge := binary.AppendUvarint(nil, 1<<32)
	f("snappy header declaring 4 GiB", "/api/v1/write", snappyHuge,
		map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}, 413, "4294967296 decoded bytes")

	for _, reason := range []string{"otlp_attribute_depth", "otlp_too_many_attributes", "otlp_invalid_timestamp"} {
		if got := in.Metric(ctx, `telltale_ingest_rejected_total{reason="`+reason+`"}`); got < 1 {
			t.Errorf("telltale_ingest_rejected_total{reason=%q} = %v; want at least 1", reason, got)
		}
	}
	// The good point of the timestamp request is stored.
	if res := in.Query(ctx, `clock_gauge{job="clock"}`, time.Time{}); len(res) != 1 || res[0].Value[1] != "2" {
		t.Fatalf("got %v; want clock_gauge{job=\"clock\"} 2", res)
	}
	// Decoding stays near the decoded size: the biggest hostile body is
	// ~24 MB of JSON. Before the limits the deep request crashed the
	// process and 100k attributes cost 30+ CPU-seconds.
	const bound = 1 << 30
	if rss := func() int64 { _, peak := in.RSS(); return peak }(); rss > bound {
		t.Errorf("peak RSS %d MiB; want under %d MiB", rss>>20, bound>>20)
	}
}
