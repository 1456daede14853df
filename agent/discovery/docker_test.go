package discovery

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// dockerAPI serves the Engine API's GET /containers/json and GET /networks
// on a unix socket, as dockerd does.
type dockerAPI struct {
	mu         sync.Mutex
	containers string
	networks   string
	filters    string // the last ?filters=
	srv        *httptest.Server
}

func newDockerAPI(t *testing.T, containers, networks string) (*dockerAPI, string) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerAPI{containers: containers, networks: networks}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/containers/json":
			d.filters = r.URL.Query().Get("filters")
			fmt.Fprint(w, d.containers)
		case "/networks":
			fmt.Fprint(w, d.networks)
		default:
			http.Error(w, `{"message":"page not found"}`, 404)
		}
	}))
	d.srv.Listener.Close()
	d.srv.Listener = ln
	d.srv.Start()
	t.Cleanup(d.srv.Close)
	return d, "unix://" + sock
}

const dockerNetworks = `[
 {"Name":"bridge","Id":"net1","Scope":"local","Internal":false,"Ingress":false,"Labels":{}},
 {"Name":"backend","Id":"net2","Scope":"local","Internal":true,"Ingress":false,"Labels":{"com.example.tier":"db"}}]`

func dockerContainers(withWeb bool) string {
	web := `{"Id":"c1","Names":["/web"],"Image":"nginx:1.27","ImageID":"sha256:aa","Labels":{"prometheus.io/scrape":"true","com.docker.compose.service":"web"},
	  "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},{"PrivatePort":53,"Type":"udp"}],
	  "HostConfig":{"NetworkMode":"bridge"},
	  "NetworkSettings":{"Networks":{"bridge":{"NetworkID":"net1","IPAddress":"172.17.0.2"}}}},`
	if !withWeb {
		web = ""
	}
	return `[` + web + `
	 {"Id":"c2","Names":["/db"],"Image":"postgres","Labels":{},"Ports":[],
	  "HostConfig":{"NetworkMode":"backend"},
	  "NetworkSettings":{"Networks":{"backend":{"NetworkID":"net2","IPAddress":"10.1.0.5"},"zzz":{"NetworkID":"net1","IPAddress":"172.17.0.9"}}}},
	 {"Id":"c3","Names":["/sidecar"],"Labels":{},"HostConfig":{"NetworkMode":"container:c2"},"NetworkSettings":{"Networks":{}}},
	 {"Id":"c4","Names":["/hostnet"],"Labels":{},"HostConfig":{"NetworkMode":"host"},"NetworkSettings":{"Networks":{"host":{"NetworkID":"net3","IPAddress":""}}}}]`
}

func TestDockerDiscovery(t *testing.T) {
	api, host := newDockerAPI(t, dockerContainers(true), dockerNetworks)
	opts, _ := testOptions()
	d, err := NewDocker(DockerConfig{Host: host, Port: 9100, RefreshInterval: scrape.Duration(20 * time.Millisecond),
		Filters: []DockerFilter{{Name: "label", Values: []string{"prometheus.io/scrape=true"}}}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, d)
	// web: its TCP port (not the UDP one); db: no ports, the default port on
	// its first network by name; sidecar: db's network; hostnet: localhost.
	s.waitFor(t, "172.17.0.2:80", "10.1.0.5:9100", "10.1.0.5:9100", "localhost")
	checkLabels(t, s.target("172.17.0.2:80"), map[string]string{
		"__meta_docker_container_id": "c1", "__meta_docker_container_name": "/web", "__meta_docker_container_image": "nginx:1.27",
		"__meta_docker_container_image_id": "sha256:aa", "__meta_docker_container_network_mode": "bridge",
		"__meta_docker_container_label_prometheus_io_scrape": "true", "__meta_docker_container_label_com_docker_compose_service": "web",
		"__meta_docker_network_id": "net1", "__meta_docker_network_name": "bridge", "__meta_docker_network_scope": "local",
		"__meta_docker_network_internal": "false", "__meta_docker_network_ingress": "false", "__meta_docker_network_ip": "172.17.0.2",
		"__meta_docker_port_private": "80", "__meta_docker_port_public": "8080", "__meta_docker_port_public_ip": "0.0.0.0",
	})
	checkLabels(t, s.target("10.1.0.5:9100"), map[string]string{"__meta_docker_network_name": "backend", "__meta_docker_network_label_com_example_tier": "db",
		"__meta_docker_network_internal": "true", "__meta_docker_port_private": ""})
	api.mu.Lock()
	var f map[string][]string
	err = json.Unmarshal([]byte(api.filters), &f)
	api.mu.Unlock()
	if err != nil || len(f["label"]) != 1 || f["label"][0] != "prometheus.io/scrape=true" {
		t.Errorf("filters sent: %v, %v", f, err)
	}
	// The web container stops.
	api.mu.Lock()
	api.containers = dockerContainers(false)
	api.mu.Unlock()
	s.waitFor(t, "10.1.0.5:9100", "10.1.0.5:9100", "localhost")
	// All gone.
	api.mu.Lock()
	api.containers = `[]`
	api.mu.Unlock()
	s.waitFor(t)
}
