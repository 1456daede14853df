package deploylog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Migration is one step of the schema. Migrations are applied in Version
// order, each in its own transaction together with its schema_migrations
// row, and never edited once released: change the schema by appending one.
type Migration struct {
	Version int
	Name    string
	SQL     []string
}

// migrations is the schema of the deploy log, oldest first.
//
// Portability notes (what a PostgreSQL backend must change):
//   - "INTEGER PRIMARY KEY AUTOINCREMENT" becomes
//     "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"; inserts read the new
//     value with RETURNING seq (SQLite 3.35+ supports RETURNING too, but
//     database/sql's LastInsertId is what is used here).
//   - Placeholders are ? here and $1, $2 ... in PostgreSQL (rebind queries).
//   - The PRAGMAs in Open (WAL, synchronous=FULL, busy_timeout) have no
//     PostgreSQL counterpart; durability comes from its fsync'd WAL.
//   - With several collectors sharing one database, Due must claim entries
//     (SELECT ... FOR UPDATE SKIP LOCKED, or a lease column) because more
//     than one worker per target may run; with SQLite one process owns the
//     file and one worker per target runs, so no claim is needed.
//   - Everything else (BIGINT milliseconds for times, TEXT, CHECK, NOT
//     EXISTS subqueries, COALESCE, LIMIT) is shared.
//
// Migration 2 adds the deploy-impact outcome: the report as a JSON document
// and the fields lists show (verdict, summary, regressions, when). The
// analysis itself is scheduled through the outbox (target "impact", due at
// the end of the deploy's after window), so it survives restarts like any
// delivery.
var migrations = []Migration{
	{
		Version: 1,
		Name:    "deploys and outbox",
		SQL: []string{
			`CREATE TABLE deploys (
				seq INTEGER PRIMARY KEY AUTOINCREMENT,
				id TEXT NOT NULL UNIQUE,
				service TEXT NOT NULL,
				env TEXT NOT NULL DEFAULT '',
				version TEXT NOT NULL DEFAULT '',
				vcs_commit TEXT NOT NULL DEFAULT '',
				who TEXT NOT NULL DEFAULT '',
				message TEXT NOT NULL DEFAULT '',
				link TEXT NOT NULL DEFAULT '',
				time_ms BIGINT NOT NULL,
				end_time_ms BIGINT,
				status TEXT NOT NULL,
				grafana_annotation_id BIGINT,
				created_ms BIGINT NOT NULL,
				updated_ms BIGINT NOT NULL
			)`,
			`CREATE INDEX deploys_time ON deploys (time_ms, seq)`,
			`CREATE INDEX deploys_service_env_time ON deploys (service, env, time_ms, seq)`,
			`CREATE TABLE outbox (
				seq INTEGER PRIMARY KEY AUTOINCREMENT,
				deploy_id TEXT NOT NULL REFERENCES deploys (id),
				target TEXT NOT NULL,
				event TEXT NOT NULL,
				status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
				attempts INTEGER NOT NULL DEFAULT 0,
				last_error TEXT NOT NULL DEFAULT '',
				next_attempt_ms BIGINT NOT NULL,
				created_ms BIGINT NOT NULL,
				done_ms BIGINT
			)`,
			`CREATE INDEX outbox_due ON outbox (target, status, next_attempt_ms)`,
			`CREATE INDEX outbox_deploy ON outbox (deploy_id, target, seq)`,
		},
	},
	{
		Version: 2,
		Name:    "deploy impact",
		SQL: []string{
			`ALTER TABLE deploys ADD COLUMN impact TEXT`,
			`ALTER TABLE deploys ADD COLUMN impact_verdict TEXT`,
			`ALTER TABLE deploys ADD COLUMN impact_summary TEXT`,
			`ALTER TABLE deploys ADD COLUMN impact_regressions INTEGER`,
			`ALTER TABLE deploys ADD COLUMN impact_ms BIGINT`,
		},
	},
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	applied_ms BIGINT NOT NULL
)`

// migrate applies the migrations of list that db has not seen yet.
func migrate(ctx context.Context, db *sql.DB, list []Migration) error {
	if _, err := db.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("cannot create schema_migrations: %w", err)
	}
	for i, m := range list {
		if m.Version != i+1 {
			panic(fmt.Sprintf("BUG: migration %d (%s) has version %d; versions must be 1, 2, 3 ...", i, m.Name, m.Version))
		}
	}
	have, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if have > len(list) {
		return fmt.Errorf("database has schema version %d but this binary knows only up to %d: run a newer telltale, or restore a backup taken before the upgrade", have, len(list))
	}
	for _, m := range list[have:] {
		if err := applyMigration(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin migration %d (%s): %w", m.Version, m.Name, err)
	}
	defer tx.Rollback()
	// Re-check inside the write transaction: another process may have
	// applied it since we looked.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range m.SQL {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migration %d (%s) failed: %w", m.Version, m.Name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("cannot record migration %d (%s): %w", m.Version, m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit migration %d (%s): %w", m.Version, m.Name, err)
	}
	return nil
}

func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("cannot read schema version: %w", err)
	}
	return int(v.Int64), nil
}
