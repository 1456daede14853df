package deploys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/deploylog"
)

// List limits of GET /api/v1/deploys.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/deploys", s.handleCreate)
	mux.HandleFunc("GET /api/v1/deploys", s.handleList)
	mux.HandleFunc("GET /api/v1/deploys/{id}", s.handleGet)
	mux.HandleFunc("PATCH /api/v1/deploys/{id}", s.handlePatch)
	mux.HandleFunc("GET /api/v1/deploys/{id}/impact", s.handleImpact)
	// Other methods get the JSON envelope too, not the mux's plain text.
	mux.HandleFunc("/api/v1/deploys", methodNotAllowed("GET, POST"))
	mux.HandleFunc("/api/v1/deploys/{id}", methodNotAllowed("GET, PATCH"))
	mux.HandleFunc("/api/v1/deploys/{id}/impact", methodNotAllowed("GET"))
	return mux
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, envelope{Status: "error", ErrorType: "bad_data",
			Error: fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allow)})
	}
}

// envelope is the Prometheus HTTP API response shape.
type envelope struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeData(w http.ResponseWriter, code int, data any) {
	writeJSON(w, code, envelope{Status: "success", Data: data})
}

// writeError maps err to an HTTP answer: the one place that does.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var re *RequestError
	switch {
	case errors.As(err, &re):
		s.m.rejected(re.Reason).Inc()
		typ := "bad_data"
		if re.Status == http.StatusConflict {
			typ = "conflict"
		}
		writeJSON(w, re.Status, envelope{Status: "error", ErrorType: typ, Error: re.Msg})
	case errors.Is(err, deploylog.ErrNotFound):
		writeJSON(w, http.StatusNotFound, envelope{Status: "error", ErrorType: "not_found",
			Error: fmt.Sprintf("deploy %q not found: list deploys with GET /api/v1/deploys", r.PathValue("id"))})
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, envelope{Status: "error", ErrorType: "canceled", Error: "request canceled: " + err.Error()})
	default:
		s.logger.Error("deploy log unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, envelope{Status: "error", ErrorType: "unavailable",
			Error: "deploy log unavailable: " + err.Error() + "; retry later"})
	}
}

// body limits r's body to MaxBodyBytes, answering 413 up front when the
// declared length is already too large.
func (s *Service) body(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > s.opts.MaxBodyBytes {
		return bodyTooLarge(s.opts.MaxBodyBytes)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	return nil
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	if err := s.body(w, r); err != nil {
		s.writeError(w, r, err)
		return
	}
	req, err := DecodeRequest(r.Body, s.opts.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, created, err := s.Record(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.withDelivery(r.Context(), []*Deploy{&d}); err != nil {
		s.logger.Warn("cannot read delivery state", "deploy_id", d.ID, "err", err)
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Location", "/api/v1/deploys/"+d.ID)
	}
	writeData(w, code, d)
}

func (s *Service) handlePatch(w http.ResponseWriter, r *http.Request) {
	if err := s.body(w, r); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := DecodeChange(r.Body, s.opts.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.Update(r.Context(), r.PathValue("id"), c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.withDelivery(r.Context(), []*Deploy{&d}); err != nil {
		s.logger.Warn("cannot read delivery state", "deploy_id", d.ID, "err", err)
	}
	writeData(w, http.StatusOK, d)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	d, err := s.log.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, s.storeError(err))
		return
	}
	if err := s.withDelivery(r.Context(), []*Deploy{&d}); err != nil {
		s.writeError(w, r, s.storeError(err))
		return
	}
	writeData(w, http.StatusOK, d)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.log.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, s.storeError(err))
		return
	}
	ptrs := make([]*Deploy, len(list))
	for i := range list {
		ptrs[i] = &list[i]
	}
	if err := s.withDelivery(r.Context(), ptrs); err != nil {
		s.writeError(w, r, s.storeError(err))
		return
	}
	if list == nil {
		list = []Deploy{}
	}
	writeData(w, http.StatusOK, list)
}

// parseFilter reads service, env, from, to and limit of GET /api/v1/deploys.
func parseFilter(r *http.Request) (deploylog.Filter, error) {
	q := r.URL.Query()
	f := deploylog.Filter{Service: q.Get("service"), Env: q.Get("env"), Limit: DefaultListLimit}
	if f.Service != "" && !validLabelValue(f.Service, maxServiceLen) {
		return f, badField("service", "bad_label", "service filter %q has characters outside %s", clip(f.Service), labelCharset)
	}
	if f.Env != "" && !validLabelValue(f.Env, maxEnvLen) {
		return f, badField("env", "bad_label", "env filter %q has characters outside %s", clip(f.Env), labelCharset)
	}
	var err error
	if f.From, err = parseQueryTime("from", q.Get("from")); err != nil {
		return f, err
	}
	if f.To, err = parseQueryTime("to", q.Get("to")); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, badField("to", "bad_time", "\"to\" is before \"from\": swap them")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return f, badField("limit", "bad_limit", "\"limit\" %q is not a positive integer: send e.g. limit=%d", clip(v), DefaultListLimit)
		}
		if n > MaxListLimit {
			return f, badField("limit", "bad_limit", "\"limit\" %d exceeds the maximum %d: page with \"to\" set to the oldest time you got", n, MaxListLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// parseQueryTime accepts RFC3339 or unix seconds (with fraction), like the
// Prometheus HTTP API.
func parseQueryTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 && f < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	return time.Time{}, badField(field, "bad_time", "%q %q is neither RFC3339 (2024-05-01T12:00:00Z) nor unix seconds (1714564800)", field, clip(v))
}

// withDelivery fills the Delivery field of each deploy from the outbox, and
// the state of a pending or failed impact analysis.
func (s *Service) withDelivery(ctx context.Context, list []*Deploy) error {
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	states, err := s.log.DeliveryStates(ctx, ids)
	if err != nil {
		return err
	}
	for _, d := range list {
		st := states[d.ID]
		if len(st) == 0 {
			continue
		}
		var del deploylog.Delivery
		deliveries := 0
		for _, t := range st {
			if t.Target == targetImpact {
				impactState(d, t)
				continue
			}
			deliveries++
			td := deploylog.TargetDelivery{Status: t.Status, Attempts: t.Attempts, LastError: t.LastError}
			if t.Status == deploylog.StatusPending {
				next := t.NextAttempt
				td.NextAttempt = &next
			}
			switch {
			case t.Target == targetSeries:
				del.Series = &td
			case t.Target == targetGrafana:
				td.AnnotationID = d.GrafanaAnnotationID
				del.Grafana = &td
			case strings.HasPrefix(t.Target, webhookPrefix):
				td.Name = strings.TrimPrefix(t.Target, webhookPrefix)
				del.Webhooks = append(del.Webhooks, td)
			}
		}
		if deliveries > 0 {
			d.Delivery = &del
		}
	}
	return nil
}
