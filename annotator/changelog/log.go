package changelog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrNotFound is returned when no change has the requested id.
var ErrNotFound = errors.New("change not found")

// maxErrorLen bounds the last_error text stored per outbox entry, in bytes.
const maxErrorLen = 512

// Log is the durable change log: the changes table, its full-text index
// and the outbox, in one SQLite database, or in PostgreSQL for collector
// replicas that share it (see postgres.go). Create it with OpenLog,
// release it with Close. A Log is safe for concurrent use.
type Log struct {
	db   *db
	path string
	// ClaimFor is how long an outbox entry Due hands out is claimed on
	// PostgreSQL (no other replica gets it meanwhile), and how long an
	// attempt renews the claim for when it starts (StartAttempt; longer
	// when the attempt's timeout is): an entry whose replica died waits
	// that long. Default 2 minutes.
	ClaimFor time.Duration
	// replica names this Log's claims on PostgreSQL (random per OpenLog).
	replica string
}

// OpenLog opens (creating if needed) the change log database at path and
// brings its schema up to date, migrating a deploy log written by an
// older collector (see schema.go). Close it when done.
//
// A path of the form postgres://user:password@host:port/db (or
// postgresql://...) opens the log in PostgreSQL instead.
func OpenLog(ctx context.Context, path string) (*Log, error) {
	if isPostgresURL(path) {
		pg, err := openPostgres(ctx, path)
		if err != nil {
			return nil, err
		}
		id := make([]byte, 8)
		rand.Read(id)
		l := &Log{db: &db{DB: pg, d: postgres}, path: redactPassword(path), ClaimFor: 2 * time.Minute, replica: hex.EncodeToString(id)}
		if err := migrate(ctx, l.db, migrations); err != nil {
			pg.Close()
			return nil, fmt.Errorf("cannot migrate change log %s: %w", l.path, err)
		}
		return l, nil
	}
	if path == "" {
		return nil, errors.New("change log path is empty: set -deploy.db (default <-data>/deploys.db)")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("change log path %q contains '?' or '#': choose a path without them", path)
	}
	// Every pragma is per connection, so put them in the DSN: the pool applies
	// them to each connection it opens. _txlock=immediate makes BEGIN take the
	// write lock at once, so two writers never deadlock upgrading read locks;
	// busy_timeout makes a second writer wait instead of failing.
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot open change log %q: %w", path, err)
	}
	l := &Log{db: &db{DB: sdb, d: sqlite}, path: path, ClaimFor: 2 * time.Minute}
	if err := l.check(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	if err := migrate(ctx, l.db, migrations); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("cannot migrate change log %q: %w", path, err)
	}
	return l, nil
}

// check verifies the database is usable and the durability settings took.
func (l *Log) check(ctx context.Context) error {
	var mode string
	if err := l.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("cannot open change log %q: %w; check the file is a SQLite database and the directory is writable", l.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("change log %q: journal_mode is %q, want wal; the file system may not support WAL (network file systems do not): put the change log on a local disk", l.path, mode)
	}
	var sync int
	if err := l.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("cannot read synchronous setting of change log %q: %w", l.path, err)
	}
	if sync != 2 { // 2 = FULL
		return fmt.Errorf("BUG: change log %q has synchronous=%d, want 2 (FULL)", l.path, sync)
	}
	return nil
}

// Close closes the database. Call it after every user of the Log is done.
func (l *Log) Close() error {
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("cannot close change log %q: %w", l.path, err)
	}
	return nil
}

// SchemaVersion returns the highest migration version applied.
func (l *Log) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, l.db)
}

// Tx is a write transaction of the log, passed to the function given to
// Update. It is valid only during that call.
type Tx struct {
	tx  *tx
	now time.Time
}

// Update runs fn in a write transaction stamped with time now and commits
// it if fn returns nil; otherwise it rolls back and returns fn's error. When
// Update returns nil the changes are durable.
func (l *Log) Update(ctx context.Context, now time.Time, fn func(*Tx) error) error {
	t, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin change log transaction: %w", err)
	}
	if err := fn(&Tx{tx: t, now: now}); err != nil {
		t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("cannot commit to change log %q: %w; check disk space and permissions", l.path, err)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func truncateError(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	// cut on a rune boundary
	i := maxErrorLen
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
