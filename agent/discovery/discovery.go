// Package discovery finds scrape targets the ways Prometheus does, with
// Prometheus' configuration keys and meta labels, and without its SDKs:
// file_sd_configs (files watched with inotify, re-read every
// refresh_interval), http_sd_configs, docker_sd_configs (the Engine API
// over its unix socket), consul_sd_configs (the catalog HTTP API with
// blocking queries) and kubernetes_sd_configs for the pod and endpoints
// roles (the API server's REST list and watch with a service account
// token, no client-go).
//
// A Discoverer's Run calls its update function with scrape.Groups whenever
// what it knows changes: each group replaces the group of the same Source,
// a group without targets removes it (scrape.Scraper.Sync takes them as
// they are). A mechanism that cannot refresh keeps its last targets, logs
// the error once until it recovers and counts it in
// telltale_agent_sd_refresh_failures_total{mechanism}.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// Discoverer finds targets until ctx ends.
type Discoverer interface {
	// Run reports groups with update until ctx is done, then returns.
	// update is called from Run's goroutine only.
	Run(ctx context.Context, update func([]scrape.Group))
}

// Options are what every mechanism needs besides its config.
type Options struct {
	Logger *slog.Logger
	// Metrics receives sd_refresh_failures_total; nil means none are kept.
	Metrics *metrics.Set
	// UserAgent of the HTTP requests. Zero means "telltale-agent/dev".
	UserAgent string
}

func (o Options) withDefaults(mechanism string) Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "discovery", "mechanism", mechanism)
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.UserAgent == "" {
		o.UserAgent = "telltale-agent/dev"
	}
	return o
}

// refreshState logs a refresh failure once until a refresh works again and
// counts every failure. It is safe for concurrent use (the watchers of one
// mechanism share it).
type refreshState struct {
	opts     Options
	failures *metrics.Counter
	mu       sync.Mutex
	failing  bool
}

func newRefreshState(opts Options, mechanism string) *refreshState {
	return &refreshState{opts: opts,
		failures: opts.Metrics.GetOrCreateCounter(`telltale_agent_sd_refresh_failures_total{mechanism="` + mechanism + `"}`)}
}

func (r *refreshState) result(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failures.Inc()
		if !r.failing {
			r.opts.Logger.Warn("service discovery refresh failed; keeping the last targets", "err", err)
		}
	} else if r.failing {
		r.opts.Logger.Info("service discovery refresh works again")
	}
	r.failing = err != nil
}

// staticGroup is the JSON and YAML shape of a target group in files and
// HTTP SD responses: {"targets": [...], "labels": {...}}.
type staticGroup struct {
	Targets []string          `json:"targets" yaml:"targets"`
	Labels  map[string]string `json:"labels" yaml:"labels"`
}

// parseGroups reads a JSON (or, with yamlFormat, YAML) list of target
// groups, checks the label names and values, and returns them with Source
// set to prefix:<index> and the extra label set on each.
func parseGroups(data []byte, yamlFormat bool, prefix, extraName, extraValue string) ([]scrape.Group, error) {
	var gs []*staticGroup
	if yamlFormat {
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&gs); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	} else if err := json.Unmarshal(data, &gs); err != nil {
		return nil, err
	}
	out := make([]scrape.Group, 0, len(gs))
	for i, g := range gs {
		if g == nil {
			return nil, errors.New("nil target group item found")
		}
		for n, v := range g.Labels {
			if err := checkLabel(n, v); err != nil {
				return nil, fmt.Errorf("group %d: %w", i, err)
			}
		}
		sg := scrape.Group{Source: fmt.Sprintf("%s:%d", prefix, i), Labels: map[string]string{}}
		for n, v := range g.Labels {
			sg.Labels[n] = v
		}
		sg.Labels[extraName] = extraValue
		for _, t := range g.Targets {
			if !utf8.ValidString(t) {
				return nil, fmt.Errorf("group %d: target %q is not valid UTF-8", i, t)
			}
			sg.Targets = append(sg.Targets, map[string]string{"__address__": t})
		}
		out = append(out, sg)
	}
	return out, nil
}

// checkLabel checks a label as Prometheus 3 does: a non-empty UTF-8 name
// and a UTF-8 value.
func checkLabel(name, value string) error {
	if name == "" || !utf8.ValidString(name) {
		return fmt.Errorf("%q is not a valid label name", name)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("label %s: %q is not a valid label value", name, value)
	}
	return nil
}

// removed returns empty groups for the sources of before that now lacks:
// what tells the scraper to drop them.
func removed(before map[string]bool, now []scrape.Group) []scrape.Group {
	seen := map[string]bool{}
	for _, g := range now {
		seen[g.Source] = true
	}
	var out []scrape.Group
	for src := range before {
		if !seen[src] {
			out = append(out, scrape.Group{Source: src})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// sanitize turns a name into a label name fragment as Prometheus'
// strutil.SanitizeLabelName does: every character outside [a-zA-Z0-9_]
// becomes "_".
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// httpGet GETs url with client and decodes a 200 JSON answer into v. It
// returns the response headers.
func httpGet(ctx context.Context, client *http.Client, url string, header http.Header, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := make([]byte, 512)
		n, _ := resp.Body.Read(msg)
		return resp.Header, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg[:n])))
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, maxResponseBytes))
	if err := dec.Decode(v); err != nil {
		return resp.Header, fmt.Errorf("GET %s: cannot decode the answer: %w", url, err)
	}
	return resp.Header, nil
}

// maxResponseBytes bounds one discovery answer.
const maxResponseBytes = 64 << 20
