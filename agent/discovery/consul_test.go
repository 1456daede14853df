package discovery

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// consulAPI serves the Consul HTTP API the discovery uses, with blocking
// queries as Consul documents them: a request with ?index=N at the current
// index waits (up to ?wait=) for a change; every answer carries
// X-Consul-Index.
type consulAPI struct {
	mu      sync.Mutex
	cond    *sync.Cond
	index   uint64
	entries map[string][]map[string]any // service -> health entries
	tags    map[string][]string         // service -> catalog tags
	srv     *httptest.Server
}

func newConsulAPI(t *testing.T) *consulAPI {
	c := &consulAPI{index: 1, entries: map[string][]map[string]any{}, tags: map[string][]string{}}
	c.cond = sync.NewCond(&c.mu)
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(func() {
		c.mu.Lock()
		c.index++ // release blocked queries
		c.cond.Broadcast()
		c.mu.Unlock()
		c.srv.Close()
	})
	return c
}

func (c *consulAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Consul-Token") != "secret" {
		http.Error(w, "ACL not found", 403)
		return
	}
	q := r.URL.Query()
	if r.URL.Path == "/v1/agent/self" {
		json.NewEncoder(w).Encode(map[string]any{"Config": map[string]any{"Datacenter": "dc1"}})
		return
	}
	if _, ok := q["stale"]; !ok {
		http.Error(w, "want ?stale (allow_stale defaults to true)", 400)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if idx, _ := strconv.ParseUint(q.Get("index"), 10, 64); idx == c.index {
		wait, _ := time.ParseDuration(q.Get("wait"))
		timer := time.AfterFunc(min(wait, 2*time.Second), func() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		})
		c.cond.Wait() // a change or the wait
		timer.Stop()
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(c.index, 10))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/v1/catalog/services":
		json.NewEncoder(w).Encode(c.tags)
	case strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
		name := strings.TrimPrefix(r.URL.Path, "/v1/health/service/")
		out := []map[string]any{}
		for _, e := range c.entries[name] {
			svcTags := e["Service"].(map[string]any)["Tags"].([]string)
			ok := true
			for _, tag := range q["tag"] {
				ok = ok && slices.Contains(svcTags, tag)
			}
			if ok {
				out = append(out, e)
			}
		}
		json.NewEncoder(w).Encode(out)
	default:
		http.Error(w, "not found", 404)
	}
}

// set registers (or, with no instances, deregisters) a service.
func (c *consulAPI) set(service string, tags []string, instances ...map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(instances) == 0 {
		delete(c.entries, service)
		delete(c.tags, service)
	} else {
		c.entries[service] = instances
		c.tags[service] = tags
	}
	c.index++
	c.cond.Broadcast()
}

func consulInstance(node, addr, svcAddr string, port int, tags []string, status string) map[string]any {
	return map[string]any{
		"Node":    map[string]any{"Node": node, "Address": addr, "Meta": map[string]string{"rack": "r1"}, "TaggedAddresses": map[string]string{"lan": addr}},
		"Service": map[string]any{"ID": node + "-svc", "Service": "x", "Tags": tags, "Address": svcAddr, "Port": port, "Meta": map[string]string{"version": "1.2"}},
		"Checks":  []map[string]any{{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": "service:x", "Status": status}},
	}
}

func TestConsulDiscovery(t *testing.T) {
	api := newConsulAPI(t)
	api.set("web", []string{"prod", "http"},
		consulInstance("n1", "10.0.0.1", "", 8080, []string{"prod", "http"}, "passing"),
		consulInstance("n2", "10.0.0.2", "192.168.0.2", 8080, []string{"prod", "http"}, "critical"))
	api.set("batch", []string{"staging"}, consulInstance("n3", "10.0.0.3", "", 9000, []string{"staging"}, "passing"))
	opts, _ := testOptions()
	server := strings.TrimPrefix(api.srv.URL, "http://")
	d, err := NewConsul(ConsulConfig{Server: server, Token: "secret", Tags: []string{"prod"}, RefreshInterval: scrape.Duration(10 * time.Millisecond)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, d)
	// Only services with the tag "prod"; the service address wins over the node's.
	s.waitFor(t, "10.0.0.1:8080", "192.168.0.2:8080")
	checkLabels(t, s.target("10.0.0.1:8080"), map[string]string{
		"__meta_consul_service": "web", "__meta_consul_dc": "dc1", "__meta_consul_node": "n1", "__meta_consul_address": "10.0.0.1",
		"__meta_consul_tags": ",prod,http,", "__meta_consul_service_port": "8080", "__meta_consul_service_id": "n1-svc",
		"__meta_consul_health": "passing", "__meta_consul_metadata_rack": "r1", "__meta_consul_service_metadata_version": "1.2",
		"__meta_consul_tagged_address_lan": "10.0.0.1", "__meta_consul_service_address": "",
	})
	checkLabels(t, s.target("192.168.0.2:8080"), map[string]string{"__meta_consul_health": "critical", "__meta_consul_service_address": "192.168.0.2"})

	// An instance goes; a new prod service comes; then web is deregistered.
	api.set("web", []string{"prod", "http"}, consulInstance("n1", "10.0.0.1", "", 8080, []string{"prod", "http"}, "passing"))
	s.waitFor(t, "10.0.0.1:8080")
	api.set("api", []string{"prod"}, consulInstance("n4", "10.0.0.4", "", 7000, []string{"prod"}, "warning"))
	s.waitFor(t, "10.0.0.1:8080", "10.0.0.4:7000")
	api.set("web", nil)
	s.waitFor(t, "10.0.0.4:7000")
}

func TestConsulAggregatedStatus(t *testing.T) {
	f := func(want string, checks ...[2]string) {
		t.Helper()
		var e consulEntry
		for _, c := range checks {
			e.Checks = append(e.Checks, struct {
				CheckID string `json:"CheckID"`
				Status  string `json:"Status"`
			}{c[0], c[1]})
		}
		if got := e.aggregatedStatus(); got != want {
			t.Errorf("aggregatedStatus(%v) = %q; want %q", checks, got, want)
		}
	}
	f("passing")
	f("passing", [2]string{"a", "passing"})
	f("warning", [2]string{"a", "passing"}, [2]string{"b", "warning"})
	f("critical", [2]string{"a", "warning"}, [2]string{"b", "critical"})
	f("maintenance", [2]string{"_node_maintenance", "critical"}, [2]string{"b", "passing"})
	f("", [2]string{"a", "weird"})
}
