package changelog

import (
	"context"
	"errors"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/retry"
)

// worker delivers the outbox entries of one target, oldest first. One worker
// per target runs, so a slow target delays only itself.
type worker struct {
	s       *Service
	target  string // outbox target
	kind    string // metric label: series, grafana, webhook, impact, other
	deliver func(ctx context.Context, e Entry, c changes.Change) error
	// batch, if set, takes the due entries together (see BatchTarget).
	batch BatchTarget
	kick  chan struct{}
	// timeout bounds one attempt; default Options.DeliveryTimeout.
	timeout time.Duration
	// notBefore, if set, is the earliest time an entry of change c may be
	// attempted; an entry handed out earlier is put back until then
	// without counting an attempt (an impact window lengthened across a
	// restart).
	notBefore func(c changes.Change) time.Time
	// pausedUntil holds the target back after a failure: the next attempt
	// then probes with the oldest entry instead of hammering with all.
	pausedUntil time.Time
}

// batchSize is how many due entries a worker reads per round.
const batchSize = 50

// idleWait is the longest a worker sleeps without being kicked.
const idleWait = time.Minute

// claimSlack is how long, past its timeout, an attempt's claim lasts on
// PostgreSQL: time to record the outcome before another replica may take
// the entry.
const claimSlack = 5 * time.Second

// attemptClaim is how long an attempt of w holds its entry on PostgreSQL:
// the claim period, or the attempt's timeout and claimSlack when longer
// (the impact analysis' 2m, a short -changes.claim-timeout), so that no
// other replica takes an entry while its attempt may still run.
func (w *worker) attemptClaim() time.Duration {
	return max(w.s.log.claimFor(), w.timeout+claimSlack)
}

func (s *Service) newWorker(target, kind string, deliver func(context.Context, Entry, changes.Change) error) *worker {
	return &worker{s: s, target: target, kind: kind, deliver: deliver, kick: make(chan struct{}, 1), timeout: s.opts.DeliveryTimeout}
}

func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer.C:
		}
		wait := w.round(ctx)
		timer.Reset(wait)
	}
}

// round delivers what is due and returns how long to wait for the next round.
func (w *worker) round(ctx context.Context) time.Duration {
	s := w.s
	defer w.updatePending(ctx)
	now := s.opts.Now()
	if now.Before(w.pausedUntil) {
		return w.pausedUntil.Sub(now)
	}
	if w.batch != nil {
		return w.batchRound(ctx)
	}
	entries, err := s.log.Due(ctx, w.target, now, batchSize)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("cannot read change outbox; retrying", "target", w.target, "err", err)
		}
		return s.opts.MaxBackoff
	}
	for i, e := range entries {
		if ctx.Err() != nil {
			w.release(ctx, entries[i:])
			return 0
		}
		if pause, stop := w.attempt(ctx, e); stop {
			// The rest of the batch is given back at once, so another
			// replica (or this one's next round) need not wait for the
			// claim to expire.
			w.release(ctx, entries[i+1:])
			return pause
		}
	}
	if len(entries) == batchSize {
		return 0
	}
	next, ok, err := s.log.NextDue(ctx, w.target)
	if err != nil || !ok {
		return idleWait
	}
	return min(max(next.Sub(s.opts.Now()), 0), idleWait)
}

// attempt delivers one entry and records the outcome. stop reports that the
// target failed as a whole and the round should end, waiting pause.
func (w *worker) attempt(ctx context.Context, e Entry) (pause time.Duration, stop bool) {
	s := w.s
	c, err := s.log.Get(ctx, e.ChangeID)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("cannot read change for delivery", "target", w.target, "change_id", e.ChangeID, "err", err)
		}
		return s.opts.MaxBackoff, true
	}
	if w.notBefore != nil {
		if at := w.notBefore(c); s.opts.Now().Before(at) {
			if err := s.log.MarkRetry(ctx, e.Seq, e.LastError, at); err != nil {
				if ctx.Err() == nil {
					s.logger.Error("cannot reschedule delivery", "target", w.target, "change_id", e.ChangeID, "err", err)
				}
				return s.opts.MaxBackoff, true
			}
			return 0, false
		}
	}
	// Count the attempt durably before making it: after a crash mid-call the
	// next attempt knows the target may already have the event. On
	// PostgreSQL this also checks the entry is still this replica's and
	// renews its claim for the attempt: an entry of the batch whose claim
	// expired while earlier ones were delivered may be another replica's
	// by now (and delivered by it), so it is left alone.
	now := s.opts.Now()
	held, err := s.log.StartAttempt(ctx, e.Seq, now, now.Add(w.attemptClaim()))
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("cannot count delivery attempt", "target", w.target, "change_id", e.ChangeID, "err", err)
		}
		return s.opts.MaxBackoff, true
	}
	if !held {
		s.m.delivery(w.kind, "claim_lost").Inc()
		s.logger.Info("delivery skipped: its claim passed to another replica", "target", w.target, "change_id", e.ChangeID)
		return 0, false
	}
	e.Attempts++
	e.TargetAttempts++
	callCtx, cancel := context.WithTimeout(ctx, w.timeout)
	err = w.deliver(callCtx, e, c)
	cancel()
	// On shutdown leave the entry pending; the counted attempt makes the
	// next process check before creating again.
	if ctx.Err() != nil {
		return 0, true
	}
	if wait, failed := w.outcome(ctx, e, err, s.opts.Now()); failed {
		w.pausedUntil = s.opts.Now().Add(wait)
		return wait, true
	}
	w.pausedUntil = time.Time{}
	return 0, false
}

// outcome records the result err of an attempt of entry e: delivered,
// failed for good, or to retry after wait (again true).
func (w *worker) outcome(ctx context.Context, e Entry, err error, now time.Time) (wait time.Duration, again bool) {
	s := w.s
	// Outcome writes use a fresh context so a shutdown racing with them
	// cannot lose a "delivered" mark.
	bg := context.WithoutCancel(ctx)
	if err == nil {
		s.m.delivery(w.kind, "delivered").Inc()
		if err := s.log.MarkDelivered(bg, e.Seq, now); err != nil {
			s.logger.Error("cannot mark delivery done; it will be repeated", "target", w.target, "change_id", e.ChangeID, "err", err)
		}
		return 0, false
	}
	var perm *permanentError
	giveUp := now.Sub(e.CreatedAt) >= s.opts.RetryFor
	if errors.As(err, &perm) || giveUp {
		s.m.delivery(w.kind, "failed").Inc()
		msg := err.Error()
		if giveUp && perm == nil {
			msg = "gave up after retrying for " + s.opts.RetryFor.String() + ": " + msg
		}
		s.logger.Error("change delivery failed for good", "target", w.target, "change_id", e.ChangeID, "event", e.Event,
			"attempts", e.Attempts, "err", msg)
		if err := s.log.MarkFailed(bg, e.Seq, msg, now); err != nil {
			s.logger.Error("cannot mark delivery failed", "target", w.target, "change_id", e.ChangeID, "err", err)
		}
		return 0, false
	}
	s.m.delivery(w.kind, "retry").Inc()
	wait = retry.Backoff(e.Attempts, s.opts.MinBackoff, s.opts.MaxBackoff)
	var auth *authError
	if errors.As(err, &auth) {
		wait = max(wait, s.opts.AuthBackoff)
		s.logger.Error("change delivery refused: fix the credentials", "target", w.target, "change_id", e.ChangeID,
			"attempts", e.Attempts, "retry_in", wait, "err", err)
	} else {
		s.logger.Warn("change delivery failed; will retry", "target", w.target, "change_id", e.ChangeID, "event", e.Event,
			"attempts", e.Attempts, "retry_in", wait, "err", err)
	}
	if err := s.log.MarkRetry(bg, e.Seq, err.Error(), now.Add(wait)); err != nil {
		s.logger.Error("cannot record delivery retry", "target", w.target, "change_id", e.ChangeID, "err", err)
	}
	return wait, true
}

// release gives back the claims on entries, which this round will not
// attempt (see Log.ReleaseClaims).
func (w *worker) release(ctx context.Context, entries []Entry) {
	if len(entries) == 0 {
		return
	}
	seqs := make([]int64, len(entries))
	for i, e := range entries {
		seqs[i] = e.Seq
	}
	if err := w.s.log.ReleaseClaims(context.WithoutCancel(ctx), seqs, w.s.opts.Now()); err != nil {
		w.s.logger.Warn("cannot release claimed deliveries; they wait for the claim to expire", "target", w.target, "entries", len(seqs), "err", err)
	}
}

func (w *worker) updatePending(ctx context.Context) {
	counts, err := w.s.log.PendingCounts(context.WithoutCancel(ctx))
	if err != nil {
		return
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	w.s.m.pending.Set(float64(total))
}

// permanentError is a delivery failure retrying will not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// authError is a delivery refused for its credentials: retried slowly.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }
