package changelog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BackupResult says what Backup wrote.
type BackupResult struct {
	// Path is the backup file: a complete SQLite database, restorable by
	// copying it to the collector's -deploy.db path while the collector is
	// stopped (see the README's "Backups").
	Path string
	// Changes is the number of changes in it.
	Changes int64
	// SchemaVersion is the change log schema version of the copy.
	SchemaVersion int
}

// Backup copies the change log at dbPath into a new file in dir while
// collectors may keep writing to it: VACUUM INTO copies one read
// transaction's view, so the copy holds every change committed before it
// began and none half-written, and it never blocks writers (WAL mode). The
// file is named changes-<UTC time>.db, synced to disk, then opened and
// checked (integrity_check, schema version) before Backup returns.
// It never creates or migrates the source database.
func Backup(ctx context.Context, dbPath, dir string, now time.Time) (BackupResult, error) {
	var res BackupResult
	if _, err := os.Stat(dbPath); err != nil {
		return res, fmt.Errorf("cannot back up change log %q: %w; point -deploy.db (or -data) at the collector's database", dbPath, err)
	}
	if strings.ContainsAny(dbPath, "?#") {
		return res, fmt.Errorf("change log path %q contains '?' or '#': choose a path without them", dbPath)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("cannot create backup directory %q: %w", dir, err)
	}
	res.Path = filepath.Join(dir, "changes-"+now.UTC().Format("20060102T150405.000Z")+".db")
	if _, err := os.Stat(res.Path); !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("backup file %q already exists: back up into an empty directory or wait a millisecond", res.Path)
	}
	src, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return res, fmt.Errorf("cannot open change log %q: %w", dbPath, err)
	}
	defer src.Close()
	if _, err := schemaVersion(ctx, src); err != nil {
		return res, fmt.Errorf("%q is not a change log: %w", dbPath, err)
	}
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, res.Path); err != nil {
		os.Remove(res.Path)
		return res, fmt.Errorf("cannot copy change log %q to %q: %w; check free space in the backup directory", dbPath, res.Path, err)
	}
	if err := syncFile(res.Path); err != nil {
		return res, err
	}
	if err := syncFile(dir); err != nil {
		return res, err
	}
	dst, err := sql.Open("sqlite", res.Path)
	if err != nil {
		return res, fmt.Errorf("cannot open backup %q: %w", res.Path, err)
	}
	defer dst.Close()
	var check string
	if err := dst.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		return res, fmt.Errorf("backup %q failed its integrity check (%q, %v): keep the previous backup and retry", res.Path, check, err)
	}
	if res.SchemaVersion, err = schemaVersion(ctx, dst); err != nil {
		return res, fmt.Errorf("backup %q: %w", res.Path, err)
	}
	table := "changes"
	if res.SchemaVersion < 3 {
		table = "deploys" // a log an older collector wrote: restorable, migrated on open
	}
	if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&res.Changes); err != nil {
		return res, fmt.Errorf("cannot count the changes in backup %q: %w", res.Path, err)
	}
	return res, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot sync %q: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot sync %q: %w", path, err)
	}
	return nil
}
