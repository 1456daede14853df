package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	promrules "github.com/prometheus/prometheus/rules"
)

// ledger is the durable record of the alert episodes that were notified:
// an episode starts when an alert is first sent firing and ends when it is
// sent resolved (or found ended after a restart). Per webhook it records
// which of the two messages was delivered, so after a restart a firing
// alert is not announced twice and a resolved one is not lost.
//
// The state is one JSON file, replaced atomically (write, fsync, rename)
// on every change, before the change is acted on. It holds only open
// episodes and closed ones with deliveries outstanding, so it stays small.
type ledger struct {
	path    string
	targets []string
	now     func() time.Time
	// onSaveError is told when the state cannot be written; the state stays
	// in memory and is written with the next change. Set before use.
	onSaveError func(error)

	mu sync.Mutex
	st ledgerState
}

// ledgerVersion is the state file's format version.
const ledgerVersion = 1

// maxEpisodes bounds the ledger; beyond it the oldest closed episodes are
// dropped first (their outstanding deliveries are lost, and counted by the
// caller through the log).
const maxEpisodes = 10_000

type ledgerState struct {
	Version  int        `json:"version"`
	Episodes []*episode `json:"episodes"`
}

// episode is one firing of one alert (one label set).
type episode struct {
	Fingerprint  string               `json:"fingerprint"` // labels hash, hex
	Alertname    string               `json:"alertname"`
	Labels       map[string]string    `json:"labels"`
	Annotations  map[string]string    `json:"annotations"`
	ActiveAt     time.Time            `json:"active_at"`
	StartsAt     time.Time            `json:"starts_at"`
	EndsAt       time.Time            `json:"ends_at,omitzero"` // zero while firing
	GeneratorURL string               `json:"generator_url,omitempty"`
	Deliveries   map[string]*delivery `json:"deliveries,omitempty"` // by webhook name
}

// delivery is the state of one episode at one webhook.
type delivery struct {
	// Sent is what was delivered: 0 nothing, 1 the firing message, 2 the
	// resolved one (the firing one was delivered, or skipped because the
	// episode had ended before it went out).
	Sent      int       `json:"sent"`
	Attempts  int       `json:"attempts,omitempty"`
	Next      time.Time `json:"next,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Failed marks a delivery given up (a permanent error, or RetryFor
	// passed).
	Failed bool `json:"failed,omitempty"`
}

// Events sent to webhooks.
const (
	eventFiring   = "firing"
	eventResolved = "resolved"
)

func (e *episode) open() bool { return e.EndsAt.IsZero() }

// id names the episode in delivery headers: fingerprint and start.
func (e *episode) id() string {
	return e.Fingerprint + "-" + strconv.FormatInt(e.ActiveAt.Unix(), 10)
}

// next returns the event to deliver to a target in d's state, "" if none.
func (e *episode) next(d *delivery) string {
	switch {
	case d.Failed:
		return ""
	case d.Sent == 0 && e.open():
		return eventFiring
	case d.Sent < 2 && !e.open():
		return eventResolved
	}
	return ""
}

func (e *episode) done() bool {
	if e.open() {
		return false
	}
	for _, d := range e.Deliveries {
		if e.next(d) != "" {
			return false
		}
	}
	return true
}

// notifierAlert is the episode as an Alertmanager alert.
func (e *episode) notifierAlert() *notifier.Alert {
	return &notifier.Alert{
		Labels:       labels.FromMap(e.Labels),
		Annotations:  labels.FromMap(e.Annotations),
		StartsAt:     e.StartsAt,
		EndsAt:       e.EndsAt,
		GeneratorURL: e.GeneratorURL,
	}
}

// openLedger loads the state file, creating its directory; a missing file
// is an empty ledger. Deliveries to webhooks no longer configured are
// dropped; new webhooks get only episodes that start from now on.
func openLedger(path string, targets []string, now func() time.Time) (*ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the directory of the alert notification state %s: %w", path, err)
	}
	l := &ledger{path: path, targets: targets, now: now, st: ledgerState{Version: ledgerVersion}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return l, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read the alert notification state: %w", err)
	}
	st, err := decodeLedger(data)
	if err != nil {
		return nil, fmt.Errorf("alert notification state %s is damaged (%v): move it away to start with an empty one; alerts firing now are then announced again", path, err)
	}
	for _, e := range st.Episodes {
		for name := range e.Deliveries {
			if !slices.Contains(targets, name) {
				delete(e.Deliveries, name)
			}
		}
	}
	l.st = st
	l.st.Episodes = slices.DeleteFunc(l.st.Episodes, (*episode).done)
	return l, nil
}

// decodeLedger parses a state file strictly.
func decodeLedger(data []byte) (ledgerState, error) {
	var st ledgerState
	if err := json.Unmarshal(data, &st); err != nil {
		return st, err
	}
	if st.Version != ledgerVersion {
		return st, fmt.Errorf("format version %d, want %d", st.Version, ledgerVersion)
	}
	for i, e := range st.Episodes {
		if e == nil || e.Fingerprint == "" || e.Labels == nil {
			return st, fmt.Errorf("episode %d is incomplete", i)
		}
		for name, d := range e.Deliveries {
			if d == nil || d.Sent < 0 || d.Sent > 2 {
				return st, fmt.Errorf("episode %d: delivery %q is invalid", i, name)
			}
		}
	}
	return st, nil
}

// save writes the state atomically. l.mu is held.
func (l *ledger) save() error {
	data, err := json.MarshalIndent(l.st, "", " ")
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write the alert notification state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cannot write the alert notification state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot sync the alert notification state: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("cannot replace the alert notification state: %w", err)
	}
	return nil
}

// saveOrReport saves the state, telling onSaveError when it cannot. l.mu
// is held.
func (l *ledger) saveOrReport() {
	if err := l.save(); err != nil && l.onSaveError != nil {
		l.onSaveError(err)
	}
}

// openEpisode returns the open episode of fingerprint fp. l.mu is held.
func (l *ledger) openEpisode(fp string) *episode {
	for _, e := range l.st.Episodes {
		if e.Fingerprint == fp && e.open() {
			return e
		}
	}
	return nil
}

// observe records alerts the engine sends: a firing one without an open
// episode starts one, a resolved one ends its episode. It reports whether
// anything changed (so the webhooks have work). A state that cannot be
// saved is kept in memory and saved with the next change.
func (l *ledger) observe(alerts []*promrules.Alert, generatorURL string) (changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range alerts {
		fp := fingerprint(a.Labels)
		e := l.openEpisode(fp)
		switch {
		case a.ResolvedAt.IsZero() && e == nil:
			e = &episode{
				Fingerprint: fp, Alertname: a.Labels.Get(labels.AlertName),
				Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
				ActiveAt: a.ActiveAt, StartsAt: a.FiredAt, GeneratorURL: generatorURL,
				Deliveries: map[string]*delivery{},
			}
			for _, t := range l.targets {
				e.Deliveries[t] = &delivery{}
			}
			l.st.Episodes = append(l.st.Episodes, e)
			changed = true
		case a.ResolvedAt.IsZero():
			if ann := a.Annotations.Map(); !maps.Equal(ann, e.Annotations) {
				e.Annotations = ann
				changed = true
			}
		case e != nil:
			e.EndsAt = a.ResolvedAt
			e.Annotations = a.Annotations.Map()
			changed = true
		}
	}
	if changed {
		l.trim()
		l.saveOrReport()
	}
	return changed
}

// trim drops finished episodes and, beyond maxEpisodes, the oldest closed
// ones. l.mu is held.
func (l *ledger) trim() {
	l.st.Episodes = slices.DeleteFunc(l.st.Episodes, (*episode).done)
	for len(l.st.Episodes) > maxEpisodes {
		i := slices.IndexFunc(l.st.Episodes, func(e *episode) bool { return !e.open() })
		if i < 0 {
			i = 0
		}
		l.st.Episodes = slices.Delete(l.st.Episodes, i, i+1)
	}
}

// hasOpen reports whether an episode is open.
func (l *ledger) hasOpen() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.st.Episodes, (*episode).open)
}

// reconcile ends the open episodes whose alert is not active, unless an
// alerting rule of that name has not restored its state yet; it returns
// copies of the episodes it ended.
func (l *ledger) reconcile(active map[uint64]bool, unrestored map[string]bool, ts time.Time) []episode {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ended []episode
	for _, e := range l.st.Episodes {
		if !e.open() || unrestored[e.Alertname] {
			continue
		}
		if active[labels.FromMap(e.Labels).Hash()] {
			continue
		}
		e.EndsAt = ts
		ended = append(ended, *e)
	}
	if len(ended) > 0 {
		l.trim()
		l.saveOrReport()
	}
	return ended
}

// due returns a copy of the oldest episode with an event due at target now,
// the event, and the wait until the next one is due (0: none pending).
func (l *ledger) due(target string, now time.Time) (e episode, event string, d delivery, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ep := range l.st.Episodes {
		dl, ok := ep.Deliveries[target]
		if !ok {
			continue
		}
		ev := ep.next(dl)
		if ev == "" {
			continue
		}
		if dl.Next.After(now) {
			if w := dl.Next.Sub(now); wait == 0 || w < wait {
				wait = w
			}
			continue
		}
		cp := *ep
		cp.Labels = maps.Clone(ep.Labels)
		cp.Annotations = maps.Clone(ep.Annotations)
		return cp, ev, *dl, 0
	}
	return episode{}, "", delivery{}, wait
}

// outcome records the result of delivering event of the episode that
// started at activeAt with fingerprint fp to target.
func (l *ledger) outcome(target, fp string, activeAt time.Time, event string, err error, retryAt time.Time, giveUp bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.st.Episodes {
		if e.Fingerprint != fp || !e.ActiveAt.Equal(activeAt) {
			continue
		}
		d, ok := e.Deliveries[target]
		if !ok {
			return nil
		}
		switch {
		case err == nil && event == eventFiring:
			d.Sent, d.Attempts, d.Next, d.LastError = 1, 0, time.Time{}, ""
		case err == nil:
			d.Sent, d.Attempts, d.Next, d.LastError = 2, 0, time.Time{}, ""
		case giveUp:
			d.Attempts++
			d.Failed, d.LastError = true, err.Error()
		default:
			d.Attempts++
			d.Next, d.LastError = retryAt, err.Error()
		}
		l.trim()
		return l.save()
	}
	return nil
}

// episodes returns copies of every episode (for tests and debugging).
func (l *ledger) episodes() []episode {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]episode, 0, len(l.st.Episodes))
	for _, e := range l.st.Episodes {
		cp := *e
		cp.Deliveries = map[string]*delivery{}
		for k, d := range e.Deliveries {
			dc := *d
			cp.Deliveries[k] = &dc
		}
		out = append(out, cp)
	}
	return out
}

// fingerprint is the hex hash of an alert's labels.
func fingerprint(ls labels.Labels) string { return fmt.Sprintf("%016x", ls.Hash()) }
