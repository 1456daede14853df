package changelog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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

// migrations is the schema of the change log, oldest first. Versions 1
// and 2 are the deploy log of earlier collectors; version 3 turns it into
// the change log in place, so a deploy log written by an older collector
// opens as a change log with every deploy (kind deploy), its impact and its
// pending deliveries (TestMigrateDeployLog opens one such file).
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
//   - Full-text search (migration 3) is SQLite's FTS5: an external-content
//     table changes_fts kept in step by triggers and queried with MATCH.
//     PostgreSQL's equivalent is a generated tsvector column over the same
//     text columns with a GIN index, queried with @@ to_tsquery (prefix
//     terms as word:*); search.go builds the query from words either way.
//   - ALTER TABLE ... RENAME TO / RENAME COLUMN (migration 3) work in both
//     (SQLite 3.26+ rewrites the foreign key of outbox to the new name).
//   - Everything else (BIGINT milliseconds for times, TEXT, CHECK, NOT
//     EXISTS subqueries, COALESCE, LIMIT, partial indexes) is shared.
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
	{
		Version: 3,
		Name:    "change log: kinds, subjects, fields, full-text search",
		SQL: []string{
			`ALTER TABLE deploys RENAME TO changes`,
			`ALTER TABLE changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'deploy'`,
			`ALTER TABLE changes ADD COLUMN subject TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE changes ADD COLUMN fields TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE outbox RENAME COLUMN deploy_id TO change_id`,
			`DROP INDEX deploys_time`,
			`DROP INDEX deploys_service_env_time`,
			`DROP INDEX outbox_deploy`,
			`CREATE INDEX changes_time ON changes (time_ms, seq)`,
			`CREATE INDEX changes_service_env_time ON changes (service, env, time_ms, seq)`,
			`CREATE INDEX changes_kind_time ON changes (kind, time_ms, seq)`,
			`CREATE INDEX changes_open ON changes (kind, service, env, subject) WHERE status = 'running' AND end_time_ms IS NULL`,
			`CREATE INDEX outbox_change ON outbox (change_id, target, seq)`,
			`CREATE VIRTUAL TABLE changes_fts USING fts5(` + ftsColumns + `,
				content='changes', content_rowid='seq', tokenize='unicode61 remove_diacritics 2', prefix='2 3')`,
			`CREATE TRIGGER changes_fts_insert AFTER INSERT ON changes BEGIN
				INSERT INTO changes_fts (rowid, ` + ftsColumns + `) VALUES (new.seq, ` + ftsValues("new") + `);
			END`,
			`CREATE TRIGGER changes_fts_delete AFTER DELETE ON changes BEGIN
				INSERT INTO changes_fts (changes_fts, rowid, ` + ftsColumns + `) VALUES ('delete', old.seq, ` + ftsValues("old") + `);
			END`,
			`CREATE TRIGGER changes_fts_update AFTER UPDATE OF ` + ftsColumns + ` ON changes BEGIN
				INSERT INTO changes_fts (changes_fts, rowid, ` + ftsColumns + `) VALUES ('delete', old.seq, ` + ftsValues("old") + `);
				INSERT INTO changes_fts (rowid, ` + ftsColumns + `) VALUES (new.seq, ` + ftsValues("new") + `);
			END`,
			`INSERT INTO changes_fts (changes_fts) VALUES ('rebuild')`,
		},
	},
	{
		// Which replica holds an outbox entry's claim (PostgreSQL; see
		// claimDue): an attempt starts only while its replica still holds
		// the entry. Unused on SQLite.
		Version: 4,
		Name:    "outbox claim holder",
		SQL: []string{
			`ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT ''`,
		},
	},
}

// ftsColumns are the columns of changes the full-text index covers: every
// text a person might remember a change by.
const ftsColumns = "service, env, subject, version, vcs_commit, who, message, link, fields"

// ftsValues is ftsColumns qualified by row ("new" or "old") for triggers.
func ftsValues(row string) string {
	cols := strings.Split(ftsColumns, ", ")
	for i, c := range cols {
		cols[i] = row + "." + c
	}
	return strings.Join(cols, ", ")
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	applied_ms BIGINT NOT NULL
)`

// migrate applies the migrations of list that db has not seen yet.
func migrate(ctx context.Context, db *db, list []Migration) error {
	if err := createMigrations(ctx, db); err != nil {
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

// createMigrations creates schema_migrations; on PostgreSQL under the
// migration lock, as replicas may start together.
func createMigrations(ctx context.Context, db *db) error {
	if db.d != postgres {
		_, err := db.ExecContext(ctx, createMigrationsTable)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+migrationLock+`)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return err
	}
	return tx.Commit()
}

// migrationLock is the PostgreSQL advisory lock key migrations hold.
const migrationLock = "7359412201"

func applyMigration(ctx context.Context, db *db, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin migration %d (%s): %w", m.Version, m.Name, err)
	}
	defer tx.Rollback()
	if db.d == postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+migrationLock+`)`); err != nil {
			return fmt.Errorf("cannot lock for migration %d (%s): %w", m.Version, m.Name, err)
		}
	}
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
		stmts := []string{stmt}
		if db.d == postgres {
			stmts = pgStatements(stmt)
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("migration %d (%s) failed: %w", m.Version, m.Name, err)
			}
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

func schemaVersion(ctx context.Context, db queryer) (int, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("cannot read schema version: %w", err)
	}
	return int(v.Int64), nil
}
