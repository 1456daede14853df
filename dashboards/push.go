package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/dashboards/board"
	"github.com/telltale-dev/telltale/dashboards/provision"
	"github.com/telltale-dev/telltale/grafana"
	"github.com/telltale-dev/telltale/secret"
)

// TokenEnv holds the Grafana token when -grafana.token-file is not set.
const tokenEnv = "GRAFANA_TOKEN"

// grafanaAPI is what push needs from Grafana.
type grafanaAPI interface {
	EnsureFolder(ctx context.Context, uid, title string) (grafana.Folder, bool, error)
	SaveDashboard(ctx context.Context, d grafana.Dashboard) (grafana.Saved, error)
}

func runPush(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		rf        renderFlags
		url       = fs.String("grafana.url", "", "Grafana base URL, e.g. http://localhost:3000 (required)")
		tokenFile = fs.String("grafana.token-file", "", "file with a Grafana service account token (Editor role); default: the "+tokenEnv+" environment variable")
		overwrite = fs.Bool("overwrite", true, "replace the dashboards whatever Grafana holds (edits made in Grafana's UI are lost: the code is the source of truth); -overwrite=false only creates missing dashboards and fails on existing ones")
		timeout   = fs.Duration("timeout", 30*time.Second, "limit of each Grafana API call")
		message   = fs.String("message", "pushed by go run ./dashboards push", "message recorded in each dashboard's version history")
	)
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dashboards push -grafana.url URL [flags]\n\nCreates the %q folder (uid %q) if missing and upserts every dashboard by its stable uid.\n\nFlags:\n",
			provision.FolderTitle, provision.FolderUID)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; all settings are flags, see -h", fs.Arg(0))
	}
	if *url == "" {
		return errors.New("-grafana.url is required: set it like -grafana.url http://localhost:3000")
	}
	token, err := readToken(*tokenFile)
	if err != nil {
		return err
	}
	api, err := grafana.New(*url, token, grafana.WithTimeout(*timeout))
	if err != nil {
		return fmt.Errorf("-grafana.url: %w", err)
	}
	boards, err := rf.boards()
	if err != nil {
		return err
	}
	return push(ctx, api, boards, *overwrite, *message, *url, stderr)
}

// readToken reads the token from file, or from $GRAFANA_TOKEN without one.
func readToken(file string) (string, error) {
	tok, err := secret.FileOrEnv(file, tokenEnv, "-grafana.token-file", "a service account token with the Editor role")
	if err == nil && tok == "" {
		err = fmt.Errorf("no Grafana token: set -grafana.token-file or %s to a service account token with the Editor role (Grafana: Administration > Users and access > Service accounts)", tokenEnv)
	}
	return tok, err
}

// push creates the folder if needed and upserts every board into it.
func push(ctx context.Context, api grafanaAPI, boards []board.Board, overwrite bool, message, grafanaURL string, stderr io.Writer) error {
	folder, created, err := api.EnsureFolder(ctx, provision.FolderUID, provision.FolderTitle)
	if err != nil {
		return pushError("folder "+provision.FolderUID, err)
	}
	if created {
		fmt.Fprintf(stderr, "dashboards: created folder %q (uid %s)\n", folder.Title, folder.UID)
	}
	for _, b := range boards {
		j, err := b.JSON()
		if err != nil {
			return err
		}
		s, err := api.SaveDashboard(ctx, grafana.Dashboard{JSON: j, FolderUID: folder.UID, Overwrite: overwrite, Message: message})
		if err != nil {
			return pushError("dashboard "+b.UID, err)
		}
		fmt.Fprintf(stderr, "dashboards: %s version %d at %s%s\n", b.UID, s.Version, strings.TrimRight(grafanaURL, "/"), s.URL)
	}
	return nil
}

// pushError adds what to do with this command's flags.
func pushError(what string, err error) error {
	switch {
	case errors.Is(err, grafana.ErrVersionConflict):
		return fmt.Errorf("%s: %w; rerun with -overwrite to replace it with the code's version (copy edits made in Grafana into dashboards/board first to keep them)", what, err)
	case errors.Is(err, grafana.ErrUnauthorized):
		return fmt.Errorf("%s: %w, and pass it with -grafana.token-file or %s", what, err, tokenEnv)
	}
	return fmt.Errorf("%s: %w", what, err)
}
