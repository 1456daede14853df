package changelog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// Events of a change, as stored in the outbox and passed to targets in
// Entry.Event.
const (
	EventRecorded = "recorded" // the change was created
	EventFinished = "finished" // end_time or status was set or changed
	EventImpact   = "impact"   // the impact analysis is done (series, grafana, webhooks, targets)
	eventAnalyse  = "analyse"  // the impact analysis is due (target impact)
)

// newID returns a server id: time-ordered, 20 hex digits.
func newID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%012x%08x", now.UnixMilli(), binary.BigEndian.Uint32(b[:]))
}

// Record stores change c, for Go callers inside the collector (the rules
// engine records alert changes this way). c is checked like a POST
// /api/v1/changes body: Kind and Service are required, a zero Time means
// now, an empty ID gets a server id, and Status "" means success (use
// changes.StatusRunning for a region that is still going, and Update to end it).
// An ID already recorded with the same content returns the stored change
// (a retry); with other content the error is a *changes.RequestError with Status
// 409. Invalid input is a *changes.RequestError with Status 400. The change is
// durable and its deliveries owed when Record returns nil.
func (s *Service) Record(ctx context.Context, c changes.Change) (changes.Change, error) {
	req := changes.Request{ID: c.ID, Kind: c.Kind, Service: c.Service, Env: c.Env, Subject: c.Subject, Version: c.Version,
		Commit: c.Commit, Who: c.Who, Message: c.Message, Link: c.Link, Fields: c.Fields, Time: c.Time, EndTime: c.EndTime, Status: c.Status}
	if err := req.Validate(s.opts.Now()); err != nil {
		var re *changes.RequestError
		if errors.As(err, &re) {
			s.m.rejected(re.Reason).Inc()
		}
		return changes.Change{}, err
	}
	out, _, _, err := s.record(ctx, req)
	return out, err
}

// List returns the changes matching f, newest first; f.Limit 0 means
// changes.DefaultListLimit. For "the changes of service S in [t-w, t]" set
// Service, From, To and Overlap (so a region that began before t-w and
// still runs counts).
func (s *Service) List(ctx context.Context, f changes.Filter) ([]changes.Change, error) {
	if f.Limit <= 0 {
		f.Limit = changes.DefaultListLimit
	}
	list, err := s.log.List(ctx, f)
	if err != nil {
		return nil, s.storeError(err)
	}
	return list, nil
}

// Get returns change id, or an error wrapping ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (changes.Change, error) {
	c, err := s.log.Get(ctx, id)
	return c, s.storeError(err)
}

// record stores the change of req, or, when req.ID names an existing
// change, treats req as a retry: the same content returns the stored
// change unchanged; end_time/status close or update it; different content
// is a 409 changes.RequestError. created reports whether a new change was stored.
// A new change with a Subject first ends the open changes it supersedes.
func (s *Service) record(ctx context.Context, req changes.Request) (c changes.Change, created bool, warnings []string, err error) {
	now := s.opts.Now()
	if req.ID == "" {
		req.ID = newID(now)
	}
	changed := false
	var superseded []changes.Change
	update := func(tx *Tx) error {
		superseded, created, changed = nil, false, false
		old, err := tx.Get(ctx, req.ID)
		if errors.Is(err, ErrNotFound) {
			c = req.Change()
			if c.Subject != "" {
				if superseded, err = s.supersede(ctx, tx, c, now); err != nil {
					return err
				}
			}
			if err := tx.Insert(ctx, &c); err != nil {
				return err
			}
			created, changed = true, true
			return s.enqueue(ctx, tx, c, EventRecorded)
		}
		if err != nil {
			return err
		}
		if diff := req.Differs(old); diff != "" {
			noun := changes.Noun(old.Kind)
			return &changes.RequestError{Status: http.StatusConflict, Field: "id", Reason: "id_conflict",
				Msg: fmt.Sprintf("%s id %q already exists with a different %s: send a new id for a new %s, or PATCH /api/v1/%ss/%s to close this one", noun, req.ID, diff, noun, noun, req.ID)}
		}
		if req.Status == changes.StatusRunning && req.EndTime == nil || req.Status == "" && req.EndTime == nil {
			c = old // a plain retry
			return nil
		}
		c, changed, err = s.applyPatch(ctx, tx, old, changes.Patch{EndTime: req.EndTime, Status: req.Status}, now, false)
		return err
	}
	err = s.log.Update(ctx, now, update)
	if idTaken(err) {
		// Another replica recorded this id meanwhile: run again as a retry.
		err = s.log.Update(ctx, now, update)
	}
	if err != nil {
		return changes.Change{}, false, nil, s.storeError(err)
	}
	for _, o := range superseded {
		s.recorded(o, false)
	}
	if changed {
		s.recorded(c, created)
	}
	if created {
		warnings = s.markWarnings(ctx, c)
	}
	return c, created, warnings, nil
}

// supersede ends the open changes of c's kind, service, env and subject
// that began at or before c, at c's time, inside tx.
func (s *Service) supersede(ctx context.Context, tx *Tx, c changes.Change, now time.Time) ([]changes.Change, error) {
	open, err := tx.OpenChanges(ctx, c.Kind, c.Service, c.Env, c.Subject, c.Time)
	if err != nil {
		return nil, err
	}
	for i := range open {
		o := &open[i]
		end := c.Time
		o.EndTime, o.Status = &end, changes.StatusSuccess
		if err := tx.SetEnd(ctx, o.ID, o.EndTime, o.Status); err != nil {
			return nil, err
		}
		o.UpdatedAt = now.UTC().Truncate(time.Millisecond)
		if err := s.enqueue(ctx, tx, *o, EventFinished); err != nil {
			return nil, err
		}
	}
	return open, nil
}

// Update applies a PATCH to change id.
func (s *Service) Update(ctx context.Context, id string, p changes.Patch) (changes.Change, error) {
	now := s.opts.Now()
	var c changes.Change
	var changed bool
	err := s.log.Update(ctx, now, func(tx *Tx) error {
		old, err := tx.Get(ctx, id)
		if err != nil {
			return err
		}
		c, changed, err = s.applyPatch(ctx, tx, old, p, now, true)
		return err
	})
	if err != nil {
		return changes.Change{}, s.storeError(err)
	}
	if changed {
		s.recorded(c, false)
	}
	return c, nil
}

// applyPatch closes or updates old with p inside tx. strict rejects
// reopening a finished change (PATCH); a retried POST ignores it.
func (s *Service) applyPatch(ctx context.Context, tx *Tx, old changes.Change, p changes.Patch, now time.Time, strict bool) (changes.Change, bool, error) {
	c := old
	open := old.Status == changes.StatusRunning
	noun := changes.Noun(old.Kind)
	if p.Status == changes.StatusRunning {
		if !open && strict {
			return changes.Change{}, false, changes.BadField("status", "bad_status", "%s %q already finished with status %q: a finished %s cannot be reopened; record a new %s", noun, old.ID, old.Status, noun, noun)
		}
		return old, false, nil
	}
	if p.EndTime != nil {
		e := *p.EndTime
		c.EndTime = &e
		if p.Status == "" && open {
			c.Status = changes.StatusSuccess
		}
	}
	if p.Status != "" {
		c.Status = p.Status
		if c.EndTime == nil && open {
			e := now.UTC().Truncate(time.Millisecond)
			if e.Before(c.Time) {
				e = c.Time
			}
			c.EndTime = &e
		}
	}
	if c.EndTime != nil && c.EndTime.Before(c.Time) {
		return changes.Change{}, false, changes.BadField("end_time", "bad_time", "\"end_time\" %s is before the %s's time %s: a %s cannot end before it starts",
			c.EndTime.Format(time.RFC3339Nano), noun, c.Time.Format(time.RFC3339Nano), noun)
	}
	if c.Status == old.Status && equalTime(c.EndTime, old.EndTime) {
		return old, false, nil
	}
	if err := tx.SetEnd(ctx, c.ID, c.EndTime, c.Status); err != nil {
		return changes.Change{}, false, err
	}
	c.UpdatedAt = now.UTC().Truncate(time.Millisecond)
	return c, true, s.enqueue(ctx, tx, c, EventFinished)
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// enqueue writes the outbox entries of event for every configured target.
func (s *Service) enqueue(ctx context.Context, tx *Tx, c changes.Change, event string) error {
	var targets []string
	if s.opts.Writer != nil {
		targets = append(targets, targetSeries)
	}
	if s.opts.Grafana != nil {
		targets = append(targets, targetGrafana)
	}
	for t, w := range s.webhooks {
		if !slices.Contains(w.SkipKinds, c.Kind) {
			targets = append(targets, t)
		}
	}
	for t := range s.others {
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := tx.Enqueue(ctx, c.ID, t, event); err != nil {
			return err
		}
	}
	// A change created already finished also owes its end series.
	if event == EventRecorded && c.EndTime != nil && s.opts.Writer != nil {
		if err := tx.Enqueue(ctx, c.ID, targetSeries, EventFinished); err != nil {
			return err
		}
	}
	// The impact analysis is due once the after window has passed; the
	// outbox keeps it across restarts.
	if event == EventRecorded && s.impact != nil && s.impact.analyses(c.Kind) {
		if err := tx.EnqueueAt(ctx, c.ID, targetImpact, eventAnalyse, s.impact.dueAt(c)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) recorded(c changes.Change, created bool) {
	if created {
		s.m.recorded(c.Kind).Inc()
	} else {
		s.m.updated.Inc()
	}
	s.logger.Info("change recorded", "change_id", c.ID, "kind", c.Kind, "service", c.Service, "env", c.Env, "subject", c.Subject,
		"version", c.Version, "status", c.Status, "created", created)
	s.kick()
	if s.opts.OnRecorded != nil {
		s.opts.OnRecorded(c)
	}
}

// storeError passes RequestErrors and ErrNotFound through and marks the rest
// as storage trouble.
func (s *Service) storeError(err error) error {
	var re *changes.RequestError
	if err == nil || errors.As(err, &re) || errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}
