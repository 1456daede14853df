package changelog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// api is one of the two HTTP faces of the log: /api/v1/changes (every
// kind) and /api/v1/deploys (kind deploy, the API CI already uses).
type api struct {
	s    *Service
	kind string // "" for every kind, or changes.KindDeploy
	base string // "/api/v1/changes" or "/api/v1/deploys"
}

// noun names this API's objects in messages: "change" or "deploy".
func (a *api) noun() string {
	if a.kind == "" {
		return "change"
	}
	return changes.Noun(a.kind)
}

func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	for _, a := range []*api{{s, "", "/api/v1/changes"}, {s, changes.KindDeploy, "/api/v1/deploys"}} {
		mux.HandleFunc("POST "+a.base, a.handleCreate)
		mux.HandleFunc("GET "+a.base, a.handleList)
		mux.HandleFunc("GET "+a.base+"/{id}", a.handleGet)
		mux.HandleFunc("PATCH "+a.base+"/{id}", a.handlePatch)
		mux.HandleFunc("GET "+a.base+"/{id}/impact", a.handleImpact)
		// Other methods get the JSON envelope too, not the mux's plain text.
		mux.HandleFunc(a.base, methodNotAllowed("GET, POST"))
		mux.HandleFunc(a.base+"/{id}", methodNotAllowed("GET, PATCH"))
		mux.HandleFunc(a.base+"/{id}/impact", methodNotAllowed("GET"))
	}
	s.switches.routes(mux)
	return mux
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, changes.Response[any]{Status: "error", ErrorType: "bad_data",
			Error: fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allow)})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeData(w http.ResponseWriter, code int, data any, warnings ...string) {
	writeJSON(w, code, changes.Response[any]{Status: "success", Data: data, Warnings: warnings})
}

// writeError maps err to an HTTP answer: the one place that does. noun
// names the object in a 404 ("deploy" or "change").
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error, noun string) {
	var re *changes.RequestError
	switch {
	case errors.As(err, &re):
		s.m.rejected(re.Reason).Inc()
		typ := "bad_data"
		if re.Status == http.StatusConflict {
			typ = "conflict"
		}
		writeJSON(w, re.Status, changes.Response[any]{Status: "error", ErrorType: typ, Error: re.Msg})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, changes.Response[any]{Status: "error", ErrorType: "not_found",
			Error: fmt.Sprintf("%s %q not found: list %ss with GET /api/v1/%ss", noun, r.PathValue("id"), noun, noun)})
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, changes.Response[any]{Status: "error", ErrorType: "canceled", Error: "request canceled: " + err.Error()})
	default:
		s.logger.Error("change log unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, changes.Response[any]{Status: "error", ErrorType: "unavailable",
			Error: "change log unavailable: " + err.Error() + "; retry later"})
	}
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.s.writeError(w, r, err, a.noun())
}

// body limits r's body to MaxBodyBytes, answering 413 up front when the
// declared length is already too large.
func (s *Service) body(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > s.opts.MaxBodyBytes {
		return changes.BodyTooLarge(s.opts.MaxBodyBytes)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	return nil
}

// get returns change id if it is of this API's kind: a switch flip is no
// deploy.
func (a *api) get(ctx context.Context, id string) (changes.Change, error) {
	c, err := a.s.log.Get(ctx, id)
	if err != nil {
		return changes.Change{}, a.s.storeError(err)
	}
	if a.kind != "" && c.Kind != a.kind {
		return changes.Change{}, fmt.Errorf("change %q is a %s: %w", id, c.Kind, ErrNotFound)
	}
	return c, nil
}

func (a *api) handleCreate(w http.ResponseWriter, r *http.Request) {
	s := a.s
	if err := s.body(w, r); err != nil {
		a.fail(w, r, err)
		return
	}
	decode := changes.DecodeRequest
	if a.kind != "" {
		decode = changes.DecodeDeploy
	}
	req, err := decode(r.Body, s.opts.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.kind != "" {
		if old, err := s.log.Get(r.Context(), req.ID); err == nil && old.Kind != a.kind {
			a.fail(w, r, &changes.RequestError{Status: http.StatusConflict, Field: "id", Reason: "id_conflict",
				Msg: fmt.Sprintf("id %q is taken by a %s change: send a new id", req.ID, old.Kind)})
			return
		}
	}
	c, created, warnings, err := s.record(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := s.withDelivery(r.Context(), []*changes.Change{&c}); err != nil {
		s.logger.Warn("cannot read delivery state", "change_id", c.ID, "err", err)
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Location", a.base+"/"+c.ID)
	}
	writeData(w, code, c, warnings...)
}

func (a *api) handlePatch(w http.ResponseWriter, r *http.Request) {
	s := a.s
	if err := s.body(w, r); err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := changes.DecodePatch(r.Body, s.opts.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if _, err := a.get(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := s.Update(r.Context(), r.PathValue("id"), p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := s.withDelivery(r.Context(), []*changes.Change{&c}); err != nil {
		s.logger.Warn("cannot read delivery state", "change_id", c.ID, "err", err)
	}
	writeData(w, http.StatusOK, c)
}

func (a *api) handleGet(w http.ResponseWriter, r *http.Request) {
	c, err := a.get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.s.withDelivery(r.Context(), []*changes.Change{&c}); err != nil {
		a.fail(w, r, a.s.storeError(err))
		return
	}
	writeData(w, http.StatusOK, c)
}

func (a *api) handleList(w http.ResponseWriter, r *http.Request) {
	f, err := changes.ParseFilter(r.URL.Query(), a.kind)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list, err := a.s.log.List(r.Context(), f)
	if err != nil {
		a.fail(w, r, a.s.storeError(err))
		return
	}
	ptrs := make([]*changes.Change, len(list))
	for i := range list {
		ptrs[i] = &list[i]
	}
	if err := a.s.withDelivery(r.Context(), ptrs); err != nil {
		a.fail(w, r, a.s.storeError(err))
		return
	}
	if list == nil {
		list = []changes.Change{}
	}
	writeData(w, http.StatusOK, list)
}

// withDelivery fills the Delivery field of each change from the outbox, and
// the state of a pending or failed impact analysis.
func (s *Service) withDelivery(ctx context.Context, list []*changes.Change) error {
	if len(list) == 0 {
		return nil
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	states, err := s.log.DeliveryStates(ctx, ids)
	if err != nil {
		return err
	}
	for _, c := range list {
		st := states[c.ID]
		if len(st) == 0 {
			continue
		}
		var del changes.Delivery
		deliveries := 0
		for _, t := range st {
			if t.Target == targetImpact {
				impactState(c, t)
				continue
			}
			deliveries++
			td := changes.TargetDelivery{Status: t.Status, Attempts: t.Attempts, LastError: t.LastError}
			if t.Status == changes.DeliveryPending {
				next := t.NextAttempt
				td.NextAttempt = &next
			}
			switch {
			case t.Target == targetSeries:
				del.Series = &td
			case t.Target == targetGrafana:
				td.AnnotationID = c.GrafanaAnnotationID
				del.Grafana = &td
			case strings.HasPrefix(t.Target, webhookPrefix):
				td.Name = strings.TrimPrefix(t.Target, webhookPrefix)
				del.Webhooks = append(del.Webhooks, td)
			default:
				td.Name = t.Target
				del.Others = append(del.Others, td)
			}
		}
		if deliveries > 0 {
			c.Delivery = &del
		}
	}
	return nil
}
