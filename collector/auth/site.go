package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/grafana/regexp"
)

// SiteOptions configure NewSiteGuard.
type SiteOptions struct {
	// AuthEnabled is whether bearer tokens are required. Without them the
	// Host header is checked (see SiteGuard).
	AuthEnabled bool
	// AllowedHosts are host names (without port) the collector answers to
	// besides IP addresses and localhost; "*" allows any.
	AllowedHosts []string
	// TrustedOrigins matches browser origins (scheme://host[:port]) that
	// may send state-changing requests cross-site (-web.cors-origin); nil
	// trusts none.
	TrustedOrigins *regexp.Regexp
	Metrics        *metrics.Set
}

// SiteGuard refuses the two ways a web page can use a visitor's browser
// against a collector it can reach (on loopback or an internal network):
//
//   - Cross-site writes: a page on another origin POSTs a deploy or samples
//     (a form or a text/plain fetch needs no CORS preflight). Any request
//     other than GET, HEAD or OPTIONS that the browser marks as coming
//     from another site (Sec-Fetch-Site: cross-site or same-site) or whose
//     Origin is not the collector's own is answered 403, unless its
//     origin matches TrustedOrigins. Clients that are not browsers (agents,
//     Prometheus, Grafana's server, curl) send neither header and pass.
//   - DNS rebinding: a page's own domain is pointed at 127.0.0.1, so the
//     browser treats the collector as same-origin and can read answers.
//     Without auth, a request whose Host is a name rather than an IP
//     address, localhost or one of AllowedHosts is answered 403. With
//     tokens on, a rebound page has no token, so the check is not needed.
type SiteGuard struct {
	opts      SiteOptions
	anyHost   bool
	hosts     map[string]bool
	crossSite *metrics.Counter
	badHost   *metrics.Counter
}

// NewSiteGuard returns a guard with opts.
func NewSiteGuard(opts SiteOptions) *SiteGuard {
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	g := &SiteGuard{opts: opts, hosts: map[string]bool{"localhost": true}}
	for _, h := range opts.AllowedHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "*" {
			g.anyHost = true
		}
		if h != "" {
			g.hosts[h] = true
		}
	}
	g.crossSite = opts.Metrics.GetOrCreateCounter(`telltale_http_refused_total{reason="cross_site"}`)
	g.badHost = opts.Metrics.GetOrCreateCounter(`telltale_http_refused_total{reason="unknown_host"}`)
	return g
}

// Wrap returns next behind the guard.
func (g *SiteGuard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.opts.AuthEnabled && !g.hostAllowed(r.Host) {
			g.badHost.Inc()
			http.Error(w, fmt.Sprintf("Host %q is not a name this collector answers to: a browser reaching it by another name may be a DNS-rebinding attack. If you use this name, add it to -web.allowed-hosts, or turn on -auth.tokens-file", r.Host), http.StatusForbidden)
			return
		}
		if err := g.checkCrossSite(r); err != nil {
			g.crossSite.Inc()
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *SiteGuard) hostAllowed(hostport string) bool {
	if g.anyHost || hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if net.ParseIP(host) != nil || g.hosts[host] || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return false
}

func (g *SiteGuard) checkCrossSite(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	origin := r.Header.Get("Origin")
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return nil
	case "cross-site", "same-site":
		if g.trusted(origin) {
			return nil
		}
		return fmt.Errorf("%s %s from a page on another site (Origin %q) refused: browsers may only change this collector from its own pages; to allow that origin set -web.cors-origin", r.Method, r.URL.Path, origin)
	}
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	if g.trusted(origin) {
		return nil
	}
	return fmt.Errorf("%s %s with Origin %q, not this collector's (%s), refused: browsers may only change this collector from its own pages; to allow that origin set -web.cors-origin", r.Method, r.URL.Path, origin, r.Host)
}

func (g *SiteGuard) trusted(origin string) bool {
	return origin != "" && g.opts.TrustedOrigins != nil && g.opts.TrustedOrigins.MatchString(origin)
}
