package changelog

import (
	"context"
	"fmt"
	"strings"
)

// copyTables are the tables CopyLog copies, with every column of each
// (the same in SQLite and PostgreSQL: the migrations are the same) but
// outbox.claimed_by: claims are PostgreSQL's, and none are held yet.
var copyTables = []struct{ name, columns string }{
	{"changes", `seq, id, kind, service, env, subject, version, vcs_commit, who, message, link, fields, time_ms, end_time_ms,
		status, grafana_annotation_id, created_ms, updated_ms, impact, impact_verdict, impact_summary, impact_regressions, impact_ms`},
	{"outbox", `seq, change_id, target, event, status, attempts, last_error, next_attempt_ms, created_ms, done_ms`},
}

// CopyLog copies every change and outbox entry of src into dst as they
// are (sequence numbers, ids, delivery states), in one transaction of
// dst, for moving a collector's SQLite change log to the PostgreSQL its
// replicas share (collector migrate-changes). dst must hold no change yet.
// It returns how many rows of each table it copied.
func CopyLog(ctx context.Context, dst, src *Log) (map[string]int, error) {
	var n int
	if err := dst.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM changes`).Scan(&n); err != nil {
		return nil, fmt.Errorf("cannot read the target change log: %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("the target change log %s already holds %d changes: copy into an empty one", dst.path, n)
	}
	t, err := dst.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer t.Rollback()
	counts := map[string]int{}
	for _, tab := range copyTables {
		cols := strings.Fields(strings.ReplaceAll(tab.columns, ",", " "))
		rows, err := src.db.QueryContext(ctx, `SELECT `+tab.columns+` FROM `+tab.name+` ORDER BY seq`)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s of %s: %w", tab.name, src.path, err)
		}
		insert := `INSERT INTO ` + tab.name + ` (` + tab.columns + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s of %s: %w", tab.name, src.path, err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b) // SQLite may hand TEXT as bytes
				}
			}
			if _, err := t.ExecContext(ctx, insert, vals...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot copy a row of %s: %w", tab.name, err)
			}
			counts[tab.name]++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("cannot read %s of %s: %w", tab.name, src.path, err)
		}
		if dst.db.d == postgres {
			// The identity goes on after the copied seqs.
			if _, err := t.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+tab.name+`', 'seq'), COALESCE((SELECT MAX(seq) FROM `+tab.name+`), 0) + 1, false)`); err != nil {
				return nil, fmt.Errorf("cannot move the sequence of %s: %w", tab.name, err)
			}
		}
	}
	if err := t.Commit(); err != nil {
		return nil, fmt.Errorf("cannot commit the copy into %s: %w", dst.path, err)
	}
	return counts, nil
}
