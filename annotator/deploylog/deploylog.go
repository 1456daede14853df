// Package deploylog is Telltale's durable deploy log: every deploy event the
// collector accepted, plus the transactional outbox of deliveries still owed
// for them (deploy series in storage, Grafana annotations, chat webhooks), in
// one embedded SQLite database (modernc.org/sqlite, pure Go) behind
// database/sql.
//
// Promises:
//   - Durability: when Update returns nil the transaction is on disk. The
//     database runs in WAL journal mode with synchronous=FULL, so a deploy the
//     API answered 201 for survives kill -9 and power loss.
//   - Transactional outbox: outbox entries are written by Tx.Enqueue inside the
//     same transaction as the deploy change that caused them. A recorded deploy
//     never misses its deliveries; a delivery never refers to a deploy that was
//     rolled back.
//   - Ordering: Due hands out an entry only when no older entry for the same
//     deploy and target is still pending, so a deploy's "finished" delivery
//     never overtakes its "recorded" one.
//   - Versioned schema: migrations (schema.go) are an ordered list applied once
//     each and recorded in schema_migrations; a database written by a newer
//     binary is refused instead of misread.
//
// Portability: the SQL sticks to what SQLite and PostgreSQL share so a
// PostgreSQL backend for several collectors can follow; schema.go lists what
// differs.
//
// Times are stored as int64 milliseconds since the Unix epoch (UTC) and come
// back as UTC time.Time values with millisecond precision.
//
// A Log is safe for concurrent use by multiple goroutines.
package deploylog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/telltale-dev/telltale/annotator/deployapi"
)

// ErrNotFound is returned when no deploy has the requested id.
var ErrNotFound = errors.New("deploy not found")

// Outbox entry states.
const (
	StatusPending   = deployapi.DeliveryPending
	StatusDelivered = deployapi.DeliveryDelivered
	StatusFailed    = deployapi.DeliveryFailed
)

// maxErrorLen bounds the last_error text stored per outbox entry, in bytes.
const maxErrorLen = 512

// Deploy is one deploy event as stored in the log; the log fills every
// field except Delivery.
type Deploy = deployapi.Deploy

// Delivery and TargetDelivery are the API's delivery state types.
type (
	Delivery       = deployapi.Delivery
	TargetDelivery = deployapi.TargetDelivery
)

// Log is an open deploy log. Create it with Open, release it with Close.
type Log struct {
	db   *sql.DB
	path string
}

// Open opens (creating if needed) the deploy log database at path and brings
// its schema up to date. Close it when done.
func Open(ctx context.Context, path string) (*Log, error) {
	if path == "" {
		return nil, errors.New("deploy log path is empty: set the deploy database path (e.g. -deploys.db=data/deploys.db)")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("deploy log path %q contains '?' or '#': choose a path without them", path)
	}
	// Every pragma is per connection, so put them in the DSN: the pool applies
	// them to each connection it opens. _txlock=immediate makes BEGIN take the
	// write lock at once, so two writers never deadlock upgrading read locks;
	// busy_timeout makes a second writer wait instead of failing.
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot open deploy log %q: %w", path, err)
	}
	l := &Log{db: db, path: path}
	if err := l.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot migrate deploy log %q: %w", path, err)
	}
	return l, nil
}

// check verifies the database is usable and the durability settings took.
func (l *Log) check(ctx context.Context) error {
	var mode string
	if err := l.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("cannot open deploy log %q: %w; check the file is a SQLite database and the directory is writable", l.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("deploy log %q: journal_mode is %q, want wal; the file system may not support WAL (network file systems do not): put the deploy log on a local disk", l.path, mode)
	}
	var sync int
	if err := l.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("cannot read synchronous setting of deploy log %q: %w", l.path, err)
	}
	if sync != 2 { // 2 = FULL
		return fmt.Errorf("BUG: deploy log %q has synchronous=%d, want 2 (FULL)", l.path, sync)
	}
	return nil
}

// Close closes the database. Call it after every user of the Log is done.
func (l *Log) Close() error {
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("cannot close deploy log %q: %w", l.path, err)
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
	tx  *sql.Tx
	now time.Time
}

// Update runs fn in a write transaction stamped with time now and commits
// it if fn returns nil; otherwise it rolls back and returns fn's error. When
// Update returns nil the changes are durable.
func (l *Log) Update(ctx context.Context, now time.Time, fn func(*Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin deploy log transaction: %w", err)
	}
	if err := fn(&Tx{tx: tx, now: now}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit to deploy log %q: %w; check disk space and permissions", l.path, err)
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
