package instrument

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/retry"
)

// Contingency switches (after Flickr's "10+ deploys per day": a couple
// hundred of them, flipped to turn a feature off without a deploy): a
// service declares each with Registry.Switch and reads it on the hot path
// with Switch.On, one atomic load. Flips come through SwitchHandler (an
// authenticated endpoint of the app), directly or relayed by the collector
// from its console and `annotator switch`; each flip that changes a switch
// is recorded at the collector as a change of kind switch (who, why), and
// the state is exported as telltale_switch_on{switch} (1 on, 0 off).
//
// Promises:
//   - On never blocks and never allocates: it is safe in any hot path.
//   - A flip takes effect at once, whatever the collector does: the
//     record is queued (bounded, MaxPendingSwitchRecords) and sent in the
//     background with retries until it is accepted or refused (a 4xx is
//     logged and dropped); stop flushes the queue for at most
//     Options.FlushTimeout. Records dropped for a full queue are counted
//     in telltale_instrument_switch_records_dropped_total.
//   - A switch away from its default is an open region in the change log;
//     the flip back ends it (the change log's subject rule), so dashboards
//     show the time it was off as a band.
//   - With Options.SwitchURL and Collector set, the switches are announced
//     to the collector every DefaultAnnounceInterval and after each flip,
//     with a random secret that SwitchHandler accepts for relayed flips.

// MaxPendingSwitchRecords bounds the flips waiting to be recorded.
const MaxPendingSwitchRecords = 256

// SwitchDef declares a contingency switch.
type SwitchDef struct {
	// Name is 1-128 characters of [A-Za-z0-9._:/-], unique per registry.
	Name string
	// Description says what the switch does when on and off.
	Description string
	// Owner is who to ask before flipping it (a team, a person).
	Owner string
	// Protects says what flipping it away from its default protects, e.g.
	// "checkout when the payment provider is slow".
	Protects string
	// Default is the state at start, and the state a flip back to ends the
	// region of.
	Default bool
}

// Switch is one declared switch. It is safe for concurrent use.
type Switch struct {
	def   SwitchDef
	on    atomic.Bool
	gauge *metrics.Gauge
	flips *metrics.Counter
}

// On reports whether the switch is on: one atomic load.
func (s *Switch) On() bool { return s.on.Load() }

// Def returns the switch's declaration.
func (s *Switch) Def() SwitchDef { return s.def }

// Flip is who flips a switch and why.
type Flip struct {
	Who, Reason string
	// ID and Time name the switch change recorded for the flip; zero
	// means a new id and now. The collector's relay sets them so that a
	// flip of every instance of a service is one change.
	ID   string
	Time time.Time
	// relayed marks a flip the collector relayed (recorded without the
	// instance, so every instance records the same change).
	relayed bool
}

// SwitchState is a switch as SwitchHandler shows it.
type SwitchState = changes.SwitchInfo

// ErrUnknownSwitch is returned for a switch that was never declared.
var ErrUnknownSwitch = errors.New("unknown switch")

// switchBoard holds a registry's switches and, once Start configured it,
// records flips and announces the switches to the collector.
type switchBoard struct {
	reg    *Registry
	secret string // accepted from the collector's relay

	mu     sync.Mutex
	byName map[string]*Switch
	cfg    *boardConfig // nil before Start (or without a collector)

	queue    chan changes.CreateRequest
	announce chan struct{}
	dropped  *metrics.Counter
	recorded *metrics.Counter
}

// boardConfig is what Start tells the board.
type boardConfig struct {
	changesURL, announceURL string // empty: do not record / announce
	token                   string
	service, env, instance  string
	switchURL               string
	tokens                  map[string]string // name → token
	client                  *http.Client
	log                     *slog.Logger
	retryMin, retryMax      time.Duration
	timeout                 time.Duration // of one request
	every                   time.Duration // announce interval
}

func newSwitchBoard(r *Registry) *switchBoard {
	var b [16]byte
	rand.Read(b[:])
	return &switchBoard{
		reg:      r,
		secret:   hex.EncodeToString(b[:]),
		byName:   map[string]*Switch{},
		queue:    make(chan changes.CreateRequest, MaxPendingSwitchRecords),
		announce: make(chan struct{}, 1),
		dropped:  r.set.GetOrCreateCounter(`telltale_instrument_switch_records_dropped_total`),
		recorded: r.set.GetOrCreateCounter(`telltale_instrument_switch_records_total`),
	}
}

func (r *Registry) board() *switchBoard {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.switches == nil {
		r.switches = newSwitchBoard(r)
	}
	return r.switches
}

// Switch declares the switch def (its state starts at def.Default) and
// returns it; declaring the same name again returns the same Switch. An
// invalid name, or a second declaration with another definition, is a
// programming error and panics.
func (r *Registry) Switch(def SwitchDef) *Switch {
	if !validSwitchName(def.Name) {
		panic(fmt.Sprintf("instrument: switch name %q must be 1-128 characters of [A-Za-z0-9._:/-]", def.Name))
	}
	b := r.board()
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.byName[def.Name]; s != nil {
		if s.def != def {
			panic(fmt.Sprintf("instrument: switch %q declared twice with different definitions", def.Name))
		}
		return s
	}
	// Not through the label-value guard (Gauge, Counter): switches are
	// declared in code, a couple hundred of them must not become "other".
	series := func(metric string) string {
		return string(appendLabelPair([]byte(metric+"{"), "switch", def.Name)) + "}"
	}
	s := &Switch{def: def,
		gauge: r.set.GetOrCreateGauge(series("telltale_switch_on"), nil),
		flips: r.set.GetOrCreateCounter(series("telltale_switch_flips_total"))}
	s.on.Store(def.Default)
	s.gauge.Set(b01(def.Default))
	b.byName[def.Name] = s
	return s
}

// DeclareSwitch is Default().Switch.
func DeclareSwitch(def SwitchDef) *Switch { return defaultRegistry.Switch(def) }

func validSwitchName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:/-", c) >= 0) {
			return false
		}
	}
	return true
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SwitchStates returns every declared switch, sorted by name.
func (r *Registry) SwitchStates() []SwitchState {
	b := r.board()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SwitchState, 0, len(b.byName))
	for _, s := range b.byName {
		out = append(out, state(s))
	}
	slices.SortFunc(out, func(x, y SwitchState) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func state(s *Switch) SwitchState {
	return SwitchState{Name: s.def.Name, Description: s.def.Description, Owner: s.def.Owner, Protects: s.def.Protects,
		Default: s.def.Default, On: s.On()}
}

// FlipSwitch sets switch name on or off. When that changes it, the flip
// counts in telltale_switch_flips_total, the gauge follows, and the flip
// is queued to be recorded at the collector as a switch change by f.Who
// with f.Reason (when Start has a collector). changed is false when the
// switch already was in that state: nothing is recorded then.
func (r *Registry) FlipSwitch(name string, on bool, f Flip) (st SwitchState, changed bool, err error) {
	b := r.board()
	b.mu.Lock()
	s := b.byName[name]
	cfg := b.cfg
	b.mu.Unlock()
	if s == nil {
		return SwitchState{}, false, fmt.Errorf("%w %q: declared are %s", ErrUnknownSwitch, name, strings.Join(r.switchNames(), ", "))
	}
	if s.on.Swap(on) == on {
		return state(s), false, nil
	}
	s.gauge.Set(b01(on))
	s.flips.Inc()
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	if cfg == nil {
		return state(s), true, nil
	}
	cfg.log.Info("switch flipped", "switch", name, "on", on, "who", f.Who, "reason", f.Reason, "relayed", f.relayed)
	b.record(cfg, s, on, f)
	select {
	case b.announce <- struct{}{}:
	default:
	}
	return state(s), true, nil
}

// switchNames lists the declared switches for an error message: sorted,
// at most 20 and a count of the rest.
func (r *Registry) switchNames() []string {
	b := r.board()
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.byName))
	for n := range b.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 20 {
		names = append(names[:20], fmt.Sprintf("and %d more (GET the switch endpoint lists them)", len(names)-20))
	}
	return names
}

// record queues the switch change of one flip.
func (b *switchBoard) record(cfg *boardConfig, s *Switch, on bool, f Flip) {
	if cfg.changesURL == "" {
		return
	}
	id := f.ID
	if id == "" {
		var r [6]byte
		rand.Read(r[:])
		id = "sw-" + f.Time.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(r[:])
	}
	msg := strings.TrimSpace(f.Reason)
	if msg == "" {
		msg = "(no reason given)"
	}
	fields := map[string]string{"state": onOff(on), "default": onOff(s.def.Default)}
	if s.def.Owner != "" {
		fields["owner"] = clipText(s.def.Owner, changes.MaxFieldValueBytes)
	}
	if !f.relayed {
		fields["instance"] = clipText(cfg.instance, changes.MaxFieldValueBytes)
	}
	req := changes.CreateRequest{ID: id, Kind: changes.KindSwitch, Service: cfg.service, Env: cfg.env, Subject: s.def.Name,
		Who: clipText(f.Who, 128), Message: clipText(msg, changes.MaxMessageBytes), Fields: fields, Time: f.Time.UTC().Format(time.RFC3339Nano)}
	if on != s.def.Default {
		req.Status = changes.StatusRunning // a region until flipped back
	}
	select {
	case b.queue <- req:
	default:
		b.dropped.Inc()
		cfg.log.Error("switch flip not recorded: too many flips waiting for the collector", "switch", s.def.Name, "limit", MaxPendingSwitchRecords)
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// clipText cuts s to at most n bytes on a rune boundary, without control
// characters (the change API refuses those).
func clipText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, sanitizeLabelValue(s))
	for len(s) > n {
		s = s[:n]
		for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
			s = s[:len(s)-1]
		}
		if len(s) > 0 && s[len(s)-1] >= 0xC0 {
			s = s[:len(s)-1]
		}
	}
	return s
}

// start configures the board from Start's options and runs its loop until
// stop; done is closed when the loop ended (queue flushed or FlushTimeout).
func (b *switchBoard) start(ctx context.Context, opts *Options) (stop func(), done <-chan struct{}) {
	cfg := &boardConfig{token: opts.Token, service: opts.Service, env: opts.Env, instance: opts.Instance,
		switchURL: opts.SwitchURL, tokens: opts.SwitchTokens, client: opts.Client, log: opts.Logger,
		retryMin: opts.RetryMin, retryMax: opts.RetryMax, timeout: opts.Timeout, every: changes.DefaultAnnounceInterval}
	if opts.Collector != "" {
		base := strings.TrimSuffix(opts.Collector, ImportPath)
		cfg.changesURL = base + "/api/v1/changes"
		if opts.SwitchURL != "" {
			cfg.announceURL = base + "/api/v1/switches/announce"
			if u, err := url.Parse(opts.SwitchURL); err == nil {
				if _, port, err := net.SplitHostPort(u.Host); err == nil {
					cfg.instance += ":" + port // several processes on one host
				}
			}
		}
	}
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
	stopCh := make(chan struct{})
	ch := make(chan struct{})
	if cfg.changesURL == "" {
		close(ch) // nothing to record or announce: flips only need cfg's tokens
		return func() {}, ch
	}
	var once sync.Once
	go func() {
		defer close(ch)
		b.loop(ctx, cfg, stopCh, opts.FlushTimeout)
	}()
	return func() { once.Do(func() { close(stopCh) }) }, ch
}

// loop records queued flips (oldest first, retrying with backoff) and
// announces the switches; after stop it flushes for at most flush.
func (b *switchBoard) loop(ctx context.Context, cfg *boardConfig, stop <-chan struct{}, flush time.Duration) {
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var pending *changes.CreateRequest
	var retryAt, deadline time.Time
	failures := 0
	announceAt := time.Now()
	stopping := false
	for {
		if pending == nil {
			select {
			case req := <-b.queue:
				pending = &req
			default:
			}
		}
		now := time.Now()
		if pending != nil && !now.Before(retryAt) {
			err := b.post(hard, cfg, cfg.changesURL, *pending)
			var refused *refusedError
			switch {
			case err == nil:
				b.recorded.Inc()
				pending, failures = nil, 0
				continue
			case errors.As(err, &refused):
				cfg.log.Error("collector refused a switch flip; not retrying it: fix what it says", "switch", pending.Subject, "err", err)
				pending, failures = nil, 0
				continue
			}
			failures++
			retryAt = now.Add(retry.Backoff(failures, cfg.retryMin, cfg.retryMax))
			cfg.log.Warn("cannot record switch flip; retrying", "switch", pending.Subject, "attempts", failures, "err", err)
		}
		announcing := cfg.announceURL != "" && !stopping
		if announcing && !now.Before(announceAt) {
			if err := b.post(hard, cfg, cfg.announceURL, b.announcement(cfg)); err != nil {
				cfg.log.Warn("cannot announce switches to the collector", "err", err)
			}
			announceAt = time.Now().Add(cfg.every)
			continue
		}
		if stopping && (pending == nil || now.After(deadline)) {
			if n := len(b.queue); pending != nil || n > 0 {
				cfg.log.Error("collector unreachable at shutdown: switch flips not recorded", "flips", n+1)
			}
			return
		}
		// Sleep until the next thing to do.
		wake := now.Add(time.Hour)
		if pending != nil {
			wake = retryAt
		}
		if announcing && announceAt.Before(wake) {
			wake = announceAt
		}
		if stopping && deadline.Before(wake) {
			wake = deadline
		}
		queue := b.queue
		if pending != nil {
			queue = nil // take the next one once this one is done
		}
		t := time.NewTimer(max(time.Until(wake), 0))
		select {
		case <-t.C:
		case req := <-queue:
			pending = &req
		case <-b.announce:
			announceAt = time.Now()
		case <-stop:
			stop, stopping, deadline = nil, true, time.Now().Add(flush)
			time.AfterFunc(flush, cancel)
		case <-ctx.Done():
			if !stopping {
				stopping, deadline = true, time.Now().Add(flush)
				time.AfterFunc(flush, cancel)
			}
		}
		t.Stop()
	}
}

func (b *switchBoard) announcement(cfg *boardConfig) changes.Announcement {
	return changes.Announcement{Service: cfg.service, Env: cfg.env, Instance: cfg.instance, URL: cfg.switchURL, Secret: b.secret,
		IntervalSeconds: int(cfg.every / time.Second), Switches: b.reg.SwitchStates()}
}

// refusedError is a 4xx from the collector: retrying will not help.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func (b *switchBoard) post(ctx context.Context, cfg *boardConfig, u string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return &refusedError{fmt.Sprintf("BUG: cannot encode %T: %v", v, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return &refusedError{err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "telltale-instrument")
	if cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.token)
	}
	resp, err := cfg.client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code/100 == 2:
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return fmt.Errorf("collector answered %d: %s", code, strings.TrimSpace(string(msg)))
	default:
		return &refusedError{fmt.Sprintf("collector answered %d: %s (the token needs the deploy scope to record changes)", code, strings.TrimSpace(string(msg)))}
	}
}

// AuthorizeSwitchFlip checks a flip request's bearer token against
// Options.SwitchTokens and the collector relay's secret and returns who
// flips: the token's name, or, for a relayed flip (relayed true), the
// person the collector names. With no SwitchTokens configured any request
// is allowed (who "" then: take it from the request). Errors wrap
// ErrSwitchUnauthorized (answer 401).
func (r *Registry) AuthorizeSwitchFlip(req *http.Request) (who string, relayed bool, err error) {
	b := r.board()
	b.mu.Lock()
	cfg := b.cfg
	b.mu.Unlock()
	tok := ""
	if h := req.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		tok = strings.TrimSpace(h[7:])
	}
	if tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(b.secret)) == 1 {
		return "", true, nil
	}
	if cfg == nil || len(cfg.tokens) == 0 {
		return "", false, nil
	}
	found := ""
	for name, t := range cfg.tokens {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
			found = name
		}
	}
	if found == "" {
		if tok == "" {
			return "", false, fmt.Errorf("%w: flips need \"Authorization: Bearer <token>\" with a token of the app's switch tokens", ErrSwitchUnauthorized)
		}
		return "", false, fmt.Errorf("%w: unknown token; use one of the app's switch tokens", ErrSwitchUnauthorized)
	}
	return found, false, nil
}

// ErrSwitchUnauthorized is a flip without an accepted token.
var ErrSwitchUnauthorized = errors.New("switch flip not authorized")

// flipBody is the body of POST <prefix>/{name}.
type flipBody struct {
	On     *bool     `json:"on"`
	Reason string    `json:"reason"`
	Who    string    `json:"who"`
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
}

// SwitchHandler serves the switches under prefix (e.g. "/switches"):
// GET prefix lists them, GET prefix/{name} shows one, POST prefix/{name}
// with {"on":false,"reason":"...","who":"..."} flips one (authorized by
// AuthorizeSwitchFlip; who is the token's name when tokens are set) and
// answers its state and whether it changed. Mount it on prefix and
// prefix+"/".
func (r *Registry) SwitchHandler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, prefix), "/")
		switch {
		case name == "" && req.Method == http.MethodGet:
			writeSwitchJSON(w, http.StatusOK, r.SwitchStates())
		case name != "" && req.Method == http.MethodGet:
			for _, s := range r.SwitchStates() {
				if s.Name == name {
					writeSwitchJSON(w, http.StatusOK, s)
					return
				}
			}
			switchError(w, http.StatusNotFound, fmt.Sprintf("unknown switch %q: declared are %s", name, strings.Join(r.switchNames(), ", ")))
		case name != "" && req.Method == http.MethodPost:
			r.serveFlip(w, req, name)
		default:
			w.Header().Set("Allow", "GET, POST")
			switchError(w, http.StatusMethodNotAllowed, "use GET "+prefix+"[/<name>] or POST "+prefix+"/<name>")
		}
	})
}

func (r *Registry) serveFlip(w http.ResponseWriter, req *http.Request, name string) {
	who, relayed, err := r.AuthorizeSwitchFlip(req)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switches"`)
		switchError(w, http.StatusUnauthorized, err.Error())
		return
	}
	var in flipBody
	if err := changes.DecodeJSON(http.MaxBytesReader(w, req.Body, 4<<10), &in, "on, reason, who, id, time"); err != nil {
		switchError(w, http.StatusBadRequest, err.Error())
		return
	}
	if in.On == nil {
		switchError(w, http.StatusBadRequest, `missing "on": send {"on":false,"reason":"why"}`)
		return
	}
	f := Flip{Who: who, Reason: in.Reason, relayed: relayed}
	if relayed || who == "" {
		f.Who = in.Who
	}
	if relayed {
		f.ID, f.Time = in.ID, in.Time
	}
	if f.Who == "" {
		f.Who = "anonymous"
	}
	st, changed, err := r.FlipSwitch(name, *in.On, f)
	if errors.Is(err, ErrUnknownSwitch) {
		switchError(w, http.StatusNotFound, err.Error())
		return
	}
	writeSwitchJSON(w, http.StatusOK, map[string]any{"switch": st, "changed": changed})
}

func writeSwitchJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func switchError(w http.ResponseWriter, code int, msg string) {
	writeSwitchJSON(w, code, map[string]string{"error": msg})
}
