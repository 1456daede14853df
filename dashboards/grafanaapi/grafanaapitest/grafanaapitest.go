// Package grafanaapitest is an in-memory Grafana for tests of dashboard
// pushes. It follows Grafana's documented HTTP API for what Telltale uses:
//
//	GET  /api/folders/:uid    200 {id, uid, title, url} or 404 {"message":"folder not found"}
//	POST /api/folders         200 {id, uid, title, url}; 409 when the uid exists
//	POST /api/dashboards/db   200 {id, uid, url, status, version, slug};
//	                          412 {"message", "status":"version-mismatch"} when the
//	                          dashboard exists, overwrite is false and the versions differ;
//	                          412 {"status":"name-exists"} for a title taken in the folder;
//	                          400 {"message":"folder not found"} for an unknown folderUid
//	GET  /api/dashboards/uid/:uid  200 {dashboard, meta} or 404
//
// Every request needs "Authorization: Bearer <Token>" (401
// {"message":"Unauthorized"} otherwise); a read-only server answers writes
// with 403 like a Viewer token gets.
package grafanaapitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

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

// Server is the fake Grafana. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	// Token is the only accepted service account token.
	Token string

	mu         sync.Mutex
	readOnly   bool
	nextID     int64
	folders    map[string]Folder
	dashboards map[string]*Dashboard
	requests   []string
}

// New starts a fake Grafana accepting token; it stops when the test ends.
func New(t testing.TB, token string) *Server {
	s := &Server{Token: token, folders: map[string]Folder{}, dashboards: map[string]*Dashboard{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/folders/{uid}", s.getFolder)
	mux.HandleFunc("POST /api/folders", s.createFolder)
	mux.HandleFunc("POST /api/dashboards/db", s.saveDashboard)
	mux.HandleFunc("GET /api/dashboards/uid/{uid}", s.getDashboard)
	s.Server = httptest.NewServer(s.auth(mux))
	t.Cleanup(s.Close)
	return s
}

// SetReadOnly makes writes answer 403, as for a Viewer's token.
func (s *Server) SetReadOnly(ro bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readOnly = ro
}

// Requests returns "METHOD /path" of every request so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		ro := s.readOnly
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+s.Token {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
			return
		}
		if ro && r.Method != http.MethodGet {
			writeJSON(w, http.StatusForbidden, map[string]string{
				"message": "You'll need additional permissions to perform this action. Permissions needed: dashboards:create"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) getFolder(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f, ok := s.folders[r.PathValue("uid")]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "folder not found"})
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) createFolder(w http.ResponseWriter, r *http.Request) {
	var in struct{ UID, Title string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Title == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request data"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.folders[in.UID]; ok {
		writeJSON(w, http.StatusConflict, map[string]string{"message": "a folder with the same uid already exists"})
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
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request data"})
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
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "folder not found"})
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
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Dashboard not found"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dashboard": d.Model, "meta": map[string]any{"folderUid": d.FolderUID, "version": d.Version}})
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(title string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(title), "-"), "-")
}
