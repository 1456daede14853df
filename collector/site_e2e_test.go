package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestBrowserForgedRequests: without auth (the default), a page on another
// site cannot make a visitor's browser record a deploy or write samples,
// and a DNS-rebinding name gets nothing; the collector's own names, IP
// addresses and non-browser clients are unaffected.
func TestBrowserForgedRequests(t *testing.T) {
	in := collectortest.Start(t)
	do := func(method, path, host string, hdr map[string]string, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, in.URL+path, strings.NewReader(body))
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	forged := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
	deploy := `{"service":"web","version":"v6.6.6","env":"prod","who":"mallory"}`
	if status, msg := do("POST", "/api/v1/deploys", "", forged, deploy); status != 403 || !strings.Contains(msg, "-web.cors-origin") {
		t.Errorf("cross-site deploy: got %d %s; want 403", status, msg)
	}
	if status, msg := do("POST", "/api/v1/import/prometheus", "", forged, "forged_metric 1\n"); status != 403 {
		t.Errorf("cross-site write: got %d %s; want 403", status, msg)
	}
	if status, msg := do("POST", "/api/v1/import/prometheus", "", map[string]string{"Origin": "http://evil.example:9470"}, "forged_metric 1\n"); status != 403 {
		t.Errorf("write with a foreign Origin (no Sec-Fetch-Site): got %d %s; want 403", status, msg)
	}
	if status, msg := do("GET", "/api/v1/query?query=up", "rebound.evil.example:9470", nil, ""); status != 403 || !strings.Contains(msg, "-web.allowed-hosts") {
		t.Errorf("DNS-rebound Host: got %d %s; want 403 naming -web.allowed-hosts", status, msg)
	}
	// Nothing of the forged requests was recorded.
	if status, body := do("GET", "/api/v1/deploys", "", nil, ""); status != 200 || strings.Contains(body, "mallory") {
		t.Errorf("deploy log after the forged deploy: %d %s", status, body)
	}
	if got := in.Query(t.Context(), "forged_metric", time.Time{}); len(got) != 0 {
		t.Errorf("forged samples were stored: %v", got)
	}
	// Same origin, localhost and plain clients work.
	if status, msg := do("POST", "/api/v1/import/prometheus", "localhost"+in.Addr[strings.LastIndex(in.Addr, ":"):],
		map[string]string{"Origin": "http://localhost" + in.Addr[strings.LastIndex(in.Addr, ":"):], "Sec-Fetch-Site": "same-origin"}, "own_page 1\n"); status != 204 {
		t.Errorf("same-origin write: got %d %s; want 204", status, msg)
	}
	if status, msg := do("POST", "/api/v1/import/prometheus", "", nil, "plain_client 1\n"); status != 204 {
		t.Errorf("plain client write: got %d %s; want 204", status, msg)
	}
	if got := in.Metric(t.Context(), `telltale_http_refused_total{reason="cross_site"}`); got != 3 {
		t.Errorf(`telltale_http_refused_total{reason="cross_site"} = %v; want 3`, got)
	}
}

// TestPprofNeedsAdmin: the profiling endpoints need the admin scope, with
// and without the trailing slash (ServeMux's redirect used to answer first).
func TestPprofNeedsAdmin(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - {name: r, token: reader-token-0123456789, scopes: [read]}\n  - {name: a, token: admin-token-0123456789, scopes: [admin]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := collectortest.Start(t, "-auth.tokens-file", tokens)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/debug/pprof", "", 401}, {"/debug/pprof/", "", 401}, {"/debug/pprof", "reader-token-0123456789", 403},
		{"/debug/pprof/heap", "reader-token-0123456789", 403}, {"/debug/pprof", "admin-token-0123456789", 301},
		{"/debug/pprof/", "admin-token-0123456789", 200},
		{"/api/v1/query?query=up&access_token=reader-token-0123456789", "", 401},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", in.URL+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s (token %q): got %d; want %d", c.path, c.token, resp.StatusCode, c.want)
		}
	}
}
