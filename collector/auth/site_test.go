package auth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/grafana/regexp"
)

func TestSiteGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	noAuth := NewSiteGuard(SiteOptions{AllowedHosts: []string{"collector", ""}}).Wrap(ok)
	withAuth := NewSiteGuard(SiteOptions{AuthEnabled: true}).Wrap(ok)
	trusting := NewSiteGuard(SiteOptions{TrustedOrigins: regexp.MustCompile(`^https://grafana\.example\.com$`)}).Wrap(ok)
	f := func(h http.Handler, method, host string, hdr map[string]string, want int, wantMsg string) {
		t.Helper()
		r := httptest.NewRequest(method, "http://x/api/v1/deploys", strings.NewReader("{}"))
		r.Host = host
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want || !strings.Contains(w.Body.String(), wantMsg) {
			t.Errorf("%s Host %q %v: got %d %s; want %d containing %q", method, host, hdr, w.Code, w.Body, want, wantMsg)
		}
	}
	// Hosts without auth: IPs, localhost and the allowed names pass.
	f(noAuth, "GET", "127.0.0.1:9470", nil, 204, "")
	f(noAuth, "GET", "[::1]:9470", nil, 204, "")
	f(noAuth, "GET", "10.1.2.3", nil, 204, "")
	f(noAuth, "GET", "localhost:9470", nil, 204, "")
	f(noAuth, "GET", "app.localhost:9470", nil, 204, "")
	f(noAuth, "GET", "Collector:9470", nil, 204, "")
	f(noAuth, "GET", "evil.example.com:9470", nil, 403, "-web.allowed-hosts")
	f(noAuth, "POST", "attacker.test", nil, 403, "DNS-rebinding")
	f(withAuth, "GET", "evil.example.com:9470", nil, 204, "") // tokens protect it
	f(NewSiteGuard(SiteOptions{AllowedHosts: []string{"*"}}).Wrap(ok), "GET", "any.name", nil, 204, "")

	// Cross-site writes from browsers are refused, with or without auth.
	f(noAuth, "POST", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403, "-web.cors-origin")
	f(withAuth, "POST", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}, 403, "another site")
	f(noAuth, "POST", "127.0.0.1:9470", map[string]string{"Origin": "https://evil.example"}, 403, "not this collector's")
	f(noAuth, "PATCH", "127.0.0.1:9470", map[string]string{"Origin": "null"}, 403, "refused")
	// Same origin, no browser headers (agents, curl, Grafana's server), or
	// a trusted origin pass.
	f(noAuth, "POST", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:9470"}, 204, "")
	f(noAuth, "POST", "127.0.0.1:9470", map[string]string{"Origin": "http://127.0.0.1:9470"}, 204, "")
	f(noAuth, "POST", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "none"}, 204, "")
	f(noAuth, "POST", "127.0.0.1:9470", nil, 204, "")
	f(trusting, "POST", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://grafana.example.com"}, 204, "")
	f(trusting, "POST", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://grafana.example.com.evil"}, 403, "refused")
	// Reads are not state changes: the browser keeps their answers from
	// other origins unless CORS allows them.
	f(noAuth, "GET", "127.0.0.1:9470", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 204, "")
}

func TestAccessTokenOnlyOnWebsockets(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens.yml")
	if err := os.WriteFile(p, []byte("tokens:\n  - name: r\n    token: reader-token-0123456789\n    scopes: [read]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	h := c.Require(ScopeRead, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	f := func(upgrade string, want int, wantMsg string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/api/v1/tail?access_token=reader-token-0123456789", nil)
		if upgrade != "" {
			r.Header.Set("Upgrade", upgrade)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want || !strings.Contains(w.Body.String(), wantMsg) {
			t.Errorf("Upgrade %q: got %d %s; want %d containing %q", upgrade, w.Code, w.Body, want, wantMsg)
		}
	}
	f("websocket", 204, "")
	f("", 401, "only accepted on websocket upgrades")
}
