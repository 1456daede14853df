package instrument

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// UnmatchedRoute is the route label of requests no ServeMux pattern matched
// (404, 405, redirects) and of requests whose Route func returned "".
const UnmatchedRoute = "unmatched"

// OtherMethod is the method label of requests with a non-standard method.
const OtherMethod = "OTHER"

// MiddlewareOptions configure MiddlewareWith. The zero value is what
// Middleware uses.
type MiddlewareOptions struct {
	// Registry receives the metrics; nil means Default().
	Registry *Registry
	// Route returns the route label of a request, a template such as
	// "/users/{id}", never the raw path. It is called after the handler
	// ran. nil means the pattern http.ServeMux matched (r.Pattern, Go
	// 1.22+) without its method.
	Route func(r *http.Request) string
	// Buckets of http_request_duration_seconds in seconds; nil means
	// DefaultBuckets.
	Buckets []float64
}

// Middleware is MiddlewareWith(next, MiddlewareOptions{}).
func Middleware(next http.Handler) http.Handler {
	return MiddlewareWith(next, MiddlewareOptions{})
}

// MiddlewareWith wraps next and records, for every request:
//
//	http_requests_total{route,method,code}             counter
//	http_request_duration_seconds{route,method,code}   Prometheus histogram (le buckets)
//	http_requests_in_flight                            gauge
//
// plus the registry's standard labels. route comes from opts.Route or the
// ServeMux pattern, so wrap the ServeMux itself (or each handler) and do not
// replace the *http.Request between the middleware and the mux, or every
// route reads UnmatchedRoute. Methods outside the standard nine become
// OtherMethod. route and code admit at most the registry's MaxLabelValues
// distinct values each; further ones become OtherValue and are counted in
// telltale_instrument_label_overflow_total. A handler that panics before
// writing a header is recorded with code 500.
//
// The returned handler is safe for concurrent use; it adds one allocation
// per request (the ResponseWriter wrapper), which keeps http.Flusher,
// http.Hijacker and io.ReaderFrom, and unwraps for http.ResponseController.
func MiddlewareWith(next http.Handler, opts MiddlewareOptions) http.Handler {
	reg := opts.Registry
	if reg == nil {
		reg = defaultRegistry
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = DefaultBuckets
	}
	if err := metrics.ValidateBuckets(buckets); err != nil {
		panic("instrument.MiddlewareWith: invalid MiddlewareOptions.Buckets: " + err.Error())
	}
	return &middleware{
		next:     next,
		reg:      reg,
		route:    opts.Route,
		buckets:  buckets,
		inFlight: reg.set.GetOrCreateGauge("http_requests_in_flight", nil),
		routes:   reg.guard("http_requests_total", "route"),
		codes:    reg.guard("http_requests_total", "code"),
		series:   make(map[seriesKey]*seriesMetrics),
	}
}

type middleware struct {
	next     http.Handler
	reg      *Registry
	route    func(*http.Request) string
	buckets  []float64
	inFlight *metrics.Gauge
	routes   *guard
	codes    *guard

	mu     sync.RWMutex
	series map[seriesKey]*seriesMetrics // only keys whose values were admitted as they are
}

type seriesKey struct {
	route, method string
	code          int
}

type seriesMetrics struct {
	requests *metrics.Counter
	duration *metrics.PrometheusHistogram
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m.inFlight.Inc()
	sw := &statusWriter{ResponseWriter: w}
	returned := false
	defer func() {
		m.inFlight.Dec()
		code := sw.code
		if !returned && !sw.wroteHeader {
			code = http.StatusInternalServerError // the handler panicked
		}
		if code == 0 {
			code = http.StatusOK
		}
		s := m.lookup(m.routeOf(r), normalizeMethod(r.Method), code)
		s.requests.Inc()
		s.duration.Update(time.Since(start).Seconds())
	}()
	m.next.ServeHTTP(sw, r)
	returned = true
}

func (m *middleware) routeOf(r *http.Request) string {
	var route string
	if m.route != nil {
		route = m.route(r)
	} else {
		route = patternRoute(r.Pattern)
	}
	if route == "" {
		return UnmatchedRoute
	}
	return route
}

// patternRoute strips the method from a ServeMux pattern: "GET /x/{id}" is
// route "/x/{id}".
func patternRoute(p string) string {
	if i := strings.IndexAny(p, " \t"); i >= 0 && !strings.Contains(p[:i], "/") {
		return strings.TrimLeft(p[i:], " \t")
	}
	return p
}

func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodTrace:
		return http.MethodTrace
	}
	return OtherMethod
}

func (m *middleware) lookup(route, method string, code int) *seriesMetrics {
	k := seriesKey{route, method, code}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	cleanRoute := sanitizeLabelValue(route)
	codeStr := strconv.Itoa(code)
	admittedRoute := m.routes.admit(cleanRoute)
	admittedCode := m.codes.admit(codeStr)

	b := make([]byte, 0, 64+len(admittedRoute))
	b = append(b, '{')
	b = appendLabelPair(b, "route", admittedRoute)
	b = append(b, ',')
	b = appendLabelPair(b, "method", method)
	b = append(b, ',')
	b = appendLabelPair(b, "code", admittedCode)
	b = append(b, '}')
	labels := string(b)
	s = &seriesMetrics{
		requests: m.reg.set.GetOrCreateCounter("http_requests_total" + labels),
		duration: m.reg.set.GetOrCreatePrometheusHistogramExt("http_request_duration_seconds"+labels, m.buckets),
	}
	if admittedRoute == route && admittedCode == codeStr {
		// Bounded: at most MaxLabelValues routes x 10 methods x MaxLabelValues codes.
		m.mu.Lock()
		m.series[k] = s
		m.mu.Unlock()
	}
	return s
}

// statusWriter records the status code a handler sends.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher; it is a no-op if the underlying writer
// cannot flush.
func (w *statusWriter) Flush() {
	if !w.wroteHeader {
		w.code, w.wroteHeader = http.StatusOK, true
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker; it fails with http.ErrNotSupported if
// the underlying writer cannot hijack.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && !w.wroteHeader {
		w.code, w.wroteHeader = http.StatusSwitchingProtocols, true
	}
	return c, rw, err
}

// ReadFrom implements io.ReaderFrom so io.Copy keeps sendfile.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = http.StatusOK, true
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}
