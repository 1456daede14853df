package discovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// FileConfig is a file_sd_configs entry.
type FileConfig struct {
	// Files are paths or globs (in the last path element only, as in
	// Prometheus) of .json, .yml or .yaml files, each a list of
	// {targets: [...], labels: {...}}.
	Files []string `yaml:"files"`
	// RefreshInterval re-reads the files even without a change event.
	// Zero means 5m.
	RefreshInterval scrape.Duration `yaml:"refresh_interval"`
}

// File is file_sd_configs: it reads the files when they change (inotify on
// their directories) and every refresh interval. Every group gets
// __meta_filepath. A file that cannot be read or parsed keeps the targets
// it had.
type File struct {
	cfg     FileConfig
	opts    Options
	refresh *refreshState
	// per file: the sources it gave last
	last map[string]map[string]bool
}

// NewFile checks cfg: at least one file, each ending in .json, .yml or
// .yaml, globs only in the last element.
func NewFile(cfg FileConfig, opts Options) (*File, error) {
	if len(cfg.Files) == 0 {
		return nil, fmt.Errorf("file_sd_configs: files is empty: list the target files, e.g. files: [/etc/telltale-agent/targets/*.json]")
	}
	for _, f := range cfg.Files {
		switch strings.ToLower(filepath.Ext(f)) {
		case ".json", ".yml", ".yaml":
		default:
			return nil, fmt.Errorf("file_sd_configs: %q must end in .json, .yml or .yaml", f)
		}
		if strings.ContainsAny(filepath.Dir(f), "*?[") {
			return nil, fmt.Errorf("file_sd_configs: %q: only the file name may hold a glob, not the directory", f)
		}
		if _, err := filepath.Match(filepath.Base(f), ""); err != nil {
			return nil, fmt.Errorf("file_sd_configs: %q is not a valid glob: %w", f, err)
		}
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = scrape.Duration(5 * time.Minute)
	}
	opts = opts.withDefaults("file")
	return &File{cfg: cfg, opts: opts, refresh: newRefreshState(opts, "file"), last: map[string]map[string]bool{}}, nil
}

// Run reads the files at once, then on every change event and every
// refresh interval.
func (d *File) Run(ctx context.Context, update func([]scrape.Group)) {
	var dirs []string
	for _, f := range d.cfg.Files {
		if dir := filepath.Dir(f); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	changed, stop := watchDirs(ctx, dirs, d.opts.Logger)
	defer stop()
	t := time.NewTicker(time.Duration(d.cfg.RefreshInterval))
	defer t.Stop()
	for {
		d.read(update)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// read reads every matching file and reports what changed.
func (d *File) read(update func([]scrape.Group)) {
	var files []string
	for _, pat := range d.cfg.Files {
		m, _ := filepath.Glob(pat) // the pattern was checked
		files = append(files, m...)
	}
	slices.Sort(files)
	files = slices.Compact(files)
	var out []scrape.Group
	var errs []error
	now := map[string]map[string]bool{}
	for _, f := range files {
		gs, err := d.readFile(f)
		if err != nil {
			errs = append(errs, err)
			now[f] = d.last[f] // keep what it had
			continue
		}
		srcs := map[string]bool{}
		for _, g := range gs {
			srcs[g.Source] = true
		}
		out = append(out, gs...)
		out = append(out, removed(d.last[f], gs)...)
		now[f] = srcs
	}
	for f, srcs := range d.last {
		if _, ok := now[f]; !ok { // the file is gone
			out = append(out, removed(srcs, nil)...)
		}
	}
	d.last = now
	var err error
	if len(errs) > 0 {
		err = errs[0]
	}
	d.refresh.result(err)
	if len(out) > 0 {
		update(out)
	}
}

func (d *File) readFile(path string) ([]scrape.Group, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxResponseBytes {
		return nil, fmt.Errorf("file_sd %s: larger than %d bytes: split it", path, maxResponseBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ext := strings.ToLower(filepath.Ext(path))
	gs, err := parseGroups(data, ext != ".json", path, "__meta_filepath", path)
	if err != nil {
		return nil, fmt.Errorf("file_sd %s: %w", path, err)
	}
	return gs, nil
}
