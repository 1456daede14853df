package discovery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/retry"
)

// ConsulConfig is a consul_sd_configs entry.
type ConsulConfig struct {
	// Server is host:port of a Consul agent. Empty means localhost:8500.
	Server string `yaml:"server"`
	// Scheme is http (the default) or https.
	Scheme string `yaml:"scheme"`
	// PathPrefix goes before /v1 (Consul behind a reverse proxy).
	PathPrefix string `yaml:"path_prefix"`
	// Token is sent as X-Consul-Token.
	Token string `yaml:"token"`
	// Datacenter to ask; empty means the agent's own.
	Datacenter string `yaml:"datacenter"`
	// Namespace and Partition (Consul Enterprise).
	Namespace string `yaml:"namespace"`
	Partition string `yaml:"partition"`
	// Services to watch; empty means all.
	Services []string `yaml:"services"`
	// Tags a service instance must all have.
	Tags []string `yaml:"tags"`
	// NodeMeta a node must have.
	NodeMeta map[string]string `yaml:"node_meta"`
	// TagSeparator joins the tags in __meta_consul_tags. Empty means ",".
	TagSeparator string `yaml:"tag_separator"`
	// AllowStale lets any Consul server answer. Nil means true.
	AllowStale *bool `yaml:"allow_stale"`
	// RefreshInterval is the pause between two blocking queries. Zero
	// means 30s.
	RefreshInterval scrape.Duration `yaml:"refresh_interval"`
}

// Consul is consul_sd_configs: it watches the catalog's services and each
// watched service's healthy and unhealthy instances with Consul's blocking
// queries (?index=&wait=), one group per service (Source: the service
// name) with Prometheus' __meta_consul_* labels.
type Consul struct {
	cfg     ConsulConfig
	opts    Options
	client  *http.Client
	base    string
	refresh *refreshState
	// wait is the blocking query's wait; a variable for tests.
	wait time.Duration
}

// NewConsul checks cfg.
func NewConsul(cfg ConsulConfig, opts Options) (*Consul, error) {
	if cfg.Server == "" {
		cfg.Server = "localhost:8500"
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	if cfg.Scheme != "http" && cfg.Scheme != "https" {
		return nil, fmt.Errorf("consul_sd_configs: scheme %q: use http or https", cfg.Scheme)
	}
	if strings.Contains(cfg.Server, "/") {
		return nil, fmt.Errorf("consul_sd_configs: server %q must be host:port (the scheme goes in scheme:)", cfg.Server)
	}
	if cfg.TagSeparator == "" {
		cfg.TagSeparator = ","
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = scrape.Duration(30 * time.Second)
	}
	opts = opts.withDefaults("consul")
	return &Consul{cfg: cfg, opts: opts, client: &http.Client{}, refresh: newRefreshState(opts, "consul"),
		base: cfg.Scheme + "://" + cfg.Server + strings.TrimSuffix(cfg.PathPrefix, "/"), wait: 2 * time.Minute}, nil
}

// consulEntry is one element of /v1/health/service/<name>.
type consulEntry struct {
	Node struct {
		Node            string            `json:"Node"`
		Address         string            `json:"Address"`
		Meta            map[string]string `json:"Meta"`
		TaggedAddresses map[string]string `json:"TaggedAddresses"`
	} `json:"Node"`
	Service struct {
		ID        string            `json:"ID"`
		Service   string            `json:"Service"`
		Tags      []string          `json:"Tags"`
		Address   string            `json:"Address"`
		Port      int               `json:"Port"`
		Meta      map[string]string `json:"Meta"`
		Namespace string            `json:"Namespace"`
		Partition string            `json:"Partition"`
	} `json:"Service"`
	Checks []struct {
		CheckID string `json:"CheckID"`
		Status  string `json:"Status"`
	} `json:"Checks"`
}

// aggregatedStatus is Consul's api.HealthChecks.AggregatedStatus.
func (e *consulEntry) aggregatedStatus() string {
	var passing, warning, critical, maint bool
	for _, c := range e.Checks {
		if c.CheckID == "_node_maintenance" || strings.HasPrefix(c.CheckID, "_service_maintenance:") {
			maint = true
			continue
		}
		switch c.Status {
		case "passing":
			passing = true
		case "warning":
			warning = true
		case "critical":
			critical = true
		default:
			return ""
		}
	}
	switch {
	case maint:
		return "maintenance"
	case critical:
		return "critical"
	case warning:
		return "warning"
	case passing:
		return "passing"
	}
	return "passing"
}

// query GETs a Consul path with the common parameters and a blocking index;
// it returns the answer's X-Consul-Index.
func (d *Consul) query(ctx context.Context, path string, q url.Values, index uint64, v any) (uint64, error) {
	if q == nil {
		q = url.Values{}
	}
	if d.cfg.Datacenter != "" {
		q.Set("dc", d.cfg.Datacenter)
	}
	if d.cfg.Namespace != "" {
		q.Set("ns", d.cfg.Namespace)
	}
	if d.cfg.Partition != "" {
		q.Set("partition", d.cfg.Partition)
	}
	if d.cfg.AllowStale == nil || *d.cfg.AllowStale {
		q.Set("stale", "")
	}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", strconv.FormatInt(d.wait.Milliseconds(), 10)+"ms")
	}
	h := http.Header{"User-Agent": {d.opts.UserAgent}}
	if d.cfg.Token != "" {
		h.Set("X-Consul-Token", d.cfg.Token)
	}
	ctx, cancel := context.WithTimeout(ctx, d.wait+d.wait/16+10*time.Second)
	defer cancel()
	rh, err := httpGet(ctx, d.client, d.base+path+"?"+q.Encode(), h, v)
	if err != nil {
		return 0, fmt.Errorf("consul_sd %s: %w", d.cfg.Server, err)
	}
	idx, _ := strconv.ParseUint(rh.Get("X-Consul-Index"), 10, 64)
	return idx, nil
}

// datacenter returns the configured datacenter or asks the agent for its
// own (GET /v1/agent/self).
func (d *Consul) datacenter(ctx context.Context) (string, error) {
	if d.cfg.Datacenter != "" {
		return d.cfg.Datacenter, nil
	}
	var self struct {
		Config struct {
			Datacenter string `json:"Datacenter"`
		} `json:"Config"`
	}
	if _, err := d.query(ctx, "/v1/agent/self", nil, 0, &self); err != nil {
		return "", err
	}
	if self.Config.Datacenter == "" {
		return "", fmt.Errorf("consul_sd %s: /v1/agent/self names no datacenter: set datacenter:", d.cfg.Server)
	}
	return self.Config.Datacenter, nil
}

// Run watches until ctx ends. Group updates from the per-service watchers
// reach update through Run's goroutine.
func (d *Consul) Run(ctx context.Context, update func([]scrape.Group)) {
	var dc string
	for {
		var err error
		if dc, err = d.datacenter(ctx); err == nil {
			break
		}
		d.refresh.result(err)
		if retry.Sleep(ctx, time.Duration(d.cfg.RefreshInterval)) != nil {
			return
		}
	}
	groups := make(chan scrape.Group)
	var wg sync.WaitGroup
	defer wg.Wait()
	watching := map[string]context.CancelFunc{}
	start := func(name string) {
		wctx, cancel := context.WithCancel(ctx)
		watching[name] = cancel
		wg.Go(func() { d.watchService(wctx, dc, name, groups) })
	}
	var services chan []string
	if len(d.cfg.Services) > 0 && len(d.cfg.Tags) == 0 && len(d.cfg.NodeMeta) == 0 {
		// A fixed list: watch each service directly.
		for _, name := range d.cfg.Services {
			start(name)
		}
	} else {
		services = make(chan []string)
		wg.Go(func() { d.watchCatalog(ctx, services) })
	}
	for {
		select {
		case <-ctx.Done():
			for _, c := range watching {
				c()
			}
			return
		case g := <-groups:
			update([]scrape.Group{g})
		case names := <-services:
			var gone []scrape.Group
			for name, cancel := range watching {
				if !slices.Contains(names, name) {
					cancel()
					delete(watching, name)
					gone = append(gone, scrape.Group{Source: name})
				}
			}
			for _, name := range names {
				if _, ok := watching[name]; !ok {
					start(name)
				}
			}
			if len(gone) > 0 {
				sort.Slice(gone, func(i, j int) bool { return gone[i].Source < gone[j].Source })
				update(gone)
			}
		}
	}
}

// watchCatalog sends the names of the services to watch whenever the
// catalog changes.
func (d *Consul) watchCatalog(ctx context.Context, out chan<- []string) {
	var index uint64
	for ctx.Err() == nil {
		q := url.Values{}
		for k, v := range d.cfg.NodeMeta {
			q.Add("node-meta", k+":"+v)
		}
		var srvs map[string][]string
		idx, err := d.query(ctx, "/v1/catalog/services", q, index, &srvs)
		if ctx.Err() != nil {
			return
		}
		d.refresh.result(err)
		if err == nil && idx != index {
			index = idx
			var names []string
			for name, tags := range srvs {
				if d.wanted(name, tags) {
					names = append(names, name)
				}
			}
			sort.Strings(names)
			select {
			case out <- names:
			case <-ctx.Done():
				return
			}
		}
		if retry.Sleep(ctx, time.Duration(d.cfg.RefreshInterval)) != nil {
			return
		}
	}
}

// wanted is Prometheus' shouldWatch: the name is listed (or none are) and
// the service has every configured tag.
func (d *Consul) wanted(name string, tags []string) bool {
	if len(d.cfg.Services) > 0 && !slices.Contains(d.cfg.Services, name) {
		return false
	}
	for _, t := range d.cfg.Tags {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

// watchService sends the instances of one service whenever they change.
func (d *Consul) watchService(ctx context.Context, dc, name string, out chan<- scrape.Group) {
	var index uint64
	for ctx.Err() == nil {
		q := url.Values{}
		for _, t := range d.cfg.Tags {
			q.Add("tag", t)
		}
		for k, v := range d.cfg.NodeMeta {
			q.Add("node-meta", k+":"+v)
		}
		var entries []consulEntry
		idx, err := d.query(ctx, "/v1/health/service/"+url.PathEscape(name), q, index, &entries)
		if ctx.Err() != nil {
			return
		}
		d.refresh.result(err)
		if err == nil && idx != index {
			index = idx
			select {
			case out <- d.group(dc, name, entries):
			case <-ctx.Done():
				return
			}
		}
		if retry.Sleep(ctx, time.Duration(d.cfg.RefreshInterval)) != nil {
			return
		}
	}
}

// group makes a service's group with Prometheus' labels.
func (d *Consul) group(dc, name string, entries []consulEntry) scrape.Group {
	g := scrape.Group{Source: name, Labels: map[string]string{"__meta_consul_service": name, "__meta_consul_dc": dc}}
	sep := d.cfg.TagSeparator
	for i := range entries {
		e := &entries[i]
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		port := strconv.Itoa(e.Service.Port)
		ls := map[string]string{
			"__address__":                   net.JoinHostPort(addr, port),
			"__meta_consul_address":         e.Node.Address,
			"__meta_consul_node":            e.Node.Node,
			"__meta_consul_namespace":       e.Service.Namespace,
			"__meta_consul_partition":       e.Service.Partition,
			"__meta_consul_tags":            sep + strings.Join(e.Service.Tags, sep) + sep,
			"__meta_consul_service_address": e.Service.Address,
			"__meta_consul_service_port":    port,
			"__meta_consul_service_id":      e.Service.ID,
			"__meta_consul_health":          e.aggregatedStatus(),
		}
		for k, v := range e.Node.Meta {
			ls["__meta_consul_metadata_"+sanitize(k)] = v
		}
		for k, v := range e.Service.Meta {
			ls["__meta_consul_service_metadata_"+sanitize(k)] = v
		}
		for k, v := range e.Node.TaggedAddresses {
			ls["__meta_consul_tagged_address_"+sanitize(k)] = v
		}
		g.Targets = append(g.Targets, ls)
	}
	return g
}
