// Package slacktest is a fake Slack for tests, following Slack's
// documented HTTP APIs: incoming webhooks (POST /services/<T>/<B>/<X>
// with {"text"}) and the Web API's chat.postMessage (POST
// /api/chat.postMessage with a bearer token, answering {"ok":...}),
// including their rate limit: more than one message per channel within
// Every gets HTTP 429 with Retry-After (or, with Discord set, Discord's
// JSON {"retry_after": seconds}). It reads time.Now, so it runs under
// testing/synctest too.
package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Posted is one message Slack took.
type Posted struct {
	Channel string
	Text    string
	At      time.Time
}

// Server is the fake. Set the fields before serving.
type Server struct {
	// Token is the bot token chat.postMessage wants.
	Token string
	// Channels are the channel ids chat.postMessage knows.
	Channels []string
	// Every is the least time between two messages of a channel (Slack:
	// about one per second); 0 means no limit.
	Every time.Duration
	// Discord answers a 429 with {"retry_after": s} and no header.
	Discord bool
	// Throttle, if > 0, makes the next message answer 429 with this
	// Retry-After, once per call of SetThrottle.
	throttle time.Duration

	mu      sync.Mutex
	posted  []Posted
	last    map[string]time.Time
	limited int
}

// SetThrottle makes the next message get a 429 asking to wait d.
func (s *Server) SetThrottle(d time.Duration) {
	s.mu.Lock()
	s.throttle = d
	s.mu.Unlock()
}

// Posted returns the messages taken, in order.
func (s *Server) Posted() []Posted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Posted(nil), s.posted...)
}

// RateLimited is how many requests got a 429.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limited
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	switch {
	case strings.HasPrefix(r.URL.Path, "/services/"):
		var m struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(body, &m) != nil || m.Text == "" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "invalid_payload")
			return
		}
		if s.limit(w, r.URL.Path) {
			return
		}
		s.take(r.URL.Path, m.Text)
		io.WriteString(w, "ok")
	case r.URL.Path == "/api/chat.postMessage":
		var m struct {
			Channel string `json:"channel"`
			Text    string `json:"text"`
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer "+s.Token:
			io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
		case json.Unmarshal(body, &m) != nil || m.Text == "":
			io.WriteString(w, `{"ok":false,"error":"no_text"}`)
		case !contains(s.Channels, m.Channel):
			io.WriteString(w, `{"ok":false,"error":"channel_not_found"}`)
		case s.limit(w, m.Channel):
		default:
			s.take(m.Channel, m.Text)
			fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":"%d.000100"}`, m.Channel, time.Now().Unix())
		}
	default:
		http.NotFound(w, r)
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// limit answers 429 when channel's rate is exceeded (or a throttle is
// set) and reports whether it did.
func (s *Server) limit(w http.ResponseWriter, channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	wait := s.throttle
	s.throttle = 0
	if last, ok := s.last[channel]; ok && s.Every > 0 && now.Sub(last) < s.Every {
		wait = max(wait, s.Every-now.Sub(last))
	}
	if wait <= 0 {
		return false
	}
	s.limited++
	secs := math.Ceil(wait.Seconds())
	if s.Discord {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"message":"You are being rate limited.","retry_after":%.3f,"global":false}`, wait.Seconds())
		return true
	}
	w.Header().Set("Retry-After", fmt.Sprint(int(secs)))
	w.WriteHeader(http.StatusTooManyRequests)
	io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
	return true
}

func (s *Server) take(channel, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]time.Time{}
	}
	now := time.Now()
	s.last[channel] = now
	s.posted = append(s.posted, Posted{Channel: channel, Text: text, At: now})
}

// Transport serves requests with h in-process, without a network: for
// tests under testing/synctest, where a real socket's blocking read would
// stop the fake clock.
type Transport struct{ Handler http.Handler }

func (t Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.Handler.ServeHTTP(rec, r)
	return rec.Result(), nil
}
