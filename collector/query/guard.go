package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/promql/parser"
)

// Endpoints that run a query or read series: they take an admission slot.
var admitted = map[string]bool{
	"query": true, "query_range": true, "query_exemplars": true, "series": true,
	"labels": true, "label_values": true, "read": true,
}

// Endpoints whose query parameter is parsed as PromQL: they get the
// length and depth limits.
var parsesQuery = map[string]bool{
	"query": true, "query_range": true, "query_exemplars": true,
	"format_query": true, "parse_query": true,
}

// ErrQueryTooComplex and ErrOverloaded are what guard answers with before a
// request reaches Prometheus' handlers.
var (
	ErrQueryTooComplex = errors.New("query too complex")
	ErrOverloaded      = errors.New("too many queries")
)

// guard wraps the Prometheus API with what Telltale adds in front of it:
// metrics per handler, the response write deadline, the query length and
// depth limits, and admission control.
func (a *API) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := handlerName(r.URL.Path)
		a.instrument(name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A client that stops reading cannot hold a finished result
			// (and its memory) longer than this.
			rc := http.NewResponseController(w)
			_ = rc.SetWriteDeadline(time.Now().Add(a.opts.MaxQueueWait + a.opts.Timeout + a.opts.WriteTimeout))
			defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()

			if parsesQuery[name] {
				if err := r.ParseForm(); err == nil {
					if err := a.checkQuery(r.Form.Get("query")); err != nil {
						a.set.GetOrCreateCounter(`telltale_query_rejected_total{reason="too_complex"}`).Inc()
						writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
						return
					}
				}
				// A malformed form is left to Prometheus' handler, which
				// answers it in its own words.
			}
			if admitted[name] {
				release, err := a.gate.acquire(r.Context())
				if err != nil {
					if errors.Is(err, ErrOverloaded) {
						w.Header().Set("Retry-After", strconv.Itoa(int(a.opts.MaxQueueWait.Seconds()/2)+1))
						writeAPIError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
						return
					}
					writeAPIError(w, 499, "canceled", err.Error()) // the client left while queued
					return
				}
				defer release()
			}
			next.ServeHTTP(w, r)
		})).ServeHTTP(w, r)
	})
}

// instrument counts requests and their duration by handler.
func (a *API) instrument(name string, next http.Handler) http.Handler {
	dur := a.set.GetOrCreateSummary(`telltale_query_request_duration_seconds{handler="` + name + `"}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer dur.UpdateDuration(start)
		next.ServeHTTP(w, r)
	})
}

// checkQuery enforces MaxQueryLength and MaxQueryDepth without parsing:
// PromQL parsing takes time quadratic in the nesting depth of brackets and
// in the length of operator chains (20,000 nested parentheses or 20,000
// chained '+' take seconds of CPU that no timeout or cancellation stops),
// so both are bounded by a linear scan with Prometheus' own lexer first.
// The depth counted is the deepest bracket nesting plus the number of
// operators outside label matchers: an upper bound on the syntax tree's
// depth.
func (a *API) checkQuery(q string) error {
	if len(q) > a.opts.MaxQueryLength {
		return fmt.Errorf("%w: the query is %d bytes, limit -query.max-length=%d: shorten it (a recording rule can hold a long expression) or raise the flag",
			ErrQueryTooComplex, len(q), a.opts.MaxQueryLength)
	}
	depth := queryDepth(q)
	if depth > a.opts.MaxQueryDepth {
		return fmt.Errorf("%w: the query nests brackets and operators %d deep, limit -query.max-depth=%d: split it (recording rules) or raise the flag",
			ErrQueryTooComplex, depth, a.opts.MaxQueryDepth)
	}
	return nil
}

// queryDepth returns the deepest nesting of ( and [ plus the number of
// operators outside { }, stopping at the first lexer error (the parser
// reports it).
func queryDepth(q string) int {
	l := parser.Lex(q)
	var it parser.Item
	nest, maxNest, ops, braces := 0, 0, 0, 0
	for {
		l.NextItem(&it)
		switch it.Typ {
		case parser.EOF, parser.ERROR:
			return maxNest + ops
		case parser.LEFT_PAREN, parser.LEFT_BRACKET:
			nest++
			maxNest = max(maxNest, nest)
		case parser.RIGHT_PAREN, parser.RIGHT_BRACKET:
			nest--
		case parser.LEFT_BRACE:
			braces++
		case parser.RIGHT_BRACE:
			braces--
		default:
			if braces == 0 && it.Typ.IsOperator() {
				ops++
			}
		}
	}
}

// writeAPIError answers in Prometheus' error envelope.
func writeAPIError(w http.ResponseWriter, code int, typ, msg string) {
	b, _ := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// admission bounds the queries running at once and those waiting for a
// slot. A request beyond both is refused at once; a waiting one gives up
// after MaxQueueWait. Either way the answer is 503 with Retry-After, which
// Grafana shows as an error and retries on the next refresh.
type admission struct {
	slots    chan struct{}
	waiting  atomic.Int64
	maxQueue int64
	maxWait  time.Duration
	rejected *metrics.Counter
}

func newAdmission(opts Options, set *metrics.Set) *admission {
	g := &admission{
		slots:    make(chan struct{}, opts.MaxConcurrent),
		maxQueue: int64(opts.MaxQueued),
		maxWait:  opts.MaxQueueWait,
		rejected: set.GetOrCreateCounter(`telltale_query_rejected_total{reason="overloaded"}`),
	}
	set.NewGauge("telltale_query_running", func() float64 { return float64(len(g.slots)) })
	set.NewGauge("telltale_query_queued", func() float64 { return float64(g.waiting.Load()) })
	set.NewGauge("telltale_query_concurrency_limit", func() float64 { return float64(cap(g.slots)) })
	return g
}

func (g *admission) acquire(ctx context.Context) (func(), error) {
	release := func() { <-g.slots }
	select {
	case g.slots <- struct{}{}:
		return release, nil
	default:
	}
	if g.waiting.Add(1) > g.maxQueue {
		g.waiting.Add(-1)
		g.rejected.Inc()
		return nil, fmt.Errorf("%w: %d running and %d waiting, limits -query.max-concurrency=%d and -query.max-queue=%d; retry later, lighten the dashboards (recording rules) or raise the flags",
			ErrOverloaded, cap(g.slots), g.maxQueue, cap(g.slots), g.maxQueue)
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.maxWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		g.rejected.Inc()
		return nil, fmt.Errorf("%w: waited %s for one of %d query slots; retry later, lighten the dashboards (recording rules) or raise -query.max-concurrency",
			ErrOverloaded, g.maxWait, cap(g.slots))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
