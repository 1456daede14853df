package discovery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/retry"
)

// HTTPConfig is an http_sd_configs entry.
type HTTPConfig struct {
	// URL answers GET with a JSON list of {targets: [...], labels: {...}}.
	URL string `yaml:"url"`
	// RefreshInterval is how often it is asked. Zero means 60s.
	RefreshInterval scrape.Duration `yaml:"refresh_interval"`
}

// HTTP is http_sd_configs as Prometheus documents it: a GET every refresh
// interval with X-Prometheus-Refresh-Interval-Seconds, a 200 answer with
// Content-Type application/json, groups that get __meta_url. A failed
// refresh keeps the last targets.
type HTTP struct {
	cfg     HTTPConfig
	opts    Options
	client  *http.Client
	refresh *refreshState
	last    map[string]bool
}

var jsonContentType = regexp.MustCompile(`^(?i:application\/json(;\s*charset=("utf-8"|utf-8))?)$`)

// NewHTTP checks cfg. client nil means Go's default transport with a 30s
// timeout.
func NewHTTP(cfg HTTPConfig, client *http.Client, opts Options) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http_sd_configs: url %q is not an absolute http:// or https:// URL", cfg.URL)
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = scrape.Duration(60 * time.Second)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	opts = opts.withDefaults("http")
	return &HTTP{cfg: cfg, opts: opts, client: client, refresh: newRefreshState(opts, "http")}, nil
}

// Run asks at once and then every refresh interval.
func (d *HTTP) Run(ctx context.Context, update func([]scrape.Group)) {
	for {
		gs, err := d.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		d.refresh.result(err)
		if err == nil {
			srcs := map[string]bool{}
			for _, g := range gs {
				srcs[g.Source] = true
			}
			update(append(gs, removed(d.last, gs)...))
			d.last = srcs
		}
		if retry.Sleep(ctx, time.Duration(d.cfg.RefreshInterval)) != nil {
			return
		}
	}
}

func (d *HTTP) fetch(ctx context.Context) ([]scrape.Group, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.cfg.URL, http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", d.opts.UserAgent)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Prometheus-Refresh-Interval-Seconds", strconv.FormatFloat(time.Duration(d.cfg.RefreshInterval).Seconds(), 'f', -1, 64))
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http_sd %s: %w", d.cfg.URL, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http_sd %s: server returned HTTP status %s", d.cfg.URL, resp.Status)
	}
	if ct := strings.TrimSpace(resp.Header.Get("Content-Type")); !jsonContentType.MatchString(ct) {
		return nil, fmt.Errorf("http_sd %s: unsupported content type %q: the answer must be application/json", d.cfg.URL, ct)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("http_sd %s: %w", d.cfg.URL, err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("http_sd %s: answer larger than %d bytes", d.cfg.URL, maxResponseBytes)
	}
	gs, err := parseGroups(data, false, d.cfg.URL, "__meta_url", d.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("http_sd %s: %w", d.cfg.URL, err)
	}
	return gs, nil
}
