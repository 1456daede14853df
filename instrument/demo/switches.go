package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/instrument"
)

// The demo's contingency switches are instrument switches (declared,
// read with On, flipped through an authenticated endpoint, every flip
// recorded at the collector as a switch change); besides on/off each has
// two knobs of the bad-deploy simulation, latency_ms and error_rate,
// added to the requests it governs while on.

// Switch is one switch as GET /switches shows it.
type Switch struct {
	Enabled     bool    `json:"enabled"`
	ErrorRate   float64 `json:"error_rate"` // extra probability of a 5xx, 0..1
	LatencyMs   int     `json:"latency_ms"` // extra latency in milliseconds
	Description string  `json:"description"`
	Owner       string  `json:"owner,omitempty"`
	Protects    string  `json:"protects,omitempty"`
	Default     bool    `json:"default"`
}

// switchUpdate is the body of POST /switches/<name>; absent fields keep
// their value. On and Enabled are the same; Reason and Who are recorded
// with a flip; ID and Time come from the collector's relay.
type switchUpdate struct {
	Enabled   *bool     `json:"enabled,omitempty"`
	On        *bool     `json:"on,omitempty"`
	ErrorRate *float64  `json:"error_rate,omitempty"`
	LatencyMs *int      `json:"latency_ms,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Who       string    `json:"who,omitempty"`
	ID        string    `json:"id,omitempty"`
	Time      time.Time `json:"time,omitzero"`
}

const maxSwitchLatencyMs = 60_000

// knobs are a switch's simulation settings.
type knobs struct {
	errorRate float64
	latencyMs int
}

// demoSwitches are the demo's switches and their knobs at start.
func demoSwitches() map[string]struct {
	def instrument.SwitchDef
	k   knobs
} {
	type entry = struct {
		def instrument.SwitchDef
		k   knobs
	}
	return map[string]entry{
		"slow_checkout": {instrument.SwitchDef{Name: "slow_checkout", Owner: "shop-team",
			Description: "bad-deploy simulation: while on, POST /api/checkout gets latency_ms slower and fails with error_rate more often",
			Protects:    "nothing: it breaks checkout on purpose, to see a regression on the graphs"}, knobs{errorRate: 0.2, latencyMs: 300}},
		"search": {instrument.SwitchDef{Name: "search", Owner: "search-team", Default: true,
			Description: "the search feature: off, GET /api/search answers 503 at once; on, latency_ms and error_rate are added",
			Protects:    "the search backend: turn it off when search is slow or failing"}, knobs{}},
		"recommendations": {instrument.SwitchDef{Name: "recommendations", Owner: "shop-team", Default: true,
			Description: "recommendations on GET /api/products (a few ms of work)",
			Protects:    "product pages: turn it off to shed load"}, knobs{}},
	}
}

// switchboard holds the switches and their knobs. Safe for concurrent use.
type switchboard struct {
	log *slog.Logger
	reg *instrument.Registry
	sw  map[string]*instrument.Switch

	mu    sync.RWMutex
	knobs map[string]knobs
}

func newSwitchboard(reg *instrument.Registry, log *slog.Logger) *switchboard {
	b := &switchboard{log: log, reg: reg, sw: map[string]*instrument.Switch{}, knobs: map[string]knobs{}}
	for name, e := range demoSwitches() {
		b.sw[name] = reg.Switch(e.def)
		b.knobs[name] = e.k
		b.export(name, e.k)
	}
	return b
}

func (b *switchboard) export(name string, k knobs) {
	b.reg.Gauge("demo_switch_error_rate", "switch", name).Set(k.errorRate)
	b.reg.Gauge("demo_switch_latency_seconds", "switch", name).Set(float64(k.latencyMs) / 1000)
}

// get returns switch name; ok is false for an unknown name.
func (b *switchboard) get(name string) (Switch, bool) {
	sw := b.sw[name]
	if sw == nil {
		return Switch{}, false
	}
	b.mu.RLock()
	k := b.knobs[name]
	b.mu.RUnlock()
	d := sw.Def()
	return Switch{Enabled: sw.On(), ErrorRate: k.errorRate, LatencyMs: k.latencyMs, Description: d.Description, Owner: d.Owner,
		Protects: d.Protects, Default: d.Default}, true
}

// on reports whether switch name is on (the hot path: one atomic load).
func (b *switchboard) on(name string) bool { return b.sw[name].On() }

var errUnknownSwitch = errors.New("unknown switch")

// update applies u to switch name, flipping it (and recording the flip)
// when u says on or enabled, and returns the new state. who is who flips
// when no one is named in u (the token's name); relayed marks a flip the
// collector relayed (ID and Time then name the change).
func (b *switchboard) update(name string, u switchUpdate, who string, relayed bool) (Switch, error) {
	if u.ErrorRate != nil && !(*u.ErrorRate >= 0 && *u.ErrorRate <= 1) {
		return Switch{}, fmt.Errorf("error_rate=%v is out of range: use a probability from 0 to 1", *u.ErrorRate)
	}
	if u.LatencyMs != nil && (*u.LatencyMs < 0 || *u.LatencyMs > maxSwitchLatencyMs) {
		return Switch{}, fmt.Errorf("latency_ms=%d is out of range: use 0 to %d", *u.LatencyMs, maxSwitchLatencyMs)
	}
	if b.sw[name] == nil {
		return Switch{}, fmt.Errorf("%w %q: use one of %s", errUnknownSwitch, name, strings.Join(b.names(), ", "))
	}
	b.mu.Lock()
	k := b.knobs[name]
	if u.ErrorRate != nil {
		k.errorRate = *u.ErrorRate
	}
	if u.LatencyMs != nil {
		k.latencyMs = *u.LatencyMs
	}
	b.knobs[name] = k
	b.export(name, k) // under the lock, so the metrics match the last update
	b.mu.Unlock()
	if on := u.on(); on != nil {
		f := instrument.Flip{Who: who, Reason: u.Reason}
		if f.Who == "" || relayed {
			f.Who = u.Who
		}
		if f.Who == "" {
			f.Who = "anonymous"
		}
		if relayed {
			f.ID, f.Time = u.ID, u.Time
		}
		if _, _, err := b.reg.FlipSwitch(name, *on, f); err != nil {
			return Switch{}, err
		}
	}
	s, _ := b.get(name)
	b.log.Info("switch changed", "switch", name, "enabled", s.Enabled, "error_rate", s.ErrorRate, "latency_ms", s.LatencyMs, "who", who)
	return s, nil
}

func (u switchUpdate) on() *bool {
	if u.On != nil {
		return u.On
	}
	return u.Enabled
}

func (b *switchboard) names() []string {
	names := make([]string, 0, len(b.sw))
	for n := range b.sw {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// decodeSwitchUpdate parses a POST body strictly: unknown fields, repeated
// keys, bytes that are not UTF-8 and trailing data are errors.
func decodeSwitchUpdate(r io.Reader) (switchUpdate, error) {
	var u switchUpdate
	const example = `send JSON such as {"on":true,"reason":"why"} or {"enabled":true,"error_rate":0.2,"latency_ms":300}`
	if err := changes.DecodeJSON(io.LimitReader(r, 4<<10), &u, "enabled, on, error_rate, latency_ms, reason, who, id, time"); err != nil {
		return u, fmt.Errorf("cannot parse switch update: %w; %s", err, example)
	}
	if u.Enabled != nil && u.On != nil && *u.Enabled != *u.On {
		return u, errors.New("switch update says on and enabled differently: send one of them")
	}
	if u.on() == nil && u.ErrorRate == nil && u.LatencyMs == nil {
		return u, errors.New("switch update sets nothing: give at least one of on (or enabled), error_rate, latency_ms")
	}
	return u, nil
}

// register adds GET /switches, GET /switches/{name} and
// POST /switches/{name} to mux.
func (b *switchboard) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /switches", func(w http.ResponseWriter, r *http.Request) {
		m := map[string]Switch{}
		for _, n := range b.names() {
			m[n], _ = b.get(n)
		}
		writeJSON(w, http.StatusOK, m)
	})
	mux.HandleFunc("GET /switches/{name}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := b.get(r.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown switch %q: use one of %s", r.PathValue("name"), strings.Join(b.names(), ", ")))
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /switches/{name}", func(w http.ResponseWriter, r *http.Request) {
		who, relayed, err := b.reg.AuthorizeSwitchFlip(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switches"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		u, err := decodeSwitchUpdate(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s, err := b.update(r.PathValue("name"), u, who, relayed)
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

// readSwitchTokens reads -switch.tokens-file: one "name token" per line;
// blank lines and lines starting with # are skipped.
func readSwitchTokens(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read -switch.tokens-file: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, tok, ok := strings.Cut(line, " ")
		if tok = strings.TrimSpace(tok); !ok || name == "" || len(tok) < 16 {
			return nil, fmt.Errorf("-switch.tokens-file %s line %d: want \"name token\" with a token of at least 16 characters", path, n)
		}
		out[name] = tok
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-switch.tokens-file %s has no tokens: add lines \"name token\"", path)
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
