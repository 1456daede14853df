package irc_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat/irc"
)

// script is the server side of one connection: it wants the client's
// lines and sends its own, in order ("<" want a line starting with,
// ">" send).
func script(t *testing.T, conn net.Conn, steps ...string) {
	t.Helper()
	r := bufio.NewReader(conn)
	for _, s := range steps {
		switch s[0] {
		case '>':
			if _, err := io.WriteString(conn, s[1:]+"\r\n"); err != nil {
				t.Errorf("server write %q: %v", s[1:], err)
				return
			}
		case '<':
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil {
				t.Errorf("server wanted %q: %v", s[1:], err)
				return
			}
			if line = strings.TrimRight(line, "\r\n"); !strings.HasPrefix(line, s[1:]) {
				t.Errorf("server got %q; want %q", line, s[1:])
				return
			}
		case '.': // the client must close the connection
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(r); err != nil {
				t.Errorf("server wanted the client to close: %v", err)
			}
		}
	}
}

func pipeClient(t *testing.T, server func(net.Conn)) *irc.Client {
	t.Helper()
	c, err := irc.New(irc.Options{Addr: "irc.test:6697", Nick: "bot", Password: "s3cret", Channels: []string{"#ops"}, Logger: quiet(),
		MinBackoff: time.Hour, MaxBackoff: time.Hour, // one connection only
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			cl, sv := net.Pipe()
			go server(sv)
			return cl, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSASL: the client logs in with SASL PLAIN (CAP LS, REQ, AUTHENTICATE)
// before registering, joins, and its sends wait for the PONG.
func TestSASL(t *testing.T) {
	plain := base64.StdEncoding.EncodeToString([]byte("bot\x00bot\x00s3cret"))
	done := make(chan struct{})
	c := pipeClient(t, func(conn net.Conn) {
		defer close(done)
		script(t, conn, "<CAP LS 302", "<NICK bot", "<USER bot 0 * Telltale",
			">:srv CAP * LS :multi-prefix sasl=PLAIN", "<CAP REQ sasl", ">:srv CAP bot ACK :sasl",
			"<AUTHENTICATE PLAIN", ">AUTHENTICATE +", "<AUTHENTICATE "+plain, ">:srv 903 bot :SASL authentication successful",
			"<CAP END", ">:srv 001 bot :Welcome", "<JOIN #ops", ">:bot!bot@h JOIN #ops",
			"<PRIVMSG #ops :deployed web v1", "<PING tt1", ">:srv PONG srv :tt1")
	})
	run(t, c)
	send(t, c, "#ops", "deployed web v1")
	<-done
}

// TestSASLRefused: a failed SASL login ends the connection; the client
// does not register or send.
func TestSASLRefused(t *testing.T) {
	done := make(chan struct{})
	c := pipeClient(t, func(conn net.Conn) {
		defer close(done)
		script(t, conn, "<CAP LS 302", "<NICK bot", "<USER bot", ">:srv CAP * LS :sasl", "<CAP REQ sasl", ">:srv CAP bot ACK :sasl",
			"<AUTHENTICATE PLAIN", ">AUTHENTICATE +", "<AUTHENTICATE ", ">:srv 904 bot :SASL authentication failed", ".")
	})
	run(t, c)
	<-done
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, "#ops", "x"); err == nil {
		t.Fatal("Send after a refused login: got nil; want an error")
	}
}

// TestNoSASLOffered: a server without SASL is refused rather than logged
// into without the password.
func TestNoSASLOffered(t *testing.T) {
	done := make(chan struct{})
	c := pipeClient(t, func(conn net.Conn) {
		defer close(done)
		script(t, conn, "<CAP LS 302", "<NICK bot", "<USER bot", ">:srv CAP * LS :multi-prefix", ".")
	})
	run(t, c)
	<-done
}
