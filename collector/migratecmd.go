package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/telltale-dev/telltale/annotator/changelog"
)

// changeLogPath is where the change log lives: PostgreSQL with
// -changes.postgres-url, else the SQLite file -deploy.db.
func (a *app) changeLogPath() string {
	if a.cfg.changesPG != "" {
		return a.cfg.changesPG
	}
	return a.cfg.deployDB
}

// changeLogFlag names the flag that says where the change log is.
func (a *app) changeLogFlag() string {
	if a.cfg.changesPG != "" {
		return "-changes.postgres-url"
	}
	return "-deploy.db=" + a.cfg.deployDB
}

// changeLogFileFlags declares -data and -deploy.db on fs, as the
// collector has them, and returns the change log file they name.
func changeLogFileFlags(fs *flag.FlagSet) func() string {
	dataDir := fs.String("data", "./telltale-data", "the collector's -data directory; the change log is <data>/deploys.db")
	db := fs.String("deploy.db", "", "the collector's -deploy.db, when it is set; overrides -data")
	return func() string {
		if *db != "" {
			return *db
		}
		return strings.TrimRight(*dataDir, "/") + "/deploys.db"
	}
}

// runMigrateChanges copies a collector's SQLite change log into the
// PostgreSQL database its replicas will share.
func runMigrateChanges(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector migrate-changes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logFile := changeLogFileFlags(fs)
	to := fs.String("changes.postgres-url", "", "the PostgreSQL database to copy into (postgres://user:password@host:5432/db); it must hold no change yet")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: collector migrate-changes [-data DIR | -deploy.db FILE] -changes.postgres-url URL\n\n"+
			"Copies the change log (every change, its delivery states and pending deliveries) from the collector's\n"+
			"SQLite file into PostgreSQL, for collector replicas started with -changes.postgres-url. Stop the\n"+
			"collector first; start the replicas after the copy.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *to == "" {
		fs.Usage()
		return errors.New("collector migrate-changes needs -changes.postgres-url and no arguments")
	}
	path := logFile()
	src, err := changelog.OpenLog(ctx, path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := changelog.OpenLog(ctx, *to)
	if err != nil {
		return err
	}
	defer dst.Close()
	n, err := changelog.CopyLog(ctx, dst, src)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %d changes and %d outbox entries from %s into PostgreSQL\n", n["changes"], n["outbox"], path)
	return nil
}
