package changelog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

const changeColumns = `seq, id, kind, service, env, subject, version, vcs_commit, who, message, link, fields,
	time_ms, end_time_ms, status, grafana_annotation_id, created_ms, updated_ms,
	impact_verdict, impact_summary, impact_regressions, impact_ms`

type scanner interface{ Scan(dest ...any) error }

func scanChange(s scanner) (changes.Change, error) {
	var c changes.Change
	var fields string
	var t, created, updated int64
	var end, annotation, regressions, impactMS sql.NullInt64
	var verdict, summary sql.NullString
	err := s.Scan(&c.Seq, &c.ID, &c.Kind, &c.Service, &c.Env, &c.Subject, &c.Version, &c.Commit, &c.Who, &c.Message, &c.Link, &fields,
		&t, &end, &c.Status, &annotation, &created, &updated,
		&verdict, &summary, &regressions, &impactMS)
	if err != nil {
		return changes.Change{}, err
	}
	if fields != "" {
		if err := json.Unmarshal([]byte(fields), &c.Fields); err != nil {
			return changes.Change{}, fmt.Errorf("fields of change %q do not decode: %w", c.ID, err)
		}
	}
	if verdict.Valid {
		at := fromMS(impactMS.Int64)
		c.Impact = &changes.Impact{Status: changes.ImpactDone, Verdict: verdict.String, Summary: summary.String,
			Regressions: int(regressions.Int64), ComputedAt: &at}
	}
	c.Time = fromMS(t)
	if end.Valid {
		e := fromMS(end.Int64)
		c.EndTime = &e
	}
	c.GrafanaAnnotationID = annotation.Int64
	c.CreatedAt = fromMS(created)
	c.UpdatedAt = fromMS(updated)
	return c, nil
}

// Get returns the change with the given id, or an error wrapping ErrNotFound.
func (t *Tx) Get(ctx context.Context, id string) (changes.Change, error) {
	return getChange(ctx, t.tx, id)
}

// Get returns the change with the given id, or an error wrapping ErrNotFound.
func (l *Log) Get(ctx context.Context, id string) (changes.Change, error) {
	return getChange(ctx, l.db, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func getChange(ctx context.Context, q queryer, id string) (changes.Change, error) {
	c, err := scanChange(q.QueryRowContext(ctx, `SELECT `+changeColumns+` FROM changes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return changes.Change{}, fmt.Errorf("change %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return changes.Change{}, fmt.Errorf("cannot read change %q: %w", id, err)
	}
	return c, nil
}

func encodeFields(f map[string]string) string {
	if len(f) == 0 {
		return ""
	}
	b, _ := json.Marshal(f) // map[string]string always encodes (keys sorted)
	return string(b)
}

// Insert stores a new change. c.ID and c.Kind must be set and the id
// unused. It sets c.Seq, c.CreatedAt and c.UpdatedAt; times are truncated
// to milliseconds.
func (t *Tx) Insert(ctx context.Context, c *changes.Change) error {
	if c.Kind == "" {
		return fmt.Errorf("BUG: change %q has no kind", c.ID)
	}
	var end sql.NullInt64
	if c.EndTime != nil {
		end = sql.NullInt64{Int64: ms(*c.EndTime), Valid: true}
	}
	now := ms(t.now)
	// RETURNING works in SQLite (3.35+) and PostgreSQL alike.
	err := t.tx.QueryRowContext(ctx, `INSERT INTO changes (id, kind, service, env, subject, version, vcs_commit, who, message, link, fields,
		time_ms, end_time_ms, status, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		c.ID, c.Kind, c.Service, c.Env, c.Subject, c.Version, c.Commit, c.Who, c.Message, c.Link, encodeFields(c.Fields),
		ms(c.Time), end, c.Status, now, now).Scan(&c.Seq)
	if err != nil {
		return fmt.Errorf("cannot insert change %q: %w", c.ID, err)
	}
	c.Time = fromMS(ms(c.Time))
	if c.EndTime != nil {
		e := fromMS(end.Int64)
		c.EndTime = &e
	}
	c.CreatedAt = fromMS(now)
	c.UpdatedAt = c.CreatedAt
	return nil
}

// SetEnd sets the end time (nil: open) and status of change id.
func (t *Tx) SetEnd(ctx context.Context, id string, end *time.Time, status string) error {
	var e sql.NullInt64
	if end != nil {
		e = sql.NullInt64{Int64: ms(*end), Valid: true}
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE changes SET end_time_ms = ?, status = ?, updated_ms = ? WHERE id = ?`,
		e, status, ms(t.now), id)
	if err != nil {
		return fmt.Errorf("cannot update change %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("change %q: %w", id, ErrNotFound)
	}
	return nil
}

// OpenChanges returns the open changes (status running, no end) of kind,
// service, env and subject that started at or before at, oldest first:
// the ones a new change about the same subject supersedes.
func (t *Tx) OpenChanges(ctx context.Context, kind, service, env, subject string, at time.Time) ([]changes.Change, error) {
	return queryChanges(ctx, t.tx, `SELECT `+changeColumns+` FROM changes
		WHERE kind = ? AND service = ? AND env = ? AND subject = ? AND status = 'running' AND end_time_ms IS NULL AND time_ms <= ?
		ORDER BY time_ms, seq`, kind, service, env, subject, ms(at))
}

// SetGrafanaAnnotationID records the Grafana annotation created for change id.
func (l *Log) SetGrafanaAnnotationID(ctx context.Context, changeID string, annotationID int64) error {
	_, err := l.db.ExecContext(ctx, `UPDATE changes SET grafana_annotation_id = ? WHERE id = ?`, annotationID, changeID)
	if err != nil {
		return fmt.Errorf("cannot store grafana annotation id %d of change %q: %w", annotationID, changeID, err)
	}
	return nil
}

// ImpactRecord is the stored outcome of a change's impact analysis.
type ImpactRecord struct {
	Verdict     string
	Summary     string
	Regressions int
	ComputedAt  time.Time
	// Report is the full analysis as JSON (annotator/impact.Report).
	Report []byte
}

// SetImpact stores the impact analysis of change id. changes.Change (Get, List)
// then carries Impact with status done.
func (t *Tx) SetImpact(ctx context.Context, id string, r ImpactRecord) error {
	if r.Verdict == "" {
		return fmt.Errorf("BUG: impact of change %q has no verdict", id)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE changes SET impact = ?, impact_verdict = ?, impact_summary = ?,
		impact_regressions = ?, impact_ms = ?, updated_ms = ? WHERE id = ?`,
		string(r.Report), r.Verdict, r.Summary, r.Regressions, ms(r.ComputedAt), ms(t.now), id)
	if err != nil {
		return fmt.Errorf("cannot store impact of change %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("change %q: %w", id, ErrNotFound)
	}
	return nil
}

// ImpactReport returns the stored impact report (JSON) of change id; ok is
// false when the change exists but has none yet. An unknown id is an error
// wrapping ErrNotFound.
func (l *Log) ImpactReport(ctx context.Context, id string) (report []byte, ok bool, err error) {
	var v sql.NullString
	err = l.db.QueryRowContext(ctx, `SELECT impact FROM changes WHERE id = ?`, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("change %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot read impact of change %q: %w", id, err)
	}
	if !v.Valid {
		return nil, false, nil
	}
	return []byte(v.String), true, nil
}

// List returns the changes matching f, newest first (by Time, then Seq).
func (l *Log) List(ctx context.Context, f changes.Filter) ([]changes.Change, error) {
	if f.Limit <= 0 {
		return nil, fmt.Errorf("BUG: change log List called with limit %d", f.Limit)
	}
	var where []string
	var args []any
	if len(f.Kinds) > 0 {
		where = append(where, "kind IN (?"+strings.Repeat(", ?", len(f.Kinds)-1)+")")
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	if f.Service != "" {
		where = append(where, "service = ?")
		args = append(args, f.Service)
	}
	if f.Env != "" {
		if f.EnvlessToo {
			where = append(where, "env IN (?, '')")
		} else {
			where = append(where, "env = ?")
		}
		args = append(args, f.Env)
	}
	if f.Subject != "" {
		where = append(where, "subject = ?")
		args = append(args, f.Subject)
	}
	if !f.To.IsZero() {
		where = append(where, "time_ms <= ?")
		args = append(args, ms(f.To))
	}
	if !f.From.IsZero() {
		if f.Overlap {
			// A region overlaps when it ends at or after From; an open
			// one runs on; a point is its start.
			where = append(where, "(end_time_ms >= ? OR (end_time_ms IS NULL AND (status = 'running' OR time_ms >= ?)))")
			args = append(args, ms(f.From), ms(f.From))
		} else {
			where = append(where, "time_ms >= ?")
			args = append(args, ms(f.From))
		}
	}
	if f.OpenOnly {
		where = append(where, "status = 'running' AND end_time_ms IS NULL")
	}
	if f.Text != "" && l.db.d == postgres {
		terms, err := changes.SearchTerms(f.Text)
		if err != nil {
			return nil, err
		}
		where = append(where, "search @@ to_tsquery('simple', ?)")
		args = append(args, pgTSQuery(terms))
	}
	if f.Text != "" && l.db.d == sqlite {
		match, err := ftsQuery(f.Text)
		if err != nil {
			return nil, err
		}
		dense, err := l.denseMatch(ctx, match)
		if err != nil {
			return nil, fmt.Errorf("cannot search changes: %w", err)
		}
		if dense != nil {
			return l.listDense(ctx, dense, where, args, f.Limit)
		}
		where = append(where, "seq IN (SELECT rowid FROM changes_fts WHERE changes_fts MATCH ?)")
		args = append(args, match)
	}
	q := `SELECT ` + changeColumns + ` FROM changes`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY time_ms DESC, seq DESC LIMIT ?"
	args = append(args, f.Limit)
	out, err := queryChanges(ctx, l.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot list changes: %w", err)
	}
	return out, nil
}

// sparseMatches is the most full-text matches a search fetches as rows
// and sorts by time; with more, it walks the time index instead (see
// listDense). Both are exact; they differ in cost: looking up and sorting
// every match costs per match, walking the index costs per change until
// the limit is reached, which is few when matches are dense.
const sparseMatches = 2000

// seqSet is a set of change seqs (the FTS rowids), one bit each.
type seqSet []uint64

func (s seqSet) has(seq int64) bool {
	i := uint64(seq) / 64
	return i < uint64(len(s)) && s[i]&(1<<(uint64(seq)%64)) != 0
}

// denseMatch returns the seqs matching the FTS query when there are more
// than sparseMatches of them, else nil.
func (l *Log) denseMatch(ctx context.Context, match string) (seqSet, error) {
	var n int
	err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT rowid FROM changes_fts WHERE changes_fts MATCH ? LIMIT ?)`,
		match, sparseMatches+1).Scan(&n)
	if err != nil || n <= sparseMatches {
		return nil, err
	}
	// One row holding every rowid: reading ~100k rows one by one through
	// database/sql costs several times what the match itself does.
	var all sql.NullString
	if err := l.db.QueryRowContext(ctx, `SELECT group_concat(rowid) FROM changes_fts WHERE changes_fts MATCH ?`, match).Scan(&all); err != nil {
		return nil, err
	}
	var set seqSet
	for v := range strings.SplitSeq(all.String, ",") {
		seq, err := strconv.ParseInt(v, 10, 64)
		if err != nil || seq < 0 {
			continue
		}
		i := int(seq / 64)
		if i >= len(set) {
			set = append(set, make(seqSet, i+1-len(set))...)
		}
		set[i] |= 1 << (uint64(seq) % 64)
	}
	return set, nil
}

// listDense walks the changes matching where newest first, a page at a
// time, keeping those in set, until it has limit of them; then reads
// those rows.
func (l *Log) listDense(ctx context.Context, set seqSet, where []string, args []any, limit int) ([]changes.Change, error) {
	const page = 1000
	var keep []any
	var lastT, lastSeq int64
	for first := true; len(keep) < limit; first = false {
		w, a := where, args
		if !first {
			w = append(slices.Clone(w), "(time_ms < ? OR (time_ms = ? AND seq < ?))")
			a = append(slices.Clone(a), lastT, lastT, lastSeq)
		}
		q := `SELECT time_ms, seq FROM changes`
		if len(w) > 0 {
			q += " WHERE " + strings.Join(w, " AND ")
		}
		rows, err := l.db.QueryContext(ctx, q+" ORDER BY time_ms DESC, seq DESC LIMIT ?", append(a, page)...)
		if err != nil {
			return nil, fmt.Errorf("cannot search changes: %w", err)
		}
		n := 0
		for rows.Next() && len(keep) < limit {
			if err := rows.Scan(&lastT, &lastSeq); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot search changes: %w", err)
			}
			n++
			if set.has(lastSeq) {
				keep = append(keep, lastSeq)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot search changes: %w", err)
		}
		if n < page {
			break
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	out, err := queryChanges(ctx, l.db, `SELECT `+changeColumns+` FROM changes WHERE seq IN (?`+strings.Repeat(", ?", len(keep)-1)+
		`) ORDER BY time_ms DESC, seq DESC`, keep...)
	if err != nil {
		return nil, fmt.Errorf("cannot list changes: %w", err)
	}
	return out, nil
}

func queryChanges(ctx context.Context, q queryer, query string, args ...any) ([]changes.Change, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []changes.Change
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot read change row: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ftsQuery turns a search text into an FTS5 query (see
// changes.SearchTerms): `"checkout"* "timeout"*`, `"v1 2 3"*`.
func ftsQuery(text string) (string, error) {
	terms, err := changes.SearchTerms(text)
	if err != nil {
		return "", err
	}
	parts := make([]string, len(terms))
	for i, words := range terms {
		parts[i] = `"` + strings.Join(words, " ") + `"*`
	}
	return strings.Join(parts, " "), nil
}

// CountThrough returns how many changes of c's kind, service and env the
// log holds up to and including c, ordered by Time then Seq: the value of
// the telltale_changes_total (and, for deploys, telltale_deploys_total)
// counter at c.
func (l *Log) CountThrough(ctx context.Context, c changes.Change) (int64, error) {
	var n int64
	t := ms(c.Time)
	err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM changes WHERE kind = ? AND service = ? AND env = ?
		AND (time_ms < ? OR (time_ms = ? AND seq <= ?))`, c.Kind, c.Service, c.Env, t, t, c.Seq).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cannot count %s changes of %s/%s: %w", c.Kind, c.Service, c.Env, err)
	}
	return n, nil
}
