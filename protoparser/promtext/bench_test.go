package promtext

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/telltale-dev/telltale/samples"
)

var update = flag.Bool("update", false, "rewrite testdata/vm_metrics.txt")

// vmBody returns at least lines lines of what VictoriaMetrics/metrics
// WritePrometheus writes for an app: counters and gauges with labels,
// histograms with vmrange buckets, Prometheus histograms with le buckets
// and summaries.
func vmBody(lines int) []byte {
	s := metrics.NewSet()
	paths := []string{"/api/v1/write", "/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/metrics", "/healthz"}
	var buf bytes.Buffer
	for i := 0; ; i++ {
		path := paths[i%len(paths)]
		code := []string{"200", "204", "400", "500"}[i%4]
		s.GetOrCreateCounter(fmt.Sprintf(`http_requests_total{path=%q,code=%q,instance="app-%d"}`, path, code, i%7)).Add(i * 13)
		s.GetOrCreateGauge(fmt.Sprintf(`process_open_connections{listener="%d"}`, i), func() float64 { return 42.5 })
		h := s.GetOrCreateHistogram(fmt.Sprintf(`request_duration_seconds{path=%q,instance="app-%d"}`, path, i%7))
		ph := s.GetOrCreatePrometheusHistogram(fmt.Sprintf(`response_size_bytes{path=%q,instance="app-%d"}`, path, i%7))
		sm := s.GetOrCreateSummary(fmt.Sprintf(`queue_wait_seconds{queue="q%d"}`, i%5))
		for j := range 20 {
			h.Update(float64(j*i%97) / 1000)
			ph.Update(float64(j * i % 5000))
			sm.Update(float64(j) / 100)
		}
		if i%10 == 0 || lines < 200 {
			buf.Reset()
			s.WritePrometheus(&buf)
			if bytes.Count(buf.Bytes(), []byte("\n")) >= lines {
				return buf.Bytes()
			}
		}
	}
}

// TestWriteVMTestdata rewrites the VictoriaMetrics example body with -update.
func TestWriteVMTestdata(t *testing.T) {
	body := vmBody(60)
	var p Parser
	var b samples.Batch
	if err := p.Parse(body, 0, &b); err != nil {
		t.Fatalf("cannot parse what VictoriaMetrics/metrics writes: %v", err)
	}
	if !bytes.Contains(body, []byte("vmrange=")) || !bytes.Contains(body, []byte(`le="+Inf"`)) {
		t.Fatalf("body lacks vmrange or le buckets:\n%s", body)
	}
	if *update {
		if err := os.WriteFile("testdata/vm_metrics.txt", body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) { benchParse(b, &Parser{}) }

func BenchmarkParseExtraLabels(b *testing.B) {
	benchParse(b, &Parser{ExtraLabels: []samples.Label{{Name: "job", Value: "app"}, {Name: "instance", Value: "host-1:8080"}}})
}

// benchParse measures p on a VictoriaMetrics/metrics push of 2000 lines.
func benchParse(b *testing.B, p *Parser) {
	body := vmBody(2000)
	lines := bytes.Count(body, []byte("\n"))
	var dst samples.Batch
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if err := p.Parse(body, 1700000000000, &dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(dst.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(lines), "ns/line")
}

func BenchmarkAppend(b *testing.B) {
	body := vmBody(2000)
	var p Parser
	var src samples.Batch
	if err := p.Parse(body, 1700000000000, &src); err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], &src, true)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(src.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
