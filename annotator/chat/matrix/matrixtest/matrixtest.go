// Package matrixtest is a fake Matrix homeserver for tests, following the
// client-server API's documented endpoints and answers: whoami, join (by
// room id or alias), sending m.room.message events with transaction-id
// idempotency (m.image events must refer to an uploaded mxc:// URI), the
// media API's upload (POST /_matrix/media/v3/upload, answering
// content_uri), /sync with since tokens and long-poll timeouts, and the
// per-user rate limit Synapse applies (a burst, then one message per
// Every; more get HTTP 429 M_LIMIT_EXCEEDED with retry_after_ms). It reads
// time.Now, so it runs under testing/synctest too.
package matrixtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is one message in a room.
type Event struct {
	Room, Sender, MsgType, Body string
	// URL, Filename and Info are an m.image's.
	URL, Filename string
	Info          ImageInfo
	At            time.Time
}

// ImageInfo is an m.image's info.
type ImageInfo struct {
	MimeType string `json:"mimetype"`
	W        int    `json:"w"`
	H        int    `json:"h"`
	Size     int    `json:"size"`
}

// Media is one uploaded file.
type Media struct {
	ContentType, Filename string
	Data                  []byte
}

// Server is the fake. Set the fields before serving.
type Server struct {
	// Token is the bot's access token; its user is UserID.
	Token, UserID string
	// Aliases maps room aliases to room ids; ids of known rooms are the
	// values.
	Aliases map[string]string
	// Burst messages may go at once, then one per Every (0: no limit).
	Burst int
	Every time.Duration
	// LimitUploads is how many uploads from the start answer 429
	// M_LIMIT_EXCEEDED with retry_after_ms 20 before one is taken.
	LimitUploads int

	mu      sync.Mutex
	events  []Event
	joined  map[string]bool
	txns    map[string]string
	tokens  float64
	last    time.Time
	limited int
	media   map[string]Media
	uploads int // upload requests, limited ones included
	changed chan struct{}
}

func (s *Server) init() {
	if s.joined == nil {
		s.joined, s.txns, s.changed, s.tokens = map[string]bool{}, map[string]string{}, make(chan struct{}), float64(s.Burst)
		s.media = map[string]Media{}
	}
}

// Say adds a message of sender to room, as another user's client would.
func (s *Server) Say(room, sender, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.add(Event{Room: room, Sender: sender, MsgType: "m.text", Body: body, At: time.Now()})
}

func (s *Server) add(e Event) {
	s.events = append(s.events, e)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Sent returns the bot's messages, in order.
func (s *Server) Sent() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.events {
		if e.Sender == s.UserID {
			out = append(out, e)
		}
	}
	return out
}

// Media returns the file uploaded as mxc.
func (s *Server) Media(mxc string) (Media, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[mxc]
	return m, ok
}

// Uploads is how many upload requests came, rate-limited ones included.
func (s *Server) Uploads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads
}

// RateLimited is how many sends and uploads got M_LIMIT_EXCEEDED.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limited
}

func fail(w http.ResponseWriter, code int, errcode, msg string, extra ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"errcode":%q,"error":%q%s}`, errcode, msg, strings.Join(extra, ""))
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		fail(w, http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Invalid access token passed.")
		return
	}
	if r.URL.Path == "/_matrix/media/v3/upload" {
		s.upload(w, r)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/_matrix/client/v3/"), "/")
	for i, p := range parts {
		parts[i], _ = url.PathUnescape(p)
	}
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "account" && parts[1] == "whoami":
		fmt.Fprintf(w, `{"user_id":%q}`, s.UserID)
	case r.Method == http.MethodPost && len(parts) == 2 && parts[0] == "join":
		id := parts[1]
		if a, ok := s.Aliases[id]; ok {
			id = a
		} else if !s.known(id) {
			fail(w, http.StatusNotFound, "M_NOT_FOUND", "No known servers")
			return
		}
		s.mu.Lock()
		s.joined[id] = true
		s.mu.Unlock()
		fmt.Fprintf(w, `{"room_id":%q}`, id)
	case r.Method == http.MethodPut && len(parts) == 5 && parts[0] == "rooms" && parts[2] == "send" && parts[3] == "m.room.message":
		s.send(w, r, parts[1], parts[4])
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "sync":
		s.sync(w, r)
	default:
		fail(w, http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request")
	}
}

func (s *Server) known(id string) bool {
	for _, v := range s.Aliases {
		if v == id {
			return true
		}
	}
	return false
}

// maxUpload is the fake's m.upload.size.
const maxUpload = 10 << 20

// upload takes a file: POST /_matrix/media/v3/upload?filename=, the
// bytes as the body with their Content-Type; answers {"content_uri"}.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost {
		fail(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Unrecognized request")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUpload+1))
	if err != nil {
		fail(w, http.StatusBadRequest, "M_UNKNOWN", err.Error())
		return
	}
	if len(body) > maxUpload {
		fail(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "Cannot upload files larger than 10M")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploads++
	if s.uploads <= s.LimitUploads {
		s.limited++
		fail(w, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "Too Many Requests", `,"retry_after_ms":20`)
		return
	}
	mxc := fmt.Sprintf("mxc://test/m%d", len(s.media)+1)
	s.media[mxc] = Media{ContentType: r.Header.Get("Content-Type"), Filename: r.URL.Query().Get("filename"), Data: body}
	fmt.Fprintf(w, `{"content_uri":%q}`, mxc)
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, room, txn string) {
	var c struct {
		MsgType  string    `json:"msgtype"`
		Body     string    `json:"body"`
		URL      string    `json:"url"`
		Filename string    `json:"filename"`
		Info     ImageInfo `json:"info"`
	}
	body, _ := io.ReadAll(r.Body)
	if json.Unmarshal(body, &c) != nil || c.MsgType == "" {
		fail(w, http.StatusBadRequest, "M_BAD_JSON", "Content not JSON or without msgtype")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.media[c.URL]; c.MsgType == "m.image" && !ok {
		fail(w, http.StatusBadRequest, "M_INVALID_PARAM", "m.image url "+c.URL+" is not uploaded media")
		return
	}
	if !s.joined[room] {
		fail(w, http.StatusForbidden, "M_FORBIDDEN", "User "+s.UserID+" not in room "+room)
		return
	}
	if id, ok := s.txns[txn]; ok { // a retried transaction: the same event
		fmt.Fprintf(w, `{"event_id":%q}`, id)
		return
	}
	now := time.Now()
	if s.Every > 0 {
		if !s.last.IsZero() {
			s.tokens = min(float64(s.Burst), s.tokens+float64(now.Sub(s.last))/float64(s.Every))
		}
		s.last = now
		if s.tokens < 1 {
			s.limited++
			wait := time.Duration((1 - s.tokens) * float64(s.Every))
			fail(w, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "Too Many Requests", fmt.Sprintf(`,"retry_after_ms":%d`, wait.Milliseconds()+1))
			return
		}
		s.tokens--
	}
	id := "$" + strconv.Itoa(len(s.events)+1)
	s.txns[txn] = id
	s.add(Event{Room: room, Sender: s.UserID, MsgType: c.MsgType, Body: c.Body, URL: c.URL, Filename: c.Filename, Info: c.Info, At: now})
	fmt.Fprintf(w, `{"event_id":%q}`, id)
}

// sync answers the events after since (an index) in joined rooms, waiting
// up to timeout ms for one.
func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, _ := strconv.Atoi(q.Get("since"))
	timeout, _ := strconv.Atoi(q.Get("timeout"))
	deadline := time.NewTimer(time.Duration(timeout) * time.Millisecond)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		evs, changed := s.events, s.changed
		s.mu.Unlock()
		if len(evs) > since || timeout == 0 || q.Get("since") == "" {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			timeout = 0
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type ev struct {
		Type    string            `json:"type"`
		Sender  string            `json:"sender"`
		Content map[string]string `json:"content"`
	}
	join := map[string]map[string]map[string][]ev{}
	if q.Get("since") != "" {
		for _, e := range s.events[min(since, len(s.events)):] {
			if !s.joined[e.Room] {
				continue
			}
			if join[e.Room] == nil {
				join[e.Room] = map[string]map[string][]ev{"timeline": {"events": nil}}
			}
			join[e.Room]["timeline"]["events"] = append(join[e.Room]["timeline"]["events"],
				ev{Type: "m.room.message", Sender: e.Sender, Content: map[string]string{"msgtype": e.MsgType, "body": e.Body}})
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"next_batch": strconv.Itoa(len(s.events)), "rooms": map[string]any{"join": join}})
}
