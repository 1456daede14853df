package deploylog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/deployapi"
)

const deployColumns = `seq, id, service, env, version, vcs_commit, who, message, link,
	time_ms, end_time_ms, status, grafana_annotation_id, created_ms, updated_ms,
	impact_verdict, impact_summary, impact_regressions, impact_ms`

type scanner interface{ Scan(dest ...any) error }

func scanDeploy(s scanner) (Deploy, error) {
	var d Deploy
	var t, created, updated int64
	var end, annotation, regressions, impactMS sql.NullInt64
	var verdict, summary sql.NullString
	err := s.Scan(&d.Seq, &d.ID, &d.Service, &d.Env, &d.Version, &d.Commit, &d.Who, &d.Message, &d.Link,
		&t, &end, &d.Status, &annotation, &created, &updated,
		&verdict, &summary, &regressions, &impactMS)
	if err != nil {
		return Deploy{}, err
	}
	if verdict.Valid {
		at := fromMS(impactMS.Int64)
		d.Impact = &deployapi.Impact{Status: deployapi.ImpactDone, Verdict: verdict.String, Summary: summary.String,
			Regressions: int(regressions.Int64), ComputedAt: &at}
	}
	d.Time = fromMS(t)
	if end.Valid {
		e := fromMS(end.Int64)
		d.EndTime = &e
	}
	d.GrafanaAnnotationID = annotation.Int64
	d.CreatedAt = fromMS(created)
	d.UpdatedAt = fromMS(updated)
	return d, nil
}

// Get returns the deploy with the given id, or an error wrapping ErrNotFound.
func (t *Tx) Get(ctx context.Context, id string) (Deploy, error) {
	return getDeploy(ctx, t.tx, id)
}

// Get returns the deploy with the given id, or an error wrapping ErrNotFound.
func (l *Log) Get(ctx context.Context, id string) (Deploy, error) {
	return getDeploy(ctx, l.db, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getDeploy(ctx context.Context, q queryer, id string) (Deploy, error) {
	d, err := scanDeploy(q.QueryRowContext(ctx, `SELECT `+deployColumns+` FROM deploys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Deploy{}, fmt.Errorf("deploy %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deploy{}, fmt.Errorf("cannot read deploy %q: %w", id, err)
	}
	return d, nil
}

// Insert stores a new deploy. d.ID must be set and unused. It sets d.Seq,
// d.CreatedAt and d.UpdatedAt; times are truncated to milliseconds.
func (t *Tx) Insert(ctx context.Context, d *Deploy) error {
	var end sql.NullInt64
	if d.EndTime != nil {
		end = sql.NullInt64{Int64: ms(*d.EndTime), Valid: true}
	}
	now := ms(t.now)
	res, err := t.tx.ExecContext(ctx, `INSERT INTO deploys (id, service, env, version, vcs_commit, who, message, link,
		time_ms, end_time_ms, status, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Service, d.Env, d.Version, d.Commit, d.Who, d.Message, d.Link,
		ms(d.Time), end, d.Status, now, now)
	if err != nil {
		return fmt.Errorf("cannot insert deploy %q: %w", d.ID, err)
	}
	if d.Seq, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("cannot read seq of deploy %q: %w", d.ID, err)
	}
	d.Time = fromMS(ms(d.Time))
	if d.EndTime != nil {
		e := fromMS(end.Int64)
		d.EndTime = &e
	}
	d.CreatedAt = fromMS(now)
	d.UpdatedAt = d.CreatedAt
	return nil
}

// SetEnd sets the end time (nil: open) and status of deploy id.
func (t *Tx) SetEnd(ctx context.Context, id string, end *time.Time, status string) error {
	var e sql.NullInt64
	if end != nil {
		e = sql.NullInt64{Int64: ms(*end), Valid: true}
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE deploys SET end_time_ms = ?, status = ?, updated_ms = ? WHERE id = ?`,
		e, status, ms(t.now), id)
	if err != nil {
		return fmt.Errorf("cannot update deploy %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deploy %q: %w", id, ErrNotFound)
	}
	return nil
}

// SetGrafanaAnnotationID records the Grafana annotation created for deploy id.
func (l *Log) SetGrafanaAnnotationID(ctx context.Context, deployID string, annotationID int64) error {
	_, err := l.db.ExecContext(ctx, `UPDATE deploys SET grafana_annotation_id = ? WHERE id = ?`, annotationID, deployID)
	if err != nil {
		return fmt.Errorf("cannot store grafana annotation id %d of deploy %q: %w", annotationID, deployID, err)
	}
	return nil
}

// ImpactRecord is the stored outcome of a deploy's impact analysis.
type ImpactRecord struct {
	Verdict     string
	Summary     string
	Regressions int
	ComputedAt  time.Time
	// Report is the full analysis as JSON (annotator/impact.Report).
	Report []byte
}

// SetImpact stores the impact analysis of deploy id. Deploy (Get, List)
// then carries Impact with status done.
func (t *Tx) SetImpact(ctx context.Context, id string, r ImpactRecord) error {
	if r.Verdict == "" {
		return fmt.Errorf("BUG: impact of deploy %q has no verdict", id)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE deploys SET impact = ?, impact_verdict = ?, impact_summary = ?,
		impact_regressions = ?, impact_ms = ?, updated_ms = ? WHERE id = ?`,
		string(r.Report), r.Verdict, r.Summary, r.Regressions, ms(r.ComputedAt), ms(t.now), id)
	if err != nil {
		return fmt.Errorf("cannot store impact of deploy %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deploy %q: %w", id, ErrNotFound)
	}
	return nil
}

// ImpactReport returns the stored impact report (JSON) of deploy id; ok is
// false when the deploy exists but has none yet. An unknown id is an error
// wrapping ErrNotFound.
func (l *Log) ImpactReport(ctx context.Context, id string) (report []byte, ok bool, err error) {
	var v sql.NullString
	err = l.db.QueryRowContext(ctx, `SELECT impact FROM deploys WHERE id = ?`, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("deploy %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot read impact of deploy %q: %w", id, err)
	}
	if !v.Valid {
		return nil, false, nil
	}
	return []byte(v.String), true, nil
}

// Filter selects deploys for List. Zero fields do not filter.
type Filter struct {
	Service string
	Env     string
	// From and To bound Time, inclusive.
	From, To time.Time
	// Limit caps the number of deploys returned; it must be > 0.
	Limit int
}

// List returns the deploys matching f, newest first (by Time, then Seq).
func (l *Log) List(ctx context.Context, f Filter) ([]Deploy, error) {
	if f.Limit <= 0 {
		return nil, fmt.Errorf("BUG: deploy log List called with limit %d", f.Limit)
	}
	var where []string
	var args []any
	if f.Service != "" {
		where = append(where, "service = ?")
		args = append(args, f.Service)
	}
	if f.Env != "" {
		where = append(where, "env = ?")
		args = append(args, f.Env)
	}
	if !f.From.IsZero() {
		where = append(where, "time_ms >= ?")
		args = append(args, ms(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "time_ms <= ?")
		args = append(args, ms(f.To))
	}
	q := `SELECT ` + deployColumns + ` FROM deploys`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY time_ms DESC, seq DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot list deploys: %w", err)
	}
	defer rows.Close()
	var out []Deploy
	for rows.Next() {
		d, err := scanDeploy(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot read deploy row: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list deploys: %w", err)
	}
	return out, nil
}

// CountThrough returns how many deploys of d's service and env the log holds
// up to and including d, ordered by Time then Seq: the value of the
// telltale_deploys_total counter at d.
func (l *Log) CountThrough(ctx context.Context, d Deploy) (int64, error) {
	var n int64
	t := ms(d.Time)
	err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deploys WHERE service = ? AND env = ?
		AND (time_ms < ? OR (time_ms = ? AND seq <= ?))`, d.Service, d.Env, t, t, d.Seq).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cannot count deploys of %s/%s: %w", d.Service, d.Env, err)
	}
	return n, nil
}
