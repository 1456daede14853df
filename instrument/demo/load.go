package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/telltale-dev/telltale/instrument"
)

// maxLoadInFlight bounds the load loop's concurrent requests; ticks that
// find no free slot are skipped and counted.
const maxLoadInFlight = 64

// loadGen calls the shop's endpoints at a steady rate, so the dashboards
// have traffic without an outside load tool.
type loadGen struct {
	base    string // e.g. http://127.0.0.1:8080
	rps     float64
	client  *http.Client
	sent    *metrics.Counter
	skipped *metrics.Counter
	failed  *metrics.Counter
}

func newLoadGen(reg *instrument.Registry, base string, rps float64) *loadGen {
	return &loadGen{
		base:    base,
		rps:     rps,
		client:  &http.Client{Timeout: 10 * time.Second},
		sent:    reg.Counter("demo_load_requests_total"),
		skipped: reg.Counter("demo_load_skipped_total"),
		failed:  reg.Counter("demo_load_errors_total"),
	}
}

// run sends requests until ctx ends, then waits for those in flight (they
// are not cancelled, so every request the server counts completes).
func (l *loadGen) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(float64(time.Second) / l.rps))
	defer t.Stop()
	slots := make(chan struct{}, maxLoadInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	reqCtx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			l.skipped.Inc()
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			l.one(reqCtx)
		})
	}
}

// one sends a request of the traffic mix: product pages 50% (some for ids
// that do not exist), product list 20%, search 15%, checkout 15%.
func (l *loadGen) one(ctx context.Context) {
	var req *http.Request
	var err error
	switch p := rand.IntN(100); {
	case p < 50:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/products/%d", l.base, 1+rand.IntN(numProducts+numProducts/5)), nil)
	case p < 70:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/api/products", nil)
	case p < 85:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/api/search?q="+strings.Repeat("x", rand.IntN(6)), nil)
	default:
		body := fmt.Sprintf(`{"kind":%q,"qty":%d}`, orderKinds[rand.IntN(len(orderKinds))], 1+rand.IntN(3))
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/api/checkout", strings.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		panic("BUG: cannot build load request: " + err.Error())
	}
	l.sent.Inc()
	resp, err := l.client.Do(req)
	if err != nil {
		l.failed.Inc()
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
