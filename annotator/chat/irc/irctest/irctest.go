// Package irctest runs a real IRC server for tests: Debian's ngircd,
// started on loopback with a temporary config (plain and TLS ports), and
// a plain observer client that records what is said in a channel. .ci/run
// installs ngircd; without it a test fails under CI=true and is skipped
// elsewhere.
package irctest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat/irc"
	"github.com/telltale-dev/telltale/collector/collectortest"
)

// Server is a running ngircd.
type Server struct {
	t       testing.TB
	bin     string
	conf    string
	Addr    string // plain host:port
	TLSAddr string // TLS host:port
	// RootCAs trusts the server's self-signed certificate (name
	// "localhost" and 127.0.0.1).
	RootCAs *x509.CertPool
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	log     *collectortest.SyncBuffer
}

// Binary returns ngircd's path ($TELLTALE_NGIRCD, else /usr/sbin/ngircd
// or ngircd on $PATH), failing under CI=true and skipping elsewhere when
// it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TELLTALE_NGIRCD"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/sbin/ngircd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("ngircd"); err == nil {
		return p
	}
	const how = "apt-get install -y ngircd (.ci/run does), or set TELLTALE_NGIRCD"
	if os.Getenv("CI") != "" {
		t.Fatalf("ngircd (a real IRC server for the chat tests) not found: %s", how)
	}
	t.Skipf("ngircd not found: %s", how)
	return ""
}

// Start starts ngircd on two free loopback ports and stops it at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Addr: collectortest.FreeAddr(t), TLSAddr: collectortest.FreeAddr(t), log: &collectortest.SyncBuffer{}}
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	s.RootCAs = pool
	_, port, _ := net.SplitHostPort(s.Addr)
	_, tlsPort, _ := net.SplitHostPort(s.TLSAddr)
	s.conf = filepath.Join(dir, "ngircd.conf")
	conf := fmt.Sprintf(`[Global]
Name = irc.telltale.test
Info = Telltale test server
Listen = 127.0.0.1
Ports = %s
MotdPhrase = "telltale test"
PidFile = %s
[Limits]
MaxConnectionsIP = 0
MaxNickLength = 30
PingTimeout = 120
PongTimeout = 20
[Options]
PAM = no
Ident = no
DNS = no
[SSL]
Ports = %s
CertFile = %s
KeyFile = %s
`, port, filepath.Join(dir, "ngircd.pid"), tlsPort, cert, key)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again (after Stop) on the same ports, and
// waits until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("irctest: Restart while running; Stop first")
	}
	cmd := exec.Command(s.bin, "--nodaemon", "--config", s.conf)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("cannot start ngircd: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{s.Addr, s.TLSAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				s.t.Fatalf("ngircd exited at start: %s", s.log.String())
			default:
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("ngircd does not listen on %s: %v\n%s", addr, err, s.log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Stop stops the server (SIGTERM) and waits for it to exit; every client
// connection drops.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Log is what ngircd wrote.
func (s *Server) Log() string { return s.log.String() }

// TLSConfig trusts the server's certificate.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Observer is a plain IRC client in one channel that records every
// PRIVMSG said there, in order. It is independent of the client under
// test except for the line parser.
type Observer struct {
	t       testing.TB
	Nick    string
	Channel string
	conn    net.Conn
	w       sync.Mutex
	mu      sync.Mutex
	said    []Said
	changed chan struct{}
	joined  chan struct{}
	once    sync.Once
}

// Said is one message heard.
type Said struct {
	Nick, Text string
}

// Join connects an observer with nick to addr and joins channel; it
// returns once the server confirmed the join. It leaves at cleanup.
func Join(t testing.TB, addr, nick, channel string) *Observer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("observer %s: %v", nick, err)
	}
	o := &Observer{t: t, Nick: nick, Channel: channel, conn: conn, changed: make(chan struct{}), joined: make(chan struct{})}
	t.Cleanup(func() { conn.Close() })
	o.raw("NICK " + nick)
	o.raw("USER " + nick + " 0 * :observer")
	go o.read()
	select {
	case <-o.joined:
	case <-time.After(30 * time.Second):
		t.Fatalf("observer %s did not get into %s", nick, channel)
	}
	return o
}

func (o *Observer) raw(line string) {
	o.w.Lock()
	defer o.w.Unlock()
	o.conn.Write([]byte(line + "\r\n"))
}

// Say says text in the observer's channel.
func (o *Observer) Say(text string) { o.raw("PRIVMSG " + o.Channel + " :" + text) }

func (o *Observer) read() {
	r := bufio.NewReader(o.conn)
	for {
		raw, err := r.ReadString('\n')
		if err != nil {
			o.mu.Lock()
			close(o.changed)
			o.changed = nil
			o.mu.Unlock()
			return
		}
		l, err := irc.ParseLine(strings.TrimRight(raw, "\r\n"))
		if err != nil {
			continue
		}
		switch l.Command {
		case "PING":
			o.raw("PONG :" + l.Params[len(l.Params)-1])
		case "001":
			o.raw("JOIN " + o.Channel)
		case "366": // end of NAMES: in the channel
			o.once.Do(func() { close(o.joined) })
		case "PRIVMSG":
			if len(l.Params) == 2 && strings.EqualFold(l.Params[0], o.Channel) {
				o.mu.Lock()
				o.said = append(o.said, Said{Nick: irc.Nick(l.Prefix), Text: l.Params[1]})
				close(o.changed)
				o.changed = make(chan struct{})
				o.mu.Unlock()
			}
		}
	}
}

// Said returns what was said in the channel so far.
func (o *Observer) Said() []Said {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Said(nil), o.said...)
}

// Count is how many of said contain sub.
func Count(said []Said, sub string) int {
	n := 0
	for _, s := range said {
		if strings.Contains(s.Text, sub) {
			n++
		}
	}
	return n
}

// WaitFor waits until cond holds for what was said, failing the test
// after 60s or when the connection dropped.
func (o *Observer) WaitFor(what string, cond func([]Said) bool) []Said {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		o.mu.Lock()
		said, changed := append([]Said(nil), o.said...), o.changed
		o.mu.Unlock()
		if cond(said) {
			return said
		}
		if changed == nil {
			o.t.Fatalf("observer %s: connection closed waiting for %s; heard %q", o.Nick, what, said)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			o.t.Fatalf("observer %s: timed out waiting for %s; heard %q", o.Nick, what, said)
		}
	}
}

// selfSigned writes a certificate for localhost and 127.0.0.1 and its key
// into dir.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
