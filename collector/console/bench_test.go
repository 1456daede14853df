package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkServe measures serving the page and the largest asset, plain and
// gzipped, and a revalidation (304).
func BenchmarkServe(b *testing.B) {
	c, err := New(Options{Dashboards: testDashboards()})
	if err != nil {
		b.Fatal(err)
	}
	h := c.Handler()
	bench := func(name, path string, hdr map[string]string, wantCode int) {
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != wantCode {
				b.Fatalf("GET %s: got %d; want %d", path, w.Code, wantCode)
			}
			b.SetBytes(int64(w.Body.Len()))
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
	bench("index", "/", nil, 200)
	bench("uplot", "/static/uPlot.iife.min.js", nil, 200)
	bench("uplot-gzip", "/static/uPlot.iife.min.js", map[string]string{"Accept-Encoding": "gzip"}, 200)
	etag := func() string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/static/uPlot.iife.min.js", nil))
		return w.Header().Get("ETag")
	}()
	bench("uplot-304", "/static/uPlot.iife.min.js", map[string]string{"If-None-Match": etag}, 304)
}
