package tail

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/model/labels"
)

// ServeHTTP serves GET /api/v1/tail: it checks the request (selectors,
// max_rate, origin, client limit), answering 4xx/503 with a message before
// any upgrade, then upgrades to a websocket and streams until the client
// goes, falls too far behind, or the hub closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.reject(w, "method", http.StatusMethodNotAllowed, "the live tail is a websocket: use GET with an Upgrade: websocket header")
		return
	}
	q := r.URL.Query()
	sels := q["match[]"]
	if len(sels) == 0 {
		h.reject(w, "no_selector", http.StatusBadRequest, `missing match[]: give at least one series selector, e.g. ?match[]=up{job="api"}`)
		return
	}
	if len(sels) > h.opts.MaxSelectors {
		h.reject(w, "too_many_selectors", http.StatusBadRequest, fmt.Sprintf(
			"%d match[] selectors, limit -tail.max-selectors=%d: combine them (e.g. {__name__=~\"a|b\"}) or raise the flag", len(sels), h.opts.MaxSelectors))
		return
	}
	matchers := make([][]*labels.Matcher, 0, len(sels))
	for _, sel := range sels {
		ms, err := h.opts.ParseSelector(sel)
		if err != nil {
			h.reject(w, "bad_selector", http.StatusBadRequest, fmt.Sprintf("invalid match[] %q: %v; want a PromQL series selector such as up{job=\"api\"}", truncate(sel, 256), err))
			return
		}
		if !requiresALabel(ms) {
			h.reject(w, "bad_selector", http.StatusBadRequest, fmt.Sprintf("invalid match[] %q: it matches every series; add a matcher that needs a non-empty label, e.g. {job=\"api\"} or {__name__=~\".+\"} for everything", truncate(sel, 256)))
			return
		}
		matchers = append(matchers, ms)
	}
	var maxRate float64
	if v := q.Get("max_rate"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			h.reject(w, "bad_max_rate", http.StatusBadRequest, fmt.Sprintf("invalid max_rate %q: want a positive number of samples per second, or leave it out for no limit", truncate(v, 64)))
			return
		}
		maxRate = f
	}
	if origin := r.Header.Get("Origin"); origin != "" && !sameHost(origin, r.Host) {
		h.reject(w, "bad_origin", http.StatusForbidden, fmt.Sprintf(
			"origin %q is not this collector (%s): open the console from the collector itself, or connect from a program that sends no Origin header", truncate(origin, 256), r.Host))
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		h.reject(w, "not_websocket", http.StatusBadRequest, "the live tail is a websocket: connect with a websocket client (Upgrade: websocket) or run `collector tail 'selector'`")
		return
	}
	if err := h.reserve(); err != nil {
		w.Header().Set("Retry-After", "10")
		if errors.Is(err, ErrShuttingDown) {
			h.reject(w, "shutting_down", http.StatusServiceUnavailable, "server shutting down; retry in a few seconds")
		} else {
			h.reject(w, "too_many_clients", http.StatusServiceUnavailable, fmt.Sprintf(
				"%d live-tail clients connected, limit -tail.max-clients=%d: close some or raise the flag", h.opts.MaxClients, h.opts.MaxClients))
		}
		return
	}
	defer h.release()
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the client already.
		h.counter(`telltale_tail_rejected_total{reason="upgrade_failed"}`).Inc()
		return
	}
	s := h.newSubscriber(sels, matchers, maxRate)
	if !h.register(s) {
		s.disconnect("shutdown", CloseShutdown, "server shutting down")
	}
	h.log.Debug("live-tail client subscribed", "remote", r.RemoteAddr, "selectors", sels, "max_rate", maxRate)
	s.serve(conn)
}

// requiresALabel reports whether some matcher fails on an absent label,
// PromQL's rule that a selector must not match everything by accident.
func requiresALabel(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches("") {
			return true
		}
	}
	return false
}

func (h *Hub) reject(w http.ResponseWriter, reason string, status int, msg string) {
	h.counter(`telltale_tail_rejected_total{reason="` + reason + `"}`).Inc()
	http.Error(w, msg, status)
}

// sameHost reports whether the Origin header names the host the request
// was sent to, so pages of other sites cannot read the tail with a
// visitor's cookies or network position.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, host)
}
