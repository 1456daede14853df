package irc_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/irc"
	"github.com/telltale-dev/telltale/annotator/chat/irc/irctest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts c.Run until the test ends, collecting what it hears.
func run(t *testing.T, c *irc.Client) *heard {
	t.Helper()
	h := &heard{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx, h.add)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

type heard struct {
	mu      sync.Mutex
	msgs    []chat.Message
	changed chan struct{}
}

func (h *heard) add(m chat.Message) {
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

func (h *heard) wait(t *testing.T, n int) []chat.Message {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		h.mu.Lock()
		msgs, changed := append([]chat.Message(nil), h.msgs...), h.changed
		h.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("heard %d messages, want %d: %+v", len(msgs), n, msgs)
		}
	}
}

func send(t *testing.T, c *irc.Client, channel, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := c.Send(ctx, channel, text); err != nil {
		t.Fatalf("Send %q: %v", text, err)
	}
}

// TestClientNgircd: against a real ngircd, the client joins, its
// messages arrive in the channel (confirmed by PONG), it hears others,
// and over TLS the same.
func TestClientNgircd(t *testing.T) {
	srv := irctest.Start(t)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plain", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			obs := irctest.Join(t, srv.Addr, "obs"+tc.name, "#ops")
			o := irc.Options{Addr: srv.Addr, Nick: "bot" + tc.name, Channels: []string{"#ops", "#other"}, Logger: quiet()}
			if tc.tls {
				o.Addr, o.TLS = srv.TLSAddr, srv.TLSConfig()
			}
			c, err := irc.New(o)
			if err != nil {
				t.Fatal(err)
			}
			h := run(t, c)
			send(t, c, "#ops", "deployed web v1.2.3 → prod by alice")
			send(t, c, "#ops", "line one\nline two")
			said := obs.WaitFor("3 lines", func(s []irctest.Said) bool { return len(s) >= 3 })
			want := []string{"deployed web v1.2.3 → prod by alice", "line one", "line two"}
			for i, w := range want {
				if said[i].Text != w || said[i].Nick != o.Nick {
					t.Fatalf("line %d: got %+v; want %q from %s", i, said[i], w, o.Nick)
				}
			}
			obs.Say("!deploys web")
			m := h.wait(t, 1)[0]
			if m.Channel != "#ops" || m.Text != "!deploys web" || m.Name != obs.Nick || !strings.HasPrefix(m.User, obs.Nick+"!") {
				t.Fatalf("heard %+v; want !deploys web from %s in #ops", m, obs.Nick)
			}
		})
	}
}

// TestClientReconnects: the server restarts; a Send during the outage
// fails or waits, and after the reconnect (held until the observer is
// back, so it hears everything) messages arrive once each.
func TestClientReconnects(t *testing.T) {
	srv := irctest.Start(t)
	gate := make(chan struct{}, 1)
	gate <- struct{}{}
	dials := 0
	var mu sync.Mutex
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	c, err := irc.New(irc.Options{Addr: srv.Addr, Nick: "bot", Channels: []string{"#ops"}, Dial: dial,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	obs := irctest.Join(t, srv.Addr, "obs", "#ops")
	send(t, c, "#ops", "before")
	obs.WaitFor("before", func(s []irctest.Said) bool { return len(s) == 1 })

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	if err := c.Send(ctx, "#ops", "lost?"); err == nil {
		t.Fatal("Send while the server is down: got nil; want an error (nothing confirmed it)")
	}
	cancel()
	srv.Restart()
	obs2 := irctest.Join(t, srv.Addr, "obs2", "#ops")
	gate <- struct{}{} // now the client may reconnect
	send(t, c, "#ops", "after")
	said := obs2.WaitFor("after", func(s []irctest.Said) bool { return len(s) >= 1 })
	if len(said) != 1 || said[0].Text != "after" {
		t.Fatalf("after the restart heard %+v; want exactly [after]", said)
	}
	if got := obs.Said(); len(got) != 1 {
		t.Fatalf("first observer heard %+v; want only [before]", got)
	}
}
