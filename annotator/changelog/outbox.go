package changelog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// Entry is one outbox entry: an event of a change still to be delivered (or
// already delivered, or given up on) to one target.
type Entry struct {
	Seq      int64
	ChangeID string
	// Target names where the entry goes, e.g. "series", "grafana",
	// "webhook:<name>", "impact", or a Target's name. The log does not
	// interpret it.
	Target string
	// Event is what happened to the change, e.g. "recorded", "finished".
	Event     string
	Status    string
	Attempts  int
	LastError string
	// TargetAttempts is the sum of Attempts over every entry of the same
	// change and target, this one included: > 0 means an earlier attempt may
	// already have reached the target. Filled by Due.
	TargetAttempts int
	NextAttempt    time.Time
	CreatedAt      time.Time
}

// Enqueue adds a pending outbox entry for changeID, due at once. It is part
// of the transaction: it commits or rolls back with the change that caused it.
func (t *Tx) Enqueue(ctx context.Context, changeID, target, event string) error {
	return t.EnqueueAt(ctx, changeID, target, event, t.now)
}

// EnqueueAt adds a pending outbox entry for changeID that Due hands out
// only from at on (e.g. an analysis due when a window has passed). It is
// part of the transaction.
func (t *Tx) EnqueueAt(ctx context.Context, changeID, target, event string, at time.Time) error {
	now := ms(t.now)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO outbox (change_id, target, event, status, next_attempt_ms, created_ms)
		VALUES (?, ?, ?, 'pending', ?, ?)`, changeID, target, event, ms(at), now)
	if err != nil {
		return fmt.Errorf("cannot enqueue %s delivery of change %q to %s: %w", event, changeID, target, err)
	}
	return nil
}

// notBlocked keeps an entry back while an older entry of the same change and
// target is still pending.
const notBlocked = `NOT EXISTS (SELECT 1 FROM outbox e WHERE e.change_id = o.change_id AND e.target = o.target
	AND e.status = 'pending' AND e.seq < o.seq)`

// Due returns up to limit pending entries of target due at or before now,
// oldest first, skipping entries held back by an older pending entry of the
// same change. On PostgreSQL (several replicas) the entries are claimed
// for ClaimFor: no other replica's Due returns them meanwhile.
func (l *Log) Due(ctx context.Context, target string, now time.Time, limit int) ([]Entry, error) {
	if l.db.d == postgres {
		return l.claimDue(ctx, target, now, limit)
	}
	return dueEntries(ctx, l.db, `o.target = ? AND o.status = 'pending' AND o.next_attempt_ms <= ? AND `+notBlocked+`
		ORDER BY o.seq LIMIT ?`, target, ms(now), limit)
}

// claimDue is Due on PostgreSQL: in one transaction it locks the due
// entries no other replica holds (SKIP LOCKED), moves their next attempt
// ClaimFor ahead and names this replica in claimed_by (the claim:
// committed, it hides them from other replicas' Due until it expires,
// which is how an entry of a replica that died is picked up again), and
// reads them. An entry's claim may expire before its turn in the batch
// comes; StartAttempt then refuses it, so two replicas never attempt one
// entry at once.
func (l *Log) claimDue(ctx context.Context, target string, now time.Time, limit int) ([]Entry, error) {
	t, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot claim due %s deliveries: %w", target, err)
	}
	defer t.Rollback()
	rows, err := t.QueryContext(ctx, `SELECT o.seq FROM outbox o
		WHERE o.target = ? AND o.status = 'pending' AND o.next_attempt_ms <= ? AND `+notBlocked+`
		ORDER BY o.seq LIMIT ? FOR UPDATE OF o SKIP LOCKED`, target, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("cannot claim due %s deliveries: %w", target, err)
	}
	var seqs []any
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot claim due %s deliveries: %w", target, err)
		}
		seqs = append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(seqs) == 0 {
		return nil, err
	}
	in := "(?" + strings.Repeat(", ?", len(seqs)-1) + ")"
	if _, err := t.ExecContext(ctx, `UPDATE outbox SET next_attempt_ms = ?, claimed_by = ? WHERE seq IN `+in,
		append([]any{ms(now.Add(l.claimFor())), l.replica}, seqs...)...); err != nil {
		return nil, fmt.Errorf("cannot claim due %s deliveries: %w", target, err)
	}
	out, err := dueEntries(ctx, t, `o.seq IN `+in+` ORDER BY o.seq`, seqs...)
	if err != nil {
		return nil, err
	}
	if err := t.Commit(); err != nil {
		return nil, fmt.Errorf("cannot claim due %s deliveries: %w", target, err)
	}
	return out, nil
}

// dueEntries reads the outbox entries matching where (over outbox o) with
// the attempts of their change and target.
func dueEntries(ctx context.Context, q queryer, where string, args ...any) ([]Entry, error) {
	rows, err := q.QueryContext(ctx, `SELECT o.seq, o.change_id, o.target, o.event, o.status, o.attempts, o.last_error,
		o.next_attempt_ms, o.created_ms,
		(SELECT COALESCE(SUM(p.attempts), 0) FROM outbox p WHERE p.change_id = o.change_id AND p.target = o.target)
		FROM outbox o WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read due deliveries: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var next, created int64
		if err := rows.Scan(&e.Seq, &e.ChangeID, &e.Target, &e.Event, &e.Status, &e.Attempts, &e.LastError,
			&next, &created, &e.TargetAttempts); err != nil {
			return nil, fmt.Errorf("cannot read outbox row: %w", err)
		}
		e.NextAttempt, e.CreatedAt = fromMS(next), fromMS(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read due deliveries: %w", err)
	}
	return out, nil
}

// NextDue returns when the next pending entry of target that Due could hand
// out is due; ok is false when target has nothing pending.
func (l *Log) NextDue(ctx context.Context, target string) (next time.Time, ok bool, err error) {
	var v sql.NullInt64
	err = l.db.QueryRowContext(ctx, `SELECT MIN(o.next_attempt_ms) FROM outbox o
		WHERE o.target = ? AND o.status = 'pending' AND `+notBlocked, target).Scan(&v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot read next %s delivery: %w", target, err)
	}
	if !v.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(v.Int64), true, nil
}

// claimFor is ClaimFor or its default.
func (l *Log) claimFor() time.Duration {
	if l.ClaimFor <= 0 {
		return 2 * time.Minute
	}
	return l.ClaimFor
}

// StartAttempt durably counts an attempt of entry seq before it is made, so
// that after a crash mid-delivery the next attempt knows the target may
// already have the event. On PostgreSQL it does so only while this
// replica still holds the entry's claim (unexpired at now), renewing the
// claim until until in the same statement; held is false when the claim
// was lost (expired, or another replica took the entry and may have
// delivered it), and the entry must not be attempted. On SQLite (one
// process, no claims) held is always true.
func (l *Log) StartAttempt(ctx context.Context, seq int64, now, until time.Time) (held bool, err error) {
	held, err = l.startAttempt(ctx, l.db, seq, now, until)
	if err != nil {
		return false, fmt.Errorf("cannot update outbox entry %d: %w", seq, err)
	}
	return held, nil
}

func (l *Log) startAttempt(ctx context.Context, x execer, seq int64, now, until time.Time) (bool, error) {
	if l.db.d != postgres {
		_, err := x.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1 WHERE seq = ? AND status = 'pending'`, seq)
		return err == nil, err
	}
	res, err := x.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?
		WHERE seq = ? AND status = 'pending' AND claimed_by = ? AND next_attempt_ms > ?`, ms(until), seq, l.replica, ms(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseClaims gives back the claims this replica holds on the entries
// seqs, which it will not attempt now (its round stopped early): they are
// due again at now for every replica instead of after the claim expires.
// Entries another replica took meanwhile are left alone. A no-op on
// SQLite.
func (l *Log) ReleaseClaims(ctx context.Context, seqs []int64, now time.Time) error {
	if l.db.d != postgres || len(seqs) == 0 {
		return nil
	}
	args := []any{ms(now), l.replica, ms(now)}
	for _, seq := range seqs {
		args = append(args, seq)
	}
	if _, err := l.db.ExecContext(ctx, `UPDATE outbox SET next_attempt_ms = ?, claimed_by = ''
		WHERE status = 'pending' AND claimed_by = ? AND next_attempt_ms > ? AND seq IN (?`+strings.Repeat(", ?", len(seqs)-1)+`)`,
		args...); err != nil {
		return fmt.Errorf("cannot release %d claimed outbox entries: %w", len(seqs), err)
	}
	return nil
}

// MarkDelivered marks entry seq delivered at now.
func (l *Log) MarkDelivered(ctx context.Context, seq int64, now time.Time) error {
	return l.exec(ctx, seq, `UPDATE outbox SET status = 'delivered', last_error = '', done_ms = ? WHERE seq = ?`, ms(now), seq)
}

// MarkRetry records the error of the last attempt of entry seq and when to try
// again. errMsg is truncated to a bounded length.
func (l *Log) MarkRetry(ctx context.Context, seq int64, errMsg string, next time.Time) error {
	return l.exec(ctx, seq, `UPDATE outbox SET last_error = ?, next_attempt_ms = ? WHERE seq = ?`,
		truncateError(errMsg), ms(next), seq)
}

// MarkFailed gives up on entry seq at now with the error errMsg.
func (l *Log) MarkFailed(ctx context.Context, seq int64, errMsg string, now time.Time) error {
	return l.exec(ctx, seq, `UPDATE outbox SET status = 'failed', last_error = ?, done_ms = ? WHERE seq = ?`,
		truncateError(errMsg), ms(now), seq)
}

func (l *Log) exec(ctx context.Context, seq int64, q string, args ...any) error {
	if len(args) == 0 {
		args = []any{seq}
	}
	if _, err := l.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("cannot update outbox entry %d: %w", seq, err)
	}
	return nil
}

// Entries returns every outbox entry of changeID, oldest first.
func (l *Log) Entries(ctx context.Context, changeID string) ([]Entry, error) {
	m, err := l.entries(ctx, []string{changeID})
	return m[changeID], err
}

func (l *Log) entries(ctx context.Context, changeIDs []string) (map[string][]Entry, error) {
	out := make(map[string][]Entry, len(changeIDs))
	// Chunks keep the statement under SQLite's (and PostgreSQL's) bound-variable limits.
	const chunk = 500
	for len(changeIDs) > 0 {
		ids := changeIDs[:min(chunk, len(changeIDs))]
		changeIDs = changeIDs[len(ids):]
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		q := `SELECT seq, change_id, target, event, status, attempts, last_error, next_attempt_ms, created_ms
			FROM outbox WHERE change_id IN (?` + strings.Repeat(", ?", len(ids)-1) + `) ORDER BY seq`
		rows, err := l.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("cannot read outbox entries: %w", err)
		}
		for rows.Next() {
			var e Entry
			var next, created int64
			if err := rows.Scan(&e.Seq, &e.ChangeID, &e.Target, &e.Event, &e.Status, &e.Attempts, &e.LastError, &next, &created); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read outbox row: %w", err)
			}
			e.NextAttempt, e.CreatedAt = fromMS(next), fromMS(created)
			out[e.ChangeID] = append(out[e.ChangeID], e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read outbox entries: %w", err)
		}
	}
	return out, nil
}

// TargetState is the delivery state of one change to one target, summed
// over the change's outbox entries for that target.
type TargetState struct {
	Target string
	// Status is pending if any entry is pending, else the status of the
	// newest entry.
	Status string
	// Attempts is the sum over the entries.
	Attempts int
	// LastError is the newest non-empty error.
	LastError string
	// NextAttempt is the earliest due time of the pending entries.
	NextAttempt time.Time
}

// DeliveryStates returns, per change id, the state of each target the change
// has outbox entries for, in the order targets first appear.
func (l *Log) DeliveryStates(ctx context.Context, changeIDs []string) (map[string][]TargetState, error) {
	entries, err := l.entries(ctx, changeIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]TargetState, len(entries))
	for id, es := range entries {
		var states []TargetState
		index := map[string]int{}
		for _, e := range es {
			i, ok := index[e.Target]
			if !ok {
				i = len(states)
				index[e.Target] = i
				states = append(states, TargetState{Target: e.Target})
			}
			s := &states[i]
			s.Attempts += e.Attempts
			if e.LastError != "" {
				s.LastError = e.LastError
			}
			if e.Status == changes.DeliveryPending {
				if s.Status != changes.DeliveryPending || e.NextAttempt.Before(s.NextAttempt) {
					s.NextAttempt = e.NextAttempt
				}
				s.Status = changes.DeliveryPending
			} else if s.Status != changes.DeliveryPending {
				s.Status = e.Status
			}
		}
		out[id] = states
	}
	return out, nil
}

// PendingCounts returns the number of pending outbox entries per target.
func (l *Log) PendingCounts(ctx context.Context) (map[string]int, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT target, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY target`)
	if err != nil {
		return nil, fmt.Errorf("cannot count pending deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("cannot count pending deliveries: %w", err)
		}
		out[t] = n
	}
	return out, rows.Err()
}
