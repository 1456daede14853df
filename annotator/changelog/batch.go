package changelog

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// BatchTarget is a Target that takes the due entries of a round together,
// so it can combine them: a chat network turns a burst of changes (a
// 50-host deploy) into a few messages within its rate limits. Before each
// round the worker calls Wait, so the entries that fall due while the
// target waits for its rate limit go out in the next batch together. The
// outbox's promises hold per entry as for a Target: attempts are counted
// durably before DeliverBatch is called, a change's "finished" entry is
// never in a batch with (or before) its pending "recorded" one, and each
// result is recorded on its own entry.
type BatchTarget interface {
	Target
	// Wait blocks until the target may send again (its own rate limit,
	// or a rate-limit answer of the network), or ctx is done.
	Wait(ctx context.Context) error
	// DeliverBatch makes the target reflect every item, oldest first,
	// and returns one result per item with Deliver's meaning (nil:
	// delivered; Permanent, Refused or other errors). It is called with
	// Options.DeliveryTimeout.
	DeliverBatch(ctx context.Context, items []Item) []error
}

// Item is one outbox entry with its change, as a BatchTarget gets it.
type Item struct {
	Entry  Entry
	Change changes.Change
}

// maxBatch is the most entries a BatchTarget gets per round.
const maxBatch = 500

// batchRound is round for a BatchTarget: wait for the target, then hand
// it every entry due by then.
func (w *worker) batchRound(ctx context.Context) time.Duration {
	s := w.s
	next, ok, err := s.log.NextDue(ctx, w.target)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("cannot read change outbox; retrying", "target", w.target, "err", err)
		}
		return s.opts.MaxBackoff
	}
	if !ok {
		return idleWait
	}
	if wait := next.Sub(s.opts.Now()); wait > 0 {
		return min(wait, idleWait)
	}
	if err := w.batch.Wait(ctx); err != nil {
		return 0
	}
	entries, err := s.log.Due(ctx, w.target, s.opts.Now(), maxBatch)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("cannot read change outbox; retrying", "target", w.target, "err", err)
		}
		return s.opts.MaxBackoff
	}
	if len(entries) == 0 {
		return 0
	}
	items := make([]Item, 0, len(entries))
	seqs := make([]int64, 0, len(entries))
	for _, e := range entries {
		c, err := s.log.Get(ctx, e.ChangeID)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Error("cannot read change for delivery", "target", w.target, "change_id", e.ChangeID, "err", err)
			}
			w.release(ctx, entries)
			return s.opts.MaxBackoff
		}
		e.Attempts++
		e.TargetAttempts++
		items = append(items, Item{Entry: e, Change: c})
		seqs = append(seqs, e.Seq)
	}
	// Count the attempts durably before making them (one transaction for
	// the batch), as attempt does for one entry, and leave out the entries
	// whose claim another replica took meanwhile.
	now := s.opts.Now()
	held, err := s.log.StartAttempts(ctx, seqs, now, now.Add(w.attemptClaim()))
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("cannot count delivery attempts", "target", w.target, "entries", len(seqs), "err", err)
		}
		w.release(ctx, entries) // none was counted: the transaction rolled back
		return s.opts.MaxBackoff
	}
	if len(held) < len(items) {
		s.m.delivery(w.kind, "claim_lost").AddInt64(int64(len(items) - len(held)))
		items = slices.DeleteFunc(items, func(it Item) bool { return !slices.Contains(held, it.Entry.Seq) })
		if len(items) == 0 {
			return 0
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, w.timeout)
	errs := w.batch.DeliverBatch(callCtx, items)
	cancel()
	if ctx.Err() != nil {
		return 0 // shutdown: the entries stay pending, their attempts counted
	}
	if len(errs) != len(items) {
		panic(fmt.Sprintf("BUG: target %s returned %d results for %d entries", w.target, len(errs), len(items)))
	}
	now = s.opts.Now()
	var delivered []int64
	pause := time.Duration(0)
	for i, it := range items {
		if errs[i] == nil {
			delivered = append(delivered, it.Entry.Seq)
			continue
		}
		if wait, retry := w.outcome(ctx, it.Entry, errs[i], now); retry {
			pause = max(pause, wait)
		}
	}
	if len(delivered) > 0 {
		s.m.delivery(w.kind, "delivered").AddInt64(int64(len(delivered)))
		if err := s.log.MarkDeliveredAll(context.WithoutCancel(ctx), delivered, now); err != nil {
			s.logger.Error("cannot mark deliveries done; they will be repeated", "target", w.target, "entries", len(delivered), "err", err)
		}
	}
	if pause > 0 {
		w.pausedUntil = now.Add(pause)
		return pause
	}
	return 0
}

// StartAttempts is StartAttempt for several entries, in one transaction:
// it returns the seqs whose claim this replica still held (all of them on
// SQLite), in the order given.
func (l *Log) StartAttempts(ctx context.Context, seqs []int64, now, until time.Time) (held []int64, err error) {
	err = l.Update(ctx, time.Time{}, func(tx *Tx) error {
		held = held[:0]
		for _, seq := range seqs {
			ok, err := l.startAttempt(ctx, tx.tx, seq, now, until)
			if err != nil {
				return fmt.Errorf("cannot update outbox entry %d: %w", seq, err)
			}
			if ok {
				held = append(held, seq)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return held, nil
}

// MarkDeliveredAll is MarkDelivered for several entries, in one
// transaction.
func (l *Log) MarkDeliveredAll(ctx context.Context, seqs []int64, now time.Time) error {
	return l.eachSeq(ctx, seqs, `UPDATE outbox SET status = 'delivered', last_error = '', done_ms = ? WHERE seq = ?`, ms(now))
}

// eachSeq runs q once per seq (the last argument) in one transaction.
func (l *Log) eachSeq(ctx context.Context, seqs []int64, q string, args ...any) error {
	return l.Update(ctx, time.Time{}, func(tx *Tx) error {
		for _, seq := range seqs {
			if _, err := tx.tx.ExecContext(ctx, q, append(args, seq)...); err != nil {
				return fmt.Errorf("cannot update outbox entry %d: %w", seq, err)
			}
		}
		return nil
	})
}
