// Package grafanatest is a fake Grafana for tests: an httptest server that
// follows Grafana's documented HTTP API for what Telltale uses of it:
//
//	POST /api/annotations          200 {"message", "id"}; 400 without text
//	PUT, PATCH /api/annotations/:id  200, or 404 for an unknown id
//	GET  /api/annotations?tags=..&limit=..  the annotations carrying every tag, newest first
//	GET  /api/folders/:uid    200 {id, uid, title, url} or 404 {"message":"folder not found"}
//	POST /api/folders         200 {id, uid, title, url}; 409 when the uid exists
//	POST /api/dashboards/db   200 {id, uid, url, status, version, slug};
//	                          412 {"message", "status":"version-mismatch"} when the
//	                          dashboard exists, overwrite is false and the versions differ;
//	                          412 {"status":"name-exists"} for a title taken in the folder;
//	                          400 {"message":"folder not found"} for an unknown folderUid
//	GET  /api/dashboards/uid/:uid  200 {dashboard, meta} or 404
//
// and its auth: "Authorization: Bearer <token>", 401 {"message":"Unauthorized"}
// otherwise, 403 for a write with a token without write permission (a
// Viewer's). It can be told to fail, refuse or hang the way a real Grafana
// does when it is down, misconfigured or overloaded.
//
// A Server is safe for concurrent use.
package grafanatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
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

// Dashboard is a stored dashboard.
type Dashboard struct {
	Model     map[string]any
	FolderUID string
	Version   int64
	ID        int64
	// Message is the commit message of the last save.
	Message string
}

// Folder is a stored folder.
type Folder struct {
	ID    int64  `json:"id"`
	UID   string `json:"uid"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Server is a fake Grafana.
type Server struct {
	*httptest.Server

	mu          sync.Mutex
	token       string
	readOnly    map[string]bool // tokens that may read but not write
	allReadOnly bool            // the token may read but not write
	failCode    int
	hang        time.Duration
	hangAfter   bool
	nextAnnID   int64
	annotations map[int64]*Annotation
	creates     int
	folders     map[string]Folder
	nextID      int64 // of folders and dashboards
	dashboards  map[string]*Dashboard
	requests    []string
}

// NewServer starts a fake Grafana accepting "Bearer <token>". Close it when
// done.
func NewServer(token string) *Server {
	s := &Server{token: token, readOnly: map[string]bool{}, annotations: map[int64]*Annotation{},
		folders: map[string]Folder{}, dashboards: map[string]*Dashboard{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/annotations", s.createAnnotation)
	mux.HandleFunc("GET /api/annotations", s.findAnnotations)
	mux.HandleFunc("PUT /api/annotations/{id}", s.updateAnnotation)
	mux.HandleFunc("PATCH /api/annotations/{id}", s.updateAnnotation)
	mux.HandleFunc("GET /api/folders/{uid}", s.getFolder)
	mux.HandleFunc("POST /api/folders", s.createFolder)
	mux.HandleFunc("POST /api/dashboards/db", s.saveDashboard)
	mux.HandleFunc("GET /api/dashboards/uid/{uid}", s.getDashboard)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { msg(w, http.StatusNotFound, "Not found") })
	s.Server = httptest.NewServer(s.serve(mux))
	return s
}

// New starts a fake Grafana accepting "Bearer <token>" that stops when the
// test ends.
func New(t testing.TB, token string) *Server {
	s := NewServer(token)
	t.Cleanup(s.Close)
	return s
}

// SetToken changes the accepted token (the old one then gets 401).
func (s *Server) SetToken(token string) { s.locked(func() { s.token = token }) }

// AddReadOnlyToken makes token valid but without write permission: writes
// get 403.
func (s *Server) AddReadOnlyToken(token string) { s.locked(func() { s.readOnly[token] = true }) }

// SetReadOnly makes writes with the accepted token answer 403, as for a
// Viewer's token.
func (s *Server) SetReadOnly(ro bool) { s.locked(func() { s.allReadOnly = ro }) }

// SetFailure makes every request answer HTTP code (e.g. 503) with a Grafana
// style error body; 0 restores normal service.
func (s *Server) SetFailure(code int) { s.locked(func() { s.failCode = code }) }

// SetHang makes every request wait d (or until the client gives up) before
// it is handled; with afterStore the request is handled (a create is stored)
// first and the wait comes before the answer, like a Grafana that committed
// but answered too late. d = 0 restores normal service.
func (s *Server) SetHang(d time.Duration, afterStore bool) {
	s.locked(func() { s.hang, s.hangAfter = d, afterStore })
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
	return len(s.requests)
}

// RequestLog returns "METHOD /path" of every request so far.
func (s *Server) RequestLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Folders returns the stored folders by uid.
func (s *Server) Folders() map[string]Folder {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Folder{}
	for k, v := range s.folders {
		out[k] = v
	}
	return out
}

// Dashboard returns a copy of the stored dashboard with uid.
func (s *Server) Dashboard(uid string) (Dashboard, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dashboards[uid]
	if !ok {
		return Dashboard{}, false
	}
	return *d, true
}

// EditInUI changes the stored dashboard's title as a user saving it in
// Grafana's UI would, which bumps its version.
func (s *Server) EditInUI(uid, title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dashboards[uid]
	d.Version++
	d.Model["title"] = title
	d.Model["version"] = float64(d.Version)
}

// AddDashboard stores a dashboard directly, as if created in the UI.
func (s *Server) AddDashboard(uid, title, folderUID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.dashboards[uid] = &Dashboard{Model: map[string]any{"uid": uid, "title": title, "version": float64(1)}, FolderUID: folderUID, Version: 1, ID: s.nextID}
}

// locked runs f holding the server's lock.
func (s *Server) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func msg(w http.ResponseWriter, code int, m string) {
	writeJSON(w, code, map[string]string{"message": m})
}

func wait(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// serve counts the request, then hangs, fails or checks the token as told
// before next handles it.
func (s *Server) serve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		failCode, hang, hangAfter := s.failCode, s.hang, s.hangAfter
		valid := r.Header.Get("Authorization") == "Bearer "+s.token || s.readOnly[tok]
		readOnly := s.readOnly[tok] || s.allReadOnly
		s.mu.Unlock()

		// Read the body first: only then does net/http notice a client that
		// gave up, which ends the hang below.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !hangAfter {
			wait(r, hang)
		}
		if failCode != 0 {
			msg(w, failCode, http.StatusText(failCode))
			return
		}
		if !valid {
			msg(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		if readOnly && r.Method != http.MethodGet {
			need := "dashboards:create"
			if strings.HasPrefix(r.URL.Path, "/api/annotations") {
				need = "annotations:create"
			}
			msg(w, http.StatusForbidden, "You'll need additional permissions to perform this action. Permissions needed: "+need)
			return
		}
		if hangAfter {
			w = &delayedWriter{ResponseWriter: w, r: r, d: hang}
		}
		next.ServeHTTP(w, r)
	})
}

// delayedWriter holds the answer back d after the handler stored what the
// request asked for.
type delayedWriter struct {
	http.ResponseWriter
	r *http.Request
	d time.Duration
}

func (d *delayedWriter) WriteHeader(code int) {
	wait(d.r, d.d)
	d.ResponseWriter.WriteHeader(code)
}

func (s *Server) createAnnotation(w http.ResponseWriter, r *http.Request) {
	var a Annotation
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
		msg(w, http.StatusBadRequest, "bad request data")
		return
	}
	if a.Text == "" {
		msg(w, http.StatusBadRequest, "Failed to save annotation: text field should not be empty")
		return
	}
	if a.Time == 0 {
		a.Time = time.Now().UnixMilli()
	}
	if a.TimeEnd == 0 {
		a.TimeEnd = a.Time
	}
	s.mu.Lock()
	s.nextAnnID++
	a.ID = s.nextAnnID
	s.annotations[a.ID] = &a
	s.creates++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"message": "Annotation added", "id": a.ID})
}

func (s *Server) findAnnotations(w http.ResponseWriter, r *http.Request) {
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
	writeJSON(w, http.StatusOK, out[:min(limit, len(out))])
}

func (s *Server) updateAnnotation(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		msg(w, http.StatusBadRequest, "id is invalid")
		return
	}
	var in map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		msg(w, http.StatusBadRequest, "bad request data")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.annotations[id]
	if !ok {
		msg(w, http.StatusNotFound, "Could not find annotation to update")
		return
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
		msg(w, http.StatusOK, "Annotation updated")
		return
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
	msg(w, http.StatusOK, "Annotation patched")
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (s *Server) getFolder(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f, ok := s.folders[r.PathValue("uid")]
	s.mu.Unlock()
	if !ok {
		msg(w, http.StatusNotFound, "folder not found")
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) createFolder(w http.ResponseWriter, r *http.Request) {
	var in struct{ UID, Title string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Title == "" {
		msg(w, http.StatusBadRequest, "bad request data")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.folders[in.UID]; ok {
		msg(w, http.StatusConflict, "a folder with the same uid already exists")
		return
	}
	s.nextID++
	f := Folder{ID: s.nextID, UID: in.UID, Title: in.Title, URL: "/dashboards/f/" + in.UID + "/" + slug(in.Title)}
	s.folders[in.UID] = f
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) saveDashboard(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Dashboard map[string]any `json:"dashboard"`
		FolderUID string         `json:"folderUid"`
		Overwrite bool           `json:"overwrite"`
		Message   string         `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Dashboard == nil {
		msg(w, http.StatusBadRequest, "bad request data")
		return
	}
	uid, _ := in.Dashboard["uid"].(string)
	title, _ := in.Dashboard["title"].(string)
	if title == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Dashboard title cannot be empty", "status": "empty-name"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.FolderUID != "" {
		if _, ok := s.folders[in.FolderUID]; !ok {
			msg(w, http.StatusBadRequest, "folder not found")
			return
		}
	}
	existing := s.dashboards[uid]
	if existing == nil {
		for _, d := range s.dashboards {
			if d.FolderUID == in.FolderUID && d.Model["title"] == title {
				if !in.Overwrite {
					writeJSON(w, http.StatusPreconditionFailed, map[string]string{
						"message": "A dashboard with the same name in the folder already exists", "status": "name-exists"})
					return
				}
				existing = d // Grafana takes the existing dashboard over, uid included
				uid, _ = d.Model["uid"].(string)
				in.Dashboard["uid"] = uid
			}
		}
	}
	version := int64(1)
	id := int64(0)
	if existing != nil {
		sent, _ := in.Dashboard["version"].(float64)
		if !in.Overwrite && int64(sent) != existing.Version {
			writeJSON(w, http.StatusPreconditionFailed, map[string]string{
				"message": "The dashboard has been changed by someone else", "status": "version-mismatch"})
			return
		}
		version = existing.Version + 1
		id = existing.ID
	} else {
		s.nextID++
		id = s.nextID
	}
	in.Dashboard["version"] = float64(version)
	in.Dashboard["id"] = float64(id)
	s.dashboards[uid] = &Dashboard{Model: in.Dashboard, FolderUID: in.FolderUID, Version: version, ID: id, Message: in.Message}
	sl := slug(title)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "uid": uid, "url": fmt.Sprintf("/d/%s/%s", uid, sl), "status": "success", "version": version, "slug": sl,
	})
}

func (s *Server) getDashboard(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d, ok := s.dashboards[r.PathValue("uid")]
	s.mu.Unlock()
	if !ok {
		msg(w, http.StatusNotFound, "Dashboard not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dashboard": d.Model, "meta": map[string]any{"folderUid": d.FolderUID, "version": d.Version}})
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(title string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(title), "-"), "-")
}
