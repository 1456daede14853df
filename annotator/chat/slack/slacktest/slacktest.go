// Package slacktest is a fake Slack for tests, following Slack's
// documented HTTP APIs: incoming webhooks (POST /services/<T>/<B>/<X>
// with {"text"}) and the Web API's chat.postMessage (POST
// /api/chat.postMessage with a bearer token, answering {"ok":...}), the
// external file upload (files.getUploadURLExternal with filename and
// length, a POST of the bytes to the upload_url it answers, and
// files.completeUploadExternal sharing the file to channel_id),
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
	"net/url"
	"strconv"
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

// File is one file uploaded through the external upload.
type File struct {
	ID, Filename, AltText, Title string
	Length                       int    // as declared to getUploadURLExternal
	Data                         []byte // as posted to the upload URL
	// Channel is where completeUploadExternal shared it; "" until then.
	Channel string
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

	// ThrottleUploads makes the first this many getUploadURLExternal
	// calls answer 429 with Retry-After: 1.
	ThrottleUploads int

	mu      sync.Mutex
	uploadN int // getUploadURLExternal calls
	files   []File
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

// Files returns the files uploaded, in order.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]File(nil), s.files...)
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
	case r.URL.Path == "/api/files.getUploadURLExternal":
		s.getUploadURL(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/upload/v1/"):
		s.uploadTo(w, strings.TrimPrefix(r.URL.Path, "/upload/v1/"), body)
	case r.URL.Path == "/api/files.completeUploadExternal":
		s.completeUpload(w, r, body)
	default:
		http.NotFound(w, r)
	}
}

// form reads a form-encoded Web API body; ok is false (and the answer
// written) when the token is wrong.
func (s *Server) form(w http.ResponseWriter, r *http.Request, body []byte) (url.Values, bool) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
		return nil, false
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		io.WriteString(w, `{"ok":false,"error":"invalid_form_data"}`)
		return nil, false
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		io.WriteString(w, `{"ok":false,"error":"invalid_form_data"}`)
		return nil, false
	}
	return v, true
}

func (s *Server) getUploadURL(w http.ResponseWriter, r *http.Request, body []byte) {
	v, ok := s.form(w, r, body)
	if !ok {
		return
	}
	n, err := strconv.Atoi(v.Get("length"))
	if v.Get("filename") == "" || err != nil || n <= 0 {
		io.WriteString(w, `{"ok":false,"error":"invalid_arguments"}`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadN++
	if s.uploadN <= s.ThrottleUploads {
		s.limited++
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
		return
	}
	id := fmt.Sprintf("F%04d", len(s.files)+1)
	s.files = append(s.files, File{ID: id, Filename: v.Get("filename"), AltText: v.Get("alt_txt"), Length: n})
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(w, `{"ok":true,"upload_url":"%s://%s/upload/v1/%s","file_id":%q}`, scheme, r.Host, id, id)
}

func (s *Server) file(id string) *File {
	for i := range s.files {
		if s.files[i].ID == id {
			return &s.files[i]
		}
	}
	return nil
}

// uploadTo takes a file's bytes at its upload URL: "OK - <length>".
func (s *Server) uploadTo(w http.ResponseWriter, id string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.file(id)
	if f == nil {
		http.NotFound(w, nil)
		return
	}
	f.Data = body
	fmt.Fprintf(w, "OK - %d", len(body))
}

func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request, body []byte) {
	v, ok := s.form(w, r, body)
	if !ok {
		return
	}
	var files []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if json.Unmarshal([]byte(v.Get("files")), &files) != nil || len(files) == 0 {
		io.WriteString(w, `{"ok":false,"error":"invalid_arguments"}`)
		return
	}
	ch := v.Get("channel_id")
	if ch != "" && !contains(s.Channels, ch) {
		io.WriteString(w, `{"ok":false,"error":"channel_not_found"}`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fr := range files {
		f := s.file(fr.ID)
		if f == nil || len(f.Data) != f.Length {
			// Slack fails the upload whose bytes were not all posted.
			io.WriteString(w, `{"ok":false,"error":"file_not_found"}`)
			return
		}
		f.Title, f.Channel = fr.Title, ch
	}
	fmt.Fprintf(w, `{"ok":true,"files":[{"id":%q,"title":%q}]}`, files[0].ID, files[0].Title)
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
