package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/telltale-dev/telltale/instrument"
)

// numProducts is the size of the demo catalog; ids are 1..numProducts.
const numProducts = 100

// statusClientGone is recorded when the client left before the answer
// (nginx's convention).
const statusClientGone = 499

type product struct {
	ID    int     `json:"id"`
	Name  string  `json:"name"`
	Kind  string  `json:"kind"`
	Price float64 `json:"price"`
}

// orderKinds are the product kinds; checkout accepts any kind (the
// registry caps the label's distinct values).
var orderKinds = []string{"book", "music", "toy", "garden"}

func catalogProduct(id int) product {
	return product{ID: id, Name: fmt.Sprintf("product %d", id), Kind: orderKinds[id%len(orderKinds)], Price: float64(id%50) + 0.99}
}

// shop is the demo's API: endpoints of different latency and error rate,
// each governed by a switch.
type shop struct {
	sw  *switchboard
	reg *instrument.Registry
}

func (s *shop) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/products", s.products)
	mux.HandleFunc("GET /api/products/{id}", s.product)
	mux.HandleFunc("POST /api/checkout", s.checkout)
	mux.HandleFunc("GET /api/search", s.search)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
}

// uniform returns a duration in [lo, hi).
func uniform(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo)
}

// pause waits d; false means the client left first.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// respond waits latency, then fails with probability errRate or calls ok.
func respond(w http.ResponseWriter, r *http.Request, latency time.Duration, errRate float64, failMsg string, ok func()) {
	if !pause(r.Context(), latency) {
		w.WriteHeader(statusClientGone)
		return
	}
	if rand.Float64() < errRate {
		writeError(w, http.StatusInternalServerError, failMsg)
		return
	}
	ok()
}

// products: fast (1-4ms), 0.1% errors; the recommendations switch adds a
// few ms of work.
func (s *shop) products(w http.ResponseWriter, r *http.Request) {
	latency, errRate := uniform(ms(1), ms(4)), 0.001
	if s.sw.on("recommendations") {
		sw, _ := s.sw.get("recommendations")
		latency += uniform(ms(3), ms(8)) + ms(sw.LatencyMs)
		errRate += sw.ErrorRate
	}
	respond(w, r, latency, errRate, "product store timed out", func() {
		list := make([]product, 10)
		for i := range list {
			list[i] = catalogProduct(i + 1)
		}
		writeJSON(w, http.StatusOK, list)
	})
}

// product: fast, 404 for ids outside the catalog.
func (s *shop) product(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 1 || id > numProducts {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no product %q: ids are 1 to %d", r.PathValue("id"), numProducts))
		return
	}
	respond(w, r, uniform(ms(1), ms(3)), 0.001, "product store timed out", func() {
		writeJSON(w, http.StatusOK, catalogProduct(id))
	})
}

type order struct {
	Kind string `json:"kind"`
	Qty  int    `json:"qty"`
}

// checkout: slower (20-60ms), ~1% errors; the slow_checkout switch adds its
// latency and error rate. A placed order counts in
// demo_orders_placed_total{kind}.
func (s *shop) checkout(w http.ResponseWriter, r *http.Request) {
	var o order
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&o); err != nil || o.Kind == "" || o.Qty < 1 || o.Qty > 100 {
		writeError(w, http.StatusBadRequest, `send {"kind":"book","qty":1}: kind is required, qty from 1 to 100`)
		return
	}
	latency, errRate := uniform(ms(20), ms(60)), 0.01
	if s.sw.on("slow_checkout") {
		sw, _ := s.sw.get("slow_checkout")
		latency += ms(sw.LatencyMs)
		errRate += sw.ErrorRate
	}
	respond(w, r, latency, errRate, "payment provider failed", func() {
		s.reg.Counter("demo_orders_placed_total", "kind", o.Kind).Add(o.Qty)
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "kind": o.Kind, "qty": o.Qty})
	})
}

// search: variable latency (log-normal, median 15ms, long tail up to 2s),
// 0.5% errors; the search switch turns it off (503) or adds to it.
func (s *shop) search(w http.ResponseWriter, r *http.Request) {
	if !s.sw.on("search") {
		writeError(w, http.StatusServiceUnavailable, "search is switched off (switch \"search\")")
		return
	}
	sw, _ := s.sw.get("search")
	latency := time.Duration(15e6 * math.Exp(rand.NormFloat64()))
	latency = min(latency, 2*time.Second) + ms(sw.LatencyMs)
	respond(w, r, latency, 0.005+sw.ErrorRate, "search index unavailable", func() {
		q := r.URL.Query().Get("q")
		hits := []product{}
		for id := 1; id <= numProducts && len(hits) < 5; id += 1 + len(q) {
			hits = append(hits, catalogProduct(id))
		}
		writeJSON(w, http.StatusOK, map[string]any{"q": q, "hits": hits})
	})
}
