package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/retry"
)

// DockerConfig is a docker_sd_configs entry.
type DockerConfig struct {
	// Host is the Docker daemon: unix:///var/run/docker.sock (the default),
	// or tcp:// / http:// host:port.
	Host string `yaml:"host"`
	// Port is used for containers that publish no TCP port. Zero means 80.
	Port int `yaml:"port"`
	// HostNetworkingHost is the address of containers in host networking
	// mode. Empty means "localhost".
	HostNetworkingHost string `yaml:"host_networking_host"`
	// Filters are the Engine API's container list filters, e.g.
	// [{name: label, values: [prometheus.io/scrape=true]}].
	Filters []DockerFilter `yaml:"filters"`
	// MatchFirstNetwork keeps only the first network (by name) of a
	// container on several. Nil means true.
	MatchFirstNetwork *bool `yaml:"match_first_network"`
	// RefreshInterval is how often the daemon is asked. Zero means 60s.
	RefreshInterval scrape.Duration `yaml:"refresh_interval"`
}

// DockerFilter is one container list filter.
type DockerFilter struct {
	Name   string   `yaml:"name"`
	Values []string `yaml:"values"`
}

// Docker is docker_sd_configs: every refresh interval it lists the
// containers (GET /containers/json) and networks (GET /networks) of the
// Engine API and makes one target per container, network and published TCP
// port, with Prometheus' __meta_docker_* labels, in one group "Docker".
type Docker struct {
	cfg     DockerConfig
	opts    Options
	client  *http.Client
	base    string // http://host or http://docker (unix socket)
	filters string // JSON for ?filters=
	refresh *refreshState
	had     bool
}

// NewDocker checks cfg.
func NewDocker(cfg DockerConfig, opts Options) (*Docker, error) {
	if cfg.Host == "" {
		cfg.Host = "unix:///var/run/docker.sock"
	}
	if cfg.Port == 0 {
		cfg.Port = 80
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("docker_sd_configs: port %d is not a TCP port", cfg.Port)
	}
	if cfg.HostNetworkingHost == "" {
		cfg.HostNetworkingHost = "localhost"
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = scrape.Duration(60 * time.Second)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("docker_sd_configs: host %q: %w", cfg.Host, err)
	}
	d := &Docker{cfg: cfg}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	switch u.Scheme {
	case "unix":
		sock := u.Path
		if sock == "" {
			return nil, fmt.Errorf("docker_sd_configs: host %q names no socket: write unix:///var/run/docker.sock", cfg.Host)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		}
		d.base = "http://docker"
	case "tcp", "http":
		d.base = "http://" + u.Host
	case "https":
		d.base = "https://" + u.Host
	default:
		return nil, fmt.Errorf("docker_sd_configs: host %q: use unix:///path/to/docker.sock, tcp://host:port or http(s)://host:port", cfg.Host)
	}
	d.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if len(cfg.Filters) > 0 {
		f := map[string][]string{}
		for _, x := range cfg.Filters {
			if x.Name == "" {
				return nil, fmt.Errorf("docker_sd_configs: a filter has no name: write {name: label, values: [key=value]}")
			}
			f[x.Name] = append(f[x.Name], x.Values...)
		}
		b, _ := json.Marshal(f)
		d.filters = string(b)
	}
	d.opts = opts.withDefaults("docker")
	d.refresh = newRefreshState(d.opts, "docker")
	return d, nil
}

// The Engine API's answers, the fields used.
type (
	dockerContainer struct {
		ID         string            `json:"Id"`
		Names      []string          `json:"Names"`
		Image      string            `json:"Image"`
		ImageID    string            `json:"ImageID"`
		Labels     map[string]string `json:"Labels"`
		Ports      []dockerPort      `json:"Ports"`
		HostConfig struct {
			NetworkMode string `json:"NetworkMode"`
		} `json:"HostConfig"`
		NetworkSettings struct {
			Networks map[string]*dockerEndpoint `json:"Networks"`
		} `json:"NetworkSettings"`
	}
	dockerPort struct {
		IP          string `json:"IP"`
		PrivatePort uint16 `json:"PrivatePort"`
		PublicPort  uint16 `json:"PublicPort"`
		Type        string `json:"Type"`
	}
	dockerEndpoint struct {
		NetworkID         string `json:"NetworkID"`
		IPAddress         string `json:"IPAddress"`
		GlobalIPv6Address string `json:"GlobalIPv6Address"`
	}
	dockerNetwork struct {
		ID       string            `json:"Id"`
		Name     string            `json:"Name"`
		Scope    string            `json:"Scope"`
		Internal bool              `json:"Internal"`
		Ingress  bool              `json:"Ingress"`
		Labels   map[string]string `json:"Labels"`
	}
)

// Run asks at once and then every refresh interval.
func (d *Docker) Run(ctx context.Context, update func([]scrape.Group)) {
	for {
		g, err := d.targets(ctx)
		if ctx.Err() != nil {
			return
		}
		d.refresh.result(err)
		if err == nil && (len(g.Targets) > 0 || d.had) {
			update([]scrape.Group{g})
			d.had = len(g.Targets) > 0
		}
		if retry.Sleep(ctx, time.Duration(d.cfg.RefreshInterval)) != nil {
			return
		}
	}
}

func (d *Docker) targets(ctx context.Context) (scrape.Group, error) {
	g := scrape.Group{Source: "Docker"}
	u := d.base + "/containers/json"
	if d.filters != "" {
		u += "?filters=" + url.QueryEscape(d.filters)
	}
	h := http.Header{"User-Agent": {d.opts.UserAgent}}
	var containers []dockerContainer
	if _, err := httpGet(ctx, d.client, u, h, &containers); err != nil {
		return g, fmt.Errorf("docker_sd %s: cannot list containers: %w", d.cfg.Host, err)
	}
	var networks []dockerNetwork
	if _, err := httpGet(ctx, d.client, d.base+"/networks", h, &networks); err != nil {
		return g, fmt.Errorf("docker_sd %s: cannot list networks: %w", d.cfg.Host, err)
	}
	netLabels := map[string]map[string]string{}
	for _, n := range networks {
		ls := map[string]string{
			"__meta_docker_network_id": n.ID, "__meta_docker_network_name": n.Name, "__meta_docker_network_scope": n.Scope,
			"__meta_docker_network_internal": strconv.FormatBool(n.Internal), "__meta_docker_network_ingress": strconv.FormatBool(n.Ingress),
		}
		for k, v := range n.Labels {
			ls["__meta_docker_network_label_"+sanitize(k)] = v
		}
		netLabels[n.ID] = ls
	}
	byID := map[string]*dockerContainer{}
	for i := range containers {
		byID[containers[i].ID] = &containers[i]
	}
	for i := range containers {
		c := &containers[i]
		if len(c.Names) == 0 {
			continue
		}
		common := map[string]string{
			"__meta_docker_container_id": c.ID, "__meta_docker_container_name": c.Names[0],
			"__meta_docker_container_network_mode": c.HostConfig.NetworkMode,
		}
		if c.Image != "" {
			common["__meta_docker_container_image"] = c.Image
		}
		if c.ImageID != "" {
			common["__meta_docker_container_image_id"] = c.ImageID
		}
		for k, v := range c.Labels {
			common["__meta_docker_container_label_"+sanitize(k)] = v
		}
		networks := c.NetworkSettings.Networks
		mode := c.HostConfig.NetworkMode
		// A container that shares another's network (container:<id>) has
		// that one's networks.
		for len(networks) == 0 && strings.HasPrefix(mode, "container:") {
			other := byID[strings.TrimPrefix(mode, "container:")]
			if other == nil {
				break
			}
			networks, mode = other.NetworkSettings.Networks, other.HostConfig.NetworkMode
		}
		if (d.cfg.MatchFirstNetwork == nil || *d.cfg.MatchFirstNetwork) && len(networks) > 1 {
			var names []string
			for k, n := range networks {
				if n != nil {
					names = append(names, k)
				}
			}
			if len(names) > 0 {
				sort.Strings(names)
				networks = map[string]*dockerEndpoint{names[0]: networks[names[0]]}
			}
		}
		for _, n := range networks {
			if n == nil {
				continue
			}
			ip := n.IPAddress
			if ip == "" {
				ip = n.GlobalIPv6Address
			}
			added := false
			for _, p := range c.Ports {
				if p.Type != "tcp" {
					continue
				}
				ls := map[string]string{"__meta_docker_network_ip": ip, "__meta_docker_port_private": strconv.Itoa(int(p.PrivatePort))}
				if p.PublicPort > 0 {
					ls["__meta_docker_port_public"] = strconv.Itoa(int(p.PublicPort))
					ls["__meta_docker_port_public_ip"] = p.IP
				}
				copyLabels(ls, common, netLabels[n.NetworkID])
				ls["__address__"] = net.JoinHostPort(ip, strconv.Itoa(int(p.PrivatePort)))
				g.Targets = append(g.Targets, ls)
				added = true
			}
			if !added {
				ls := map[string]string{"__meta_docker_network_ip": ip}
				copyLabels(ls, common, netLabels[n.NetworkID])
				if c.HostConfig.NetworkMode != "host" {
					ls["__address__"] = net.JoinHostPort(ip, strconv.Itoa(d.cfg.Port))
				} else {
					ls["__address__"] = d.cfg.HostNetworkingHost
				}
				g.Targets = append(g.Targets, ls)
			}
		}
	}
	return g, nil
}

func copyLabels(dst map[string]string, srcs ...map[string]string) {
	for _, src := range srcs {
		for k, v := range src {
			dst[k] = v
		}
	}
}
