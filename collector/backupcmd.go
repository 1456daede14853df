package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
)

// runBackup is `collector backup [-data DIR] [-collector URL] BACKUPDIR`:
// a consistent copy of the TSDB (a snapshot the running collector takes
// through Prometheus' admin API) and of the change log (one SQLite read
// transaction), taken while the collector runs. See the README's
// "Backups" for the restore.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logFile := changeLogFileFlags(fs)
	collectorURL := fs.String("collector", envOr("TELLTALE_COLLECTOR", "http://127.0.0.1:9470"), "URL of the running collector, which takes the TSDB snapshot; a token with the admin scope comes from $TELLTALE_TOKEN")
	withTSDB := fs.Bool("tsdb", true, "also snapshot the samples (the TSDB) into <data>/snapshots; false copies the change log only")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: collector backup [-data DIR] [-collector URL] BACKUPDIR\n\n"+
			"Backs up a running collector into BACKUPDIR/<time>/: tsdb/ (a snapshot of every sample, taken by the\n"+
			"collector through POST /api/v1/admin/tsdb/snapshot) and changes-<time>.db (the change log: deploys,\n"+
			"switch flips, incidents, notes ..., one consistent SQLite read). Writers are not blocked.\n"+
			"Restore (README, \"Backups\"): stop the collector, copy tsdb/* into an empty -data directory and the\n"+
			"changes file to <data>/deploys.db, start the collector.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("collector backup takes one argument, the backup directory")
	}
	now := time.Now().UTC()
	dest := filepath.Join(fs.Arg(0), now.Format("20060102T150405Z"))
	if *withTSDB {
		blocks, err := snapshotTSDB(ctx, *collectorURL, fs.Lookup("data").Value.String(), filepath.Join(dest, "tsdb"))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "snapshot of the samples (%d blocks) in %s\n", blocks, filepath.Join(dest, "tsdb"))
	}
	path := logFile()
	res, err := changelog.Backup(ctx, path, dest, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %d changes (schema %d) from %s to %s\n", res.Changes, res.SchemaVersion, path, res.Path)
	return nil
}

// snapshotTSDB asks the collector at base for a snapshot (head included)
// and moves it from <dataDir>/snapshots/<name> to dest; it returns the
// number of blocks.
func snapshotTSDB(ctx context.Context, base, dataDir, dest string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/api/v1/admin/tsdb/snapshot", nil)
	if err != nil {
		return 0, fmt.Errorf("-collector=%q: %w", base, err)
	}
	if tok := os.Getenv("TELLTALE_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the collector for a snapshot: %w; is it running at -collector=%s? (-tsdb=false backs up the change log only)", err, base)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Status, Error string
		Data          struct{ Name string }
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &env) != nil || env.Data.Name == "" {
		return 0, fmt.Errorf("the collector refused the snapshot: %d %s (a token with the admin scope goes in $TELLTALE_TOKEN)", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	src := filepath.Join(dataDir, "snapshots", env.Data.Name)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return 0, fmt.Errorf("cannot create the backup directory: %w", err)
	}
	if err := os.Rename(src, dest); err != nil {
		// Another filesystem: copy, then drop the snapshot.
		if err := os.CopyFS(dest, os.DirFS(src)); err != nil {
			return 0, fmt.Errorf("cannot copy snapshot %s to %s: %w; is -data the collector's data directory?", src, dest, err)
		}
		_ = os.RemoveAll(src)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		return 0, err
	}
	blocks := 0
	for _, e := range entries {
		if e.IsDir() {
			blocks++
		}
	}
	return blocks, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
