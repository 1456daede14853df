package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/telltale-dev/telltale/dashboards/board"
	"github.com/telltale-dev/telltale/dashboards/provision"
)

// defaultOut is generate's -out: the dashboards folder seen from the
// repository root.
const defaultOut = "dashboards"

// renderFlags are the flags that change the rendered files; generate and
// push share them.
type renderFlags struct {
	collectorURL   string
	datasourceURL  string
	dashboardsPath string
}

func (r *renderFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.collectorURL, "collector.public-url", board.DefaultCollectorURL, "the collector as viewers' browsers reach it: the default of each dashboard's collector_url variable, used by links to the deploy log and console")
	fs.StringVar(&r.datasourceURL, "datasource.url", provision.DefaultDatasourceURL, "the collector as Grafana's server reaches it: the URL of the provisioned Telltale data source")
	fs.StringVar(&r.dashboardsPath, "dashboards.path", provision.DefaultDashboardsPath, "where the JSON folder is mounted inside Grafana's container (the file provider's path)")
}

// boards builds the dashboards with the flags.
func (r *renderFlags) boards() ([]board.Board, error) {
	bs, err := board.All(board.Options{CollectorURL: r.collectorURL})
	if err != nil {
		return nil, fmt.Errorf("-collector.public-url: %w", err)
	}
	return bs, nil
}

// files renders every generated file.
func (r *renderFlags) files() (map[string][]byte, error) {
	bs, err := r.boards()
	if err != nil {
		return nil, err
	}
	files, err := provision.Files(bs, provision.Options{DatasourceURL: r.datasourceURL, DashboardsPath: r.dashboardsPath})
	if err != nil {
		return nil, fmt.Errorf("-datasource.url or -dashboards.path: %w", err)
	}
	return files, nil
}

func runGenerate(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		rf    renderFlags
		out   = fs.String("out", defaultOut, "folder to write json/ and provisioning/ into; the default is right when run from the repository root")
		check = fs.Bool("check", false, "write nothing; fail if a file in -out differs from what would be generated")
	)
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dashboards generate [flags]\n\nWrites %s/<uid>.json, %s and %s under -out.\n\nFlags:\n",
			provision.JSONDir, provision.DatasourceFile, provision.ProviderFile)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; all settings are flags, see -h", fs.Arg(0))
	}
	if *out == defaultOut {
		if _, err := os.Stat(filepath.Join(defaultOut, "board")); err != nil {
			return fmt.Errorf("-out=%s: no dashboards/board folder here: run from the repository root or pass -out", defaultOut)
		}
	}
	files, err := rf.files()
	if err != nil {
		return err
	}
	if *check {
		stale, err := staleFiles(*out, files)
		if err != nil {
			return err
		}
		if len(stale) > 0 {
			return fmt.Errorf("generated files in %s are stale (%s): run go run ./dashboards generate", *out, strings.Join(stale, ", "))
		}
		fmt.Fprintf(stderr, "dashboards: %d files in %s are up to date\n", len(files), *out)
		return nil
	}
	changed, err := provision.Write(*out, files)
	if err != nil {
		return err
	}
	for _, name := range changed {
		fmt.Fprintf(stderr, "dashboards: wrote %s\n", filepath.Join(*out, name))
	}
	fmt.Fprintf(stderr, "dashboards: %d files in %s, %d changed\n", len(files), *out, len(changed))
	return nil
}

// staleFiles lists the files under dir that differ from files, are missing,
// or are dashboard JSON that would not be generated.
func staleFiles(dir string, files map[string][]byte) ([]string, error) {
	var stale []string
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("cannot read %s: %w", name, err)
		}
		if err != nil || !bytes.Equal(got, want) {
			stale = append(stale, name)
		}
	}
	extra, err := filepath.Glob(filepath.Join(dir, provision.JSONDir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range extra {
		name := provision.JSONDir + "/" + filepath.Base(p)
		if _, ok := files[name]; !ok {
			stale = append(stale, name+" (not generated any more)")
		}
	}
	slices.Sort(stale)
	return stale, nil
}
