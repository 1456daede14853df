package ingest

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/protoparser/otlp"
	"github.com/telltale-dev/telltale/protoparser/otlp/otlptest"
	"github.com/telltale-dev/telltale/samples"
)

// BenchmarkOTLPHandler measures the whole endpoint short of the network and
// the TSDB: body reading, decoding, translation, validation and the
// series-ref cache of the shared Writer, appending to a storage that drops
// everything.
func BenchmarkOTLPHandler(b *testing.B) {
	body := encodeOTLP(b, otlptest.Bench(otlptest.Time), otlp.Protobuf)
	w := NewWriter(collectortest.NopStore{}, Options{Limits: Limits{MaxLabelsPerSeries: 40}, Now: func() time.Time { return otlptest.Time }})
	h := NewOTLP(NewHandlers(w, HTTPOptions{}), OTLPOptions{})
	rw := &discardResponse{h: http.Header{}}
	serve := func() {
		req, _ := http.NewRequest(http.MethodPost, OTLPPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		rw.status = 0
		h.ServeHTTP(rw, req)
		if rw.status != http.StatusOK {
			b.Fatalf("got status %d", rw.status)
		}
	}
	serve() // fill the series-ref cache, as a running collector has
	var batch samples.Batch
	md, _ := otlp.Decode(body, otlp.Protobuf, otlp.Limits{})
	if _, err := otlp.NewConverter(otlp.ConvertOptions{}).Convert(b.Context(), md, &batch); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
	b.ReportMetric(float64(batch.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
