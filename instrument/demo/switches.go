package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/telltale-dev/telltale/instrument"
)

// Switch is a contingency switch (a runtime feature flag, after Flickr's
// "10+ deploys per day"): turn a feature off, or make it slower and more
// error-prone, without a deploy. While Enabled, LatencyMs and ErrorRate are
// added to the requests the switch governs.
type Switch struct {
	Enabled     bool    `json:"enabled"`
	ErrorRate   float64 `json:"error_rate"` // extra probability of a 5xx, 0..1
	LatencyMs   int     `json:"latency_ms"` // extra latency in milliseconds
	Description string  `json:"description"`
}

// switchUpdate is the body of POST /switches/<name>; absent fields keep
// their value.
type switchUpdate struct {
	Enabled   *bool    `json:"enabled"`
	ErrorRate *float64 `json:"error_rate"`
	LatencyMs *int     `json:"latency_ms"`
}

const maxSwitchLatencyMs = 60_000

// defaultSwitches are the demo's switches and their start state.
func defaultSwitches() map[string]Switch {
	return map[string]Switch{
		"slow_checkout": {
			Enabled: false, ErrorRate: 0.2, LatencyMs: 300,
			Description: "bad-deploy simulation: while enabled, POST /api/checkout gets latency_ms slower and fails with error_rate more often",
		},
		"search": {
			Enabled:     true,
			Description: "the search feature: disabled, GET /api/search answers 503 at once; enabled, latency_ms and error_rate are added",
		},
		"recommendations": {
			Enabled:     true,
			Description: "recommendations on GET /api/products (a few ms of work): disable to shed load",
		},
	}
}

// switchboard holds the switches. Safe for concurrent use.
type switchboard struct {
	log *slog.Logger
	reg *instrument.Registry

	mu sync.RWMutex
	m  map[string]Switch
}

func newSwitchboard(reg *instrument.Registry, log *slog.Logger) *switchboard {
	b := &switchboard{log: log, reg: reg, m: defaultSwitches()}
	for name, s := range b.m {
		reg.Counter("demo_switch_flips_total", "switch", name) // exported at 0 from the start
		b.export(name, s)
	}
	return b
}

func (b *switchboard) export(name string, s Switch) {
	enabled := 0.0
	if s.Enabled {
		enabled = 1
	}
	b.reg.Gauge("demo_switch_enabled", "switch", name).Set(enabled)
	b.reg.Gauge("demo_switch_error_rate", "switch", name).Set(s.ErrorRate)
	b.reg.Gauge("demo_switch_latency_seconds", "switch", name).Set(float64(s.LatencyMs) / 1000)
}

// get returns switch name; ok is false for an unknown name.
func (b *switchboard) get(name string) (Switch, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, ok := b.m[name]
	return s, ok
}

var errUnknownSwitch = errors.New("unknown switch")

// update applies u to switch name and returns the new state.
func (b *switchboard) update(name string, u switchUpdate) (Switch, error) {
	if u.ErrorRate != nil && !(*u.ErrorRate >= 0 && *u.ErrorRate <= 1) {
		return Switch{}, fmt.Errorf("error_rate=%v is out of range: use a probability from 0 to 1", *u.ErrorRate)
	}
	if u.LatencyMs != nil && (*u.LatencyMs < 0 || *u.LatencyMs > maxSwitchLatencyMs) {
		return Switch{}, fmt.Errorf("latency_ms=%d is out of range: use 0 to %d", *u.LatencyMs, maxSwitchLatencyMs)
	}
	b.mu.Lock()
	s, ok := b.m[name]
	if !ok {
		b.mu.Unlock()
		return Switch{}, fmt.Errorf("%w %q: use one of %s", errUnknownSwitch, name, strings.Join(b.namesLocked(), ", "))
	}
	was := s.Enabled
	if u.Enabled != nil {
		s.Enabled = *u.Enabled
	}
	if u.ErrorRate != nil {
		s.ErrorRate = *u.ErrorRate
	}
	if u.LatencyMs != nil {
		s.LatencyMs = *u.LatencyMs
	}
	b.m[name] = s
	b.export(name, s) // under the lock, so the metrics match the last update
	b.mu.Unlock()
	if s.Enabled != was {
		b.reg.Counter("demo_switch_flips_total", "switch", name).Inc()
	}
	b.log.Info("switch changed", "switch", name, "enabled", s.Enabled, "error_rate", s.ErrorRate, "latency_ms", s.LatencyMs)
	return s, nil
}

func (b *switchboard) namesLocked() []string {
	names := make([]string, 0, len(b.m))
	for n := range b.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// decodeSwitchUpdate parses a POST body strictly: unknown fields and
// trailing data are errors.
func decodeSwitchUpdate(r io.Reader) (switchUpdate, error) {
	var u switchUpdate
	dec := json.NewDecoder(io.LimitReader(r, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return u, fmt.Errorf("cannot parse switch update: %w: send JSON such as {\"enabled\":true,\"error_rate\":0.2,\"latency_ms\":300}", err)
	}
	if dec.More() {
		return u, errors.New("cannot parse switch update: trailing data after the JSON object: send one object")
	}
	if u.Enabled == nil && u.ErrorRate == nil && u.LatencyMs == nil {
		return u, errors.New("switch update sets nothing: give at least one of enabled, error_rate, latency_ms")
	}
	return u, nil
}

// register adds GET /switches, GET /switches/{name} and
// POST /switches/{name} to mux.
func (b *switchboard) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /switches", func(w http.ResponseWriter, r *http.Request) {
		b.mu.RLock()
		m := make(map[string]Switch, len(b.m))
		for k, v := range b.m {
			m[k] = v
		}
		b.mu.RUnlock()
		writeJSON(w, http.StatusOK, m)
	})
	mux.HandleFunc("GET /switches/{name}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := b.get(r.PathValue("name"))
		if !ok {
			b.mu.RLock()
			names := b.namesLocked()
			b.mu.RUnlock()
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown switch %q: use one of %s", r.PathValue("name"), strings.Join(names, ", ")))
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /switches/{name}", func(w http.ResponseWriter, r *http.Request) {
		u, err := decodeSwitchUpdate(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s, err := b.update(r.PathValue("name"), u)
		switch {
		case errors.Is(err, errUnknownSwitch):
			writeError(w, http.StatusNotFound, err.Error())
		case err != nil:
			writeError(w, http.StatusBadRequest, err.Error())
		default:
			writeJSON(w, http.StatusOK, s)
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
