package instrument

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testMux(reg *Registry, inFlight *float64) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "0" {
			http.Error(w, "no such product", http.StatusNotFound)
			return
		}
		*inFlight = reg.set.GetOrCreateGauge("http_requests_in_flight", nil).Get()
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /api/checkout", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("/api/any", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /api/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /api/panic", func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	})
	return mux
}

func serve(h http.Handler, method, target string) int {
	rec := httptest.NewRecorder()
	func() {
		defer func() { recover() }() // the panic handler
		h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	}()
	return rec.Code
}

func TestMiddleware(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	var inFlight float64
	h := MiddlewareWith(testMux(reg, &inFlight), MiddlewareOptions{Registry: reg, Buckets: []float64{0.1, 1}})

	serve(h, "GET", "/api/products/1")
	serve(h, "GET", "/api/products/2")
	serve(h, "GET", "/api/products/0")
	serve(h, "POST", "/api/checkout")
	serve(h, "DELETE", "/api/checkout") // 405: no pattern
	serve(h, "GET", "/nope")
	serve(h, "BREW", "/api/any")
	serve(h, "GET", "/api/early-hints")
	serve(h, "GET", "/api/panic")

	f := func(series string, want float64) {
		t.Helper()
		if got := rawValue(t, reg, series); got != want {
			t.Errorf("%s: got %v; want %v", series, got, want)
		}
	}
	f(`http_requests_total{route="/api/products/{id}",method="GET",code="200"}`, 2)
	f(`http_requests_total{route="/api/products/{id}",method="GET",code="404"}`, 1)
	f(`http_requests_total{route="/api/checkout",method="POST",code="500"}`, 1)
	f(`http_requests_total{route="unmatched",method="DELETE",code="405"}`, 1)
	f(`http_requests_total{route="unmatched",method="GET",code="404"}`, 1)
	f(`http_requests_total{route="/api/any",method="OTHER",code="200"}`, 1)
	f(`http_requests_total{route="/api/early-hints",method="GET",code="202"}`, 1)
	f(`http_requests_total{route="/api/panic",method="GET",code="500"}`, 1)
	f(`http_request_duration_seconds_bucket{route="/api/products/{id}",method="GET",code="200",le="0.1"}`, 2)
	f(`http_request_duration_seconds_bucket{route="/api/products/{id}",method="GET",code="200",le="1"}`, 2)
	f(`http_request_duration_seconds_bucket{route="/api/products/{id}",method="GET",code="200",le="+Inf"}`, 2)
	f(`http_request_duration_seconds_count{route="/api/products/{id}",method="GET",code="200"}`, 2)
	f("http_requests_in_flight", 0)
	if inFlight != 1 {
		t.Errorf("in-flight gauge inside the handler: got %v; want 1", inFlight)
	}
	if out := string(reg.AppendPrometheus(nil)); strings.Contains(out, `/api/products/1"`) || strings.Contains(out, "/nope") {
		t.Errorf("raw paths leaked into labels:\n%s", out)
	}
}

// TestMiddlewarePerHandler: wrapping each handler instead of the mux also
// sees the pattern.
func TestMiddlewarePerHandler(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	mux := http.NewServeMux()
	mux.Handle("GET /users/{id}", MiddlewareWith(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), MiddlewareOptions{Registry: reg}))
	serve(mux, "GET", "/users/7")
	if got := rawValue(t, reg, `http_requests_total{route="/users/{id}",method="GET",code="200"}`); got != 1 {
		t.Errorf("got %v; want 1", got)
	}
}

// TestMiddlewareRouteCap: a Route func that returns raw paths is capped at
// MaxLabelValues routes; the rest become "other" and are counted.
func TestMiddlewareRouteCap(t *testing.T) {
	reg := NewRegistry(RegistryOptions{MaxLabelValues: 5})
	h := MiddlewareWith(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), MiddlewareOptions{
		Registry: reg,
		Route:    func(r *http.Request) string { return r.URL.Path },
	})
	for i := range 50 {
		serve(h, "GET", fmt.Sprintf("/item/%d", i))
	}
	serve(h, "GET", "/item/0") // admitted before the cap: stays
	f := func(series string, want float64) {
		t.Helper()
		if got := rawValue(t, reg, series); got != want {
			t.Errorf("%s: got %v; want %v", series, got, want)
		}
	}
	f(`http_requests_total{route="/item/0",method="GET",code="200"}`, 2)
	f(`http_requests_total{route="/item/4",method="GET",code="200"}`, 1)
	f(`http_requests_total{route="/item/5",method="GET",code="200"}`, -1)
	f(`http_requests_total{route="other",method="GET",code="200"}`, 45)
	f(`telltale_instrument_label_overflow_total{metric="http_requests_total",label="route"}`, 45)
	m := h.(*middleware)
	if n := len(m.series); n > 5 {
		t.Errorf("series cache holds %d entries; want at most the 5 admitted routes", n)
	}
}

func TestMiddlewareCodeCap(t *testing.T) {
	reg := NewRegistry(RegistryOptions{MaxLabelValues: 2})
	code := 200
	h := MiddlewareWith(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }), MiddlewareOptions{Registry: reg})
	for _, code = range []int{200, 201, 202, 203, 200} {
		serve(h, "GET", "/")
	}
	if got := rawValue(t, reg, `http_requests_total{route="unmatched",method="GET",code="other"}`); got != 2 {
		t.Errorf("code=other: got %v; want 2", got)
	}
	if got := rawValue(t, reg, `http_requests_total{route="unmatched",method="GET",code="200"}`); got != 2 {
		t.Errorf("code=200: got %v; want 2", got)
	}
}

func TestPatternRoute(t *testing.T) {
	f := func(p, want string) {
		t.Helper()
		if got := patternRoute(p); got != want {
			t.Errorf("patternRoute(%q): got %q; want %q", p, got, want)
		}
	}
	f("", "")
	f("/", "/")
	f("GET /x/{id}", "/x/{id}")
	f("POST  /x", "/x")
	f("example.com/x", "example.com/x")
	f("GET example.com/x", "example.com/x")
}

// TestStatusWriterInterfaces: the wrapper keeps Flush, Hijack and
// ResponseController working.
func TestStatusWriterInterfaces(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
	})
	mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
		c, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		buf.Flush()
		c.Close()
	})
	srv := httptest.NewServer(MiddlewareWith(mux, MiddlewareOptions{Registry: reg}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.Contains(line, "101") {
		t.Errorf("hijacked response: got %q; want 101", line)
	}
	srv.Close() // waits for the handlers
	f := func(series string, want float64) {
		t.Helper()
		if got := rawValue(t, reg, series); got != want {
			t.Errorf("%s: got %v; want %v", series, got, want)
		}
	}
	f(`http_requests_total{route="/stream",method="GET",code="200"}`, 1)
	// srv.Close does not wait for a handler whose connection it hijacked:
	// the middleware counts that request once the handler returns, so the
	// count is waited for.
	hijacked := `http_requests_total{route="/hijack",method="GET",code="101"}`
	for deadline := time.Now().Add(30 * time.Second); rawValue(t, reg, hijacked) != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // a poll interval
	}
	f(hijacked, 1)
}

// nopWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the middleware, not the recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware compares a ServeMux with and without the middleware;
// the difference is the per-request overhead.
func BenchmarkMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	reg := NewRegistry(RegistryOptions{})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"instrumented", MiddlewareWith(mux, MiddlewareOptions{Registry: reg})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/products/42", nil)
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
		})
	}
	b.Run("instrumented-parallel", func(b *testing.B) {
		h := MiddlewareWith(mux, MiddlewareOptions{Registry: reg})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest("GET", "/api/products/42", nil)
			w := &nopWriter{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
		})
	})
}
