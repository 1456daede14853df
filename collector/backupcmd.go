package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
)

// runBackup is `collector backup [-data DIR | -deploy.db FILE] BACKUPDIR`:
// a consistent copy of the change log, taken while the collector runs
// (see changelog.Backup and the README's "Backups" for the restore).
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logFile := changeLogFileFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: collector backup [-data DIR | -deploy.db FILE] BACKUPDIR\n\n"+
			"Copies the change log (deploys, switch flips, incidents, notes ...) into BACKUPDIR/changes-<time>.db\n"+
			"while the collector keeps running; the copy is consistent (one SQLite read transaction).\n"+
			"Restore: stop the collector, copy the file to -deploy.db (default <data>/deploys.db), delete\n"+
			"deploys.db-wal and deploys.db-shm next to it, start the collector.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("collector backup takes one argument, the backup directory")
	}
	path := logFile()
	res, err := changelog.Backup(ctx, path, fs.Arg(0), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %d changes (schema %d) from %s to %s\n", res.Changes, res.SchemaVersion, path, res.Path)
	return nil
}
