package instrument_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/telltale-dev/telltale/instrument"
)

// printSeries prints the registry's series whose name starts with prefix.
func printSeries(reg *instrument.Registry, prefix string) {
	for line := range strings.Lines(string(reg.AppendPrometheus(nil))) {
		if strings.HasPrefix(line, prefix) {
			fmt.Print(line)
		}
	}
}

// A service starts pushing with Start and stops (pushing the last samples)
// at shutdown.
func ExampleStart() {
	ctx := context.Background()
	stop, err := instrument.Start(ctx, instrument.Options{
		Collector: os.Getenv("TELLTALE_COLLECTOR"), // e.g. http://127.0.0.1:9470; empty: no push
		Service:   "shop",
		Env:       "prod",
		Token:     os.Getenv("TELLTALE_TOKEN"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/products/{id}", func(w http.ResponseWriter, r *http.Request) {})
	_ = http.Server{Addr: "127.0.0.1:8080", Handler: instrument.Middleware(mux)}
}

func ExampleRegistry_Counter() {
	reg := instrument.NewRegistry(instrument.RegistryOptions{})
	if _, err := reg.Start(context.Background(), instrument.Options{Service: "shop", Env: "prod"}); err != nil {
		log.Fatal(err)
	}
	reg.Counter("orders_placed_total", "kind", "book").Inc()
	reg.Counter("orders_placed_total", "kind", "book").Add(2)
	reg.Counter("orders_placed_total", "kind", "music").Inc()
	printSeries(reg, "orders_placed_total")
	// Output:
	// orders_placed_total{service="shop",env="prod",kind="book"} 3
	// orders_placed_total{service="shop",env="prod",kind="music"} 1
}

// Past the distinct-value limit a label value becomes "other", and the
// overflow is counted.
func ExampleRegistry_Counter_cardinalityGuard() {
	reg := instrument.NewRegistry(instrument.RegistryOptions{MaxLabelValues: 2})
	for _, user := range []string{"ann", "bob", "cid", "dan"} {
		reg.Counter("logins_total", "user", user).Inc()
	}
	printSeries(reg, "logins_total")
	printSeries(reg, "telltale_instrument_label_overflow_total")
	// Output:
	// logins_total{user="ann"} 1
	// logins_total{user="bob"} 1
	// logins_total{user="other"} 2
	// telltale_instrument_label_overflow_total{metric="logins_total",label="user"} 2
}

func ExampleRegistry_Gauge() {
	reg := instrument.NewRegistry(instrument.RegistryOptions{})
	reg.Gauge("queue_length", "queue", "emails").Set(12)
	reg.GaugeFunc("cache_entries", func() float64 { return 345 })
	printSeries(reg, "queue_length")
	printSeries(reg, "cache_entries")
	// Output:
	// queue_length{queue="emails"} 12
	// cache_entries 345
}

func ExampleRegistry_Histogram() {
	reg := instrument.NewRegistry(instrument.RegistryOptions{})
	h := reg.Histogram("payment_seconds", []float64{0.1, 0.5, 1}, "provider", "acme")
	for _, v := range []float64{0.05, 0.2, 0.3, 2} {
		h.Update(v)
	}
	printSeries(reg, "payment_seconds")
	// Output:
	// payment_seconds_bucket{provider="acme",le="0.1"} 1
	// payment_seconds_bucket{provider="acme",le="0.5"} 3
	// payment_seconds_bucket{provider="acme",le="1"} 3
	// payment_seconds_bucket{provider="acme",le="+Inf"} 4
	// payment_seconds_sum{provider="acme"} 2.55
	// payment_seconds_count{provider="acme"} 4
}

// The middleware labels requests with the ServeMux pattern, never the raw
// path.
func ExampleMiddlewareWith() {
	reg := instrument.NewRegistry(instrument.RegistryOptions{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a product")
	})
	h := instrument.MiddlewareWith(mux, instrument.MiddlewareOptions{Registry: reg})
	for _, path := range []string{"/api/products/1", "/api/products/2", "/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	printSeries(reg, "http_requests_total")
	// Output:
	// http_requests_total{route="/api/products/{id}",method="GET",code="200"} 2
	// http_requests_total{route="unmatched",method="GET",code="404"} 1
}

// Handler serves the metrics for pull setups.
func ExampleRegistry_Handler() {
	reg := instrument.NewRegistry(instrument.RegistryOptions{})
	reg.Counter("jobs_done_total").Add(4)
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fmt.Print(rec.Body.String())
	// Output:
	// jobs_done_total 4
}
