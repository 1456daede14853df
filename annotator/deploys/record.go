package deploys

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/deploylog"
)

// Events of a deploy, as stored in the outbox.
const (
	eventRecorded = "recorded" // the deploy was created
	eventFinished = "finished" // end_time or status was set or changed
	eventImpact   = "impact"   // the impact analysis is done (series, grafana, webhooks)
	eventAnalyse  = "analyse"  // the impact analysis is due (target impact)
)

// newID returns a server id: time-ordered, 20 hex digits.
func newID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%012x%08x", now.UnixMilli(), binary.BigEndian.Uint32(b[:]))
}

// Record stores the deploy of req, or, when req.ID names an existing deploy,
// treats req as a retry: the same content returns the stored deploy
// unchanged; end_time/status close or update it; different content is a 409
// RequestError. created reports whether a new deploy was stored.
func (s *Service) Record(ctx context.Context, req Request) (d Deploy, created bool, err error) {
	now := s.opts.Now()
	if req.ID == "" {
		req.ID = newID(now)
	}
	changed := false
	err = s.log.Update(ctx, now, func(tx *deploylog.Tx) error {
		old, err := tx.Get(ctx, req.ID)
		if errors.Is(err, deploylog.ErrNotFound) {
			d = req.deploy()
			if err := tx.Insert(ctx, &d); err != nil {
				return err
			}
			created, changed = true, true
			return s.enqueue(ctx, tx, d, eventRecorded)
		}
		if err != nil {
			return err
		}
		if diff := req.differs(old); diff != "" {
			return &RequestError{Status: http.StatusConflict, Field: "id", Reason: "id_conflict",
				Msg: fmt.Sprintf("deploy id %q already exists with a different %s: send a new id for a new deploy, or PATCH /api/v1/deploys/%s to close this one", req.ID, diff, req.ID)}
		}
		if req.Status == StatusRunning && req.EndTime == nil || req.Status == "" && req.EndTime == nil {
			d = old // a plain retry
			return nil
		}
		d, changed, err = s.applyChange(ctx, tx, old, Change{EndTime: req.EndTime, Status: req.Status}, now, false)
		return err
	})
	if err != nil {
		return Deploy{}, false, s.storeError(err)
	}
	if changed {
		s.recorded(d, created)
	}
	return d, created, nil
}

// Update applies a PATCH to deploy id.
func (s *Service) Update(ctx context.Context, id string, c Change) (Deploy, error) {
	now := s.opts.Now()
	var d Deploy
	var changed bool
	err := s.log.Update(ctx, now, func(tx *deploylog.Tx) error {
		old, err := tx.Get(ctx, id)
		if err != nil {
			return err
		}
		d, changed, err = s.applyChange(ctx, tx, old, c, now, true)
		return err
	})
	if err != nil {
		return Deploy{}, s.storeError(err)
	}
	if changed {
		s.recorded(d, false)
	}
	return d, nil
}

// applyChange closes or updates old with c inside tx. strict rejects
// reopening a finished deploy (PATCH); a retried POST ignores it.
func (s *Service) applyChange(ctx context.Context, tx *deploylog.Tx, old Deploy, c Change, now time.Time, strict bool) (Deploy, bool, error) {
	d := old
	open := old.Status == StatusRunning
	if c.Status == StatusRunning {
		if !open && strict {
			return Deploy{}, false, badField("status", "bad_status", "deploy %q already finished with status %q: a finished deploy cannot be reopened; record a new deploy", old.ID, old.Status)
		}
		return old, false, nil
	}
	if c.EndTime != nil {
		e := *c.EndTime
		d.EndTime = &e
		if c.Status == "" && open {
			d.Status = StatusSuccess
		}
	}
	if c.Status != "" {
		d.Status = c.Status
		if d.EndTime == nil && open {
			e := now.UTC().Truncate(time.Millisecond)
			if e.Before(d.Time) {
				e = d.Time
			}
			d.EndTime = &e
		}
	}
	if d.EndTime != nil && d.EndTime.Before(d.Time) {
		return Deploy{}, false, badField("end_time", "bad_time", "\"end_time\" %s is before the deploy's time %s: a deploy cannot end before it starts",
			d.EndTime.Format(time.RFC3339Nano), d.Time.Format(time.RFC3339Nano))
	}
	if d.Status == old.Status && equalTime(d.EndTime, old.EndTime) {
		return old, false, nil
	}
	if err := tx.SetEnd(ctx, d.ID, d.EndTime, d.Status); err != nil {
		return Deploy{}, false, err
	}
	d.UpdatedAt = now.UTC().Truncate(time.Millisecond)
	return d, true, s.enqueue(ctx, tx, d, eventFinished)
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// enqueue writes the outbox entries of event for every configured target.
func (s *Service) enqueue(ctx context.Context, tx *deploylog.Tx, d Deploy, event string) error {
	var targets []string
	if s.opts.Writer != nil {
		targets = append(targets, targetSeries)
	}
	if s.opts.Grafana != nil {
		targets = append(targets, targetGrafana)
	}
	for t := range s.webhooks {
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := tx.Enqueue(ctx, d.ID, t, event); err != nil {
			return err
		}
	}
	// A deploy created already finished also owes its end series.
	if event == eventRecorded && d.EndTime != nil && s.opts.Writer != nil {
		if err := tx.Enqueue(ctx, d.ID, targetSeries, eventFinished); err != nil {
			return err
		}
	}
	// The impact analysis is due once the after window has passed; the
	// outbox keeps it across restarts.
	if event == eventRecorded && s.impact != nil {
		if err := tx.EnqueueAt(ctx, d.ID, targetImpact, eventAnalyse, s.impact.dueAt(d)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) recorded(d Deploy, created bool) {
	if created {
		s.m.recorded.Inc()
	} else {
		s.m.updated.Inc()
	}
	s.logger.Info("deploy recorded", "deploy_id", d.ID, "service", d.Service, "env", d.Env, "version", d.Version,
		"status", d.Status, "created", created)
	s.kick()
	if s.opts.OnRecorded != nil {
		s.opts.OnRecorded(d)
	}
}

// storeError passes RequestErrors and ErrNotFound through and marks the rest
// as storage trouble.
func (s *Service) storeError(err error) error {
	var re *RequestError
	if errors.As(err, &re) || errors.Is(err, deploylog.ErrNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

func (req Request) deploy() Deploy {
	d := Deploy{
		ID: req.ID, Service: req.Service, Env: req.Env, Version: req.Version, Commit: req.Commit,
		Who: req.Who, Message: req.Message, Link: req.Link, Time: req.Time, EndTime: req.EndTime, Status: req.Status,
	}
	if d.Status == "" {
		d.Status = StatusSuccess
	}
	return d
}

// differs names the identity fields in which req and the stored d differ.
func (req Request) differs(d Deploy) string {
	var diff []string
	add := func(name, a, b string) {
		if a != b {
			diff = append(diff, name)
		}
	}
	add("service", req.Service, d.Service)
	add("env", req.Env, d.Env)
	add("version", req.Version, d.Version)
	add("commit", req.Commit, d.Commit)
	add("who", req.Who, d.Who)
	add("message", req.Message, d.Message)
	add("link", req.Link, d.Link)
	if req.HasTime && !req.Time.Equal(d.Time) {
		diff = append(diff, "time")
	}
	return strings.Join(diff, ", ")
}
