package changelog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// Switch relay: apps built with the instrument library announce their
// contingency switches and where to flip them (POST
// /api/v1/switches/announce, deploy scope, repeated every interval); the
// console and `annotator switch` list them (GET /api/v1/switches) and flip
// one with a reason (POST /api/v1/switches/{service}/{name}, deploy scope):
// the collector relays the flip to every live instance of the service,
// authenticated with the secret each instance announced. Each instance
// records the flip as a switch change under the id and time the relay
// chose, so a flip of N instances is one change. Announcements live in
// memory only and expire after three intervals: an app that stops
// announcing disappears, and a restarted collector learns the switches
// again from the next announcements.

// maxAnnouncedInstances bounds the instances the relay remembers.
const maxAnnouncedInstances = 1000

type announced struct {
	a       changes.Announcement
	seen    time.Time
	expires time.Time
}

// switchboard holds the announcements. Safe for concurrent use.
type switchboard struct {
	s  *Service
	mu sync.Mutex
	// by service + "\x00" + env + "\x00" + instance
	apps map[string]*announced
}

func newSwitchboard(s *Service) *switchboard {
	return &switchboard{s: s, apps: map[string]*announced{}}
}

func (b *switchboard) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/switches/announce", b.handleAnnounce)
	mux.HandleFunc("GET /api/v1/switches", b.handleList)
	mux.HandleFunc("POST /api/v1/switches/{service}/{name}", b.handleFlip)
	mux.HandleFunc("/api/v1/switches", methodNotAllowed("GET"))
	mux.HandleFunc("/api/v1/switches/announce", methodNotAllowed("POST"))
	mux.HandleFunc("/api/v1/switches/{service}/{name}", methodNotAllowed("POST"))
}

func (b *switchboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	b.s.writeError(w, r, err, "switch")
}

// decode reads a strict JSON body into v.
func (b *switchboard) decode(w http.ResponseWriter, r *http.Request, v any, fields string) error {
	if err := b.s.body(w, r); err != nil {
		return err
	}
	return changes.DecodeJSON(r.Body, v, fields)
}

func (b *switchboard) handleAnnounce(w http.ResponseWriter, r *http.Request) {
	var a changes.Announcement
	if err := b.decode(w, r, &a, "service, env, instance, url, secret, interval_seconds, switches"); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := a.Validate(); err != nil {
		b.fail(w, r, err)
		return
	}
	now := b.s.opts.Now()
	every := time.Duration(a.IntervalSeconds) * time.Second
	key := a.Service + "\x00" + a.Env + "\x00" + a.Instance
	b.mu.Lock()
	b.expire(now)
	if _, ok := b.apps[key]; !ok && len(b.apps) >= maxAnnouncedInstances {
		b.mu.Unlock()
		b.fail(w, r, &changes.RequestError{Status: http.StatusServiceUnavailable, Reason: "too_many_instances",
			Msg: fmt.Sprintf("the collector already holds %d announcing instances: stop announcing from short-lived instances", maxAnnouncedInstances)})
		return
	}
	expires := now.Add(3 * every)
	b.apps[key] = &announced{a: a, seen: now, expires: expires}
	b.mu.Unlock()
	writeData(w, http.StatusOK, map[string]any{"expires_at": expires.UTC()})
}

// expire drops the announcements past their time. Call with mu held.
func (b *switchboard) expire(now time.Time) {
	for k, a := range b.apps {
		if now.After(a.expires) {
			delete(b.apps, k)
		}
	}
}

// Switches returns the announced switches, merged per service, env and
// name, sorted; service and env "" do not filter.
func (s *Service) Switches(service, env string) []changes.SwitchView {
	b := s.switches
	now := s.opts.Now()
	b.mu.Lock()
	b.expire(now)
	byKey := map[string]*changes.SwitchView{}
	for _, app := range b.apps {
		a := app.a
		if service != "" && a.Service != service || env != "" && a.Env != env {
			continue
		}
		for _, sw := range a.Switches {
			k := a.Service + "\x00" + a.Env + "\x00" + sw.Name
			v := byKey[k]
			if v == nil {
				v = &changes.SwitchView{Service: a.Service, Env: a.Env, SwitchInfo: sw}
				byKey[k] = v
			}
			v.Instances = append(v.Instances, changes.SwitchInstance{Instance: a.Instance, On: sw.On, SeenAt: app.seen})
		}
	}
	b.mu.Unlock()
	out := make([]changes.SwitchView, 0, len(byKey))
	for _, v := range byKey {
		slices.SortFunc(v.Instances, func(x, y changes.SwitchInstance) int { return strings.Compare(x.Instance, y.Instance) })
		v.On = true
		for _, in := range v.Instances {
			v.On = v.On && in.On
			v.Mixed = v.Mixed || in.On != v.Instances[0].On
		}
		out = append(out, *v)
	}
	slices.SortFunc(out, func(x, y changes.SwitchView) int {
		return strings.Compare(x.Service+"\x00"+x.Env+"\x00"+x.Name, y.Service+"\x00"+y.Env+"\x00"+y.Name)
	})
	return out
}

func (b *switchboard) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	service, env := q.Get("service"), q.Get("env")
	if service != "" && !changes.ValidLabel(service) {
		b.fail(w, r, changes.BadField("service", "bad_label", "service filter %q has characters outside [A-Za-z0-9._-]", changes.Clip(service)))
		return
	}
	if env != "" && !changes.ValidLabel(env) {
		b.fail(w, r, changes.BadField("env", "bad_label", "env filter %q has characters outside [A-Za-z0-9._-]", changes.Clip(env)))
		return
	}
	writeData(w, http.StatusOK, b.s.Switches(service, env))
}

func (b *switchboard) handleFlip(w http.ResponseWriter, r *http.Request) {
	service, name := r.PathValue("service"), r.PathValue("name")
	var req changes.FlipRequest
	if err := b.decode(w, r, &req, "on, reason, who, env"); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := req.Validate(); err != nil {
		b.fail(w, r, err)
		return
	}
	res, err := b.s.FlipSwitch(r.Context(), service, name, req)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	code := http.StatusOK
	if !slices.ContainsFunc(res.Results, func(o changes.FlipOutcome) bool { return o.OK }) {
		code = http.StatusBadGateway
		writeJSON(w, code, changes.Response[any]{Status: "error", ErrorType: "unavailable", Data: res,
			Error: fmt.Sprintf("no instance of %s took the flip of %s: %s", service, name, res.Results[0].Error)})
		return
	}
	writeData(w, code, res)
}

// FlipSwitch relays a flip of switch name of service to every live
// instance that announced it (in req.Env, or in the only env it was
// announced in). Each instance records the switch change itself, under
// the change id and time in changes.FlipResult. A switch nobody announced is a
// *changes.RequestError with Status 404 naming the announced ones.
func (s *Service) FlipSwitch(ctx context.Context, service, name string, req changes.FlipRequest) (changes.FlipResult, error) {
	b := s.switches
	now := s.opts.Now()
	b.mu.Lock()
	b.expire(now)
	var targets []changes.Announcement
	envs := map[string]bool{}
	for _, app := range b.apps {
		if app.a.Service != service || !slices.ContainsFunc(app.a.Switches, func(sw changes.SwitchInfo) bool { return sw.Name == name }) {
			continue
		}
		envs[app.a.Env] = true
		if req.Env == "" || app.a.Env == req.Env {
			targets = append(targets, app.a)
		}
	}
	b.mu.Unlock()
	if len(targets) == 0 {
		var known []string
		for _, v := range s.Switches(service, "") {
			known = append(known, v.Name)
		}
		msg := fmt.Sprintf("no live instance of service %q announced switch %q", service, name)
		if len(known) > 0 {
			msg += "; its switches are " + strings.Join(slices.Compact(known), ", ")
		} else {
			msg += ": start the app with instrument's Switches and a collector, or flip it at the app's own endpoint"
		}
		return changes.FlipResult{}, &changes.RequestError{Status: http.StatusNotFound, Field: "name", Reason: "unknown_switch", Msg: msg}
	}
	if req.Env == "" && len(envs) > 1 {
		return changes.FlipResult{}, changes.BadField("env", "ambiguous_env", "service %q has switch %q in several envs (%s): send \"env\"", service, name, strings.Join(slices.Sorted(maps.Keys(envs)), ", "))
	}
	slices.SortFunc(targets, func(x, y changes.Announcement) int { return strings.Compare(x.Instance, y.Instance) })
	var idb [6]byte
	rand.Read(idb[:])
	flip := changes.RelayedFlip{On: *req.On, Reason: req.Reason, Who: req.Who,
		ID: "sw-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(idb[:]), Time: now.UTC().Truncate(time.Millisecond)}
	res := changes.FlipResult{Service: service, Env: targets[0].Env, Switch: name, On: flip.On, ChangeID: flip.ID}
	body, _ := json.Marshal(flip)
	for _, a := range targets {
		out := changes.FlipOutcome{Instance: a.Instance, OK: true}
		if err := s.relay(ctx, a, name, body); err != nil {
			out.OK, out.Error = false, err.Error()
			s.logger.Warn("cannot relay switch flip", "service", service, "switch", name, "instance", a.Instance, "err", err)
		} else {
			b.took(a, name, flip.On)
		}
		res.Results = append(res.Results, out)
	}
	s.logger.Info("switch flip relayed", "service", service, "env", res.Env, "switch", name, "on", flip.On, "who", req.Who,
		"change_id", flip.ID, "instances", len(targets))
	return res, nil
}

// took records that instance a took a flip of switch name, so GET
// /api/v1/switches shows it at once rather than at the app's next
// announcement.
func (b *switchboard) took(a changes.Announcement, name string, on bool) {
	key := a.Service + "\x00" + a.Env + "\x00" + a.Instance
	b.mu.Lock()
	defer b.mu.Unlock()
	app := b.apps[key]
	if app == nil {
		return
	}
	sws := slices.Clone(app.a.Switches) // announcements handed out share the old slice
	for i := range sws {
		if sws[i].Name == name {
			sws[i].On = on
		}
	}
	app.a.Switches = sws
}

// relay POSTs one flip to one instance.
func (s *Service) relay(ctx context.Context, a changes.Announcement, name string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.URL, "/")+"/"+url.PathEscape(name), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.Secret)
	req.Header.Set("User-Agent", "telltale-switch-relay")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("instance %s at %s: %w", a.Instance, a.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("instance %s answered HTTP %d: %s", a.Instance, resp.StatusCode, strings.TrimSpace(string(snippet)))
	}
	return nil
}
