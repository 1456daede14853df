package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestTLS: with -tls.cert-file and -tls.key-file the collector serves HTTPS
// (and only HTTPS), and a cert without its key is refused at start.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "telltale-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)

	// A cert without a key stops the collector with a message naming both flags.
	out, err := exec.Command(collectortest.Binary(t), "-data", t.TempDir(), "-tls.cert-file", certFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-tls.key-file") {
		t.Fatalf("cert without key: got %v %q; want an error naming -tls.key-file", err, out)
	}

	addr := collectortest.FreeAddr(t)
	cmd := exec.Command(collectortest.Binary(t), "-listen", addr, "-data", t.TempDir(), "-host-metrics=false",
		"-tls.cert-file", certFile, "-tls.key-file", keyFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	parsed, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	var resp *http.Response
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err = client.Get("https://" + addr + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("https /readyz not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp.Body.Close()
	resp, err = client.Post("https://"+addr+"/api/v1/import/prometheus", "text/plain", strings.NewReader("tls_metric 1\n"))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("write over https: %v %v", err, resp)
	}
	resp.Body.Close()
	// Plain HTTP gets no service.
	plain, err := http.Get("http://" + addr + "/readyz")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Fatalf("plain http answered 200 %q on the TLS port", b)
		}
	}
}
