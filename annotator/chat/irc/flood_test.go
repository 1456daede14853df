package irc_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/irc"
)

// TestFloodControl: a burst of lines goes out LineBurst at once, then one
// per LineEvery; the PING that confirms them is not held back. The clock
// is synctest's: the gaps are exact, whatever the machine's load.
func TestFloodControl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Duration
		start := time.Now()
		server := func(conn net.Conn) {
			r := bufio.NewReader(conn)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				l, _ := irc.ParseLine(strings.TrimRight(line, "\r\n"))
				switch l.Command {
				case "USER":
					conn.Write([]byte(":srv 001 bot :Welcome\r\n"))
				case "JOIN":
					conn.Write([]byte(":bot!b@h JOIN #ops\r\n"))
				case "PRIVMSG":
					mu.Lock()
					at = append(at, time.Since(start))
					mu.Unlock()
				case "PING":
					conn.Write([]byte(":srv PONG srv :" + l.Params[0] + "\r\n"))
				}
			}
		}
		c, err := irc.New(irc.Options{Addr: "irc.test:6667", Nick: "bot", Channels: []string{"#ops"}, LineBurst: 2, LineEvery: 2 * time.Second,
			Logger: quiet(), Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				cl, sv := net.Pipe()
				go server(sv)
				return cl, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx, func(chat.Message) {}); close(done) }()
		if err := c.Send(ctx, "#ops", "1\n2\n3\n4\n5"); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		want := []time.Duration{0, 0, 2 * time.Second, 4 * time.Second, 6 * time.Second}
		if len(at) != len(want) {
			t.Fatalf("lines at %v; want 5", at)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Fatalf("line %d went at %v; want %v (all: %v)", i+1, at[i], want[i], at)
			}
		}
	})
}
