package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/agent/push"
)

// TestTLSCAFile sends to an https collector whose certificate only the
// -tls.ca-file CA vouches for.
func TestTLSCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"-collector", srv.URL, "-tls.ca-file", ca}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := push.New(push.Options{URL: cfg.collector, TLS: cfg.tls})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendOnce(t.Context(), []byte("x")); err != nil {
		t.Errorf("send with -tls.ca-file: %v", err)
	}
	// Without the CA the system roots do not trust the test certificate.
	c, _ = push.New(push.Options{URL: cfg.collector})
	if err := c.SendOnce(t.Context(), []byte("x")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("send without the CA: %v; want a certificate error", err)
	}
}
