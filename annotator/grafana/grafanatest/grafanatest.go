// Package grafanatest is a fake Grafana for tests: an httptest server that
// follows Grafana's documented annotations HTTP API (POST /api/annotations,
// PUT and PATCH /api/annotations/:id, GET /api/annotations?tags=...) and its
// auth (Authorization: Bearer <token>, 401 otherwise, 403 for a token
// without write permission), and can be told to fail, refuse or hang the way
// a real Grafana does when it is down, misconfigured or overloaded.
//
// A Server is safe for concurrent use.
package grafanatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Annotation is an annotation as the fake stores it (times in ms).
type Annotation struct {
	ID           int64    `json:"id"`
	DashboardUID string   `json:"dashboardUID,omitempty"`
	PanelID      int64    `json:"panelId"`
	Time         int64    `json:"time"`
	TimeEnd      int64    `json:"timeEnd"`
	Text         string   `json:"text"`
	Tags         []string `json:"tags"`
}

// Server is a fake Grafana.
type Server struct {
	*httptest.Server

	mu          sync.Mutex
	token       string
	readOnly    map[string]bool
	failCode    int
	hang        time.Duration
	hangAfter   bool
	nextID      int64
	annotations map[int64]*Annotation
	creates     int
	requests    int
}

// NewServer starts a fake Grafana accepting "Bearer <token>". Close it when done.
func NewServer(token string) *Server {
	s := &Server{token: token, readOnly: map[string]bool{}, annotations: map[int64]*Annotation{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetToken changes the accepted token (the old one then gets 401).
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// AddReadOnlyToken makes token valid but without annotations:write: writes get 403.
func (s *Server) AddReadOnlyToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readOnly[token] = true
}

// SetFailure makes every request answer HTTP code (e.g. 503) with a Grafana
// style error body; 0 restores normal service.
func (s *Server) SetFailure(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode = code
}

// SetHang makes every request wait d (or until the client gives up) before
// it is handled; with afterStore the request is handled (a create is stored)
// first and the wait comes before the answer, like a Grafana that committed
// but answered too late. d = 0 restores normal service.
func (s *Server) SetHang(d time.Duration, afterStore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang, s.hangAfter = d, afterStore
}

// Annotations returns a copy of the stored annotations ordered by id.
func (s *Server) Annotations() []Annotation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Annotation, 0, len(s.annotations))
	for _, a := range s.annotations {
		c := *a
		c.Tags = slices.Clone(a.Tags)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Annotation) int { return int(a.ID - b.ID) })
	return out
}

// Creates returns how many annotations POST /api/annotations has stored.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// Requests returns how many requests reached the server.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func msg(w http.ResponseWriter, code int, m string) {
	writeJSON(w, code, map[string]string{"message": m})
}

func (s *Server) wait(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	failCode, hang, hangAfter := s.failCode, s.hang, s.hangAfter
	token := s.token
	readOnly := s.readOnly[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	s.mu.Unlock()

	// Read the body first: only then does net/http notice a client that gave
	// up, which ends the hang below.
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !hangAfter {
		s.wait(r, hang)
	}
	if failCode != 0 {
		msg(w, failCode, http.StatusText(failCode))
		return
	}
	auth := r.Header.Get("Authorization")
	if !readOnly && auth != "Bearer "+token {
		msg(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if readOnly && r.Method != http.MethodGet {
		msg(w, http.StatusForbidden, "You'll need additional permissions to perform this action. Permissions needed: annotations:create")
		return
	}
	code, answer := s.handle(r)
	if hangAfter {
		s.wait(r, hang)
	}
	writeJSON(w, code, answer)
}

func (s *Server) handle(r *http.Request) (int, any) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/api/annotations" && r.Method == http.MethodPost:
		var a Annotation
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			return http.StatusBadRequest, map[string]string{"message": "bad request data"}
		}
		if a.Text == "" {
			return http.StatusBadRequest, map[string]string{"message": "Failed to save annotation: text field should not be empty"}
		}
		if a.Time == 0 {
			a.Time = time.Now().UnixMilli()
		}
		if a.TimeEnd == 0 {
			a.TimeEnd = a.Time
		}
		s.mu.Lock()
		s.nextID++
		a.ID = s.nextID
		s.annotations[a.ID] = &a
		s.creates++
		s.mu.Unlock()
		return http.StatusOK, map[string]any{"message": "Annotation added", "id": a.ID}
	case path == "/api/annotations" && r.Method == http.MethodGet:
		q := r.URL.Query()
		tags := q["tags"]
		limit := 100
		if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
			limit = v
		}
		out := []Annotation{}
		for _, a := range s.Annotations() {
			if hasAll(a.Tags, tags) {
				out = append(out, a)
			}
		}
		slices.SortFunc(out, func(a, b Annotation) int { return int(b.Time - a.Time) })
		return http.StatusOK, out[:min(limit, len(out))]
	case strings.HasPrefix(path, "/api/annotations/") && (r.Method == http.MethodPut || r.Method == http.MethodPatch):
		id, err := strconv.ParseInt(strings.TrimPrefix(path, "/api/annotations/"), 10, 64)
		if err != nil {
			return http.StatusBadRequest, map[string]string{"message": "id is invalid"}
		}
		var in map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return http.StatusBadRequest, map[string]string{"message": "bad request data"}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		a, ok := s.annotations[id]
		if !ok {
			return http.StatusNotFound, map[string]string{"message": "Could not find annotation to update"}
		}
		var upd Annotation
		b, _ := json.Marshal(in)
		json.Unmarshal(b, &upd)
		if r.Method == http.MethodPut {
			upd.ID = id
			if upd.TimeEnd == 0 {
				upd.TimeEnd = upd.Time
			}
			*a = upd
			return http.StatusOK, map[string]string{"message": "Annotation updated"}
		}
		if _, ok := in["time"]; ok {
			a.Time = upd.Time
		}
		if _, ok := in["timeEnd"]; ok {
			a.TimeEnd = upd.TimeEnd
		}
		if _, ok := in["text"]; ok {
			a.Text = upd.Text
		}
		if _, ok := in["tags"]; ok {
			a.Tags = upd.Tags
		}
		return http.StatusOK, map[string]string{"message": "Annotation patched"}
	}
	return http.StatusNotFound, map[string]string{"message": "Not found"}
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
